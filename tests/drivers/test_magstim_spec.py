"""Magstim model specs: the YAML data against the reference, the energy rule, and strictness.

The reference tables below are pasted verbatim from shared/reference/magstim.md §10, so the
YAML files (written in a different layout) are checked against an independent transcription.
"""

from __future__ import annotations

import math
from copy import deepcopy
from importlib.resources import files

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from ruamel.yaml import YAML

from tmsctl.core.errors import InvalidArgument
from tmsctl.drivers.base import Capability, DeviceLimits
from tmsctl.drivers.magstim.spec import (
    MAINS_VOLTAGES,
    SPEC_FILES,
    VARIANTS,
    MagstimSpec,
    SpecFile,
    load_spec,
    load_spec_file,
)

REFERENCE_ENERGY_J = """
| 0 | 0.0 | 0.0 | 0.1 | 0.2 | 0.4 | 0.6 | 0.9 | 1.2 | 1.6 | 2.0 |
| 10 | 2.5 | 3.0 | 3.6 | 4.3 | 4.9 | 5.7 | 6.4 | 7.3 | 8.2 | 9.1 |
| 20 | 10.1 | 11.1 | 12.2 | 13.3 | 14.5 | 15.7 | 17.0 | 18.4 | 19.7 | 21.2 |
| 30 | 22.7 | 24.2 | 25.8 | 27.4 | 29.1 | 30.8 | 32.6 | 34.5 | 36.4 | 38.3 |
| 40 | 40.3 | 42.3 | 44.4 | 46.6 | 48.8 | 51.0 | 53.3 | 55.6 | 58.0 | 60.5 |
| 50 | 63.0 | 65.5 | 68.1 | 70.7 | 73.4 | 76.2 | 79.0 | 81.8 | 84.7 | 87.7 |
| 60 | 90.7 | 93.7 | 96.8 | 100.0 | 103.2 | 106.4 | 109.7 | 113.0 | 116.4 | 119.9 |
| 70 | 123.4 | 126.9 | 130.5 | 134.2 | 137.9 | 141.7 | 145.5 | 149.3 | 153.2 | 157.2 |
| 80 | 161.2 | 165.2 | 169.3 | 173.5 | 177.7 | 181.9 | 186.3 | 190.6 | 195.0 | 199.5 |
| 90 | 204.0 | 208.5 | 213.1 | 217.8 | 222.5 | 227.3 | 232.1 | 236.9 | 241.9 | 246.8 |
| 100 | 252.0 | | | | | | | | | |
"""

