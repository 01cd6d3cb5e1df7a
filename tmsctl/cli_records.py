"""``tmsctl records``: a site's whole history, moved between a file and a server, verified."""

from __future__ import annotations

from typing import Annotated

import typer

from tmsctl.cli import out, reported

app = typer.Typer(help="A site's records as a whole: copy them to another database.", no_args_is_help=True)


@app.callback()
def _records() -> None:
    """A site's records as a whole: copy them to another database."""


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
