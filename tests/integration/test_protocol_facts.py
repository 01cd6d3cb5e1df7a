"""A session report's protocol facts, kept per protocol text (tmsctl.lab.protocol_facts).

What the cache gives back is what validating the text gives, for every library protocol and for a
text that does not validate; and an entry is used only for its own text, derived by the same code,
from a folder nobody else can write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tmsctl.lab import protocol_facts as facts_module
from tmsctl.lab.protocol_facts import ProtocolFacts, derive_facts, protocol_facts

LIBRARY = sorted((Path(__file__).resolve().parents[2] / "protocols" / "library").glob("*.yaml"))
INVALID = "schema_version: 1\nid: broken\ntitle: not a protocol\n"


def _derive_nothing_more(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str, *, label: str) -> ProtocolFacts | None:
        raise AssertionError("derived again: the cached entry was not used")

    monkeypatch.setattr(facts_module, "derive_facts", refuse)


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_the_cached_facts_are_the_validated_protocols(tmp_path: Path, path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    text = path.read_text(encoding="utf-8")
    derived = derive_facts(text, label=str(path))
    assert derived is not None and derived.title and derived.parameters
    assert protocol_facts(text, label=str(path), cache=tmp_path) == derived  # derived, then kept
    assert len(_entries(tmp_path)) == 1
    _derive_nothing_more(monkeypatch)
    assert protocol_facts(text, label=str(path), cache=tmp_path) == derived  # read back, the same


def test_a_text_that_does_not_validate_shows_nothing_from_the_cache_either(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert derive_facts(INVALID, label="<x>") is None
    assert protocol_facts(INVALID, label="<x>", cache=tmp_path) is None
    _derive_nothing_more(monkeypatch)
    assert protocol_facts(INVALID, label="<x>", cache=tmp_path) is None


def test_an_entry_is_used_only_for_its_own_text(tmp_path: Path) -> None:
    valid = LIBRARY[0].read_text(encoding="utf-8")
    assert protocol_facts(INVALID, label="<x>", cache=tmp_path) is None
    [entry] = _entries(tmp_path)
    # Another text's facts put under this text's name: the text hash inside does not match.
    protocol_facts(valid, label="<v>", cache=tmp_path)
    other = next(e for e in _entries(tmp_path) if e != entry)
    planted = json.loads(other.read_text())
    planted["key"] = entry.stem
    entry.write_text(json.dumps(planted))
    assert protocol_facts(INVALID, label="<x>", cache=tmp_path) is None


def test_facts_are_derived_again_when_the_code_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = LIBRARY[0].read_text(encoding="utf-8")
    protocol_facts(text, label="<v>", cache=tmp_path)
    monkeypatch.setattr(facts_module, "code_fingerprint", lambda: "another version of the code")
    protocol_facts(text, label="<v>", cache=tmp_path)
    assert len(_entries(tmp_path)) == 2


def test_the_fingerprint_covers_the_protocol_code_and_the_validating_libraries() -> None:
    files = facts_module.code_files()
    root = Path(__file__).resolve().parents[2]
    for source in [*(root / "protocols").glob("*.py"), root / "tmsctl" / "lab" / "report.py",
                   root / "tmsctl" / "lab" / "protocol_facts.py"]:
        assert str(source) in files, source
    for library in ("pydantic", "pydantic_core", "ruamel"):
        assert any(f"{os.sep}{library}{os.sep}" in f for f in files), library


def test_the_fingerprint_follows_an_edit_of_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "models.py"
    source.write_text("x = 1\n")
    monkeypatch.setattr(facts_module, "code_files", lambda: [str(source)])
    before = facts_module.code_fingerprint()
    assert facts_module.code_fingerprint() == before
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert facts_module.code_fingerprint() != before
    source.write_text("x = 12\n")
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert facts_module.code_fingerprint() != before  # same time, another size


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX file modes")
@pytest.mark.parametrize("what", ["entry", "folder"])
def test_an_entry_others_could_write_is_not_believed(tmp_path: Path, what: str) -> None:
    text = LIBRARY[0].read_text(encoding="utf-8")
    derived = protocol_facts(text, label="<v>", cache=tmp_path)
    [entry] = _entries(tmp_path)
    forged = json.loads(entry.read_text())
    forged["facts"]["title"] = "forged"
    entry.write_text(json.dumps(forged))
    (entry if what == "entry" else tmp_path).chmod(0o666 if what == "entry" else 0o777)
    assert protocol_facts(text, label="<v>", cache=tmp_path) == derived


@pytest.mark.parametrize("body", ["", "{", "[]", '{"format": 1}', "null"])
def test_an_entry_that_does_not_read_back_is_derived_again(tmp_path: Path, body: str) -> None:
    text = LIBRARY[0].read_text(encoding="utf-8")
    derived = protocol_facts(text, label="<v>", cache=tmp_path)
    [entry] = _entries(tmp_path)
    entry.write_text(body)
    assert protocol_facts(text, label="<v>", cache=tmp_path) == derived


def test_entries_of_the_wrong_shape_are_not_believed(tmp_path: Path) -> None:
    text = LIBRARY[0].read_text(encoding="utf-8")
    derived = protocol_facts(text, label="<v>", cache=tmp_path)
    [entry] = _entries(tmp_path)
    good = json.loads(entry.read_text())
    for field, value in [("title", 3), ("parameters", "ab"), ("parameters", [["a"]]), ("parameters", [[1, 2]]),
                         ("train_duration_s", "4"), ("target", None)]:
        bad = json.loads(json.dumps(good))
        bad["facts"][field] = value
        entry.write_text(json.dumps(bad))
        assert protocol_facts(text, label="<v>", cache=tmp_path) == derived, field


def test_a_folder_that_cannot_be_written_only_costs_time(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    text = LIBRARY[0].read_text(encoding="utf-8")
    assert protocol_facts(text, label="<v>", cache=blocked / "cache") == derive_facts(text, label="<v>")


def test_the_default_folder_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert facts_module.cache_folder() == tmp_path / "tmsctl" / "protocol-facts"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert facts_module.cache_folder() == tmp_path / ".cache" / "tmsctl" / "protocol-facts"


