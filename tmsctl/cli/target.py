"""``tmsctl target …``: what to mark on the cap for a DLPFC target, with method and source.

The commands are a thin shell over :mod:`tmsctl.clinic.targeting`. Every measurement is read as text
and validated there, so a wrong entry gives one line (what was wrong, the accepted range, a
hint) and exit status 2 — never a traceback.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.table import Table

from tmsctl.clinic import targeting
from tmsctl.core.errors import InvalidArgument, TmsError

__all__ = ["app"]

EXIT_INVALID_INPUT = 2

app = typer.Typer(add_completion=False, no_args_is_help=True)
target_app = typer.Typer(
    help="DLPFC scalp targets: what to measure and mark on the cap, with method and source.",
    no_args_is_help=True,
)
app.add_typer(target_app, name="target")


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except TmsError as exc:
        line = f"error: {exc.message}"
        if exc.hint:
            line += f" (hint: {exc.hint})"
        typer.echo(" ".join(line.split()), err=True)
        raise typer.Exit(EXIT_INVALID_INPUT) from None


_LENGTH_PATTERN = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(cm)?\s*$", re.IGNORECASE)


def _parse_cm(option: str, text: str | None) -> float | None:
    if text is None:
        return None
    match = _LENGTH_PATTERN.match(text)
    if match is None:
        raise InvalidArgument(
            f"{option} must be a length in cm, got {text!r}",
            hint="type a plain number such as 36.5 (a decimal point, no other unit)",
        )
    value = float(match[1])
    if not math.isfinite(value):
        raise InvalidArgument(f"{option} must be a finite length in cm, got {text!r}")
    return value


def _measurements(
    nasion_inion: str | None, tragus_tragus: str | None, circumference: str | None
) -> targeting.HeadMeasurements:
    # None passes through so that HeadMeasurements reports the missing measurement by name.
    return targeting.HeadMeasurements(
        nasion_inion_cm=_parse_cm("--nasion-inion", nasion_inion),  # type: ignore[arg-type]
        tragus_tragus_cm=_parse_cm("--tragus-tragus", tragus_tragus),  # type: ignore[arg-type]
        circumference_cm=_parse_cm("--circumference", circumference),  # type: ignore[arg-type]
    )


def _console() -> Console:
    return Console(file=sys.stdout, width=110, highlight=False, markup=False, soft_wrap=False)


def _show(result: targeting.TargetResult, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{result.target}: what to mark on the cap", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("distance", justify="right")
    table.add_column("measure / mark", overflow="fold")
    for number, mark in enumerate(result.marks, start=1):
        table.add_row(str(number), f"{mark.value_cm:.2f} cm", mark.instruction)
    console = _console()
    console.print(table)
    console.print(f"method: {result.method_name} [{result.method}]")
    console.print(f"source: {result.source}")
    console.print(f"status: {result.status}")
    for note in result.notes:
        console.print(f"note: {note}")


_NI_HELP = "nasion–inion distance over the vertex, cm"
_TT_HELP = "tragus–tragus (pre-auricular) distance over the vertex, cm"
_HC_HELP = "head circumference at the Fpz–Oz level, cm"
_SIDE_HELP = "left (F3, left DLPFC) or right (F4, right DLPFC)"
_JSON_HELP = "print the result as JSON"


@target_app.command("beam-f3")
def beam_f3_command(
    nasion_inion: str | None = typer.Option(None, "--nasion-inion", metavar="CM", help=_NI_HELP),
    tragus_tragus: str | None = typer.Option(None, "--tragus-tragus", metavar="CM", help=_TT_HELP),
    circumference: str | None = typer.Option(None, "--circumference", metavar="CM", help=_HC_HELP),
    side: str = typer.Option("left", "--side", metavar="left|right", help=_SIDE_HELP),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Beam F3 (or F4) from three tape measurements, as the published web calculator computes it."""
    with _one_line_errors():
        side_value = targeting.Side.parse(side)
        result = targeting.beam_f3(_measurements(nasion_inion, tragus_tragus, circumference), side_value)
    _show(result, as_json)