REFERENCE_MAX_FREQUENCY_HZ = {
    240: """
| 30 | 0 | 50 | 46 | 45 | 44 | 42 | 41 | 41 | 39 | 39 | 38 |
| 40 | 0 | 37 | 36 | 34 | 33 | 33 | 33 | 33 | 33 | 32 | 31 |
| 50 | 0 | 30 | 30 | 29 | 29 | 28 | 28 | 27 | 27 | 26 | 26 |
| 60 | 0 | 25 | 25 | 24 | 24 | 23 | 23 | 22 | 22 | 21 | 21 |
| 70 | 0 | 20 | 20 | 20 | 20 | 19 | 19 | 19 | 19 | 19 | 18 |
| 80 | 0 | 18 | 18 | 18 | 18 | 18 | 17 | 17 | 17 | 17 | 17 |
| 90 | 0 | 17 | 17 | 16 | 16 | 16 | 16 | 16 | 16 | 15 | 15 |
| 100 | 0 | 15 | | | | | | | | | |
| 30 | 1 | 100 | 98 | 95 | 93 | 90 | 88 | 85 | 83 | 80 | 78 |
| 40 | 1 | 75 | 73 | 70 | 68 | 65 | 63 | 60 | 58 | 55 | 53 |
| 50 | 1 | 50 | 50 | 49 | 49 | 48 | 48 | 47 | 47 | 46 | 46 |
| 60 | 1 | 45 | 45 | 44 | 44 | 43 | 43 | 42 | 42 | 41 | 41 |
| 70 | 1 | 40 | 40 | 39 | 39 | 38 | 38 | 37 | 37 | 36 | 36 |
| 80 | 1 | 35 | 35 | 34 | 34 | 33 | 33 | 32 | 32 | 31 | 31 |
| 90 | 1 | 30 | 30 | 29 | 29 | 28 | 28 | 27 | 27 | 26 | 26 |
| 100 | 1 | 25 | | | | | | | | | |
| 40 | 2 | 100 | 100 | 100 | 100 | 100 | 100 | 100 | 100 | 100 | 98 |
| 50 | 2 | 97 | 95 | 93 | 91 | 88 | 88 | 87 | 85 | 84 | 82 |
| 60 | 2 | 80 | 79 | 77 | 74 | 74 | 74 | 74 | 71 | 70 | 69 |
| 70 | 2 | 68 | 68 | 66 | 65 | 62 | 62 | 62 | 60 | 59 | 58 |
| 80 | 2 | 57 | 57 | 56 | 55 | 55 | 53 | 52 | 51 | 50 | 50 |
| 90 | 2 | 49 | 48 | 47 | 46 | 46 | 45 | 44 | 43 | 42 | 42 |
| 100 | 2 | 41 | | | | | | | | | |
""",
    115: """
| 30 | 0 | 36 | 35 | 35 | 34 | 33 | 32 | 32 | 31 | 30 | 29 |
| 40 | 0 | 28 | 28 | 27 | 26 | 26 | 25 | 25 | 24 | 24 | 23 |
| 50 | 0 | 23 | 22 | 22 | 21 | 21 | 21 | 20 | 20 | 19 | 19 |
| 60 | 0 | 19 | 18 | 18 | 18 | 18 | 17 | 17 | 17 | 16 | 16 |
| 70 | 0 | 16 | 16 | 16 | 15 | 15 | 15 | 15 | 14 | 14 | 14 |
| 80 | 0 | 14 | 14 | 13 | 13 | 13 | 13 | 13 | 12 | 12 | 12 |
| 90 | 0 | 12 | 12 | 12 | 12 | 12 | 11 | 11 | 11 | 11 | 11 |
| 100 | 0 | 11 | | | | | | | | | |
| 30 | 1 | 60 | 60 | 60 | 60 | 60 | 60 | 60 | 60 | 59 | 57 |
| 40 | 1 | 55 | 54 | 53 | 52 | 51 | 50 | 49 | 47 | 46 | 45 |
| 50 | 1 | 44 | 43 | 42 | 42 | 41 | 40 | 40 | 39 | 38 | 38 |
| 60 | 1 | 37 | 36 | 36 | 35 | 35 | 34 | 34 | 33 | 33 | 32 |
| 70 | 1 | 32 | 31 | 31 | 30 | 30 | 29 | 29 | 28 | 28 | 28 |
| 80 | 1 | 27 | 27 | 27 | 26 | 26 | 26 | 26 | 25 | 25 | 25 |
| 90 | 1 | 24 | 24 | 24 | 24 | 23 | 23 | 23 | 22 | 22 | 22 |
| 100 | 1 | 22 | | | | | | | | | |
| 50 | 2 | 58 | 56 | 56 | 54 | 53 | 52 | 51 | 50 | 49 | 48 |
| 60 | 2 | 47 | 46 | 46 | 45 | 44 | 43 | 43 | 42 | 41 | 40 |
| 70 | 2 | 40 | 39 | 39 | 38 | 37 | 37 | 36 | 36 | 35 | 35 |
| 80 | 2 | 34 | 34 | 33 | 33 | 33 | 32 | 32 | 31 | 31 | 30 |
| 90 | 2 | 30 | 30 | 29 | 29 | 28 | 28 | 28 | 27 | 27 | 27 |
| 100 | 2 | 25 | | | | | | | | | |
""",
}

# "X Hz for 0–Y %" under each voltage heading: (mains_v, type, Hz, last power of the flat part).
REFERENCE_FLAT_START = [
    (240, 0, 50, 30), (240, 1, 100, 30), (240, 2, 100, 48),
    (115, 0, 36, 30), (115, 1, 60, 37), (115, 2, 60, 49),
]  # fmt: skip
TYPE_TO_VARIANT = {0: "rapid2", 1: "super", 2: "superplus"}
LOWERED_CELL = (240, "super", 80)  # the datasheet's 30 Hz instead of MagPy's 35 Hz


def parse_rows(text: str) -> dict[tuple[int, ...], float]:
    """Markdown rows `| start | [type |] v0 | v1 | … |` → {(type?, power): value}."""
    cells: dict[tuple[int, ...], float] = {}
    for line in text.strip().splitlines():
        fields = [field.strip() for field in line.strip().strip("|").split("|")]
        start, key, values = int(fields[0]), (), fields[1:]
        if len(fields) == 12:  # a max-frequency row: start, type, ten values
            key, values = (int(fields[1]),), fields[2:]
        cells.update({(*key, start + i): float(v) for i, v in enumerate(values) if v})
    return cells


ENERGY_J = {power: joules for (power,), joules in parse_rows(REFERENCE_ENERGY_J).items()}


