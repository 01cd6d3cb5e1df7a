"""Help a technician can trust (issue 19): every option described, no value placeholder on a flag,
no command promised that does not exist, no completion options on subcommands."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from tmsctl.cli.main import LAZY_COMMANDS, app

runner = CliRunner()


def _commands() -> list[tuple[list[str], object]]:
    """Every command and group, as (its words after `tmsctl`, its click command), lazy ones loaded."""
    root = typer.main.get_command(app)
    found: list[tuple[list[str], object]] = []

    def walk(words: list[str], command: object) -> None:
        found.append((words, command))
        ctx = typer.main.click.Context(command) if hasattr(typer.main, "click") else None
        names = list(getattr(command, "commands", {}) or {})
        if not words:
            names = sorted(set(names) | set(LAZY_COMMANDS))
        for name in names:
            sub = command.resolve_command(ctx, [name])[1] if not words else command.commands[name]
            walk([*words, name], sub)

    walk([], root)
    return found


COMMANDS = _commands()


def test_the_walk_finds_the_lazy_commands() -> None:
    names = {" ".join(words) for words, _ in COMMANDS}
    assert {"run", "resume", "protocol validate", "course start", "sim serve"} <= names


@pytest.mark.parametrize("words", [w for w, _ in COMMANDS], ids=lambda w: " ".join(w) or "tmsctl")
def test_every_option_is_described_and_no_flag_shows_a_placeholder(words: list[str]) -> None:
    command = dict((tuple(w), c) for w, c in COMMANDS)[tuple(words)]
    for param in command.params:
        if param.param_type_name != "option":
            continue
        assert (param.help or "").strip(), f"tmsctl {' '.join(words)} {param.opts[0]} has no description"
    result = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--install-completion" not in result.output or not words


def test_the_protocol_group_promises_only_commands_it_has() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    group = runner.invoke(app, ["protocol", "--help"], env={"COLUMNS": "200"})
    for text in (result.output, group.output):
        line = next(line for line in text.splitlines() if "protocol" in line.lower() and "│" in line)
        for verb in re.findall(r"\b(explain|lint|diff|convert)\b", line.lower()):
            assert f"│ {verb} " in group.output, f"help promises `protocol {verb}`, which does not exist"


@pytest.mark.parametrize(("days", "said"), [(1, "1 day"), (0.5, "0.5 days"), (2, "2 days")])
def test_days_are_counted_in_words(days: float, said: str) -> None:
    from tmsctl.protocols.rule_context import days as in_words

    assert in_words(days, f"{days:g}") == said