@target_app.command("beam-f3-linear")
def beam_f3_linear_command(
    nasion_inion: str | None = typer.Option(None, "--nasion-inion", metavar="CM", help=_NI_HELP),
    tragus_tragus: str | None = typer.Option(None, "--tragus-tragus", metavar="CM", help=_TT_HELP),
    circumference: str | None = typer.Option(None, "--circumference", metavar="CM", help=_HC_HELP),
    side: str = typer.Option("left", "--side", metavar="left|right", help=_SIDE_HELP),
    mri_adjusted: bool = typer.Option(
        False, "--mri-adjusted", help="add 0.35 cm to the vertex distance (Mir-Moghtadaei 2015)"
    ),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Linear shortcut for Beam F3: X = 0.1154·HC, Y = 0.2637·(NI+TT)/2."""
    with _one_line_errors():
        side_value = targeting.Side.parse(side)
        result = targeting.beam_f3_linear(
            _measurements(nasion_inion, tragus_tragus, circumference), side_value, mri_adjusted=mri_adjusted
        )
    _show(result, as_json)


@target_app.command("mir-moghtadaei")
def mir_moghtadaei_command(
    nasion_inion: str | None = typer.Option(None, "--nasion-inion", metavar="CM", help=_NI_HELP),
    tragus_tragus: str | None = typer.Option(None, "--tragus-tragus", metavar="CM", help=_TT_HELP),
    circumference: str | None = typer.Option(None, "--circumference", metavar="CM", help=_HC_HELP),
    side: str = typer.Option("left", "--side", metavar="left|right", help=_SIDE_HELP),
    region: str = typer.Option(
        "anterior", "--region", metavar="anterior|posterior", help="anterior or posterior DLPFC"
    ),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Mir-Moghtadaei 2022 updated scalp heuristics (anterior / posterior DLPFC, either side)."""
    with _one_line_errors():
        side_value = targeting.Side.parse(side)
        region_value = targeting.DlpfcRegion.parse(region)
        result = targeting.mir_moghtadaei_2022(
            _measurements(nasion_inion, tragus_tragus, circumference), side_value, region_value
        )
    _show(result, as_json)


@target_app.command("rule")
def rule_command(
    cm: str | None = typer.Option(None, "--cm", metavar="5|5.5|6", help="distance anterior to the hot spot"),
    side: str = typer.Option("left", "--side", metavar="left|right", help=_SIDE_HELP),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Fixed-distance rule: the target 5, 5.5 or 6 cm anterior to the hand motor hot spot."""
    with _one_line_errors():
        side_value = targeting.Side.parse(side)
        distance = _parse_cm("--cm", cm)
        if distance is None:
            raise InvalidArgument("--cm is missing", hint="give the rule: --cm 5, --cm 5.5 or --cm 6")
        result = targeting.fixed_distance_rule(distance, side_value)
    _show(result, as_json)


@target_app.command("mni")
def mni_command(
    include_unverified: bool = typer.Option(
        False, "--all", help="also list coordinates known only from third-party code (unverified)"
    ),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """MNI coordinates of DLPFC targets (for neuronavigation), with source and status."""
    targets = targeting.mni_targets(include_unverified=include_unverified)
    if as_json:
        rows = [
            {
                "name": t.name,
                "mni_mm": list(t.mni_mm),
                "source": t.source,
                "status": t.status,
                "verified": t.verified,
                "note": t.note,
            }
            for t in targets
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title="MNI coordinates of DLPFC targets (mm)", title_justify="left")
    for column in ("target", "x", "y", "z", "status", "source"):
        table.add_column(column, justify="right" if column in ("x", "y", "z") else "left", overflow="fold")
    for t in targets:
        x, y, z = t.mni_mm
        table.add_row(t.name, str(x), str(y), str(z), t.status, t.source + (f" — {t.note}" if t.note else ""))
    console = _console()
    console.print(table)
    if not include_unverified:
        hidden = len(targeting.MNI_TARGETS) - len(targets)
        console.print(f"{hidden} unverified coordinates hidden; --all lists them")