def reference_max_frequency_hz(mains_v: int, kind: int, power_pct: int) -> float:
    table = parse_rows(REFERENCE_MAX_FREQUENCY_HZ[mains_v])
    if (kind, power_pct) in table:
        return table[(kind, power_pct)]
    flat_hz, flat_until = next(
        (hz, last) for v, k, hz, last in REFERENCE_FLAT_START if (v, k) == (mains_v, kind)
    )
    assert power_pct <= flat_until, f"no reference value for {mains_v} V type {kind} at {power_pct} %"
    return flat_hz


@pytest.fixture(scope="module")
def rapid() -> MagstimSpec:
    return load_spec("magstim-rapid2")


@pytest.fixture(scope="module")
def rapid_v9() -> MagstimSpec:
    return load_spec("magstim-rapid2").for_version((9, 0))


def all_specs() -> list[MagstimSpec]:
    specs = [load_spec("magstim-200"), load_spec("magstim-bistim")]
    specs += [load_spec("magstim-rapid2", variant=v, mains_v=m) for v in VARIANTS for m in MAINS_VOLTAGES]
    return specs


# --- data files ----------------------------------------------------------------------------


def raw_file(model: str) -> dict:
    text = files("tmsctl.drivers.magstim").joinpath("specs", SPEC_FILES[model]).read_text(encoding="utf-8")
    return YAML(typ="safe", pure=True).load(text)


@pytest.mark.parametrize("model", sorted(SPEC_FILES))
def test_spec_files_validate_and_cite_every_value(model: str) -> None:
    data = load_spec_file(model)
    assert data.model == model and data.schema_version == 1
    assert data.reviewed.hardware_checked is False
    assert {fact.status for fact in data.reviewed.facts.values()} <= {"V", "C", "D", "U"}


def _drop_fact(raw: dict) -> None:
    del raw["reviewed"]["facts"]["coil.temperature_limit_c"]


def _value_without_provenance(raw: dict) -> None:
    raw["output"]["enhanced_max_pct"] = 110
    raw["capabilities"].append("enhanced_power")


def _unknown_source(raw: dict) -> None:
    raw["reviewed"]["facts"]["output.max_pct"]["from"] = ["FORUM post"]


def _short_row(raw: dict) -> None:
    raw["rapid"]["energy_per_pulse_j"][70] = raw["rapid"]["energy_per_pulse_j"][70][:9]


def _energy_falls(raw: dict) -> None:
    raw["rapid"]["energy_per_pulse_j"][70][3] = 1.0


def _above_mains_ceiling(raw: dict) -> None:
    raw["rapid"]["max_frequency_hz"][115]["super"]["below_table_hz"] = 100


def _override_raises_cell(raw: dict) -> None:
    raw["rapid"]["max_frequency_overrides"][0]["use_hz"] = 40


def _override_misquotes_table(raw: dict) -> None:
    raw["rapid"]["max_frequency_overrides"][0]["table_hz"] = 34


def _cap_beyond_field(raw: dict) -> None:
    raw["rapid"]["software_versions"][0]["max_pulses"] = 10000


def _trains_without_capability(raw: dict) -> None:
    raw["capabilities"].remove("internal_train")


def _extra_key(raw: dict) -> None:
    raw["timing"]["keepalive_optional"] = True


def _keepalive_period_too_long(raw: dict) -> None:
    raw["timing"]["keepalive_period_s"] = 1.0


def _unverified_without_a_note(raw: dict) -> None:
    raw["reviewed"]["facts"]["timing.armed_idle_disarm_s"].pop("note")


@pytest.mark.parametrize(
    "mutate",
    [
        _drop_fact, _unknown_source, _short_row, _energy_falls, _above_mains_ceiling,
        _override_raises_cell, _override_misquotes_table, _cap_beyond_field,
        _trains_without_capability, _extra_key, _keepalive_period_too_long, _unverified_without_a_note,
    ],
)  # fmt: skip
def test_schema_rejects_a_broken_rapid2_file(mutate) -> None:
    raw = raw_file("magstim-rapid2")
    SpecFile.model_validate(raw)  # the unmodified file is valid
    broken = deepcopy(raw)
    mutate(broken)
    with pytest.raises(ValidationError):
        SpecFile.model_validate(broken)


def test_schema_rejects_a_value_without_provenance() -> None:
    raw = raw_file("magstim-200")
    _value_without_provenance(raw)
    with pytest.raises(ValidationError, match="without provenance"):
        SpecFile.model_validate(raw)


def test_specs_are_read_only() -> None:
    spec = load_spec("magstim-rapid2")
    with pytest.raises(ValidationError):
        spec.mains_v = 115  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.data.rapid.max_frequency_hz[240] = {}  # type: ignore[index, union-attr]
    with pytest.raises(TypeError):
        spec.data.rapid.energy_per_pulse_j[70] = (0.0,) * 10  # type: ignore[index, union-attr]


