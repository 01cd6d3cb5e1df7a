"""`tmsctl --help` from a table (issue 19: ≤ 150 ms): the same screen typer draws, never drifting.

The console entry point answers exactly `tmsctl --help` from tmsctl.cli.fast_help without importing
typer or rich. These tests hold that table to typer's own rendering, byte for byte, at every width
the table serves, on a pipe and on a terminal (with and without colours): a command added, renamed
or re-described in the CLI fails here until the table says the same.
"""

from __future__ import annotations

import inspect
import io
import os
import subprocess
import sys

import pytest
import typer.main
import typer.rich_utils
from rich.console import Console
from typer import _click as click  # typer vendors its own click
from typer.testing import CliRunner

from tmsctl.cli import fast_help as cli_fast_help
from tmsctl.cli.fast_help import MIN_WIDTH, Screen, render, screen_for
from tmsctl.cli.main import app

runner = CliRunner()
WIDTHS = range(MIN_WIDTH, 201)


def typer_help(width: int, prog_name: str = "tmsctl", env: dict[str, str] | None = None) -> str:
    result = runner.invoke(app, ["--help"], prog_name=prog_name, env={"COLUMNS": str(width), **(env or {})})
    assert result.exit_code == 0, result.output
    return result.stdout


def typer_command_table() -> list[tuple[str, str]]:
    """(name, first paragraph of its help) for every command typer lists, in its order."""
    group = typer.main.get_command(app)
    ctx = click.Context(group)
    table = []
    for name in group.list_commands(ctx):  # type: ignore[attr-defined]
        command = group.get_command(ctx, name)  # type: ignore[attr-defined]
        if command is None or command.hidden:
            continue
        text = command.short_help or command.help or ""
        table.append((name, inspect.cleandoc(text).split("\n\n")[0].strip()))
    return table


def test_the_table_lists_typers_commands_with_their_descriptions() -> None:
    group = typer.main.get_command(app)
    assert list(cli_fast_help.COMMANDS) == typer_command_table(), (
        "the fast help's COMMANDS (tmsctl/cli/fast_help.py) differ from the CLI's; they should read:\n"
        + "\n".join(f"    {row!r}," for row in typer_command_table())
    )
    assert group.help == cli_fast_help.APP_HELP
    options = [(p.opts[0], p.help) for p in group.get_params(click.Context(group))]
    assert list(cli_fast_help.OPTIONS) == options


@pytest.mark.parametrize("prog_name", ["tmsctl", "python -m tmsctl"])
def test_on_a_pipe_the_screen_is_typers_at_every_width(prog_name: str) -> None:
    usage_fits_from = len(f" Usage: {prog_name} [OPTIONS] COMMAND [ARGS]... ")
    for width in WIDTHS:
        drawn = render(prog_name, Screen(width, terminal=False, colour=True))
        if drawn is None:  # typer wraps a usage line this long: left to typer
            assert width < usage_fits_from, f"not drawn at {width} columns"
            continue
        assert drawn == typer_help(width, prog_name), f"at {width} columns"


@pytest.mark.parametrize("colour", [True, False], ids=["colours", "NO_COLOR"])
def test_on_a_terminal_the_screen_and_its_styles_are_typers(monkeypatch: pytest.MonkeyPatch, colour: bool) -> None:
    monkeypatch.setattr(typer.rich_utils, "FORCE_TERMINAL", True)  # as typer sets it for FORCE_COLOR
    env = {"FORCE_COLOR": "1", **({} if colour else {"NO_COLOR": "1"})}
    for width in (*range(MIN_WIDTH, 70), 80, 99, 120, 160, 200):
        drawn = render("tmsctl", Screen(width, terminal=True, colour=colour))
        assert drawn == typer_help(width, env=env), f"at {width} columns"
    assert drawn is not None and ("\x1b[1;36mdevices" in drawn) is colour


def test_no_flag_shows_a_value_placeholder() -> None:
    drawn = render("tmsctl", Screen(120, terminal=False, colour=True))
    assert drawn is not None and "<bool>" not in drawn and "--version " in drawn


class _Output(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


ENVIRONMENTS = [
    {},
    {"COLUMNS": "77"},
    {"COLUMNS": "0"},
    {"FORCE_COLOR": "1"},
    {"FORCE_COLOR": ""},
    {"FORCE_COLOR": "1", "NO_COLOR": "1", "COLUMNS": "64"},
    {"NO_COLOR": ""},
    {"TERM": "xterm-256color", "COLORTERM": "truecolor"},
    {"TERM": "dumb"},
]


@pytest.mark.parametrize("environ", ENVIRONMENTS, ids=lambda e: " ".join(f"{k}={v}" for k, v in e.items()) or "-")
@pytest.mark.parametrize("terminal", [True, False], ids=["tty", "pipe"])
def test_the_screen_is_the_one_rich_decides_on(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str],
                                               terminal: bool) -> None:
    for name in ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TERM", "COLORTERM",
                 *cli_fast_help._UNFOLLOWED_SETTINGS):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(os, "get_terminal_size", lambda fd=0: os.terminal_size((97, 30)))
    screen = screen_for(dict(os.environ), terminal, 97)
    if screen is None:  # not followed here: typer draws it
        assert environ.get("TERM") == "dumb" and (terminal or environ.get("FORCE_COLOR"))
        return
    # typer's console, as typer.rich_utils builds it, on an output that is (not) a terminal
    force = True if os.environ.get("FORCE_COLOR") else None
    console = Console(color_system="auto", force_terminal=force, file=_Output(terminal))
    assert screen.width == console.width
    assert screen.terminal == (console.color_system is not None)
    assert screen.colour == (not console.no_color)


def test_settings_it_does_not_follow_leave_the_help_to_typer() -> None:
    assert screen_for({"TERMINAL_WIDTH": "90"}, True, 80) is None
    assert screen_for({}, True, 80, encoding="ascii") is None
    assert render("tmsctl", Screen(MIN_WIDTH - 1, terminal=False, colour=True)) is None
    assert render("tmsctl", Screen(80, False, True), commands=[("run", "Run it; see --json.")]) is None


def _run_help(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR", "TERMINAL_WIDTH")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**clean, **env},
                          timeout=60)


def test_the_entry_point_answers_help_without_typer_or_rich() -> None:
    code = ("import sys; sys.argv = ['tmsctl', '--help']\n"
            "from tmsctl.__main__ import main\n"
            "main()\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'rich', 'click', 'pydantic'}))")
    done = _run_help(code, {"COLUMNS": "90"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == typer_help(90) + "[]\n"


def test_too_narrow_a_screen_goes_to_typer() -> None:
    code = "import sys; sys.argv = ['tmsctl', '--help']\nfrom tmsctl.__main__ import main\nmain()"
    done = _run_help(code, {"COLUMNS": str(MIN_WIDTH - 10)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == typer_help(MIN_WIDTH - 10)
