"""``tmsctl records``: a site's whole history, checked for damage, moved between a file and a server, verified."""

from __future__ import annotations

from typing import Annotated

import typer

from tmsctl.cli.common import out, reported

app = typer.Typer(
    help="A site's records as a whole: check them, copy them to another database.", no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _records() -> None:
    """A site's records as a whole: check them, copy them to another database."""


@app.command("check")
def check(
    db: Annotated[
        str | None,
        typer.Option("--db", help="Records database: a file or a postgresql:// URL (default: $TMSCTL_DB or the user data directory)."),
    ] = None,
) -> None:
    """Read every page of the records file and refuse it if damaged (exit 8).

    Opening the records does this by itself after an unclean shutdown, after the file changed
    outside tmsctl, and once a week; this runs it now. A PostgreSQL server keeps its own pages:
    there is nothing to check here.
    """
    from tmsctl.cli.db import open_records

    with reported():
        records = open_records(db)
        try:
            if records.location != str(records.path):
                out.print(f"{records.location}: a PostgreSQL server checks its own pages; nothing to do here",
                          highlight=False, soft_wrap=True)
                return
            records.check_not_damaged()
        finally:
            records.close()
    out.print(f"{records.location}: every page read, no damage found", highlight=False, soft_wrap=True)


@app.command("copy")
def copy(
    source: Annotated[str, typer.Option("--from", help="The records to copy: a file, or a postgresql:// URL.")],
    target: Annotated[str, typer.Option("--to", help="A new or empty records database: a postgresql:// URL or a file.")],
) -> None:
    """Copy every record (keys included) into an empty database, then verify counts and checksums per table."""
    from tmsctl.records.copy import copy_records

    with reported():
        report = copy_records(source, target)
    for table in report.tables:
        out.print(f"  {table.table:<20} {table.target_rows:>9} rows  sha256 {table.target_sha256[:16]}  matches",
                  highlight=False)
    out.print(f"copied and verified: {report.source} -> {report.target}", highlight=False, soft_wrap=True)