def test_load_spec_is_cached() -> None:
    assert load_spec("magstim-rapid2", variant="super") is load_spec("magstim-rapid2", variant="super")


# --- DeviceLimits and capabilities -----------------------------------------------------------


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.display_name)
def test_every_spec_is_device_limits(spec: MagstimSpec) -> None:
    assert isinstance(spec, DeviceLimits)
    assert spec.max_intensity_pct_mso == 100
    assert Capability.CONFIRMED_REPLIES in spec.capabilities
    assert Capability.THETA_BURST not in spec.capabilities


def test_capabilities_by_model() -> None:
    base = {Capability.SINGLE_PULSE, Capability.EXTERNAL_TRIGGER, Capability.COIL_TEMPERATURE,
            Capability.CONFIRMED_REPLIES}  # fmt: skip
    assert load_spec("magstim-200").capabilities == base
    assert load_spec("magstim-bistim").capabilities == base | {Capability.PAIRED_PULSE}
    assert load_spec("magstim-rapid2").capabilities == base | {
        Capability.INTERNAL_TRAIN, Capability.ENHANCED_POWER, Capability.RTS_TRIGGER
    }


def test_display_names() -> None:
    assert load_spec("magstim-200").display_name == "Magstim 200²"
    assert load_spec("magstim-bistim").display_name == "Magstim BiStim²"
    assert load_spec("magstim-rapid2").display_name == "Magstim Rapid² (240 V)"
    assert load_spec("magstim-rapid2", variant="superplus", mains_v=115).display_name == (
        "Magstim Super Rapid² Plus (115 V)"
    )


# --- Rapid² tables against the reference -----------------------------------------------------


@pytest.mark.parametrize("power_pct", range(101))
def test_energy_per_pulse_matches_reference(rapid: MagstimSpec, power_pct: int) -> None:
    assert rapid.energy_per_pulse_j(power_pct) == ENERGY_J[power_pct]


@pytest.mark.parametrize(("power_pct", "joules"), [(0, 0.0), (2, 0.1), (60, 90.7), (66, 109.7), (73, 134.2),
                                                   (80, 161.2), (99, 246.8), (100, 252.0)])  # fmt: skip
def test_energy_spot_checks(rapid: MagstimSpec, power_pct: int, joules: float) -> None:
    assert rapid.energy_per_pulse_j(power_pct) == joules


@pytest.mark.parametrize("mains_v", MAINS_VOLTAGES)
@pytest.mark.parametrize("kind", [0, 1, 2])
def test_max_frequency_matches_reference_at_every_power(mains_v: int, kind: int) -> None:
    variant = TYPE_TO_VARIANT[kind]
    spec = load_spec("magstim-rapid2", variant=variant, mains_v=mains_v)
    for power_pct in range(101):
        expected = reference_max_frequency_hz(mains_v, kind, power_pct)
        if (mains_v, variant, power_pct) == LOWERED_CELL:
            assert expected == 35 and spec.max_frequency_hz(power_pct) == 30
        else:
            assert spec.max_frequency_hz(power_pct) == expected, (mains_v, variant, power_pct)


@pytest.mark.parametrize(("mains_v", "kind", "flat_hz", "flat_until"), REFERENCE_FLAT_START)
def test_flat_start_of_each_table(mains_v: int, kind: int, flat_hz: float, flat_until: int) -> None:
    spec = load_spec("magstim-rapid2", variant=TYPE_TO_VARIANT[kind], mains_v=mains_v)
    assert [spec.max_frequency_hz(p) for p in range(flat_until + 1)] == [flat_hz] * (flat_until + 1)
    assert spec.max_frequency_hz(flat_until + 1) < flat_hz


