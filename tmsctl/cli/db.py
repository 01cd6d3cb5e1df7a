"""``tmsctl db``: the records database itself, and how every command opens it.

A database named with ``--db`` or ``TMSCTL_DB`` must already exist: a typo must not start an
empty history, in which daily caps, thresholds and approvals would all start from nothing. Only
the default location creates itself on first use; ``tmsctl db init PATH`` creates one elsewhere.
Commands that only read open the database read-only, so records on read-only media can be read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tmsctl.cli.common import out, reported

if TYPE_CHECKING:
    from tmsctl.core.clock import Clock
    from tmsctl.records import Records

app = typer.Typer(add_completion=False, help="The records database: create one where you name it.", no_args_is_help=True)


@app.callback()
def _db() -> None:
    """The records database: create one where you name it."""


def open_records(
    db: str | os.PathLike[str] | None, *, read_only: bool = False, clock: Clock | None = None
) -> Records:
    """The records for a command: ``db`` (its --db), else $TMSCTL_DB, else the default location.
    A ``postgresql://`` URL names a database on a server, which must already hold tmsctl records."""
    from tmsctl.records import Records, default_db_path
    from tmsctl.records.server import is_server_url

    named = os.fspath(db) if db is not None else os.environ.get("TMSCTL_DB", "").strip()
    if is_server_url(named):
        return Records(named, create=False, read_only=read_only, clock=clock)
    explicit = bool(named)
    path = Path(named).expanduser() if db is not None else default_db_path()
    if not explicit and not path.exists():
        return Records(path, clock=clock)  # the default location, on first use
    return Records(path, create=False, read_only=read_only, clock=clock)


@app.command("init")
def init(
    path: Annotated[
        str | None,
        typer.Argument(help="Where to create it: a file, or a postgresql:// URL of an existing, empty database "
                       "(default: $TMSCTL_DB or the user data directory)."),
    ] = None,
) -> None:
    """Create a new, empty records database (folders included), or upgrade an existing one in place."""
    from tmsctl.records import SCHEMA_VERSION, Records, default_db_path
    from tmsctl.records.server import is_server_url

    named = path if path is not None else os.environ.get("TMSCTL_DB", "").strip()
    if is_server_url(named):
        with reported(), Records(named) as records:
            location = records.location
        out.print(f"{location} is a tmsctl records database at schema version {SCHEMA_VERSION}",
                  highlight=False, soft_wrap=True)
        return
    with reported():
        target = Path(path).expanduser() if path is not None else default_db_path()
        existed = target.exists()
        Records(target).close()
    if existed:
        said = f"{target} is a tmsctl records database at schema version {SCHEMA_VERSION}"
    else:
        said = f"created the records database {target}"
    out.print(said, highlight=False, soft_wrap=True)  # a path to copy: no line breaks inside it
