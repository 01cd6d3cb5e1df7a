"""Each command loads only what it uses (issue 19: start-up a person feels).

Whole `tmsctl` processes, as a person runs them, report the modules they loaded: listing and
showing recorded sessions never load the protocol models (pydantic), the YAML reader, the live
panel or the PostgreSQL driver; reading a protocol file does not load the rules, the library or
the expansion. The cost of each is in benchmarks/bench_cli_startup.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import SHORT_CLI

from tmsctl.records import Records, SessionPlan

# Runs the console script's main() with the given arguments, then writes the loaded modules.
REPORTER = """
import atexit, json, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["tmsctl", *sys.argv[2:]]
from tmsctl.__main__ import main
main()
"""

# What a records command never needs.
NOT_FOR_RECORDS = (
    "pydantic", "pydantic_core", "tmsctl.protocols.models", "tmsctl.protocols.loader", "tmsctl.protocols.rules",
    "ruamel.yaml", "psycopg", "rich.live", "rich.progress_bar", "secrets", "socket",
)


def loaded_modules(tmp_path: Path, *argv: str) -> tuple[set[str], str]:
    """The modules a whole `tmsctl ARGV` process loaded, and what it printed."""
    report = tmp_path / "modules.json"
    env = {**os.environ, "COLUMNS": "120", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", REPORTER, str(report), *argv], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(report.read_text())), done.stdout


def loaded_by_import(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


@pytest.fixture
def db_with_a_session(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "records"
    folder.mkdir(mode=0o700)
    db = folder / "r.db"
    with Records(db) as records:
        records.ensure_subject("S101")
        session = records.create_session(SessionPlan(
            subject_id="S101", protocol_id="short-cli", protocol_hash="sha256:" + "0" * 64, protocol_text=SHORT_CLI,
            device_url="sim://rapid2", device_model="magstim-rapid2", simulated=True, planned_deliveries=4,
            planned_pulses=80,
        ))
    return db, session.session_id


def test_listing_sessions_loads_no_protocol_models_yaml_live_panel_or_server_driver(
    tmp_path: Path, db_with_a_session: tuple[Path, str]
) -> None:
    db, session_id = db_with_a_session
    modules, printed = loaded_modules(tmp_path, "sessions", "--db", str(db))
    assert session_id in printed
    assert sorted(modules.intersection(NOT_FOR_RECORDS)) == []


def test_showing_a_session_reads_its_protocols_facts_without_the_models(
    tmp_path: Path, db_with_a_session: tuple[Path, str]
) -> None:
    db, session_id = db_with_a_session
    # The first show of a protocol text validates it (the models load) and keeps its facts.
    first, first_printed = loaded_modules(tmp_path, "session", "show", session_id, "--db", str(db))
    assert "tmsctl.protocols.models" in first
    assert "Short CLI test protocol" in first_printed and "20 pulses, onsets 100 ms apart" in first_printed
    # Every later show of it reads them back: the same screen, no models, no YAML reader.
    later, later_printed = loaded_modules(tmp_path, "session", "show", session_id, "--db", str(db))
    assert later_printed == first_printed
    assert sorted(later.intersection(NOT_FOR_RECORDS)) == []


def test_reading_a_protocol_file_loads_no_rules_library_or_expansion() -> None:
    modules = loaded_by_import("from tmsctl.protocols.loader import load_protocol")
    assert "tmsctl.protocols.models" in modules
    unused = ("tmsctl.protocols.rules", "tmsctl.protocols.rulebook", "tmsctl.protocols.library",
              "tmsctl.protocols.expand", "tmsctl.protocols.device_rules", "tmsctl.protocols.canonical")
    assert sorted(modules.intersection(unused)) == []


def test_the_package_still_names_every_function_it_published() -> None:
    import tmsctl.protocols as protocols
    import tmsctl.protocols.expand
    import tmsctl.protocols.rulebook  # noqa: F401  (each binds its submodule on the package when first loaded)
    from tmsctl.protocols.expand import expand
    from tmsctl.protocols.rulebook import rulebook

    assert protocols.expand is expand and protocols.rulebook is rulebook
    for name in protocols.__all__:
        assert getattr(protocols, name) is not None, name
    with pytest.raises(AttributeError):
        protocols.no_such_name  # noqa: B018
