"""The protocol reader parses a file once (issue 19: `protocol validate` ≤ 400 ms), and what it
builds from the screened events is what ruamel's round-trip loader builds: the same values, types
and lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml.parser import Parser

from tmsctl.protocols import loader
from tmsctl.protocols.library import library_path

LIBRARY = sorted(library_path().glob("*.yaml"))

DOCUMENTS = [
    "a: 1\nb: 0x1F\nc: 1.5e3\nd: yes\ne: true\nf: ~\ng: '1'\nh: .inf\ni: -.inf\nj: 0o17\nk: 1_000\nl:\nm: ''\n",
    "a:\n  - {b: 1, c: [1, 2]}\n  - x: yes\n    y: 2024-01-01\n",
    "a:\n  b:\n    - - 1\n      - 2\n    - c: d\n",
    "'a': \"b\\x41\"\nlong: >\n  folded\n  text\nkept: |\n  one\n  two\n",
    "a: 1\n1: b\n",  # a key that is not a name
    "true: 1\n",
    "a: {1: x, 0x1: y}\n",  # two such keys with one value: ruamel's duplicate-key error
    "- 1: a\n",  # a list, whatever its keys
    "- a\n- b\n",
    "5\n",
    "# only a comment\n",
    "a: 2024-13-45\n",  # resolved as a date, which does not exist
]


def _round_trip(text: str) -> Any:
    """What the reader returned when it let ruamel's round-trip loader build the document."""
    try:
        loader._screen(text, "p")
        loaded = loader._yaml().load(text)
    except Exception as error:
        return ("error", type(error).__name__)
    if not isinstance(loaded, dict):
        return ("not a mapping", loaded if not isinstance(loaded, list) else "list")
    lines: dict[loader.Path_, int] = {(): 1}
    try:
        data = loader._plain(loaded, (), lines, "p")
    except Exception as error:
        return ("key", str(error))
    return _typed(data), lines


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, repr(value))


def _read(text: str) -> Any:
    try:
        data, lines = loader.read_document(text, path="p")
    except Exception as error:
        message = str(error)
        if "is not a name" in message:
            return ("key", message)
        if "but this is a list" in message:
            return ("not a mapping", "list")
        if "but this is a single value" in message:
            return ("not a mapping", message)
        return ("error", message)
    return _typed(data), lines


@pytest.mark.parametrize("text", [p.read_text(encoding="utf-8") for p in LIBRARY] + DOCUMENTS,
                         ids=[p.name for p in LIBRARY] + [repr(d[:30]) for d in DOCUMENTS])
def test_the_values_and_lines_are_the_round_trip_loaders(text: str) -> None:
    expected, got = _round_trip(text), _read(text)
    if expected[0] in ("error", "not a mapping"):
        assert got[0] in ("error", "not a mapping"), got
    else:
        assert got == expected


def test_equal_keys_that_are_not_names_get_ruamels_duplicate_key_error() -> None:
    with pytest.raises(loader.ProtocolFileError, match="duplicate key"):
        loader.read_document("a: {1: x, 0x1: y}\n", path="p")


def test_a_protocol_file_is_parsed_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    started = []
    original = Parser.parse_stream_start

    def counting(self: Parser) -> Any:
        started.append(self)
        return original(self)

    monkeypatch.setattr(Parser, "parse_stream_start", counting)
    loader.load_protocol(LIBRARY[0])
    assert len(started) == 1
