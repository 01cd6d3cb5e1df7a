"""``tmsctl --help`` without typer or rich: the top-level help from a table of the commands.

Typer renders the help through rich, and importing the two costs a few times what a person should
wait for a list of commands (issue 19: ``tmsctl --help`` ≤ 150 ms). This module draws the same
screen, byte for byte, from ``COMMANDS`` and the app's help; the console entry point
(``tmsctl.__main__``) uses it for exactly ``tmsctl --help``. tests/cli/test_fast_help.py compares
it with typer's own rendering at every width it serves and in each colour mode, so the table
cannot drift from the real commands: a command added, renamed or re-described fails that test.

Where it cannot promise typer's rendering (a terminal narrower than ``MIN_WIDTH``, an unusual
terminal or colour setting, a description rich would highlight), ``render`` returns None and the
entry point asks typer, which is slower and always right.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import NamedTuple

APP_HELP = "Safe, testable control of TMS stimulators (research use; not a medical device)."

OPTIONS: tuple[tuple[str, str], ...] = (
    ("--version", "Print the version and exit."),
    ("--help", "Show this message and exit."),
)

# In typer's order: the commands defined in tmsctl.cli.main and tmsctl.cli.run, then LAZY_COMMANDS.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("devices", "List serial ports and simulators. Never opens or writes to a port."),
    ("info", "Connect, show what the device reports, and release it."),
    ("fire", "Fire one single pulse — for a technician checking a set-up."),
    ("run", "Run a protocol session: check, show the plan, confirm, then stimulate with a live panel."),
    ("resume", "Continue a paused, faulted or interrupted session where it stopped."),
    ("sessions", "List recorded sessions, oldest first, with their pulses: known delivered (+ uncertain) / planned."),
    ("sim", "Simulated stimulators for tests and rehearsals."),
    ("session", "One recorded session."),
    ("protocol", "Validate, show, approve protocols; print their schema."),
    ("target", "DLPFC scalp targets from head measurements."),
    ("mt", "Hunt a motor threshold on a stimulator and record it."),
    ("io-curve", "Measure an input-output curve from EMG, fit and record it."),
    ("hotspot", "Search a grid for the site with the largest MEP and record it."),
    ("export", "Export recorded sessions (BIDS-NIBS)."),
    ("report", "Readable reports of sessions and courses."),
    ("db", "The records database: create one where you name it."),
    ("records", "A site's records as a whole: check them, copy them to another database."),
    ("course", "Treatment courses: start, show, change, end, report."),
    ("outcome", "Outcome measures of a subject's course (PHQ-9, BSL-23, …)."),
)

# Below this many columns rich starts to narrow the options table's first column: not drawn here.
MIN_WIDTH = 50

# What typer's rich highlighter or markup would style inside a description (an option name, a
# <type>, a [markup] tag): drawn here as plain text it would differ, so such a table is not drawn.
_STYLED_BY_RICH = re.compile(r"(^|\W)-\w|<[^>]+>|\[|Usage: ")

# Environment settings that change how rich decides on a terminal, its width or its colours in
# ways this module does not follow (Jupyter, CI, typer's own switches): typer answers then.
_UNFOLLOWED_SETTINGS = ("TERMINAL_WIDTH", "_TYPER_FORCE_DISABLE_TERMINAL", "GITHUB_ACTIONS", "PY_COLORS",
                        "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS", "JUPYTER_LINES")

_RESET = "\x1b[0m"


class Screen(NamedTuple):  # (not a dataclass: importing dataclasses costs more than drawing the help)
    """How rich would draw on this output: its width, whether it is a terminal (styles at all) and
    whether colours are wanted (NO_COLOR keeps bold and dim, drops colours)."""

    width: int
    terminal: bool
    colour: bool


def screen_for(environ: Mapping[str, str], stdout_is_terminal: bool,
               terminal_columns: int | None, encoding: str = "utf-8") -> Screen | None:
    """The screen rich (as typer configures it) would draw on, or None where this module does not
    follow rich's decision. ``terminal_columns``: the size of the first standard stream that is a
    terminal (rich asks stdin, stdout, stderr in that order); ``encoding``: stdout's (rich draws
    ASCII boxes where it is not a UTF)."""
    if (sys.platform == "win32" or not encoding.lower().startswith("utf")
            or any(name in environ for name in _UNFOLLOWED_SETTINGS)):
        return None
    # typer forces a terminal when FORCE_COLOR is set to anything non-empty; rich alone then too.
    terminal = bool(environ.get("FORCE_COLOR")) or ("FORCE_COLOR" not in environ and stdout_is_terminal)
    if terminal and environ.get("TERM", "").lower() in ("dumb", "unknown"):
        return None
    columns = environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() else (terminal_columns or 80)
    return Screen(width, terminal, environ.get("NO_COLOR", "") == "")


def _style(text: str, codes: str, screen: Screen) -> str:
    if not screen.terminal:
        return text
    if not screen.colour:  # NO_COLOR: keep bold (1) and dim (2), drop the colour
        codes = ";".join(code for code in codes.split(";") if code in ("1", "2"))
    return f"\x1b[{codes}m{text}{_RESET}"


def _wrap(text: str, width: int) -> list[str] | None:
    """Rich's word wrap (greedy, a word with the spaces after it); None if a word is too long."""
    lines: list[str] = []
    line = ""
    for word in re.findall(r"\s*\S+\s*", text):
        if len(word.rstrip()) > width:
            return None
        if line and len(line) + len(word.rstrip()) > width:
            lines.append(line)
            line = word
        else:
            line += word
    lines.append(line)
    return [piece[:width].ljust(width) for piece in lines]


