"""`tmsctl target …` through typer's CliRunner on the sub-app."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tmsctl.cli.target import app

runner = CliRunner()
HEAD = ["--nasion-inion", "38", "--tragus-tragus", "36", "--circumference", "60"]


def invoke(*args: str):
    return runner.invoke(app, ["target", *args])


def test_beam_f3_prints_what_to_mark_with_method_and_source():
    result = invoke("beam-f3", *HEAD)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "F3 (left DLPFC)" in out
    for text in ("19.00 cm", "18.00 cm", "6.95 cm", "9.79 cm", "going left", "[beam_f3]", "PMID 20539835"):
        assert text in out


def test_beam_f3_right_side_json():
    result = invoke("beam-f3", *HEAD, "--side", "right", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["side"] == "right" and data["target"].startswith("F4")
    marks = {m["key"]: m["value_cm"] for m in data["marks"]}
    assert marks["circumference_from_midline_cm"] == pytest.approx(6.9549, abs=0.005)
    assert marks["vertex_to_target_cm"] == pytest.approx(9.7911, abs=0.005)
    assert data["inputs"] == {"nasion_inion_cm": 38.0, "tragus_tragus_cm": 36.0, "circumference_cm": 60.0}


def test_beam_f3_accepts_a_cm_suffix():
    result = invoke(
        "beam-f3", "--nasion-inion", "38cm", "--tragus-tragus", "36 cm", "--circumference", "60", "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["inputs"]["nasion_inion_cm"] == 38.0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--nasion-inion", "38", "--tragus-tragus", "36"], "head circumference is missing"),
        (
            ["--nasion-inion", "abc", "--tragus-tragus", "36", "--circumference", "60"],
            "--nasion-inion must be a length in cm, got 'abc'",
        ),
        (["--nasion-inion", "-38", "--tragus-tragus", "36", "--circumference", "60"], "must be positive"),
        (
            ["--nasion-inion", "380", "--tragus-tragus", "36", "--circumference", "60"],
            "outside the plausible adult range 28–46 cm",
        ),
        (["--nasion-inion", "60", "--tragus-tragus", "36", "--circumference", "38"], "swap"),
        (
            ["--nasion-inion", "38", "--tragus-tragus", "36", "--circumference", "60mm"],
            "--circumference must be a length in cm",
        ),
        ([*HEAD, "--side", "up"], "side must be 'left' or 'right'"),
    ],
)
def test_bad_input_is_one_line_on_stderr_with_exit_2(args, expected):
    result = invoke("beam-f3", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "hint:" in lines[0] or "finite" in lines[0]
    assert "Traceback" not in result.output


def test_linear_and_mri_adjusted():
    plain = json.loads(invoke("beam-f3-linear", *HEAD, "--json").stdout)
    adjusted = json.loads(invoke("beam-f3-linear", *HEAD, "--mri-adjusted", "--json").stdout)
    y_plain = {m["key"]: m["value_cm"] for m in plain["marks"]}["vertex_to_target_cm"]
    y_adjusted = {m["key"]: m["value_cm"] for m in adjusted["marks"]}["vertex_to_target_cm"]
    assert y_adjusted - y_plain == pytest.approx(0.35)


def test_mir_moghtadaei_right_posterior():
    result = invoke("mir-moghtadaei", *HEAD, "--side", "right", "--region", "posterior")
    assert result.exit_code == 0, result.output
    assert "11.81 cm" in result.stdout and "8.57 cm" in result.stdout
    bad = invoke("mir-moghtadaei", *HEAD, "--region", "middle")
    assert bad.exit_code == 2 and "anterior' or 'posterior" in bad.stderr


@pytest.mark.parametrize(("cm", "shown"), [("5", "5.00 cm"), ("5.5", "5.50 cm"), ("6", "6.00 cm")])
def test_rule(cm, shown):
    result = invoke("rule", "--cm", cm)
    assert result.exit_code == 0, result.output
    assert shown in result.stdout and "hot spot" in result.stdout


@pytest.mark.parametrize(
    ("cm", "expected"),
    [("7", "no fixed-distance rule of 7 cm"), ("five", "must be a length"), (None, "--cm is missing")],
)
def test_rule_errors(cm, expected):
    result = invoke("rule", *(["--cm", cm] if cm is not None else []))
    assert result.exit_code == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_mni_hides_unverified_unless_asked():
    default = invoke("mni")
    assert default.exit_code == 0
    assert "-38" in default.stdout and "Herbsman" not in default.stdout
    assert "4 unverified coordinates hidden" in default.stdout
    everything = json.loads(invoke("mni", "--all", "--json").stdout)
    assert len(everything) == 10
    assert {tuple(row["mni_mm"]) for row in everything if not row["verified"]} == {
        (-44, 38, 34),
        (-42, 44, 30),
        (-46, 45, 38),
        (-46, 23, 49),
    }
