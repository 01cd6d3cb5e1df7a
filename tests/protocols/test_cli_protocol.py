"""``tmsctl protocol`` (the sub-app on its own): validate, show, schema, exit codes, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tmsctl.cli.protocol import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, app, duration_text
from tmsctl.protocols import library_path, list_library
from tmsctl.protocols.schema_file import render_schema

runner = CliRunner()
LIBRARY = [str(entry.path) for entry in list_library()]
NEUROSTAR = str(library_path() / "neurostar-10hz-ldlpfc.yaml")
ITBS = str(library_path() / "itbs-600.yaml")


def invoke(*arguments: str):
    result = runner.invoke(app, list(arguments))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def test_the_whole_library_validates() -> None:
    result = invoke("validate", *LIBRARY)
    assert result.exit_code == EXIT_OK, result.output
    assert result.output.count("✓") == len(LIBRARY)


def test_validate_json_reports_every_file() -> None:
    result = invoke("validate", "--json", *LIBRARY)
    report = json.loads(result.output)
    assert report["ok"] is True and len(report["files"]) == len(LIBRARY)
    neurostar = next(f for f in report["files"] if f["protocol_id"] == "neurostar-10hz-ldlpfc")
    assert (
        neurostar["status"] == "allowed"
        and neurostar["total_pulses"] == 3000
        and neurostar["duration_s"] == 2250
    )
    assert neurostar["protocol_hash"].startswith("sha256:")


def test_a_refusal_exits_3_and_names_rule_value_and_source() -> None:
    result = invoke(
        "validate", ITBS, "--device-model", "magstim-rapid2", "--mt", "40", "--mt-reference", "aMT"
    )
    assert result.exit_code == EXIT_REFUSED
    assert "refused" in result.output and "device.capability" in result.output
    assert "cannot time theta bursts" in result.output and "source:" in result.output


def test_mt_resolves_the_intensity_and_device_limits_apply() -> None:
    result = invoke("validate", "--json", NEUROSTAR, "--device-model", "magstim-rapid2", "--mt", "55")
    (report,) = json.loads(result.output)["files"]
    assert result.exit_code == EXIT_OK and report["intensity_pct_mso"] == 66 and report["complete"]
    too_high = invoke("validate", "--json", NEUROSTAR, "--device-model", "magstim-rapid2", "--mt", "85")
    (refused,) = json.loads(too_high.output)["files"]
    assert too_high.exit_code == EXIT_REFUSED and refused["status"] == "refused"
    assert {f["rule_id"] for f in refused["findings"] if f["severity"] == "refuse"} == {"device.intensity"}


def test_device_version_and_options_reach_the_spec() -> None:
    one_hz = str(library_path() / "bpd-1hz-rdlpfc.yaml")
    unknown = invoke("validate", one_hz, "--device-model", "magstim-rapid2", "--mt", "50")
    assert unknown.exit_code == EXIT_REFUSED and "device.train-duration" in unknown.output
    v9 = invoke(
        "validate", one_hz, "--device-model", "magstim-rapid2", "--device-version", "9.0", "--mt", "50"
    )
    assert v9.exit_code == EXIT_OK, v9.output
    super_rapid = invoke(
        "validate",
        NEUROSTAR,
        "--device-model",
        "magstim-rapid2",
        "--device-option",
        "variant=super",
        "--mt",
        "50",
    )
    assert super_rapid.exit_code == EXIT_OK, super_rapid.output


def test_warnings_need_an_override_with_a_reason(tmp_path: Path) -> None:
    text = Path(NEUROSTAR).read_text().replace("pulses_per_train: 40", "pulses_per_train: 60")
    text = text.replace("max_total_pulses: 3000", "max_total_pulses: 4500").replace(
        "max_session_duration_s: 2250", ""
    )
    text = text.replace(
        "intensity: {reference: rMT, scaling_pct: 120}", "intensity: {reference: rMT, scaling_pct: 110}"
    )
    path = tmp_path / "long-trains.yaml"
    path.write_text(text)
    warned = invoke("validate", str(path))
    assert warned.exit_code == EXIT_REFUSED and "needs a recorded override" in warned.output
    assert "wassermann.train-duration" in warned.output and "site.session-pulses" in warned.output
    lifted = invoke(
        "validate",
        str(path),
        "--override",
        "wassermann.train-duration=approved study 2024-17",
        "--override",
        "site.session-pulses=approved study 2024-17",
    )
    assert lifted.exit_code == EXIT_OK, lifted.output
    assert "overridden" in lifted.output


def test_an_invalid_file_is_one_located_line_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(Path(NEUROSTAR).read_text().replace("frequency_hz: 10", "frequency_hz: ten"))
    result = invoke("validate", str(path), NEUROSTAR)
    assert result.exit_code == EXIT_REFUSED
    assert f"{path}:" in result.output and "[pattern.frequency_hz]" in result.output
    assert "what to do:" in result.output and "✓" in result.output  # the good file is still checked
    as_json = json.loads(invoke("validate", "--json", str(path)).output)
    (error,) = as_json["files"][0]["errors"]
    assert error["field"] == "pattern.frequency_hz" and error["line"] is not None


@pytest.mark.parametrize(
    "content",
    [b"a: [1\n", b"\xff\xfe\x00", b"- just\n- a list\n", b"a: &x 1\nb: *x\n", b"x" * 70_000],
    ids=["syntax", "binary", "list", "alias", "huge"],
)
def test_malformed_files_never_give_a_traceback(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(content)
    result = invoke("validate", str(path))
    assert result.exit_code == EXIT_REFUSED and str(path) in result.output


def test_missing_file_and_usage_errors() -> None:
    assert invoke("validate", "/no/such/protocol.yaml").exit_code == EXIT_REFUSED
    assert invoke("validate").exit_code == EXIT_USAGE
    assert invoke("validate", NEUROSTAR, "--device-model", "no-such-stimulator").exit_code == EXIT_USAGE
    assert invoke("validate", NEUROSTAR, "--mt", "150").exit_code == EXIT_USAGE
    assert invoke("validate", NEUROSTAR, "--mt", "50", "--mt-reference", "MT").exit_code == EXIT_USAGE
    assert invoke("validate", NEUROSTAR, "--override", "no-reason").exit_code == EXIT_USAGE
    assert invoke("validate", NEUROSTAR, "--device-version", "9").exit_code == EXIT_USAGE
    bad_version = invoke(
        "validate", NEUROSTAR, "--device-model", "magstim-rapid2", "--device-version", "nine"
    )
    assert bad_version.exit_code == EXIT_USAGE


def test_show_prints_totals_trains_and_findings() -> None:
    result = invoke("show", NEUROSTAR, "--mt", "53", "--device-model", "magstim-rapid2")
    assert result.exit_code == EXIT_OK
    for words in (
        "3,000 in 75 train(s)",
        "37 min 30 s nominal",
        "37 min 4 s",
        "1–75",
        "30 s",
        "64 %MSO",
        "Findings",
    ):
        assert words in result.output, words
    assert "intensity.rounded" in result.output and "wassermann.lookup" in result.output


def test_show_all_trains_and_json() -> None:
    every = invoke("show", "--all-trains", ITBS)
    assert every.exit_code == EXIT_OK and "20 " in every.output
    data = json.loads(invoke("show", "--json", ITBS).output)
    assert data["status"] == "allowed" and data["schedule"]["total_pulses"] == 600
    trains = data["schedule"]["trains_detail"]
    assert (
        len(trains) == 20
        and trains[1]["onset_s"] == 10.0
        and trains[0]["pulse_offsets_s"][:4] == [0.0, 0.02, 0.04, 0.2]
    )


def test_show_of_an_accelerated_protocol_shows_the_day() -> None:
    result = invoke("show", str(library_path() / "saint-accelerated-itbs.yaml"))
    assert "10 sessions, 18,000 pulses" in result.output


def test_show_of_an_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("schema_version: 1\nid: x\n")
    result = invoke("show", str(path))
    assert result.exit_code == EXIT_REFUSED and "missing required key" in result.output
    data = json.loads(invoke("show", "--json", str(path)).output)
    assert data["status"] == "invalid" and data["errors"]


def test_schema_prints_the_published_schema() -> None:
    result = invoke("schema")
    assert result.exit_code == EXIT_OK
    assert result.output == render_schema()
    assert json.loads(result.output)["title"] == "Protocol"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (40, "40 s"),
        (2250, "37 min 30 s"),
        (191.84, "3 min 11.84 s"),
        (7200, "2 h 0 min"),
        (3660, "1 h 1 min"),
    ],
)
def test_durations_read_naturally(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_validate_and_show_say_plainly_that_a_provisional_protocol_needs_a_site_approval() -> None:
    provisional = str(library_path() / "bpd-5hz-dmpfc.yaml")
    validated = invoke("validate", provisional)
    assert "provisional" in validated.output and "tmsctl protocol approve" in validated.output
    (report,) = json.loads(invoke("validate", "--json", provisional).output)["files"]
    assert report["provisional"] is True and "site approval" in report["approval"]
    shown = invoke("show", provisional)
    assert "provisional" in shown.output and "tmsctl protocol approve" in shown.output
    assert json.loads(invoke("show", "--json", provisional).output)["provisional"] is True
    vetted = invoke("validate", "--json", NEUROSTAR)
    assert json.loads(vetted.output)["files"][0]["provisional"] is False