@pytest.mark.parametrize("mains_v", MAINS_VOLTAGES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_tables_never_rise_with_power_except_after_the_lowered_cell(mains_v: int, variant: str) -> None:
    # The reference calls the tables non-monotone (flat runs); none of them rises with power.
    # Lowering 80 % to 30 Hz makes 81 % (35 Hz) the one place where a higher power allows more.
    spec = load_spec("magstim-rapid2", variant=variant, mains_v=mains_v)
    rises = [p for p in range(1, 101) if spec.max_frequency_hz(p) > spec.max_frequency_hz(p - 1)]
    assert rises == ([81] if (mains_v, variant) == LOWERED_CELL[:2] else [])


def test_mains_ceilings(rapid: MagstimSpec) -> None:
    assert load_spec("magstim-rapid2", variant="super", mains_v=240).max_frequency_hz(0) == 100
    assert load_spec("magstim-rapid2", variant="super", mains_v=115).max_frequency_hz(0) == 60
    assert rapid.frequency_step_hz == 0.1


# --- Rapid² energy rule: the reference's vectors (magstim.md §15.3, safety.md §8.3) -----------

ENERGY_VECTORS = [
    # power, f, N, (max on-time, decimals), (max continuous f, decimals), (min wait, decimals)
    (73, 25, 250, (18.778, 3), (7.824, 3), (21.952, 3)),
    (73, 25, 250, (18.78, 2), (7.82, 2), (21.95, 2)),  # the bulletin's worked example
    (60, 10, 40, (69.46, 2), (11.577, 3), (0.5, 3)),
    (60, 20, None, (34.73, 2), (11.577, 3), None),
    (80, 20, 40, (19.54, 2), (6.514, 3), (4.141, 3)),
    (80, 10, 40, (39.08, 2), (6.514, 3), (2.141, 3)),
    (100, 10, None, (25.00, 2), (4.167, 3), None),
    # The reference prints 31.90 s; 63000 / (18 × 109.7) = 31.9052 s, which rounds to 31.91.
    (66, 18, 36, (31.905, 3), (9.572, 3), (1.761, 3)),
    (80, 18, 36, (21.71, 2), (6.514, 3), (3.527, 3)),  # safety.md D2
]


@pytest.mark.parametrize(("power", "frequency", "pulses", "on_time", "continuous", "wait"), ENERGY_VECTORS)
def test_energy_rule_vectors(
    rapid_v9: MagstimSpec, power, frequency, pulses, on_time, continuous, wait
) -> None:
    raw_on_time_s = rapid_v9.energy_limited_on_time_s(power, frequency)
    assert round(raw_on_time_s, on_time[1]) == on_time[0]
    expected_limit = math.inf if raw_on_time_s > 60 else raw_on_time_s
    assert rapid_v9.max_train_on_time_s(power, frequency) == expected_limit
    assert round(rapid_v9.max_continuous_frequency_hz(power), continuous[1]) == continuous[0]
    if pulses is not None:
        assert round(rapid_v9.min_inter_train_interval_s(power, frequency, pulses), wait[1]) == wait[0]


def test_device_hard_limit_vectors(rapid: MagstimSpec, rapid_v9: MagstimSpec) -> None:
    assert rapid.max_frequency_hz(80) == 18  # D1: 20 Hz at 80 % is blocked
    assert 3.0 < rapid.min_inter_train_interval_s(80, 18, 36) < 4.0  # D2 blocks 3.0 s, D3 allows 4.0 s
    assert rapid.max_train_on_time_s(100, 10) == 25.0  # D4: a 30 s train is blocked
    assert rapid.max_train_on_time_s(60, 10) == math.inf  # D5: continuous allowed…
    assert rapid.max_pulses_per_train >= 700 and rapid.max_train_duration_s >= 70  # …700 pulses, 70 s
    assert rapid_v9.max_pulses_per_train == 6000  # D6: 6001 is blocked
    with pytest.raises(InvalidArgument, match="1–6000"):
        rapid_v9.min_inter_train_interval_s(60, 1, 6001)
    assert rapid.min_single_pulse_interval_s(60) == 1.0  # D10: 2 Hz single pulses are blocked
    assert rapid.coil_temperature_allows_arming(39.9)  # D9
    assert not rapid.coil_temperature_allows_arming(40.0)


def test_on_time_at_exactly_the_shed_rate_is_finite(rapid: MagstimSpec) -> None:
    # 63 % is 100.0 J, so 10.5 Hz deposits exactly 1050 J/s: 60 s, not "above 60 s".
    assert rapid.max_train_on_time_s(63, 10.5) == 60.0


def test_zero_energy_powers(rapid: MagstimSpec) -> None:
    assert rapid.max_continuous_frequency_hz(1) == math.inf
    assert rapid.max_train_on_time_s(0, 50) == math.inf
    assert rapid.min_inter_train_interval_s(0, 50, 1000) == 0.5


# --- hypothesis: the energy rule as a heat budget ----------------------------------------------


@st.composite
def rapid_trains(draw, *, within_on_time: bool = True):
    """A v9+ Rapid² train (spec, power, frequency on the 0.1 Hz grid, pulses) the tables allow."""
    variant, mains_v = draw(st.sampled_from(VARIANTS)), draw(st.sampled_from(MAINS_VOLTAGES))
    version = (draw(st.integers(9, 12)), 0)
    spec = load_spec("magstim-rapid2", variant=variant, mains_v=mains_v).for_version(version)
    power = draw(st.integers(0, 100))
    frequency = draw(st.integers(1, round(spec.max_frequency_hz(power) * 10))) / 10
    cap = spec.max_pulses_per_train
    on_time_s = spec.max_train_on_time_s(power, frequency)
    if within_on_time and on_time_s != math.inf:
        cap = min(cap, math.floor(on_time_s * frequency + 1e-9))
    return spec, power, frequency, draw(st.one_of(st.just(cap), st.integers(1, cap)))


def leaky_bucket(energy_j: float, frequency_hz: float, pulses: int, wait_s: float, trains: int, shed: float):
    """Each pulse adds its energy; heat drains at ``shed`` J/s down to zero.

    Trains last ``pulses / f`` and each next one starts ``wait_s`` after that. Returns the peak
    heat and the heat at each next train's start.
    """
    heat, peak, last_pulse_s, start_s, at_next_start = 0.0, 0.0, 0.0, 0.0, []
    for _ in range(trains):
        for k in range(pulses):
            pulse_s = start_s + k / frequency_hz
            heat = max(0.0, heat - shed * (pulse_s - last_pulse_s)) + energy_j
            last_pulse_s, peak = pulse_s, max(peak, heat)
        start_s += pulses / frequency_hz + wait_s
        at_next_start.append(max(0.0, heat - shed * (start_s - last_pulse_s)))
    return peak, at_next_start


@given(rapid_trains())
def test_repeated_trains_respect_the_heat_budget(train) -> None:
    """A train within its max on-time deposits at most 63 kJ, or runs below the 1050 J/s shed
    rate; repeated after its min wait it never holds more than 63 kJ of undissipated heat, and
    each next train starts with none left over."""
    spec, power, frequency, pulses = train
    energy_j = spec.energy_per_pulse_j(power)
    tolerance_j = 1e-9 * pulses * max(energy_j, 1.0)
    if spec.max_train_on_time_s(power, frequency) != math.inf:
        assert pulses * energy_j <= 63000.0 + tolerance_j
    else:
        assert frequency * energy_j < 1050.0
    wait_s = spec.min_inter_train_interval_s(power, frequency, pulses)
    peak, at_next_start = leaky_bucket(energy_j, frequency, pulses, wait_s, trains=3, shed=1050.0)
    assert peak <= 63000.0 + tolerance_j
    assert all(level <= tolerance_j for level in at_next_start)


def test_the_rule_is_a_heat_budget_not_a_sliding_window_cap(rapid_v9: MagstimSpec) -> None:
    # 80 % (161.2 J) at 13 Hz: 20 s trains are allowed (max on-time 30.06 s); after the min
    # wait (19.92 s) the next train starts, and a 60 s window from the first train's start
    # holds 522 pulses = 84.1 kJ. The bulletin's rule bounds heat, not every 60 s window.
    power, frequency, pulses = 80, 13.0, 260
    assert pulses / frequency <= rapid_v9.max_train_on_time_s(power, frequency)
    next_start_s = pulses / frequency + rapid_v9.min_inter_train_interval_s(power, frequency, pulses)
    in_window = pulses + math.ceil((60 - next_start_s) * frequency)
    assert in_window * rapid_v9.energy_per_pulse_j(power) > 63000


@given(rapid_trains(within_on_time=False))
def test_min_wait_floor_and_continuous_running(train) -> None:
    spec, power, frequency, pulses = train
    wait_s = spec.min_inter_train_interval_s(power, frequency, pulses)
    assert wait_s >= 0.5
    if frequency < spec.max_continuous_frequency_hz(power):
        assert wait_s == 0.5
        assert spec.max_train_on_time_s(power, frequency) == math.inf
    else:
        assert spec.max_train_on_time_s(power, frequency) <= 60


@given(rapid_trains(within_on_time=False), st.integers(0, 100))
def test_more_power_or_pulses_never_shortens_the_wait(train, other_power) -> None:
    spec, power, frequency, pulses = train
    wait_s = spec.min_inter_train_interval_s(power, frequency, pulses)
    if pulses < spec.max_pulses_per_train:
        assert spec.min_inter_train_interval_s(power, frequency, pulses + 1) >= wait_s
    higher = max(power, other_power)
    assert spec.min_inter_train_interval_s(higher, frequency, pulses) >= wait_s
    assert spec.max_train_on_time_s(higher, frequency) <= spec.max_train_on_time_s(power, frequency)


# --- software versions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "pulses_digits", "duration_digits", "wait_digits", "max_pulses", "max_duration_s", "delay"),
    [
        (None, 4, 3, 3, 1000, 99.9, None),
        ((6, 3), 4, 3, 3, 1000, 99.9, None),
        ((7, 0), 4, 3, 4, 1000, 99.9, None),
        ((8, 9, 9), 4, 3, 4, 1000, 99.9, None),
        ((9, 0), 5, 4, 4, 6000, 999.9, (4, (0, 2000))),
        ((10, 2, 1), 5, 4, 4, 6000, 999.9, (5, (0, 10000))),
        ((42,), 5, 4, 4, 6000, 999.9, (5, (0, 10000))),
    ],
)  # fmt: skip
def test_field_widths_by_version(
    rapid, version, pulses_digits, duration_digits, wait_digits, max_pulses, max_duration_s, delay
) -> None:
    assert rapid.pulses_digits(version) == pulses_digits
    assert rapid.duration_digits(version) == duration_digits
    assert rapid.wait_digits(version) == wait_digits
    assert rapid.max_pulses(version) == max_pulses
    assert rapid.max_duration_s(version) == max_duration_s
    if delay is None:
        assert rapid.charge_delay_digits(version) is None and rapid.charge_delay_range_ms(version) is None
    else:
        assert (rapid.charge_delay_digits(version), rapid.charge_delay_range_ms(version)) == delay
    refined = rapid.for_version(version)
    assert (refined.max_pulses_per_train, refined.max_train_duration_s) == (max_pulses, max_duration_s)