def _panel_top(title: str, screen: Screen) -> str:
    dashes = "─" * (screen.width - 4 - len(title) - 2)
    return (_style("╭─", "2", screen) + _style(f" {title} ", "2", screen) + _style(dashes, "2", screen)
            + _style("─╮", "2", screen))


def _option_name(name: str, screen: Screen) -> str:
    # rich's highlighter styles "--name" as two spans: its switch pattern matches from the second dash
    return _style(name[0], "1;36", screen) + _style(name[1:], "1;36", screen)


def render(program: str, screen: Screen, *, app_help: str = APP_HELP,
           options: Sequence[tuple[str, str]] = OPTIONS,
           commands: Sequence[tuple[str, str]] = COMMANDS) -> str | None:
    """The top-level help exactly as typer draws it on ``screen``; None where it cannot promise that."""
    width = screen.width
    inner = width - 4  # inside a panel's borders and its one-column margins
    usage = f"{program} [OPTIONS] COMMAND [ARGS]..."
    option_width = max(len(name) for name, _ in options)
    option_help_at = option_width + 10  # the padding of the options table's four empty columns
    name_width = max(len(name) for name, _ in commands)
    description_width = inner - name_width - 2
    if (width < MIN_WIDTH or len("Usage: " + usage) > width - 2
            or any(option_help_at + len(text) > inner for _, text in options)
            or any(_STYLED_BY_RICH.search(text) for _, text in (*commands, ("", app_help)))):
        return None
    app_lines = _wrap(app_help, width - 2)
    described = [(name, _wrap(text, description_width)) for name, text in commands]
    if app_lines is None or any(lines is None for _, lines in described):
        return None

    out: list[str] = []
    blank_bold = _style(" " * width, "1", screen)
    padding = " " * (width - 2 - len("Usage: " + usage))
    out += [
        blank_bold,
        _style(" ", "1", screen) + _style("Usage: ", "1;33", screen) + _style(usage, "1", screen)
        + (_style(padding, "1", screen) if padding else "") + _style(" ", "1", screen),
        blank_bold,
    ]
    out += [f" {line} " for line in app_lines]
    out.append(" " * width)

    border = _style("│", "2", screen)
    out.append(_panel_top("Options", screen))
    for name, text in options:
        gap = " " * (option_help_at - len(name))
        out.append(f"{border} {_option_name(name, screen)}{gap}{text.ljust(inner - option_help_at)} {border}")
    out.append(_style("╰" + "─" * (width - 2) + "╯", "2", screen))

    out.append(_panel_top("Commands", screen))
    for name, lines in described:
        assert lines is not None
        first, *more = lines
        out.append(f"{border} {_style(name.ljust(name_width), '1;36', screen)}{_style(' ', '1;36', screen)} "
                   f"{first} {border}")
        out += [f"{border} {_style(' ' * (name_width + 1), '1;36', screen)} {line} {border}" for line in more]
    out.append(_style("╰" + "─" * (width - 2) + "╯", "2", screen))
    return "\n".join(out) + "\n\n"  # typer prints an empty line after the panels


def program_name(argv0: str, main_package: str | None) -> str:
    """The program's name in the usage line, as click names it: ``tmsctl`` for the console script,
    ``python -m tmsctl`` for the module."""
    if not main_package:
        return os.path.basename(argv0)
    name = os.path.splitext(os.path.basename(argv0))[0]
    module = main_package if name == "__main__" else f"{main_package}.{name}"
    return f"python -m {module.lstrip('.')}"


def _terminal_columns() -> int | None:
    for stream in (0, 1, 2):
        try:
            return os.get_terminal_size(stream).columns
        except (OSError, ValueError):
            continue
    return None


def print_help() -> bool:
    """Print the top-level help if it can be drawn here exactly as typer would; False otherwise."""
    try:
        stdout_is_terminal = sys.stdout.isatty()
    except ValueError:
        return False
    screen = screen_for(os.environ, stdout_is_terminal, _terminal_columns(), sys.stdout.encoding or "")
    if screen is None:
        return False
    main_module = sys.modules.get("__main__")
    text = render(program_name(sys.argv[0], getattr(main_module, "__package__", None)), screen)
    if text is None:
        return False
    sys.stdout.write(text)
    sys.stdout.flush()
    return True
