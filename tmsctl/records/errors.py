"""The records database's errors: ``RecordsError`` and the kinds a caller tells apart."""

from __future__ import annotations

import os

from tmsctl.core.errors import TmsError

# -- errors ---------------------------------------------------------------------------------------


class RecordsError(TmsError):
    """The records database cannot do what was asked. ``path`` names the database file."""

    hint = "check the database path (--db or TMSCTL_DB)"

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None, hint: str | None = None):
        self.path = None if path is None else str(path)
        super().__init__(message, hint=hint)


class DatabaseNotFound(RecordsError, LookupError):
    """No records database at a path that was named explicitly (nothing was created)."""


class InvalidRecord(RecordsError, ValueError):
    """A value that cannot be recorded (wrong type, out of range, unsafe identifier)."""

    hint = "fix the value; nothing was recorded"


class UnknownRecord(RecordsError, LookupError):
    """No subject, session or threshold with that id."""

    hint = "`tmsctl sessions` lists the recorded sessions"


class RecordRefused(RecordsError):
    """The request contradicts what is recorded (would repeat or skip a train, bad status change)."""

    hint = "nothing was recorded; `tmsctl session show ID` shows the session as recorded"


class SessionOwnedElsewhere(RecordRefused):
    """Another live process is running this session."""

    hint = "wait for the other tmsctl process to finish, or stop it (it disarms on SIGTERM)"


class RecordsUnavailable(RecordsError):
    """The records server cannot be reached: nothing was recorded by the step that failed."""

    hint = "check that the records server is up and reachable, then resume the session"