def test_for_version_returns_a_refined_copy(rapid: MagstimSpec) -> None:
    refined = rapid.for_version((9, 0))
    assert refined.software_version == (9, 0) and rapid.software_version is None
    assert rapid.max_pulses_per_train == 1000 and refined.max_pulses_per_train == 6000
    assert refined.for_version(None) == rapid


@given(st.lists(st.integers(0, 99), min_size=1, max_size=3).map(tuple))
def test_an_unknown_version_is_never_less_conservative(version) -> None:
    spec = load_spec("magstim-rapid2")
    assert spec.max_pulses(None) <= spec.max_pulses(version)
    assert spec.max_duration_s(None) <= spec.max_duration_s(version)
    assert spec.max_pulses(version) <= 10 ** spec.pulses_digits(version) - 1


@pytest.mark.parametrize("version", [(), (9.0,), [9, 0], (-1,), (True,), "9.0", (9, "0")])
def test_malformed_versions_are_refused(rapid: MagstimSpec, version) -> None:
    with pytest.raises(InvalidArgument):
        rapid.for_version(version)
    with pytest.raises(InvalidArgument):
        rapid.pulses_digits(version)


# --- 200², BiStim, single pulses, timing ------------------------------------------------------


@pytest.mark.parametrize(
    ("power", "recharge_s"), [(0, 2.0), (49, 2.0), (50, 3.0), (79, 3.0), (80, 4.0), (100, 4.0)]
)
def test_magstim_200_recharge_by_power(power: int, recharge_s: float) -> None:
    spec = load_spec("magstim-200")
    assert spec.recharge_time_s(power) == recharge_s
    assert spec.min_single_pulse_interval_s(power) == recharge_s
    assert spec.max_frequency_hz(power) == 1 / recharge_s
    assert spec.min_inter_train_interval_s(power, 1 / recharge_s, 1) == recharge_s
    assert spec.max_train_on_time_s(power, 0.25) == math.inf


