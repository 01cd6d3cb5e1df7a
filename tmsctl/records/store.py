"""The store: ``Records``, one SQLite connection behind a lock, and the rows it reads back."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tmsctl.core.clock import Clock, SystemClock
from tmsctl.core.redaction import redact_text
from tmsctl.records.errors import (
    DatabaseNotFound,
    InvalidRecord,
    RecordRefused,
    RecordsError,
    SessionOwnedElsewhere,
    UnknownRecord,
)
from tmsctl.records.locks import _OwnerLock
from tmsctl.records.model import (
    _OWNED_STATUSES,
    _RESUMABLE_STATUSES,
    ALLOWED_STATUS_CHANGES,
    ActionKind,
    Delivery,
    DeliveryKind,
    DeliveryPlan,
    DeliveryResult,
    DeliveryState,
    Exposure,
    Fault,
    MotorThreshold,
    OperatorAction,
    Override,
    ProtocolApproval,
    Resolution,
    ResumePoint,
    Session,
    SessionDetail,
    SessionPlan,
    SessionStatus,
    StorageSettings,
    Subject,
    ThresholdReference,
    ThresholdUsed,
    TriggerSource,
    _content_hash,
    _count,
    _enum,
    _optional_utc,
    _text,
    _utc,
    new_session_id,
    normalize_session_id,
    validate_subject_id,
)
from tmsctl.records.schema import (
    APPLICATION_ID,
    MIGRATIONS,
    _from_db_time,
    _from_db_time_required,
    _to_db_time,
    apply_migrations,
)
from tmsctl.records.server import (
    ServerConnection,
    ServerError,
    ServerIntegrityError,
    ServerOwnerLock,
    is_server_url,
    open_server_schema,
    redact_url,
    server_error,
    server_integrity_check,
    server_storage_settings,
)

if TYPE_CHECKING:
    from tmsctl.records.courses import Courses

BUSY_TIMEOUT_S = 5.0
# The whole-file damage check runs at open after an unclean shutdown or a change from outside
# (see Records._full_check_not_due), and at least this often.
FULL_CHECK_EVERY_DAYS = 7
CLEAN_CLOSE_SUFFIX = ".clean"
# What either backend raises (a server's errors arrive as ServerError, see tmsctl.records.server).
_DB_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, ServerError)
_INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, ServerIntegrityError)
WAL_CHECKPOINT_PAGES = 100  # SQLite's default is 1000


# Kinds written by the lifecycle methods themselves; record_action takes the others.
_LIFECYCLE_ACTIONS = {
    ActionKind.START: "start_session",
    ActionKind.PAUSE: "pause_session",
    ActionKind.RESUME: "resume_session",
    ActionKind.ABORT: "abort_session",
    ActionKind.OVERRIDE: "record_override",
    ActionKind.SKIP_PARTIAL: "skip_partial",
    ActionKind.RETRY_PARTIAL: "retry_partial",
}


# -- where the database lives ---------------------------------------------------------------------


def default_db_path(env: Mapping[str, str] | None = None) -> Path:
    """``$TMSCTL_DB``, else ``$XDG_DATA_HOME/tmsctl/tmsctl.db``, else ``~/.local/share/tmsctl/tmsctl.db``."""
    env = os.environ if env is None else env
    explicit = env.get("TMSCTL_DB", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_DATA_HOME", "").strip()
    # The XDG spec says relative values are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        base = Path(xdg)
    else:
        base = Path(env.get("HOME") or Path.home()) / ".local" / "share"
    return base / "tmsctl" / "tmsctl.db"


# -- the store ------------------------------------------------------------------------------------


def _sqlite_error(exc: Exception, path: Path | str, doing: str) -> RecordsError:
    if isinstance(exc, ServerError):
        return server_error(exc, str(path), doing)
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return RecordsError(
            f"the records database {path} is locked by another program ({doing}: {text})",
            path=path,
            hint=f"another process held a write lock for more than {BUSY_TIMEOUT_S:g} s; close other "
            "tmsctl processes or database browsers on this file and retry",
        )
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return RecordsError(
            f"the records database {path} is damaged or not a database ({doing}: {text})",
            path=path,
            hint="stop using it, keep a copy as evidence, restore from backup or try "
            f"`sqlite3 {path} .recover`; point --db or TMSCTL_DB at another file meanwhile",
        )
    if "disk" in lowered or "full" in lowered or "readonly" in lowered or "unable to open" in lowered:
        return RecordsError(
            f"cannot write the records database {path} ({doing}: {text})",
            path=path,
            hint="check free disk space and that the file and its directory are writable by you",
        )
    return RecordsError(f"records database {path}: {doing} failed: {text}", path=path)


class Records:
    """The records database. Thread-safe (one lock around one connection); a context manager.

    Opening it applies pending migrations and marks sessions whose owning process has died
    ``interrupted``. ``close()`` does not end the sessions this process runs: a runner ends them
    explicitly; otherwise the next opener finds them interrupted, exactly as after a crash.

    ``create=False`` refuses a path where no file exists (an explicitly named database that is not
    there is a typo, not a wish for an empty one). ``read_only=True`` opens an existing, current
    database for reading only: nothing is migrated or marked and every write fails, so it works on
    read-only media. A zero-byte file is refused as damaged, never started afresh.
    """

    # The two commit modes (PRAGMA synchronous): every commit waits for the disk except a train's
    # outcome (``_transaction(wait_for_disk=False)``). A benchmark may swap both to show the disk's share.
    _DURABLE_MODE = "FULL"
    _RELAXED_MODE = "NORMAL"
    _waits_for_disk = True

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        create: bool = True,
        read_only: bool = False,
    ) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._owned: dict[str, _OwnerLock | ServerOwnerLock] = {}
        self._conn: sqlite3.Connection | None = None
        self._read_only = read_only
        location = os.fspath(path) if path is not None else (os.environ if env is None else env).get("TMSCTL_DB", "")
        if is_server_url(location.strip()):
            self._open_server(location.strip(), env=env, create=create, read_only=read_only)
            return
        self._server: ServerConnection | None = None
        self._local_path: Path = Path(path).expanduser() if path is not None else default_db_path(env)
        self._path: Path | str = self._local_path  # the SQLite file: the same Path
        created = self._create_file_if_missing() if create and not read_only else False
        self._check_permissions(created)
        # Decided before our own connection exists: it creates the -wal file the decision reads.
        self._last_full_check = self._full_check_not_due()
        self._conn = self._connect()
        try:
            self._check_identity()
            self._configure()
            if self._last_full_check is None:
                self.check_not_damaged()
            if read_only:
                self._check_current()
            else:
                self._wrap(
                    "migrating the schema", lambda: apply_migrations(self._db, MIGRATIONS, path=str(self._path))
                )
                self.mark_interrupted_sessions()
        except BaseException:
            self._conn.close()
            self._conn = None
            raise

    def _open_server(
        self, url: str, *, env: Mapping[str, str] | None, create: bool, read_only: bool
    ) -> None:
        """The records on a PostgreSQL server (see ``tmsctl.records.server``)."""
        self._path = redact_url(url)
        # The server keeps the records; this workstation keeps its audit logs in its data folder.
        local_env = {k: v for k, v in (os.environ if env is None else env).items() if k != "TMSCTL_DB"}
        self._local_path = default_db_path(local_env)
        self._server = self._wrap(
            "connecting", lambda: ServerConnection(url, read_only=read_only, on_reconnect=self._reclaim_owner_locks)
        )
        self._conn = self._server  # type: ignore[assignment]  # it speaks what the store uses of sqlite3
        try:
            open_server_schema(self._server, self._path, create=create, read_only=read_only)
            if not read_only:
                self.mark_interrupted_sessions()
        except BaseException:
            self._server.close()
            self._conn = None
            raise

    def _reclaim_owner_locks(self) -> None:
        """After a lost connection: take this process's owner locks again on the new one. A session
        whose lock another process took meanwhile is no longer run from here."""
        assert self._server is not None
        for session_id, lock in list(self._owned.items()):
            if not self._server.try_owner_lock(session_id):
                lock.held = False  # type: ignore[union-attr]
                del self._owned[session_id]

    # -- opening ---------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The database file; for a server, the file the local data folder would hold (its folder
        keeps this workstation's audit logs). ``location`` names the database either way."""
        return self._local_path

    @property
    def location(self) -> str:
        """The database file's path, or the server's URL without its password."""
        return str(self._path)

    @property
    def _owners_dir(self) -> Path:
        return self._local_path.with_name(self._local_path.name + ".owners")  # SQLite only: its file

    def _create_file_if_missing(self) -> bool:
        """Create an empty, private file where none exists; True if this call created it."""
        directory = self._local_path.parent
        try:
            if not directory.exists():
                directory.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError):
                    directory.mkdir(mode=0o700)
                    os.chmod(directory, 0o700)  # mkdir's mode passes through the umask
            fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        except OSError as exc:
            raise RecordsError(
                f"cannot create the records database {self._path}: {exc.strerror or exc}",
                path=self._path,
                hint="choose a writable location with --db or TMSCTL_DB",
            ) from exc
        os.fchmod(fd, 0o600)
        os.close(fd)
        return True

    def _check_permissions(self, created: bool) -> None:
        try:
            info = os.stat(self._path)
        except FileNotFoundError as exc:
            raise DatabaseNotFound(
                f"there is no records database at {self._path}",
                path=self._path,
                hint=f"check the path for a typo; to start a new, empty database there: "
                f"`tmsctl db init {self._path}`",
            ) from exc
        except OSError as exc:
            raise RecordsError(f"cannot open the records database {self._path}: {exc.strerror or exc}",
                               path=self._path) from exc
        if not stat.S_ISREG(info.st_mode):
            raise RecordsError(f"{self._path} is not a regular file", path=self._path,
                               hint="point --db or TMSCTL_DB at a database file")
        if info.st_size == 0 and not created:
            # Even a new database has its header on disk once opened (WAL mode is written there),
            # so an empty file was truncated or never finished: starting it afresh would silently
            # drop the history, thresholds, approvals and exposure that the safety checks rely on.
            raise RecordsError(
                f"the records database {self._path} is empty (0 bytes): damaged, not a new database",
                path=self._path,
                hint="restore it from backup; if it was created moments ago and never used (or another "
                f"tmsctl is creating it right now), remove it and run `tmsctl db init {self._path}`",
            )
        if os.name == "posix" and info.st_mode & 0o077:
            raise RecordsError(
                f"the records database {self._path} is accessible to other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); it holds research subjects' records",
                path=self._path,
                hint=f"make it private with `chmod 600 {self._path}`",
            )

    def _connect(self) -> sqlite3.Connection:
        try:
            if self._read_only:
                conn = sqlite3.connect(
                    self._read_only_uri(), uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                    check_same_thread=False,
                )
            else:
                conn = sqlite3.connect(
                    self._path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
                )
        except _DB_ERRORS as exc:
            raise _sqlite_error(exc, self._path, "opening") from exc
        return conn

    def _read_only_uri(self) -> str:
        """A ``mode=ro`` URI; ``immutable=1`` too where the folder cannot be written (read-only media).

        A WAL reader needs the ``-shm`` file: SQLite opens it if it exists or creates it if the
        folder is writable. Where neither is possible no connection can be open (one would have
        made it), so nothing is writing and the file may be read as immutable, unless committed
        changes still wait in a ``-wal`` file: immutable reading would skip them, so that is refused.
        """
        uri = f"{self._local_path.resolve().as_uri()}?mode=ro"
        if os.access(self._local_path.parent, os.W_OK) or os.path.exists(f"{self._path}-shm"):
            return uri
        wal = Path(f"{self._path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise RecordsError(
                f"the records database {self._path} has changes in {wal.name} that cannot be read "
                "here: its folder is read-only",
                path=self._path,
                hint=f"copy {self._local_path.name} together with {wal.name} to a writable folder and open the "
                "copy there",
            )
        return uri + "&immutable=1"

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RecordsError(f"the records database {self._path} is closed", path=self._path)
        return self._conn

    def _wrap(self, doing: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except _DB_ERRORS as exc:
            raise _sqlite_error(exc, self._path, doing) from exc

    def _check_identity(self) -> None:
        def read() -> tuple[int, int, int]:
            app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            return app_id, version, tables

        app_id, version, tables = self._wrap("reading the header", read)
        if app_id == APPLICATION_ID:
            return
        if app_id == 0 and version == 0 and tables == 0 and not self._read_only:
            return  # a new, empty file
        raise RecordsError(
            f"{self._path} is an SQLite database of another program "
            f"(application id {app_id:#x}, {tables} schema objects), not tmsctl records",
            path=self._path,
            hint="point --db or TMSCTL_DB at a tmsctl records file or at a new path",
        )

    def _clean_close_path(self) -> Path:
        return Path(f"{self._local_path}{CLEAN_CLOSE_SUFFIX}")

    def _file_identity(self) -> list[int]:
        info = os.stat(self._local_path)
        return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]

    def _full_check_not_due(self) -> str | None:
        """When the file was last checked in full, if it has not changed since a clean close and that
        check is recent; None when the full check is due.

        The stamp (``<db>.clean``) is written by the last connection to close, once SQLite has folded
        the write-ahead log into the file and deleted it — SQLite does that on the last clean close of
        a WAL database, and only then. It holds the file's device, inode, size and modification and
        change times. So the full check runs when:

        * a ``-wal`` file with content is there: a process died with the file open (a kill, a crash,
          a power cut — the only events that can leave a torn page behind, and only where the disk
          lost a write it had confirmed), or another process writes it right now (then the check is
          redundant);
        * the file is not as the last clean close left it: written by anything that did not close
          it last and cleanly, copied, restored, edited; the change time cannot be set back by
          programs, so a copy that keeps the modification time is noticed too;
        * there is no stamp (first open, read-only media, a file copied without it);
        * the last full check is older than ``FULL_CHECK_EVERY_DAYS``: for damage nothing above
          notices, a disk that rots under an unchanged file.
        """
        if self._wal_holds_frames():
            return None
        try:
            stamp = json.loads(self._clean_close_path().read_text(encoding="utf-8"))
            checked = str(stamp["last_full_check"])
            fresh = self._now() - datetime.fromisoformat(checked) < timedelta(days=FULL_CHECK_EVERY_DAYS)
            unchanged = stamp["file"] == self._file_identity()
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return checked if fresh and unchanged else None

    def _wal_holds_frames(self) -> bool:
        """A ``-wal`` with content: written since SQLite last folded it in at a clean last close.

        An empty one is what a read-only connection leaves (it may not delete the log): nothing
        was written through it, so nothing can be half-written.
        """
        try:
            return os.stat(f"{self._local_path}-wal").st_size > 0
        except FileNotFoundError:
            return False

    def _stamp_clean_close(self) -> None:
        """After the last connection closed (no ``-wal`` with content left), note the file as it is
        now. A read-only opener stamps too where it can: the stamp is beside the records, not in them."""
        if self._last_full_check is None or self._wal_holds_frames():
            return
        stamp = self._clean_close_path()
        try:
            temporary = stamp.with_name(stamp.name + ".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"file": self._file_identity(), "last_full_check": self._last_full_check}, handle)
            os.replace(temporary, stamp)
        except OSError:
            pass  # no stamp: the next open checks in full, as it would anyway

    def check_not_damaged(self) -> None:
        """Refuse a damaged file: read every page (SQLite only; a server keeps its own pages).

        Runs at open when ``_full_check_not_due`` says so, and on `tmsctl records check`; every
        other open checks the header (application id), the schema version and the journal mode.
        The check reads every page, so it grows with the file: about 3 ms per MB here, ~1 s for two
        years of a busy clinic. It leaves out re-evaluating every stored row's CHECK constraints,
        which took six times as long again (7 s at that size, on every command) to find only
        bit rot that happens to push a value out of its range; every write still enforces them.
        That pragma is per connection, so the check runs on a short-lived read-only one of its
        own: the store's connection never has its constraints switched off, not even briefly.
        """

        def quick_check() -> list[str]:
            checker = sqlite3.connect(self._read_only_uri(), uri=True, timeout=BUSY_TIMEOUT_S)
            try:
                checker.execute("PRAGMA ignore_check_constraints = ON")
                return [row[0] for row in checker.execute("PRAGMA quick_check(5)")]
            finally:
                checker.close()

        problems = self._wrap("checking the file", quick_check)
        if problems != ["ok"]:
            raise RecordsError(
                f"the records database {self._path} is damaged: " + "; ".join(problems),
                path=self._path,
                hint="stop using it, keep a copy as evidence, restore from backup or try "
                f"`sqlite3 {self._path} .recover`; point --db or TMSCTL_DB at another file meanwhile",
            )
        self._last_full_check = self._now().isoformat()

    def _check_current(self) -> None:
        """A read-only opener cannot migrate: it reads only a database at this tmsctl's schema."""
        version = self._wrap(
            "reading the schema version", lambda: self._db.execute("PRAGMA user_version").fetchone()[0]
        )
        if version == len(MIGRATIONS):
            return
        if version > len(MIGRATIONS):
            hint = "upgrade tmsctl"
        else:
            hint = f"open it once with write access to upgrade it in place: `tmsctl db init {self._path}`"
        raise RecordsError(
            f"the records database {self._path} has schema version {version}; this tmsctl reads "
            f"version {len(MIGRATIONS)}",
            path=self._path,
            hint=hint,
        )

    def _configure(self) -> None:
        if self._read_only:  # the journal mode is the file's; a reader neither needs nor may set it
            busy_ms = int(BUSY_TIMEOUT_S * 1000)
            self._wrap("configuring", lambda: self._db.execute(f"PRAGMA busy_timeout = {busy_ms}"))
            return

        def configure() -> str:
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._db.execute("PRAGMA synchronous = FULL")
            # A small write-ahead log is checkpointed often and then rewritten in place: the fsync
            # of every commit is cheaper for blocks that exist than for a file that grows.
            self._db.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
            self._db.execute("PRAGMA foreign_keys = ON")
            return str(mode)

        mode = self._wrap("configuring", configure)
        if mode.lower() != "wal":
            raise RecordsError(
                f"the records database {self._path} cannot use write-ahead logging (journal mode {mode!r})",
                path=self._path,
                hint="keep the database on a local disk (WAL does not work on network file systems)",
            )

    def mark_interrupted_sessions(self) -> tuple[str, ...]:
        """Mark running/paused sessions whose owning process is gone ``interrupted``; return their ids.

        Done at open; a long-lived process (a GUI) may call it again.
        """
        marked: list[str] = []
        rows = self._wrap(
            "looking for interrupted sessions",
            lambda: self._db.execute(
                "SELECT session_id FROM sessions WHERE status IN ('running', 'paused')"
            ).fetchall(),
        )
        for (session_id,) in rows:
            if session_id in self._owned:
                continue  # ours, alive
            lock = self._try_lock(session_id)
            if lock is None:
                continue  # a live process owns it
            try:
                with self._transaction("marking an interrupted session"):
                    row = self._db.execute(
                        "SELECT status FROM sessions WHERE session_id = ?", (session_id,)
                    ).fetchone()
                    if row is None or SessionStatus(row[0]) not in _OWNED_STATUSES:
                        continue
                    previous = SessionStatus(row[0])
                    last_activity = self._last_activity(session_id)
                    open_delivery = self._db.execute(
                        "SELECT delivery_index, pulses_delivered, pulses_planned FROM deliveries "
                        "WHERE session_id = ? AND state = 'in_progress' AND resolution IS NULL",
                        (session_id,),
                    ).fetchone()
                    detail = "process ended without closing the session"
                    if last_activity:
                        detail += f"; last recorded activity at {last_activity}"
                    if open_delivery:
                        detail += (
                            f"; delivery {open_delivery[0]} had begun ({open_delivery[1]} of "
                            f"{open_delivery[2]} pulses recorded)"
                        )
                    self._db.execute(
                        "UPDATE sessions SET status = 'interrupted', ended_at = ? WHERE session_id = ?",
                        (last_activity, session_id),
                    )
                    self._insert_fault(Fault(session_id, "process_ended", detail, previous.value))
                    marked.append(session_id)
            finally:
                lock.release(remove=True)
        return tuple(marked)

    def _last_activity(self, session_id: str) -> str | None:
        row = self._db.execute(
            """
            SELECT max(t) FROM (
                SELECT started_at AS t FROM sessions WHERE session_id = :s
                UNION ALL SELECT max(started_at) FROM deliveries WHERE session_id = :s
                UNION ALL SELECT max(finished_at) FROM deliveries WHERE session_id = :s
                UNION ALL SELECT max(at) FROM operator_actions WHERE session_id = :s
                UNION ALL SELECT max(at) FROM faults WHERE session_id = :s
            ) AS activity
            """,
            {"s": session_id},
        ).fetchone()
        return row[0]

    def _try_lock(self, session_id: str) -> _OwnerLock | ServerOwnerLock | None:
        server = self._server
        if server is not None:
            return self._wrap("taking the session's owner lock",
                              lambda: ServerOwnerLock.try_acquire(server, session_id))
        try:
            return _OwnerLock.try_acquire(self._owners_dir, session_id)
        except OSError as exc:
            raise RecordsError(
                f"cannot use the session lock directory {self._owners_dir}: {exc.strerror or exc}",
                path=self._path,
                hint="the directory next to the database must be writable by you",
            ) from exc

    # -- plumbing --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, doing: str, *, wait_for_disk: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (and, with synchronous=FULL, on disk) on exit.

        ``wait_for_disk=False`` commits without waiting for the disk (SQLite: synchronous=NORMAL for
        this commit): a killed process still loses nothing (the WAL holds it), and the next waiting
        commit puts it on disk too. Only a power cut in between can lose it, so it is used only where
        losing it leaves the record true: a train's outcome, whose loss leaves its intent reading as
        "uncertain: 0 to the whole train". The intent itself always waits (it must be on disk before
        the trigger)."""
        with self._lock:
            conn = self._db
            try:
                if self._server is None and wait_for_disk != self._waits_for_disk:
                    # switched only when it changes: twice a train (intent, then its outcomes)
                    mode = self._DURABLE_MODE if wait_for_disk else self._RELAXED_MODE
                    conn.execute(f"PRAGMA synchronous = {mode}")
                    self._waits_for_disk = wait_for_disk
                conn.execute("BEGIN IMMEDIATE")
            except _DB_ERRORS as exc:
                raise _sqlite_error(exc, self._path, doing) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except _INTEGRITY_ERRORS as exc:
                with contextlib.suppress(*_DB_ERRORS):
                    conn.execute("ROLLBACK")
                raise RecordRefused(f"{doing}: the database refused it: {exc}", path=self._path) from exc
            except _DB_ERRORS as exc:
                with contextlib.suppress(*_DB_ERRORS):
                    conn.execute("ROLLBACK")
                raise _sqlite_error(exc, self._path, doing) from exc
            except BaseException:
                with contextlib.suppress(*_DB_ERRORS):
                    conn.execute("ROLLBACK")
                raise

    def _read(
        self, doing: str, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[sqlite3.Row]:
        with self._lock:
            try:
                cursor = self._db.execute(sql, params)
                cursor.row_factory = sqlite3.Row
                return cursor.fetchall()
            except _DB_ERRORS as exc:
                raise _sqlite_error(exc, self._path, doing) from exc

    def _now(self) -> datetime:
        return self._clock.wall().astimezone(UTC)

    def _stamp(self, moment: datetime | None) -> str:
        return _to_db_time(moment if moment is not None else self._now())

    # -- lifecycle of the store ------------------------------------------------------------------

    def close(self) -> None:
        """Close the database and free this process's session locks (sessions keep their status)."""
        with self._lock:
            for lock in self._owned.values():
                lock.release(remove=False)
            self._owned.clear()
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                if self._server is None:
                    self._stamp_clean_close()

    def __enter__(self) -> Records:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def storage_settings(self) -> StorageSettings:
        """What the connection actually uses (for `tmsctl doctor` and the tests)."""
        with self._lock:
            server = self._server
            if server is not None:
                journal, synchronous, version, app_id = self._wrap(
                    "reading the server's settings", lambda: server_storage_settings(server))
                return StorageSettings(self.path, journal, synchronous, True, version, app_id)

            def read(pragma: str) -> Any:
                return self._db.execute(f"PRAGMA {pragma}").fetchone()[0]

            if not self._waits_for_disk:  # report the mode every waiting commit runs under
                self._db.execute(f"PRAGMA synchronous = {self._DURABLE_MODE}")
                self._waits_for_disk = True

            synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(read("synchronous"), "?")
            return StorageSettings(
                path=self._local_path,
                journal_mode=str(read("journal_mode")),
                synchronous=synchronous,
                foreign_keys=bool(read("foreign_keys")),
                schema_version=int(read("user_version")),
                application_id=int(read("application_id")),
            )

    def integrity_check(self) -> tuple[str, ...]:
        """SQLite's ``integrity_check`` and ``foreign_key_check``; ``("ok",)`` when sound. On a server,
        which checks its pages itself: the records' triggers and constraints are all in force."""
        server = self._server
        if server is not None:
            with self._lock:
                return self._wrap("checking integrity", lambda: server_integrity_check(server))
        problems = [row[0] for row in self._read("checking integrity", "PRAGMA integrity_check")]
        for row in self._read("checking foreign keys", "PRAGMA foreign_key_check"):
            problems.append(f"foreign key: {tuple(row)}")
        if problems == ["ok"]:
            return ("ok",)
        return tuple(p for p in problems if p != "ok")

    @property
    def courses(self) -> Courses:
        """Treatment courses, plan changes and outcome entries (``tmsctl.records.courses``)."""
        from tmsctl.records.courses import Courses

        return Courses(self)

    # -- subjects --------------------------------------------------------------------------------

    def add_subject(self, subject_id: str) -> Subject:
        validate_subject_id(subject_id)
        with self._transaction("adding a subject") as conn:
            if conn.execute("SELECT 1 FROM subjects WHERE subject_id = ?", (subject_id,)).fetchone():
                raise RecordRefused(f"subject {subject_id!r} is already recorded", path=self._path,
                                    hint="use ensure_subject to accept an existing subject")
            created = self._stamp(None)
            conn.execute("INSERT INTO subjects (subject_id, created_at) VALUES (?, ?)", (subject_id, created))
        return Subject(subject_id, _from_db_time_required(created))

    def ensure_subject(self, subject_id: str) -> Subject:
        existing = self.subject(subject_id)
        return existing if existing is not None else self.add_subject(subject_id)

    def subject(self, subject_id: str) -> Subject | None:
        validate_subject_id(subject_id)
        rows = self._read("reading a subject", "SELECT * FROM subjects WHERE subject_id = ?", (subject_id,))
        return Subject(rows[0]["subject_id"], _from_db_time_required(rows[0]["created_at"])) if rows else None

    def subjects(self) -> tuple[Subject, ...]:
        rows = self._read("listing subjects", "SELECT * FROM subjects ORDER BY subject_id")
        return tuple(Subject(r["subject_id"], _from_db_time_required(r["created_at"])) for r in rows)

    def _require_subject(self, conn: sqlite3.Connection, subject_id: str) -> None:
        if not conn.execute("SELECT 1 FROM subjects WHERE subject_id = ?", (subject_id,)).fetchone():
            raise UnknownRecord(f"subject {subject_id!r} is not recorded", path=self._path,
                                hint="add the subject first (ensure_subject)")

    # -- motor thresholds ------------------------------------------------------------------------

    def record_motor_threshold(self, threshold: MotorThreshold) -> MotorThreshold:
        if threshold.threshold_id is not None:
            raise InvalidRecord("a new motor threshold has no threshold_id yet (the store assigns it)")
        with self._transaction("recording a motor threshold") as conn:
            self._require_subject(conn, threshold.subject_id)
            cursor = conn.execute(
                """INSERT INTO motor_thresholds (subject_id, stimulator_model, stimulator_serial, coil,
                       value_pct_mso, reference, method, measured_at, trial_log_json, operator, recorded_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    threshold.subject_id,
                    threshold.stimulator_model,
                    threshold.stimulator_serial,
                    threshold.coil,
                    threshold.value_pct_mso,
                    threshold.reference.value,
                    threshold.method,
                    _to_db_time(threshold.measured_at),
                    json.dumps(list(threshold.trial_log), sort_keys=True),
                    threshold.operator,
                    self._stamp(None),
                ),
            )
            new_id = cursor.lastrowid
        return replace(threshold, threshold_id=new_id)

    def motor_thresholds(self, subject_id: str) -> tuple[MotorThreshold, ...]:
        validate_subject_id(subject_id)
        rows = self._read(
            "listing motor thresholds",
            "SELECT * FROM motor_thresholds WHERE subject_id = ? ORDER BY measured_at, threshold_id",
            (subject_id,),
        )
        return tuple(_threshold_from_row(r) for r in rows)

    def latest_motor_threshold(
        self, subject_id: str, *, stimulator_model: str, stimulator_serial: str, coil: str
    ) -> MotorThreshold | None:
        """The most recent measurement for exactly this subject, stimulator (model + serial) and coil."""
        validate_subject_id(subject_id)
        rows = self._read(
            "looking up a motor threshold",
            """SELECT * FROM motor_thresholds
               WHERE subject_id = ? AND stimulator_model = ? AND stimulator_serial = ? AND coil = ?
               ORDER BY measured_at DESC, threshold_id DESC LIMIT 1""",
            (subject_id, stimulator_model, stimulator_serial, coil),
        )
        return _threshold_from_row(rows[0]) if rows else None

    # -- protocol approvals ----------------------------------------------------------------------

    def approve_protocol(
        self, protocol_id: str, content_hash: str, *, approved_by: str, approved_at: datetime | None = None
    ) -> ProtocolApproval:
        _text("protocol_id", protocol_id, max_len=120)
        _content_hash(content_hash)
        _text("approved_by", approved_by, max_len=80)
        at = self._stamp(_optional_utc("approved_at", approved_at))
        with self._transaction("recording a protocol approval") as conn:
            cursor = conn.execute(
                "INSERT INTO protocol_approvals (protocol_id, content_hash, approved_by, approved_at) "
                "VALUES (?, ?, ?, ?)",
                (protocol_id, content_hash, approved_by, at),
            )
            new_id = cursor.lastrowid
        assert new_id is not None
        return ProtocolApproval(protocol_id, content_hash, approved_by, _from_db_time_required(at), new_id)

    def protocol_approvals(
        self, protocol_id: str | None = None, content_hash: str | None = None
    ) -> tuple[ProtocolApproval, ...]:
        rows = self._read(
            "listing protocol approvals",
            """SELECT * FROM protocol_approvals
               WHERE (:p IS NULL OR protocol_id = :p) AND (:h IS NULL OR content_hash = :h)
               ORDER BY approved_at, approval_id""",
            {"p": protocol_id, "h": content_hash},
        )
        return tuple(
            ProtocolApproval(
                r["protocol_id"], r["content_hash"], r["approved_by"],
                _from_db_time_required(r["approved_at"]), r["approval_id"],
            )
            for r in rows
        )

    def is_protocol_approved(self, protocol_id: str, content_hash: str) -> bool:
        """True when this exact content (by hash) of this protocol id has been approved."""
        return bool(self.protocol_approvals(protocol_id, content_hash))

    # -- sessions --------------------------------------------------------------------------------

    def create_session(self, plan: SessionPlan) -> Session:
        """Record a planned session (status ``planned``); nothing has fired yet."""
        for _ in range(20):
            session_id = plan.session_id or new_session_id()
            with self._transaction("creating a session") as conn:
                self._require_subject(conn, plan.subject_id)
                if conn.execute("SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)).fetchone():
                    if plan.session_id is not None:
                        raise RecordRefused(f"session {session_id} already exists", path=self._path,
                                            hint="choose another id, or let tmsctl make one")
                    continue  # a random id collided: draw another
                for used in plan.thresholds_used:
                    self._check_threshold_used(conn, plan.subject_id, used)
                conn.execute(
                    """INSERT INTO sessions (session_id, subject_id, protocol_id, protocol_hash,
                           protocol_text, device_url, device_model, device_serial, device_firmware, coil,
                           simulated, planned_deliveries, planned_pulses, status, created_at,
                           replies_confirmed)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned', ?, ?)""",
                    (
                        session_id,
                        plan.subject_id,
                        plan.protocol_id,
                        plan.protocol_hash,
                        plan.protocol_text,
                        redact_text(plan.device_url),
                        plan.device_model,
                        plan.device_serial,
                        plan.device_firmware,
                        plan.coil,
                        int(plan.simulated),
                        plan.planned_deliveries,
                        plan.planned_pulses,
                        self._stamp(None),
                        int(plan.replies_confirmed),
                    ),
                )
                conn.executemany(
                    "INSERT INTO session_thresholds "
                    "(session_id, position, reference, value_pct_mso, threshold_id) VALUES (?, ?, ?, ?, ?)",
                    [
                        (session_id, position, used.reference.value, used.value_pct_mso, used.threshold_id)
                        for position, used in enumerate(plan.thresholds_used)
                    ],
                )
            return self.session(session_id)
        raise RecordsError("could not draw an unused session id in 20 tries", path=self._path)

    def _check_threshold_used(self, conn: sqlite3.Connection, subject_id: str, used: ThresholdUsed) -> None:
        if used.threshold_id is None:
            return
        row = conn.execute(
            "SELECT subject_id, reference, value_pct_mso FROM motor_thresholds WHERE threshold_id = ?",
            (used.threshold_id,),
        ).fetchone()
        if row is None:
            raise UnknownRecord(f"motor threshold {used.threshold_id} is not recorded", path=self._path)
        if row[0] != subject_id:
            raise RecordRefused(
                f"motor threshold {used.threshold_id} belongs to subject {row[0]!r}, not {subject_id!r}",
                path=self._path,
            )
        if (row[1], row[2]) != (used.reference.value, used.value_pct_mso):
            raise RecordRefused(
                f"motor threshold {used.threshold_id} is {row[2]} %MSO {row[1]}, but the session says "
                f"{used.value_pct_mso} %MSO {used.reference.value}",
                path=self._path,
            )

    def session(self, session_id: str) -> Session:
        session_id = normalize_session_id(session_id)
        rows = self._read("reading a session", "SELECT * FROM sessions WHERE session_id = ?", (session_id,))
        if not rows:
            raise UnknownRecord(f"no session {session_id} in {self._path}", path=self._path)
        thresholds = self._read(
            "reading a session's thresholds",
            "SELECT * FROM session_thresholds WHERE session_id = ? ORDER BY position",
            (session_id,),
        )
        return _session_from_row(rows[0], thresholds)

    def sessions(
        self,
        *,
        subject_id: str | None = None,
        status: SessionStatus | str | None = None,
        newest: int | None = None,
    ) -> tuple[Session, ...]:
        """Sessions in creation order, optionally only one subject's and/or one status; with
        ``newest``, only the last that many created (still oldest first)."""
        where, given = self._session_filter(subject_id, status)
        if newest is not None:
            _count("newest", newest, low=1)
            # Chosen once (the sort is the costly part), then read: a clinic's years of sessions stay on disk.
            chosen = self._read(
                "choosing the newest sessions",
                f"SELECT s.rowid FROM sessions s WHERE {where} ORDER BY s.created_at DESC, s.rowid DESC LIMIT :newest",
                {**given, "newest": newest},
            )
            # Integers from the database, written into the SQL: the same text for both backends.
            where, given = f"s.rowid IN ({', '.join(str(int(r[0])) for r in chosen) or 'NULL'})", {}
        rows = self._read(
            "listing sessions",
            f"SELECT s.* FROM sessions s WHERE {where} ORDER BY s.created_at, s.rowid",
            given,
        )
        thresholds = self._read(
            "reading thresholds",
            f"""SELECT t.* FROM session_thresholds t JOIN sessions s USING (session_id)
               WHERE {where} ORDER BY t.session_id, t.position""",
            given,
        )
        by_session: dict[str, list[sqlite3.Row]] = {}
        for row in thresholds:
            by_session.setdefault(row["session_id"], []).append(row)
        return tuple(_session_from_row(r, by_session.get(r["session_id"], [])) for r in rows)

    def count_sessions(self, *, subject_id: str | None = None, status: SessionStatus | str | None = None) -> int:
        """How many sessions ``sessions`` would list with the same filters (and no bound)."""
        where, given = self._session_filter(subject_id, status)
        return int(self._read("counting sessions", f"SELECT count(*) FROM sessions s WHERE {where}", given)[0][0])

    @staticmethod
    def _session_filter(
        subject_id: str | None, status: SessionStatus | str | None
    ) -> tuple[str, dict[str, str]]:
        """The WHERE clause over ``sessions s`` for these filters, and its parameters."""
        if subject_id is not None:
            validate_subject_id(subject_id)
        status_value = None if status is None else _enum(SessionStatus, "status", status).value
        # Only the filters given become terms: "(:subject IS NULL OR subject_id = :subject)" cannot
        # use an index, so one subject's listing would read every session the clinic ever ran.
        # With both, the status term is kept off its index ("|| ''"): a subject has tens of sessions,
        # a status ("completed") can hold most of the clinic's.
        given = {column: value for column, value in (("subject_id", subject_id), ("status", status_value))
                 if value is not None}
        terms = [f"s.{column} = :{column}" for column in given]
        if len(terms) == 2:
            terms[1] = "s.status || '' = :status"
        return " AND ".join(terms) or "1 = 1", given

    def _status(self, conn: sqlite3.Connection, session_id: str) -> SessionStatus:
        row = conn.execute("SELECT status FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        if row is None:
            raise UnknownRecord(f"no session {session_id} in {self._path}", path=self._path)
        return SessionStatus(row[0])

    def _change_status(
        self,
        conn: sqlite3.Connection,
        session_id: str,
        new: SessionStatus,
        *,
        doing: str,
        only_from: frozenset[SessionStatus] | None = None,
    ) -> SessionStatus:
        old = self._status(conn, session_id)
        if only_from is not None and old not in only_from:
            hint = {
                "start": "a session starts once; use resume_session to continue it",
                "resume": "only a paused, faulted or interrupted session can be resumed",
            }.get(doing)
            raise RecordRefused(
                f"cannot {doing} session {session_id}: it is {old.value}", path=self._path, hint=hint
            )
        if new not in ALLOWED_STATUS_CHANGES[old]:
            allowed = ", ".join(sorted(s.value for s in ALLOWED_STATUS_CHANGES[old])) or "nothing (final)"
            raise RecordRefused(
                f"cannot {doing} session {session_id}: it is {old.value} "
                f"(from {old.value} it can go to {allowed})",
                path=self._path,
            )
        conn.execute("UPDATE sessions SET status = ? WHERE session_id = ?", (new.value, session_id))
        return old

    def _take_ownership(self, session_id: str) -> bool:
        """Own the session's lock (True if newly taken: a new run segment begins)."""
        if session_id in self._owned:
            return False
        lock = self._try_lock(session_id)
        if lock is None:
            if self._server is not None:
                holder = self._server.owner_lock_holder(session_id)
            else:
                holder = f"pid {_OwnerLock.holder_pid(self._owners_dir, session_id)}"
            raise SessionOwnedElsewhere(
                f"session {session_id} is being run by another live process ({holder})", path=self._path
            )
        self._owned[session_id] = lock
        return True

    def _drop_ownership(self, session_id: str) -> None:
        lock = self._owned.pop(session_id, None)
        if lock is not None:
            lock.release(remove=True)

    def _lifecycle(
        self,
        session_id: str,
        new: SessionStatus,
        *,
        doing: str,
        action: OperatorAction | None,
        fault: Fault | None = None,
        extra: Callable[[sqlite3.Connection, SessionStatus, bool], None] | None = None,
        only_from: frozenset[SessionStatus] | None = None,
    ) -> Session:
        # Every status change needs the session's owner lock: a live process running the session
        # elsewhere keeps it, so nobody else can pause, abort or complete it behind its back.
        session_id = normalize_session_id(session_id)
        with self._lock:
            newly_owned = self._take_ownership(session_id)
            try:
                with self._transaction(doing) as conn:
                    old = self._change_status(conn, session_id, new, doing=doing, only_from=only_from)
                    if extra is not None:
                        extra(conn, old, newly_owned)
                    if action is not None:
                        self._insert_action(action)
                    if fault is not None:
                        self._insert_fault(fault)
            except BaseException:
                if newly_owned:
                    self._drop_ownership(session_id)
                raise
            if new in (SessionStatus.COMPLETED, SessionStatus.ABORTED):
                self._drop_ownership(session_id)
        return self.session(session_id)

    def _set_ended(self, conn: sqlite3.Connection, session_id: str, at: datetime | None) -> None:
        conn.execute("UPDATE sessions SET ended_at = ? WHERE session_id = ?", (self._stamp(at), session_id))

    def start_session(self, session_id: str, *, operator: str, offset_s: float | None = None) -> Session:
        """``planned → running``: this process now owns the session; records a ``start`` action."""
        action = OperatorAction(session_id, ActionKind.START, operator, offset_s=offset_s)

        def stamp(conn: sqlite3.Connection, _old: SessionStatus, _new_owner: bool) -> None:
            conn.execute(
                "UPDATE sessions SET started_at = ?, run_segments = run_segments + 1 WHERE session_id = ?",
                (self._stamp(None), action.session_id),
            )

        return self._lifecycle(session_id, SessionStatus.RUNNING, doing="start", action=action, extra=stamp,
                               only_from=frozenset({SessionStatus.PLANNED}))

    def pause_session(
        self, session_id: str, *, operator: str, reason: str = "", offset_s: float | None = None
    ) -> Session:
        action = OperatorAction(session_id, ActionKind.PAUSE, operator, reason, offset_s=offset_s)
        return self._lifecycle(session_id, SessionStatus.PAUSED, doing="pause", action=action)

    def resume_session(
        self, session_id: str, *, operator: str, reason: str = "", offset_s: float | None = None
    ) -> Session:
        """``paused/faulted/interrupted → running``. In a new process this starts a new run segment."""
        action = OperatorAction(session_id, ActionKind.RESUME, operator, reason, offset_s=offset_s)

        def reopen(conn: sqlite3.Connection, _old: SessionStatus, new_owner: bool) -> None:
            conn.execute(
                "UPDATE sessions SET ended_at = NULL, run_segments = run_segments + ? WHERE session_id = ?",
                (1 if new_owner else 0, action.session_id),
            )

        return self._lifecycle(session_id, SessionStatus.RUNNING, doing="resume", action=action, extra=reopen,
                               only_from=_RESUMABLE_STATUSES)

    def record_session_device(
        self, session_id: str, *, model: str, firmware: str | None, serial: str | None
    ) -> Session:
        """The unit that answered this session's run, as it reported itself (not as planned).

        Only while this process runs the session: it connected to the unit that delivers."""
        session_id = normalize_session_id(session_id)
        _text("device_model", model, max_len=80)
        for name, value in (("device_firmware", firmware), ("device_serial", serial)):
            if value is not None:
                _text(name, value, max_len=80)
        with self._transaction("recording the connected device") as conn:
            self._require_owned_running(self._status(conn, session_id), session_id, "record the device")
            conn.execute(
                "UPDATE sessions SET device_model = ?, device_firmware = ?, device_serial = ? WHERE session_id = ?",
                (model, firmware, serial, session_id),
            )
        return self.session(session_id)

    def complete_session(self, session_id: str) -> Session:
        """``running → completed``; refused unless every schedule position is delivered (or skipped)."""
        session_id = normalize_session_id(session_id)

        def check_finished(conn: sqlite3.Connection, _old: SessionStatus, _new_owner: bool) -> None:
            point = self._resume_point(conn, session_id)
            if point.finished and point.completed_deliveries < point.planned_deliveries:
                # Ran to its end, but some position was cut short or its outcome is unknown.
                conn.execute("UPDATE sessions SET status = 'incomplete' WHERE session_id = ?", (session_id,))
            if not point.finished:
                missing = point.planned_deliveries - point.next_index
                raise RecordRefused(
                    f"session {session_id} is not finished: {missing} of {point.planned_deliveries} "
                    f"trains/pulses not delivered (next is {point.next_index})",
                    path=self._path,
                    hint="end it with abort_session and a reason instead",
                )
            self._set_ended(conn, session_id, None)

        return self._lifecycle(session_id, SessionStatus.COMPLETED, doing="complete", action=None,
                               extra=check_finished)

    def abort_session(
        self, session_id: str, *, operator: str, reason: str, offset_s: float | None = None
    ) -> Session:
        """End the session for good (any non-final status); ``reason`` must say why."""
        _text("reason", reason, max_len=2000)
        action = OperatorAction(session_id, ActionKind.ABORT, operator, reason, offset_s=offset_s)

        def stamp(conn: sqlite3.Connection, _old: SessionStatus, _new_owner: bool) -> None:
            self._set_ended(conn, action.session_id, None)

        return self._lifecycle(session_id, SessionStatus.ABORTED, doing="abort", action=action, extra=stamp)

    def fault_session(self, fault: Fault) -> Session:
        """Record ``fault`` and mark the session ``faulted`` in one transaction."""

        def stamp(conn: sqlite3.Connection, _old: SessionStatus, _new_owner: bool) -> None:
            self._set_ended(conn, fault.session_id, fault.at)

        return self._lifecycle(
            fault.session_id, SessionStatus.FAULTED, doing="fault", action=None, fault=fault, extra=stamp
        )

    # -- deliveries ------------------------------------------------------------------------------

    def begin_delivery(self, plan: DeliveryPlan) -> Delivery:
        """Record that a train or pulse is about to fire (commit before firing).

        Refused unless the session is running in this process, ``plan.index`` is the resume
        point's ``next_index`` and no partial attempt is unresolved.
        """
        with self._transaction("recording the start of a delivery") as conn:
            row = conn.execute(
                "SELECT status, planned_deliveries, run_segments FROM sessions WHERE session_id = ?",
                (plan.session_id,),
            ).fetchone()
            if row is None:
                raise UnknownRecord(f"no session {plan.session_id} in {self._path}", path=self._path)
            self._require_owned_running(SessionStatus(row[0]), plan.session_id, "begin a delivery")
            planned, segments = row[1], row[2]
            if plan.index >= planned:
                raise RecordRefused(
                    f"session {plan.session_id} plans {planned} trains/pulses (0..{planned - 1}); "
                    f"index {plan.index} is outside the plan",
                    path=self._path,
                )
            self._check_next(plan.session_id, *self._next_position(conn, plan.session_id), plan.index)
            attempt = conn.execute(
                "SELECT coalesce(max(attempt), 0) + 1 FROM deliveries "
                "WHERE session_id = ? AND delivery_index = ?",
                (plan.session_id, plan.index),
            ).fetchone()[0]
            conn.execute(
                """INSERT INTO deliveries (session_id, delivery_index, attempt, kind, segment,
                       planned_onset_s, pulses_planned, intensity_pct_mso, trigger_source,
                       second_intensity_pct_mso, ipi_ms,
                       started_at, state, pulses_delivered)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'in_progress', 0)""",
                (
                    plan.session_id,
                    plan.index,
                    attempt,
                    plan.kind.value,
                    segments,
                    plan.planned_onset_s,
                    plan.pulses_planned,
                    plan.intensity_pct_mso,
                    plan.trigger_source.value,
                    plan.second_intensity_pct_mso,
                    plan.ipi_ms,
                    started_at := self._stamp(None),
                ),
            )
            # The row as just written, without reading it back (this runs before every train).
            return Delivery(
                session_id=plan.session_id, index=plan.index, attempt=attempt, kind=plan.kind, segment=segments,
                planned_onset_s=plan.planned_onset_s, pulses_planned=plan.pulses_planned,
                intensity_pct_mso=plan.intensity_pct_mso, trigger_source=plan.trigger_source,
                second_intensity_pct_mso=plan.second_intensity_pct_mso, ipi_ms=plan.ipi_ms,
                started_at=_from_db_time_required(started_at), state=DeliveryState.IN_PROGRESS,
                pulses_delivered=0, onset_offset_s=None, onset_utc=None, finished_at=None, resolution=None,
                pulses_uncertain=plan.pulses_planned,
            )

    def _check_next(self, sid: str, next_index: int, partial: Delivery | None, index: int) -> None:
        if partial is not None:
            raise RecordRefused(
                f"session {sid}: train/pulse {partial.index} began but did not complete "
                f"({partial.pulses_delivered} of {partial.pulses_planned} pulses recorded); "
                "it must be resolved before anything else is delivered",
                path=self._path,
                hint="decide with the operator, then call skip_partial or retry_partial with a reason",
            )
        if index < next_index:
            raise RecordRefused(
                f"session {sid}: train/pulse {index} is already recorded delivered (or skipped); "
                f"repeating it is refused (next is {next_index})",
                path=self._path,
            )
        if index > next_index:
            raise RecordRefused(
                f"session {sid}: delivering train/pulse {index} would skip {next_index}"
                + (f"..{index - 1}" if index - 1 > next_index else "")
                + ", which were not delivered",
                path=self._path,
            )

    def _require_owned_running(self, status: SessionStatus, session_id: str, doing: str) -> None:
        if status is not SessionStatus.RUNNING:
            raise RecordRefused(
                f"cannot {doing} in session {session_id}: it is {status.value}, not running", path=self._path
            )
        if session_id not in self._owned:
            raise SessionOwnedElsewhere(
                f"cannot {doing} in session {session_id}: it is running in another process", path=self._path
            )

    def _open_delivery_of_this_process(self, conn: sqlite3.Connection, session_id: str, index: int) -> Delivery:
        """The begun, unfinished attempt at ``index``, checked to belong to a session this process
        runs; read with the session's status in one query (this runs after every trigger)."""
        cursor = conn.execute(
            """SELECT d.*, s.status AS session_status FROM deliveries d JOIN sessions s USING (session_id)
               WHERE d.session_id = ? AND d.delivery_index = ? AND d.resolution IS NULL""",
            (session_id, index),
        )
        cursor.row_factory = sqlite3.Row
        row = cursor.fetchone()
        if row is None:
            raise RecordRefused(
                f"session {session_id}: train/pulse {index} has not begun (begin_delivery first)",
                path=self._path,
            )
        current = _delivery_from_row(row)
        self._check_open(current)
        # A delivery's outcome comes from the process that fired it; it may arrive after a pause
        # or a fault, but not after that process is gone (then skip_partial / retry_partial).
        status = SessionStatus(row["session_status"])
        if status not in (SessionStatus.RUNNING, SessionStatus.PAUSED, SessionStatus.FAULTED):
            raise RecordRefused(
                f"cannot record a delivery outcome for session {session_id}: it is {status.value}",
                path=self._path,
                hint="resolve the partial train with skip_partial or retry_partial",
            )
        if session_id not in self._owned:
            raise SessionOwnedElsewhere(f"session {session_id} is not run by this process", path=self._path)
        return current

    def record_progress(
        self,
        session_id: str,
        index: int,
        *,
        pulses_delivered: int,
        onset_offset_s: float | None = None,
        onset_utc: datetime | None = None,
    ) -> Delivery:
        """For host-timed trains: raise the recorded pulse count of the delivery in progress."""
        progress = DeliveryResult(session_id, index, pulses_delivered, False, onset_offset_s, onset_utc)
        with self._transaction("recording delivery progress", wait_for_disk=False) as conn:
            current = self._open_delivery_of_this_process(conn, progress.session_id, progress.index)
            if progress.pulses_delivered < current.pulses_delivered:
                raise RecordRefused(
                    f"session {current.session_id}: train/pulse {index} already has "
                    f"{current.pulses_delivered} pulses recorded; "
                    f"a count cannot go down to {progress.pulses_delivered}",
                    path=self._path,
                )
            self._check_count(current, progress.pulses_delivered)
            onset_db = None if progress.onset_utc is None else _to_db_time(progress.onset_utc)
            conn.execute(
                """UPDATE deliveries SET pulses_delivered = ?,
                       onset_offset_s = coalesce(onset_offset_s, ?), onset_utc = coalesce(onset_utc, ?)
                   WHERE session_id = ? AND delivery_index = ? AND attempt = ?""",
                (
                    progress.pulses_delivered,
                    progress.onset_offset_s,
                    onset_db,
                    current.session_id,
                    current.index,
                    current.attempt,
                ),
            )
            # The row as just written, without reading it back (this runs for every train).
            return replace(
                current,
                pulses_delivered=progress.pulses_delivered,
                pulses_uncertain=current.pulses_planned - progress.pulses_delivered,
                onset_offset_s=_coalesce(current.onset_offset_s, progress.onset_offset_s),
                onset_utc=_coalesce(current.onset_utc, _from_db_time(onset_db)),
            )

    def finish_delivery(self, result: DeliveryResult) -> Delivery:
        """Record how a begun train or pulse ended: one transaction, on disk when this returns."""
        with self._transaction("recording a delivery", wait_for_disk=False) as conn:
            current = self._open_delivery_of_this_process(conn, result.session_id, result.index)
            self._check_count(current, result.pulses_delivered + result.pulses_uncertain)
            if result.pulses_delivered < current.pulses_delivered:
                raise RecordRefused(
                    f"session {current.session_id}: train/pulse {current.index} already has "
                    f"{current.pulses_delivered} pulses recorded; "
                    f"cannot finish with {result.pulses_delivered}",
                    path=self._path,
                )
            if result.completed and result.pulses_delivered != current.pulses_planned:
                raise RecordRefused(
                    f"session {current.session_id}: train/pulse {current.index} delivered "
                    f"{result.pulses_delivered} of {current.pulses_planned} pulses, so it is not complete",
                    path=self._path,
                    hint="finish it with completed=False",
                )
            state = DeliveryState.COMPLETED if result.completed else DeliveryState.STOPPED
            onset_utc = None if result.onset_utc is None else _to_db_time(result.onset_utc)
            finished_at = self._stamp(None)
            conn.execute(
                """UPDATE deliveries SET state = ?, pulses_delivered = ?, pulses_uncertain = ?, evidence = ?,
                       onset_offset_s = coalesce(?, onset_offset_s), onset_utc = coalesce(?, onset_utc),
                       finished_at = ?
                   WHERE session_id = ? AND delivery_index = ? AND attempt = ?""",
                (
                    state.value,
                    result.pulses_delivered,
                    result.pulses_uncertain,
                    result.evidence or None,
                    result.onset_offset_s,
                    onset_utc,
                    finished_at,
                    current.session_id,
                    current.index,
                    current.attempt,
                ),
            )
            # The row as just written, without reading it back (this runs for every train).
            return replace(
                current,
                state=state,
                pulses_delivered=result.pulses_delivered,
                pulses_uncertain=result.pulses_uncertain,
                evidence=result.evidence or None,
                onset_offset_s=_coalesce(result.onset_offset_s, current.onset_offset_s),
                onset_utc=_coalesce(_from_db_time(onset_utc), current.onset_utc),
                finished_at=_from_db_time(finished_at),
            )

    def _check_open(self, current: Delivery) -> None:
        if current.state is not DeliveryState.IN_PROGRESS:
            raise RecordRefused(
                f"session {current.session_id}: train/pulse {current.index} is already recorded "
                f"{current.state.value}",
                path=self._path,
            )

    def _check_count(self, current: Delivery, pulses: int) -> None:
        if pulses > current.pulses_planned:
            raise RecordRefused(
                f"session {current.session_id}: train/pulse {current.index} planned {current.pulses_planned} "
                f"pulses; {pulses} cannot be recorded",
                path=self._path,
            )

    def skip_partial(self, session_id: str, index: int, *, operator: str, reason: str,
                     offset_s: float | None = None) -> ResumePoint:
        """Leave a partial train/pulse as it is and move on (its pulses stay counted)."""
        return self._resolve_partial(session_id, index, Resolution.SKIPPED, ActionKind.SKIP_PARTIAL,
                                     operator=operator, reason=reason, offset_s=offset_s)

    def retry_partial(self, session_id: str, index: int, *, operator: str, reason: str,
                      offset_s: float | None = None) -> ResumePoint:
        """Deliver this position again (a new attempt; the partial's pulses stay counted)."""
        return self._resolve_partial(session_id, index, Resolution.RETRIED, ActionKind.RETRY_PARTIAL,
                                     operator=operator, reason=reason, offset_s=offset_s)

    def _resolve_partial(self, session_id: str, index: int, resolution: Resolution, kind: ActionKind, *,
                         operator: str, reason: str, offset_s: float | None) -> ResumePoint:
        _text("reason", reason, max_len=2000)
        action = OperatorAction(
            session_id, kind, operator, f"train/pulse {index + 1}: {reason}", offset_s=offset_s  # 1-based: a person reads it
        )
        sid = action.session_id
        with self._transaction(f"recording {kind.value}") as conn:
            status = self._status(conn, sid)
            if status in (SessionStatus.PLANNED, SessionStatus.COMPLETED, SessionStatus.ABORTED):
                raise RecordRefused(f"session {sid} is {status.value}; nothing to resolve", path=self._path)
            if status in _OWNED_STATUSES and sid not in self._owned:
                raise SessionOwnedElsewhere(f"session {sid} is run by another process", path=self._path)
            point = self._resume_point(conn, sid)
            if point.partial is None or point.partial.index != index:
                have = "none" if point.partial is None else f"train/pulse {point.partial.index}"
                raise RecordRefused(
                    f"session {sid}: train/pulse {index} is not the partial one (partial: {have})",
                    path=self._path,
                )
            if point.partial.state is DeliveryState.IN_PROGRESS:
                # The attempt's outcome was never recorded: close it as stopped, every pulse not known
                # delivered left uncertain (it may all have gone out; it may not have fired at all).
                conn.execute(
                    "UPDATE deliveries SET state = 'stopped', finished_at = ?, "
                    "pulses_uncertain = pulses_planned - pulses_delivered, evidence = ? "
                    "WHERE session_id = ? AND delivery_index = ? AND attempt = ?",
                    (self._stamp(None), _NO_OUTCOME_EVIDENCE, sid, index, point.partial.attempt),
                )
            conn.execute(
                "UPDATE deliveries SET resolution = ? "
                "WHERE session_id = ? AND delivery_index = ? AND attempt = ?",
                (resolution.value, sid, index, point.partial.attempt),
            )
            self._insert_action(action)
            return self._resume_point(conn, sid)

    def resume_point(self, session_id: str) -> ResumePoint:
        session_id = normalize_session_id(session_id)
        with self._lock:
            try:
                conn = self._db
                conn.execute("BEGIN")  # one consistent snapshot across the two reads
                try:
                    return self._resume_point(conn, session_id)
                finally:
                    conn.execute("COMMIT")
            except _DB_ERRORS as exc:
                raise _sqlite_error(exc, self._path, "computing the resume point") from exc

    def _resume_point(self, conn: sqlite3.Connection, session_id: str) -> ResumePoint:
        # Aggregates in SQL: the cost stays in the database, not in Python rows, however long the session.
        row = conn.execute(
            "SELECT planned_deliveries FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        if row is None:
            raise UnknownRecord(f"no session {session_id} in {self._path}", path=self._path)
        planned = row[0]
        completed, skipped, pulses, uncertain = conn.execute(
            f"""SELECT coalesce(sum(state = 'completed'), 0),
                      coalesce(sum(state != 'completed' AND resolution = 'skipped'), 0),
                      coalesce(sum(pulses_delivered), 0),
                      coalesce(sum({_UNCERTAIN_SQL}), 0)
               FROM deliveries WHERE session_id = ?""",
            (session_id,),
        ).fetchone()
        next_index, partial = self._next_position(conn, session_id)
        return ResumePoint(
            session_id=session_id,
            next_index=next_index,
            planned_deliveries=planned,
            completed_deliveries=completed,
            skipped_deliveries=skipped,
            pulses_delivered=pulses,
            partial=partial,
            pulses_uncertain=uncertain,
        )

    def _next_position(self, conn: sqlite3.Connection, session_id: str) -> tuple[int, Delivery | None]:
        """The first position neither completed nor skipped, and the unresolved attempt at it that
        did not complete (if any). Runs before every train, inside its transaction."""
        # Done positions are distinct non-negative indexes: when there are top + 1 of them up to
        # top, they are exactly 0..top (begin_delivery keeps them a prefix, but the answer must
        # not depend on that; a gap takes the slower query below).
        count, top = conn.execute(
            """SELECT count(DISTINCT delivery_index), coalesce(max(delivery_index), -1) FROM deliveries
               WHERE session_id = ? AND (state = 'completed' OR resolution = 'skipped')""",
            (session_id,),
        ).fetchone()
        if count == top + 1:
            next_index = count
        else:
            (next_index,) = conn.execute(
                """WITH done(i) AS (SELECT DISTINCT delivery_index FROM deliveries
                                    WHERE session_id = ? AND (state = 'completed' OR resolution = 'skipped'))
                   SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM done WHERE i = 0) THEN 0
                               ELSE (SELECT min(i + 1) FROM done WHERE i + 1 NOT IN (SELECT i FROM done)) END""",
                (session_id,),
            ).fetchone()
        cursor = conn.execute(
            """SELECT * FROM deliveries WHERE session_id = ? AND delivery_index = ?
               AND resolution IS NULL AND state != 'completed'""",
            (session_id, next_index),
        )
        cursor.row_factory = sqlite3.Row
        partial_row = cursor.fetchone()
        return next_index, None if partial_row is None else _delivery_from_row(partial_row)

    # -- actions, overrides, faults --------------------------------------------------------------

    def record_action(self, action: OperatorAction) -> OperatorAction:
        """Record an acknowledge or confirm (the lifecycle methods record the other kinds)."""
        if action.kind in _LIFECYCLE_ACTIONS:
            raise InvalidRecord(
                f"a {action.kind.value!r} action is recorded by {_LIFECYCLE_ACTIONS[action.kind]}(), "
                "together with what it changes"
            )
        if action.action_id is not None:
            raise InvalidRecord("a new action has no action_id yet (the store assigns it)")
        with self._transaction("recording an operator action") as conn:
            self._status(conn, action.session_id)
            return self._insert_action(action)

    def _insert_action(self, action: OperatorAction) -> OperatorAction:
        at = self._stamp(action.at)
        reason = redact_text(action.reason)
        cursor = self._db.execute(
            "INSERT INTO operator_actions (session_id, kind, operator, reason, at, offset_s) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (action.session_id, action.kind.value, action.operator, reason, at, action.offset_s),
        )
        return replace(action, reason=reason, at=_from_db_time(at), action_id=cursor.lastrowid)

    def record_override(self, override: Override) -> Override:
        """Record an overridden finding (and an ``override`` operator action) in one transaction."""
        if override.override_id is not None:
            raise InvalidRecord("a new override has no override_id yet (the store assigns it)")
        with self._transaction("recording an override") as conn:
            status = self._status(conn, override.session_id)
            if status in (SessionStatus.COMPLETED, SessionStatus.ABORTED):
                raise RecordRefused(f"session {override.session_id} is {status.value}", path=self._path)
            row = conn.execute(
                "SELECT protocol_hash FROM sessions WHERE session_id = ?", (override.session_id,)
            ).fetchone()
            if row[0] != override.protocol_hash:
                raise RecordRefused(
                    f"override for protocol hash {override.protocol_hash} cannot bind to session "
                    f"{override.session_id}, which runs {row[0]}",
                    path=self._path,
                    hint="overrides bind to one protocol content and one session only",
                )
            at = self._stamp(override.at)
            finding, reason = redact_text(override.finding), redact_text(override.reason)
            cursor = conn.execute(
                """INSERT INTO overrides (session_id, rule_id, finding, operator, reason, protocol_hash,
                       ruleset_version, at, offset_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    override.session_id, override.rule_id, finding, override.operator, reason,
                    override.protocol_hash, override.ruleset_version, at, override.offset_s,
                ),
            )
            stored = replace(override, finding=finding, reason=reason, at=_from_db_time(at),
                             override_id=cursor.lastrowid)
            self._insert_action(
                OperatorAction(
                    override.session_id,
                    ActionKind.OVERRIDE,
                    override.operator,
                    f"{override.rule_id}: {override.reason}",
                    at=stored.at,
                    offset_s=override.offset_s,
                )
            )
        return stored

    def record_fault(self, fault: Fault) -> Fault:
        """Record a fault without changing the session's status (see ``fault_session``)."""
        if fault.fault_id is not None:
            raise InvalidRecord("a new fault has no fault_id yet (the store assigns it)")
        with self._transaction("recording a fault") as conn:
            self._status(conn, fault.session_id)
            return self._insert_fault(fault)

    def _insert_fault(self, fault: Fault) -> Fault:
        at = self._stamp(fault.at)
        detail = redact_text(fault.detail)
        cursor = self._db.execute(
            "INSERT INTO faults (session_id, code, detail, state, at, offset_s) VALUES (?, ?, ?, ?, ?, ?)",
            (fault.session_id, fault.code, detail, fault.state, at, fault.offset_s),
        )
        return replace(fault, detail=detail, at=_from_db_time(at), fault_id=cursor.lastrowid)

    # -- queries ---------------------------------------------------------------------------------

    def session_detail(self, session_id: str) -> SessionDetail:
        """Everything recorded about one session, read in one snapshot."""
        session_id = normalize_session_id(session_id)
        with self._lock:
            conn = self._db
            try:
                conn.execute("BEGIN")
                try:
                    session = self.session(session_id)
                    deliveries = tuple(
                        _delivery_from_row(r)
                        for r in self._read(
                            "reading deliveries",
                            "SELECT * FROM deliveries WHERE session_id = ? ORDER BY delivery_index, attempt",
                            (session_id,),
                        )
                    )
                    actions = tuple(
                        _action_from_row(r)
                        for r in self._read(
                            "reading actions",
                            "SELECT * FROM operator_actions WHERE session_id = ? ORDER BY action_id",
                            (session_id,),
                        )
                    )
                    overrides = tuple(
                        _override_from_row(r)
                        for r in self._read(
                            "reading overrides",
                            "SELECT * FROM overrides WHERE session_id = ? ORDER BY override_id",
                            (session_id,),
                        )
                    )
                    faults = tuple(
                        _fault_from_row(r)
                        for r in self._read(
                            "reading faults", "SELECT * FROM faults WHERE session_id = ? ORDER BY fault_id",
                            (session_id,),
                        )
                    )
                    point = self._resume_point(conn, session_id)
                finally:
                    conn.execute("COMMIT")
            except _DB_ERRORS as exc:
                raise _sqlite_error(exc, self._path, "reading a session") from exc
        return SessionDetail(session, deliveries, actions, overrides, faults, point)

    def exposure_between(self, subject_id: str, start_utc: datetime, end_utc: datetime) -> Exposure:
        """Pulses and sessions a subject received in ``[start_utc, end_utc)`` (simulated excluded)."""
        validate_subject_id(subject_id)
        start, end = _utc("start_utc", start_utc), _utc("end_utc", end_utc)
        if end <= start:
            raise InvalidRecord(f"the window ends ({end}) before it starts ({start})")
        window = {"subject": subject_id, "start": _to_db_time(start), "end": _to_db_time(end)}
        pulses = self._read(
            "counting pulses",
            f"""SELECT coalesce(sum(d.pulses_delivered), 0) AS confirmed,
                      coalesce(sum(d.pulses_delivered + {_UNCERTAIN_SQL.replace("pulses_", "d.pulses_")
                                                          .replace("state", "d.state")}), 0) AS possible
               FROM deliveries d JOIN sessions s USING (session_id)
               WHERE s.subject_id = :subject AND s.simulated = 0
                 AND d.started_at >= :start AND d.started_at < :end""",
            window,
        )[0]
        sessions = self._read(
            "counting sessions",
            """SELECT count(*) AS n, max(started_at) AS last FROM sessions
               WHERE subject_id = :subject AND simulated = 0
                 AND started_at >= :start AND started_at < :end""",
            window,
        )[0]
        return Exposure(
            subject_id=subject_id,
            start_utc=start,
            end_utc=end,
            confirmed_pulses=pulses["confirmed"],
            possible_pulses=pulses["possible"],
            sessions_started=sessions["n"],
            last_session_started_at=_from_db_time(sessions["last"]),
        )

    def exposure_on_day(self, subject_id: str, day: date, *, tz: tzinfo = UTC) -> Exposure:
        """``exposure_between`` over one calendar day in ``tz`` (the site's time zone for daily caps)."""
        midnight = datetime.min.time()
        start = datetime.combine(day, midnight, tzinfo=tz)
        end = datetime.combine(day + timedelta(days=1), midnight, tzinfo=tz)
        return self.exposure_between(subject_id, start, end)

    def pulses_on_day(self, subject_id: str, day: date, *, tz: tzinfo = UTC) -> int:
        """Pulses that may have been delivered to the subject that day (the cap-safe count)."""
        return self.exposure_on_day(subject_id, day, tz=tz).possible_pulses


# -- row conversions ------------------------------------------------------------------------------


def _threshold_from_row(r: sqlite3.Row) -> MotorThreshold:
    return MotorThreshold(
        subject_id=r["subject_id"],
        stimulator_model=r["stimulator_model"],
        stimulator_serial=r["stimulator_serial"],
        coil=r["coil"],
        value_pct_mso=r["value_pct_mso"],
        reference=ThresholdReference(r["reference"]),
        method=r["method"],
        measured_at=_from_db_time_required(r["measured_at"]),
        operator=r["operator"],
        trial_log=tuple(json.loads(r["trial_log_json"])),
        threshold_id=r["threshold_id"],
    )


def _session_from_row(r: sqlite3.Row, thresholds: Sequence[sqlite3.Row]) -> Session:
    return Session(
        session_id=r["session_id"],
        subject_id=r["subject_id"],
        protocol_id=r["protocol_id"],
        protocol_hash=r["protocol_hash"],
        protocol_text=r["protocol_text"],
        device_url=r["device_url"],
        device_model=r["device_model"],
        device_serial=r["device_serial"],
        device_firmware=r["device_firmware"],
        coil=r["coil"],
        simulated=bool(r["simulated"]),
        planned_deliveries=r["planned_deliveries"],
        planned_pulses=r["planned_pulses"],
        thresholds_used=tuple(
            ThresholdUsed(ThresholdReference(t["reference"]), t["value_pct_mso"], t["threshold_id"])
            for t in thresholds
        ),
        status=SessionStatus(r["status"]),
        created_at=_from_db_time_required(r["created_at"]),
        started_at=_from_db_time(r["started_at"]),
        ended_at=_from_db_time(r["ended_at"]),
        run_segments=r["run_segments"],
        replies_confirmed=bool(r["replies_confirmed"]),
    )


def _coalesce(first: Any, second: Any) -> Any:
    """SQL's coalesce(first, second)."""
    return first if first is not None else second


# Pulses that may or may not have gone out: a delivery begun with no outcome on record may have put
# out every pulse not known delivered.
_UNCERTAIN_SQL = "CASE WHEN state = 'in_progress' THEN pulses_planned - pulses_delivered ELSE pulses_uncertain END"
_NO_OUTCOME_EVIDENCE = "intent on record, no outcome: the process ended before the device's answer was recorded"


def _delivery_from_row(r: sqlite3.Row) -> Delivery:
    return Delivery(
        session_id=r["session_id"],
        index=r["delivery_index"],
        attempt=r["attempt"],
        kind=DeliveryKind(r["kind"]),
        segment=r["segment"],
        planned_onset_s=r["planned_onset_s"],
        pulses_planned=r["pulses_planned"],
        intensity_pct_mso=r["intensity_pct_mso"],
        trigger_source=TriggerSource(r["trigger_source"]),
        second_intensity_pct_mso=r["second_intensity_pct_mso"],
        ipi_ms=r["ipi_ms"],
        started_at=_from_db_time_required(r["started_at"]),
        state=DeliveryState(r["state"]),
        pulses_delivered=r["pulses_delivered"],
        pulses_uncertain=(
            r["pulses_planned"] - r["pulses_delivered"] if r["state"] == "in_progress" else r["pulses_uncertain"]
        ),
        evidence=r["evidence"],
        onset_offset_s=r["onset_offset_s"],
        onset_utc=_from_db_time(r["onset_utc"]),
        finished_at=_from_db_time(r["finished_at"]),
        resolution=None if r["resolution"] is None else Resolution(r["resolution"]),
    )


def _action_from_row(r: sqlite3.Row) -> OperatorAction:
    return OperatorAction(
        session_id=r["session_id"],
        kind=ActionKind(r["kind"]),
        operator=r["operator"],
        reason=r["reason"],
        at=_from_db_time(r["at"]),
        offset_s=r["offset_s"],
        action_id=r["action_id"],
    )


def _override_from_row(r: sqlite3.Row) -> Override:
    return Override(
        session_id=r["session_id"],
        rule_id=r["rule_id"],
        finding=r["finding"],
        operator=r["operator"],
        reason=r["reason"],
        protocol_hash=r["protocol_hash"],
        ruleset_version=r["ruleset_version"],
        at=_from_db_time(r["at"]),
        offset_s=r["offset_s"],
        override_id=r["override_id"],
    )


def _fault_from_row(r: sqlite3.Row) -> Fault:
    return Fault(
        session_id=r["session_id"],
        code=r["code"],
        detail=r["detail"],
        state=r["state"],
        at=_from_db_time(r["at"]),
        offset_s=r["offset_s"],
        fault_id=r["fault_id"],
    )
