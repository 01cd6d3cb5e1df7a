"""Reading protocol files: every bad input is a located ProtocolFileError, nothing else escapes."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from protocols_helpers import BASE, document
from ruamel.yaml import YAML

from tmsctl.core.errors import ProtocolFileError
from tmsctl.protocols import Protocol, canonical_json, content_hash, load_protocol, load_protocol_text
from tmsctl.protocols.loader import MAX_FILE_BYTES, ProtocolValidationError, known_field_names

GOOD = """\
# yaml-language-server: $schema=../schema/protocol.schema.json
schema_version: 1
id: neurostar-10hz-ldlpfc
title: 10 Hz left DLPFC
coil: {family: figure8}
target: {method: beam_f3, site: F3}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 120}
pattern:
  kind: rtms
  frequency_hz: 10
  pulses_per_train: 40
  inter_train_interval_s: 26
  trains: 75
limits: {max_total_pulses: 3000}
"""


def dump(data: Any) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


def error_of(text: str | bytes, path: str = "p.yaml") -> ProtocolFileError:
    with pytest.raises(ProtocolFileError) as caught:
        load_protocol_text(text, path=path)
    return caught.value


def line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_good_file_loads() -> None:
    protocol = load_protocol_text(GOOD)
    assert protocol.pattern.kind == "rtms" and protocol.plan().total_pulses == 3000


# (what, how to break GOOD, the line that should be named, field, words in the message)
BROKEN = [
    (
        "wrong type",
        ("frequency_hz: 10", 'frequency_hz: "10"'),
        "frequency_hz",
        "pattern.frequency_hz",
        "expected a number",
    ),
    (
        "unknown key",
        ("frequency_hz: 10", "frequncy_hz: 10"),
        "frequncy_hz",
        "pattern.frequncy_hz",
        "unknown key",
    ),
    (
        "negative count",
        ("trains: 75", "trains: -75"),
        "trains: -75",
        "pattern.trains",
        "greater than or equal to 1",
    ),
    (
        "absurd frequency",
        ("frequency_hz: 10", "frequency_hz: 10000"),
        "frequency_hz",
        "pattern.frequency_hz",
        "must be at most 250 Hz",
    ),
    (
        "fractional count",
        ("pulses_per_train: 40", "pulses_per_train: 40.5"),
        "pulses_per_train",
        "pattern.pulses_per_train",
        "whole number",
    ),
    ("bool as count", ("trains: 75", "trains: true"), "trains: true", "pattern.trains", "whole number"),
    (
        "yes is a string in YAML 1.2",
        ("hemisphere: left", "hemisphere: yes"),
        "hemisphere",
        "hemisphere",
        "not allowed",
    ),
    ("bad enum", ("family: figure8", "family: figure-9"), "coil:", "coil.family", "not allowed"),
    ("bad kind", ("kind: rtms", "kind: rtm"), "pattern:", "pattern", "not one of"),
    ("missing kind", ("  kind: rtms\n", ""), "pattern:", "pattern", "missing 'kind'"),
    (
        "fraction instead of percent",
        ("scaling_pct: 120", "scaling_pct: 1.2"),
        "intensity:",
        "intensity.scaling_pct",
        "implausibly low",
    ),
    (
        "limit contradicts pattern",
        ("max_total_pulses: 3000", "max_total_pulses: 300"),
        "limits:",
        "limits.max_total_pulses",
        "3,000",
    ),
    (
        "hemisphere contradicts target",
        ("hemisphere: left", "hemisphere: right"),
        "hemisphere",
        "hemisphere",
        "does not match",
    ),
    ("nan", ("frequency_hz: 10", "frequency_hz: .nan"), "frequency_hz", "pattern.frequency_hz", "finite"),
    (
        "infinity",
        ("inter_train_interval_s: 26", "inter_train_interval_s: .inf"),
        "inter_train_interval_s",
        "pattern.inter_train_interval_s",
        "finite",
    ),
    ("beam site", ("site: F3", "site: Q7"), "target:", "target.site", "use 'F3' or 'F4'"),
    (
        "unknown eeg site",
        ("method: beam_f3, site: F3", "method: eeg_10_20, site: Q7"),
        "target:",
        "target.site",
        "electrode",
    ),
]


@pytest.mark.parametrize(("what", "change", "needle", "field", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_invalid_values_name_file_line_field_and_hint(what, change, needle, field, words) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    error = error_of(text)
    assert isinstance(error, ProtocolValidationError)
    assert error.path == "p.yaml"
    assert error.line == line_of(text, needle), str(error)
    assert error.field == field, str(error)
    assert words.lower() in str(error).lower(), str(error)
    assert str(error).startswith(f"p.yaml:{error.line}")


def test_a_misspelt_key_suggests_the_right_one() -> None:
    error = error_of(GOOD.replace("frequency_hz: 10", "frequncy_hz: 10"))
    assert "did you mean 'frequency_hz'" in error.hint
    assert len(error.problems) == 2  # the unknown key, then the missing one it explains


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("a: [1\n", 2, "YAML syntax"),
        ("a: b: c\n", 1, "YAML syntax"),
        ("schema_version: 1\nid: x\nid: y\n", 3, "duplicate key"),
        ("- 1\n- 2\n", 1, "mapping"),
        ("just text\n", 1, "mapping"),
        ("a: &x 1\nb: *x\n", 1, "anchors"),
        ("a: !!python/object/apply:os.system [echo hi]\n", 1, "tags"),
        ("a: !custom 1\n", 1, "tags"),
        ("a: 1\n---\nb: 2\n", 2, "more than one YAML document"),
        ("%YAML 1.1\n---\na: yes\n", 2, "YAML 1.2"),
        ("a: " + "[" * 40 + "]" * 40 + "\n", 1, "nested"),
        ("a: " + "9" * 5000 + "\n", 1, "longer than any field"),
        ("a: 1\n\x00\n", 2, "YAML"),
        ("? [a, b]\n: 1\n", 1, "must be a name"),
        ("1: x\n", 1, "not a name"),
        ("schema_version: 1\n", 1, "missing required key"),
        ("id: x\n", 1, "schema_version"),
        ("schema_version: 7\n", 1, "newer tmsctl"),
    ],
)
def test_malformed_yaml_is_located(text: str, line: int, words: str) -> None:
    error = error_of(text)
    assert error.path == "p.yaml"
    assert error.line == line, str(error)
    assert words.lower() in str(error).lower(), str(error)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("  trains: 75", "  trains: 75\n  trains: 3"), "pattern.trains"),
        (("coil: {family: figure8}", "coil: {family: figure8, family: H1}"), "coil.family"),
        (("id: neurostar-10hz-ldlpfc", "id: !!str neurostar-10hz-ldlpfc"), "id"),
        (("  frequency_hz: 10", "  frequency_hz: &f 10"), "pattern.frequency_hz"),
    ],
)
def test_duplicate_keys_tags_and_anchors_name_their_field(change, field) -> None:
    error = error_of(GOOD.replace(*change))
    assert error.field == field, str(error)
    assert error.line == line_of(GOOD.replace(*change), change[1].split("\n")[-1].strip()), str(error)


def test_empty_and_non_utf8_files() -> None:
    assert "empty" in str(error_of("  \n# only a comment\n".replace("# only a comment", "")))
    error = error_of(b"schema_version: 1\nid: \xff\xfe\n")
    assert "UTF-8" in str(error) and error.line == 2


def test_huge_files_are_refused_before_parsing(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_text(GOOD + "# " + "x" * MAX_FILE_BYTES + "\n")
    with pytest.raises(ProtocolFileError) as caught:
        load_protocol(huge)
    assert "larger than 64 KiB" in str(caught.value) and caught.value.path == str(huge)
    assert "larger than" in str(error_of("a: 1\n" + "#" * MAX_FILE_BYTES))


def test_missing_files_and_folders(tmp_path: Path) -> None:
    with pytest.raises(ProtocolFileError, match="no such file"):
        load_protocol(tmp_path / "absent.yaml")
    with pytest.raises(ProtocolFileError, match="folder"):
        load_protocol(tmp_path)


def test_a_file_path_labels_the_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("trains: 75", "trains: zero"))
    with pytest.raises(ProtocolFileError) as caught:
        load_protocol(path)
    assert str(caught.value).startswith(
        f"{path}:{line_of(path.read_text(), 'trains: zero')} [pattern.trains]"
    )


def test_byte_order_mark_and_crlf_are_accepted() -> None:
    protocol = load_protocol_text(b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode())
    assert protocol.id == "neurostar-10hz-ldlpfc"


# --- the content hash --------------------------------------------------------------------------


def test_hash_ignores_comments_order_and_spelling_of_defaults() -> None:
    reordered = dump({key: BASE[key] for key in reversed(list(BASE))})
    commented = "# a comment\n" + dump(BASE).replace("title:", "# another\ntitle:")
    spelled_out = document(timed_by="stimulator", requires={"capabilities": [], "models": []})
    hashes = {
        content_hash(load_protocol_text(text))
        for text in (dump(BASE), reordered, commented, dump(spelled_out))
    }
    assert len(hashes) == 1
    (value,) = hashes
    assert value.startswith("sha256:") and len(value) == len("sha256:") + 64


def test_hash_changes_with_any_delivered_value() -> None:
    base = content_hash(Protocol.model_validate(document()))
    changed = [
        document(intensity={"reference": "rMT", "scaling_pct": 110}),
        document(pattern={**BASE["pattern"], "trains": 74}),
        document(coil={"family": "figure8", "model": "D70"}),
        document(title="Another title"),
    ]
    assert all(content_hash(Protocol.model_validate(data)) != base for data in changed)


def test_canonical_form_round_trips() -> None:
    protocol = load_protocol_text(GOOD)
    assert Protocol.model_validate(json.loads(canonical_json(protocol))) == protocol


# --- hypothesis: garbage text and near-valid documents ---------------------------------------


def assert_located(error: ProtocolFileError, text: str) -> None:
    assert error.path == "fuzz.yaml"
    assert str(error).startswith("fuzz.yaml")
    if error.line is not None:
        assert 1 <= error.line <= max(1, text.count("\n") + text.count("\r") + 2)
    if isinstance(error, ProtocolValidationError):
        assert error.line is not None
        assert all(problem.line is not None for problem in error.problems)


YAMLISH = st.text(
    alphabet=st.sampled_from(
        [*list("abcdefghijklmnopqrstuvwxyz_0123456789 :-[]{},.'\"#&*!|>%@`?\n\t\\"), "\x00", "é", "\ufeff"]
    ),
    max_size=300,
)


@given(text=st.one_of(st.text(max_size=300), YAMLISH))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_garbage_text_gives_a_located_protocol_file_error(text: str) -> None:
    try:
        load_protocol_text(text, path="fuzz.yaml")
    except ProtocolFileError as error:
        assert_located(error, text)


@given(data=st.binary(max_size=300))
def test_garbage_bytes_give_a_protocol_file_error(data: bytes) -> None:
    try:
        load_protocol_text(data, path="fuzz.yaml")
    except ProtocolFileError as error:
        assert error.path == "fuzz.yaml"


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["rMT", "aMT", "MSO", "rtms", "theta_burst", "figure8", "H1", "left", "F3", "train"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
PATHS = [
    ("id",),
    ("title",),
    ("hemisphere",),
    ("coil", "family"),
    ("coil", "model"),
    ("target", "method"),
    ("target", "site"),
    ("intensity", "reference"),
    ("intensity", "scaling_pct"),
    ("pattern", "kind"),
    ("pattern", "frequency_hz"),
    ("pattern", "pulses_per_train"),
    ("pattern", "trains"),
    ("pattern", "inter_train_interval_s"),
    ("limits", "max_total_pulses"),
    ("schema_version",),
]


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["limits"] = {"max_total_pulses": 3000}
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([*PATHS, ("extra_key",), ("pattern", "extra_key")]))
        parent: Any = data
        for key in path[:-1]:
            parent = parent.setdefault(key, {}) if isinstance(parent, dict) else {}
        if not isinstance(parent, dict):
            continue
        action = draw(st.sampled_from(["replace", "delete", "nudge"]))
        if action == "delete":
            parent.pop(path[-1], None)
        elif (
            action == "nudge"
            and isinstance(parent.get(path[-1]), (int, float))
            and not isinstance(parent.get(path[-1]), bool)
        ):
            parent[path[-1]] = parent[path[-1]] * draw(st.sampled_from([-1, 0, 0.5, 1.5, 10, 1000]))
        else:
            parent[path[-1]] = draw(VALUES)
    return data


def render(data: dict[str, Any], style: str) -> str:
    if style == "json":  # JSON is YAML 1.2 too, and can always be written
        return json.dumps(data, indent=2, ensure_ascii=True)
    try:
        return dump(data)
    except Exception:  # ruamel cannot emit every generated string
        reject()
        raise


@given(data=near_valid(), style=st.sampled_from(["yaml", "json"]))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_near_valid_documents_load_or_fail_with_a_located_error(data: dict[str, Any], style: str) -> None:
    text = render(data, style)
    try:
        protocol = load_protocol_text(text, path="fuzz.yaml")
    except ProtocolFileError as error:
        assert_located(error, text)
        assert error.line is not None
    else:
        assert protocol.plan().total_pulses >= 1


def test_every_schema_key_is_known_for_suggestions() -> None:
    assert {"frequency_hz", "pulses_per_train", "scaling_pct", "builds", "x_mm"} <= known_field_names()