@pytest.mark.parametrize("power", [0, 49, 50, 80, 100])
def test_bistim_recharge_is_four_seconds_at_every_power(power: int) -> None:
    assert load_spec("magstim-bistim").min_single_pulse_interval_s(power) == 4.0


@pytest.mark.parametrize("model", ["magstim-200", "magstim-bistim"])
def test_single_pulse_models_have_no_internal_trains(model: str) -> None:
    spec = load_spec(model)
    assert (spec.max_pulses_per_train, spec.max_train_duration_s, spec.frequency_step_hz) == (1, 0.0, 0.0)
    with pytest.raises(InvalidArgument, match="one pulse per trigger"):
        spec.min_inter_train_interval_s(60, 0.25, 2)
    for rapid_only in (spec.energy_per_pulse_j, spec.max_continuous_frequency_hz):
        with pytest.raises(InvalidArgument, match="only the Rapid²"):
            rapid_only(50)
    with pytest.raises(InvalidArgument, match="only the Rapid²"):
        spec.pulses_digits((9, 0))
    with pytest.raises(InvalidArgument, match="only the Rapid²"):
        spec.post_train_wait_min_s  # noqa: B018


def test_bistim_isi_ranges() -> None:
    spec = load_spec("magstim-bistim")
    low, high = spec.isi_range_ms(high_resolution=False), spec.isi_range_ms(high_resolution=True)
    assert (low.min_ms, low.max_ms, low.step_ms) == (0, 999, 1)
    assert (high.min_ms, high.max_ms, high.step_ms) == (0, 99.9, 0.1)
    with pytest.raises(InvalidArgument):
        load_spec("magstim-200").isi_range_ms(high_resolution=False)


def test_rapid_single_pulse_rates(rapid: MagstimSpec) -> None:
    assert rapid.min_single_pulse_interval_s(100) == 1.0
    assert rapid.min_single_pulse_interval_s(101) == 2.0
    assert rapid.min_single_pulse_interval_s(110) == 2.0
    assert rapid.enhanced_max_intensity_pct_mso == 110
    assert rapid.post_train_wait_min_s == 0.5
    with pytest.raises(InvalidArgument):
        rapid.recharge_time_s(50)


@pytest.mark.parametrize("spec", all_specs()[:3], ids=lambda s: s.model)
def test_timing_facts(spec: MagstimSpec) -> None:
    timing = spec.timing
    assert timing.keepalive_period_s == 0.5
    assert (timing.keepalive_max_gap_standby_s, timing.keepalive_max_gap_armed_s) == (10.0, 1.0)
    assert (timing.arm_to_ready_max_s, timing.armed_idle_disarm_s) == (1.0, 60.0)
    assert spec.coil_temperature_limit_c == 40.0


# --- invalid arguments -------------------------------------------------------------------------

BAD_POWERS = [-1, 101, 100.5, 60.000001, math.nan, math.inf, True, "50", None]


@pytest.mark.parametrize("power", BAD_POWERS)
def test_bad_train_powers_are_refused(rapid: MagstimSpec, power) -> None:
    for ask in (
        rapid.max_frequency_hz, rapid.energy_per_pulse_j, rapid.max_continuous_frequency_hz,
        lambda p: rapid.max_train_on_time_s(p, 10), lambda p: rapid.min_inter_train_interval_s(p, 10, 10),
    ):  # fmt: skip
        with pytest.raises(InvalidArgument):
            ask(power)


@pytest.mark.parametrize("power", [101, 105, 110])
def test_enhanced_power_is_single_pulse_only(rapid: MagstimSpec, power: int) -> None:
    with pytest.raises(InvalidArgument, match="single-pulse only"):
        rapid.max_frequency_hz(power)
    assert rapid.min_single_pulse_interval_s(power) == 2.0


@pytest.mark.parametrize("power", [-1, 111, 50.5, math.nan])
def test_bad_single_pulse_powers_are_refused(power) -> None:
    for spec in all_specs():
        with pytest.raises(InvalidArgument):
            spec.min_single_pulse_interval_s(power)


@given(st.floats(allow_nan=False).filter(lambda p: not (p.is_integer() and 0 <= p <= 100)))
def test_any_off_grid_or_out_of_range_power_is_refused(power: float) -> None:
    with pytest.raises(InvalidArgument):
        load_spec("magstim-rapid2").max_frequency_hz(power)


@pytest.mark.parametrize("frequency", [0, -1, math.nan, math.inf, True, "10"])
def test_bad_frequencies_are_refused(rapid: MagstimSpec, frequency) -> None:
    with pytest.raises(InvalidArgument):
        rapid.max_train_on_time_s(60, frequency)
    with pytest.raises(InvalidArgument):
        rapid.min_inter_train_interval_s(60, frequency, 10)


@pytest.mark.parametrize("pulses", [0, -5, 1001, 10.0, True, "10"])
def test_bad_pulse_counts_are_refused(rapid: MagstimSpec, pulses) -> None:
    with pytest.raises(InvalidArgument):
        rapid.min_inter_train_interval_s(60, 10, pulses)


def test_an_unknown_version_caps_pulses_conservatively(rapid: MagstimSpec) -> None:
    with pytest.raises(InvalidArgument, match="for_version"):
        rapid.min_inter_train_interval_s(60, 10, 1001)


@pytest.mark.parametrize(
    "kwargs",
    [{"model": "magstim-horizon"}, {"model": "magstim-rapid2", "variant": "plus"},
     {"model": "magstim-rapid2", "mains_v": 230}, {"model": "magstim-200", "mains_v": True}],
)  # fmt: skip
def test_bad_load_arguments_are_refused(kwargs) -> None:
    with pytest.raises(InvalidArgument):
        load_spec(**kwargs)


@pytest.mark.parametrize("temperature", [math.nan, "39", None])
def test_bad_coil_temperatures_are_refused(rapid: MagstimSpec, temperature) -> None:
    with pytest.raises(InvalidArgument):
        rapid.coil_temperature_allows_arming(temperature)
