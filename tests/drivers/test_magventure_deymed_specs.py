"""MagPro and DuoMAG specs: reviewed YAML against the reference, strict checks, file validation.

Expected values are transcribed independently from shared/reference/magventure.md §4 ("Modes /
directions / waveforms by model", "Value ranges the libraries enforce") and deymed.md.
"""

from __future__ import annotations

import math
from copy import deepcopy
from importlib.resources import files
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from ruamel.yaml import YAML

from tmsctl.core.errors import InvalidArgument, SafetyViolation
from tmsctl.drivers.base import Capability, DeviceLimits
from tmsctl.drivers.deymed import codec as duomag_codec
from tmsctl.drivers.deymed.spec import DuoMagSpec
from tmsctl.drivers.deymed.spec import SpecFile as DuoMagSpecFile
from tmsctl.drivers.deymed.spec import load_spec as load_duomag
from tmsctl.drivers.magventure import codec as c
from tmsctl.drivers.magventure.spec import (
    GENERIC_MODEL,
    Grid,
    MagProSpec,
    SpecFile,
    load_spec,
    model_names,
    spec_for_model_code,
)

M, W, D = c.Mode, c.Waveform, c.CurrentDirection
MAGPRO_NAMES = (
    "magventure-magpro",
    "magventure-magpro-r30",
    "magventure-magpro-r30-option",
    "magventure-magpro-r30-option-mono",
    "magventure-magpro-x100",
    "magventure-magpro-x100-option",
)

# Reference §4, PYTMS table: modes; directions; waveforms.
OFFERS = {
    "magventure-magpro-r30": ({M.STANDARD}, {D.NORMAL}, {W.BIPHASIC}),
    "magventure-magpro-r30-option": ({M.STANDARD, M.TWIN, M.DUAL}, {D.NORMAL}, {W.MONOPHASIC, W.BIPHASIC}),
    "magventure-magpro-x100": (
        {M.STANDARD}, {D.NORMAL, D.REVERSE}, {W.MONOPHASIC, W.BIPHASIC, W.BIPHASIC_BURST}
    ),
    "magventure-magpro-x100-option": (
        {M.STANDARD, M.POWER, M.TWIN, M.DUAL},
        {D.NORMAL, D.REVERSE},
        {W.MONOPHASIC, W.BIPHASIC, W.HALFSINE, W.BIPHASIC_BURST},
    ),
}

# Reference §4 rate ceilings, the lower of MPC and PYTMS: (model, mode, waveform) → Hz.
RATE_CEILINGS = [
    ("magventure-magpro-r30", M.STANDARD, W.BIPHASIC, 30),
    ("magventure-magpro-x100", M.STANDARD, W.BIPHASIC, 100),
    ("magventure-magpro-x100", M.STANDARD, W.MONOPHASIC, 100),
    ("magventure-magpro-x100", M.STANDARD, W.BIPHASIC_BURST, 20),
    ("magventure-magpro-r30-option", M.STANDARD, W.BIPHASIC, 30),
    ("magventure-magpro-r30-option", M.TWIN, W.BIPHASIC, 5),
    ("magventure-magpro-r30-option", M.DUAL, W.MONOPHASIC, 5),
    ("magventure-magpro-x100-option", M.STANDARD, W.HALFSINE, 100),
    ("magventure-magpro-x100-option", M.STANDARD, W.BIPHASIC_BURST, 20),
    ("magventure-magpro-x100-option", M.TWIN, W.BIPHASIC, 20),
    ("magventure-magpro-x100-option", M.DUAL, W.HALFSINE, 20),
    ("magventure-magpro-x100-option", M.TWIN, W.MONOPHASIC, 5),
    ("magventure-magpro-x100-option", M.POWER, W.BIPHASIC, 20),
]

# Values with no number in the reference, chosen conservatively (status U): the review list.
EXPECTED_UNVERIFIED_MAGPRO = {
    "timing.min_single_pulse_interval_s",
    "timing.min_inter_train_interval_s",
    "timing.max_train_duration_s",
    "coil.temperature_limit_c",
    "grids.pulses_per_train",
    "models.magventure-magpro-x100-option.max_rate_hz.power",
    "models.magventure-magpro-r30-option-mono.capabilities",
    "models.magventure-magpro-r30-option-mono.modes",
    "models.magventure-magpro-r30-option-mono.current_directions",
    "models.magventure-magpro-r30-option-mono.waveforms",
    "models.magventure-magpro-r30-option-mono.max_rate_hz.default",
    "models.magventure-magpro-r30-option-mono.max_rate_hz.twin_dual",
    "models.magventure-magpro-r30-option-mono.display_name",
    "models.magventure-magpro-r30-option-mono.model_code",
}
EXPECTED_UNVERIFIED_DUOMAG = {"capabilities", "timing.min_single_pulse_interval_s"}


def _raw_yaml(package: str, name: str) -> dict[str, Any]:
    text = files(package).joinpath("specs", name).read_text(encoding="utf-8")
    return YAML(typ="safe", pure=True).load(text)  # type: ignore[no-any-return]


def _leaves(data: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        out += _leaves(value, path + ".") if isinstance(value, dict) and value else [path]
    return out


# --- the contract --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MAGPRO_NAMES)
def test_every_magpro_spec_loads_and_implements_device_limits(name: str) -> None:
    spec = load_spec(name)
    assert isinstance(spec, DeviceLimits)
    assert spec.model == name
    assert model_names()[0] == GENERIC_MODEL and set(model_names()) == set(MAGPRO_NAMES)


def test_duomag_spec_implements_device_limits() -> None:
    spec = load_duomag("deymed-duomag")
    assert isinstance(spec, DeviceLimits) and spec.model == "deymed-duomag"


def test_unknown_names_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="known"):
        load_spec("magventure-magpro-x200")
    with pytest.raises(InvalidArgument):
        load_duomag("deymed-duomag-xt")


@pytest.mark.parametrize("name", MAGPRO_NAMES)
def test_every_magpro_times_trains_and_answers(name: str) -> None:
    capabilities = load_spec(name).capabilities
    assert {Capability.INTERNAL_TRAIN, Capability.CONFIRMED_REPLIES, Capability.SINGLE_PULSE} <= capabilities


@pytest.mark.parametrize(
    ("name", "theta_burst", "paired_pulse"),
    [
        ("magventure-magpro", False, False),
        ("magventure-magpro-r30", False, False),
        ("magventure-magpro-r30-option", False, True),
        ("magventure-magpro-r30-option-mono", False, True),
        ("magventure-magpro-x100", True, False),
        ("magventure-magpro-x100-option", True, True),
    ],
)
def test_theta_burst_where_biphasic_burst_is_offered(
    name: str, theta_burst: bool, paired_pulse: bool
) -> None:
    capabilities = load_spec(name).capabilities
    assert (Capability.THETA_BURST in capabilities) is theta_burst
    assert (Capability.PAIRED_PULSE in capabilities) is paired_pulse


def test_duomag_capabilities_say_what_it_cannot_confirm() -> None:
    capabilities = load_duomag().capabilities
    assert Capability.CONFIRMED_REPLIES not in capabilities
    assert Capability.INTERNAL_TRAIN not in capabilities and Capability.THETA_BURST not in capabilities
    assert Capability.SINGLE_PULSE in capabilities
    assert duomag_codec.REPLIES_TO_COMMANDS is False


@pytest.mark.parametrize("name", sorted(OFFERS))
def test_offers_match_reference(name: str) -> None:
    spec = load_spec(name)
    assert (spec.modes, spec.current_directions, spec.waveforms) == OFFERS[name]


@pytest.mark.parametrize(("name", "mode", "waveform", "hz"), RATE_CEILINGS)
def test_rate_ceilings_match_reference(name: str, mode: c.Mode, waveform: c.Waveform, hz: int) -> None:
    spec = load_spec(name)
    assert spec.max_rate_hz(mode, waveform) == hz
    assert spec.check_rate(hz * 10, mode=mode, waveform=waveform) == hz * 10
    # One hertz more is above the ceiling — or, at 100 Hz, beyond the rate grid itself.
    with pytest.raises(InvalidArgument, match="ceiling" if hz < 100 else "not a value the MagPro accepts"):
        spec.check_rate(hz * 10 + 10, mode=mode, waveform=waveform)


def test_device_limits_values() -> None:
    x100 = load_spec("magventure-magpro-x100")
    assert x100.max_intensity_pct_mso == 100
    assert x100.max_frequency_hz(100) == 100.0
    assert x100.frequency_step_hz == 0.1
    assert x100.max_pulses_per_train == 1000
    assert x100.max_train_duration_s == 1000.0
    assert x100.max_train_on_time_s(100, 100.0) == math.inf
    assert x100.min_inter_train_interval_s(100, 10.0, 40) == 1.0
    assert x100.min_single_pulse_interval_s(100) == 1.0
    assert load_spec("magventure-magpro-r30").max_frequency_hz(10) == 30.0


def test_duomag_device_limits_values() -> None:
    spec = load_duomag()
    assert spec.max_intensity_pct_mso == 100
    assert spec.min_single_pulse_interval_s(100) == 2.0
    assert spec.max_frequency_hz(50) == 0.5
    assert (spec.max_pulses_per_train, spec.max_train_duration_s, spec.frequency_step_hz) == (1, 0.0, 0.0)
    assert spec.min_inter_train_interval_s(50, 0.5, 1) == 2.0
    assert spec.max_train_on_time_s(50, 0.5) == math.inf
    with pytest.raises(InvalidArgument):
        spec.min_inter_train_interval_s(50, 0.5, 2)


@pytest.mark.parametrize(
    "spec", [load_spec("magventure-magpro-x100"), load_duomag()], ids=["magpro", "duomag"]
)
@pytest.mark.parametrize("intensity", [-1, 101, 50.5, math.nan, math.inf, True, "50"])
def test_intensity_arguments_are_strict(spec: MagProSpec | DuoMagSpec, intensity: object) -> None:
    with pytest.raises(InvalidArgument):
        spec.min_single_pulse_interval_s(intensity)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        spec.max_train_on_time_s(intensity, 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("frequency", [0, -1.0, math.nan, math.inf, True])
def test_frequency_arguments_are_strict(frequency: object) -> None:
    spec = load_spec("magventure-magpro-x100")
    with pytest.raises(InvalidArgument):
        spec.max_train_on_time_s(50, frequency)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        spec.min_inter_train_interval_s(50, frequency, 10)  # type: ignore[arg-type]


def test_pulse_count_argument_is_strict() -> None:
    spec = load_spec("magventure-magpro-x100")
    for pulses in (0, 1001, 2.0, True):
        with pytest.raises(InvalidArgument):
            spec.min_inter_train_interval_s(50, 10.0, pulses)  # type: ignore[arg-type]


# --- model identification ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name"),
    [(c.MagProModel.R30, "magventure-magpro-r30"), (c.MagProModel.X100, "magventure-magpro-x100"),
     (c.MagProModel.R30_OPTION, "magventure-magpro-r30-option"),
     (c.MagProModel.X100_OPTION, "magventure-magpro-x100-option"),
     (c.MagProModel.R30_OPTION_MONO, "magventure-magpro-r30-option-mono")],
)
def test_spec_for_reported_model_code(code: c.MagProModel, name: str) -> None:
    spec = spec_for_model_code(code)
    assert spec.model == name and spec.model_code is code


@pytest.mark.parametrize("code", [5, 6, 7])
def test_mst_and_undefined_models_are_refused(code: int) -> None:
    with pytest.raises(SafetyViolation, match="no reviewed limits"):
        spec_for_model_code(code)


def test_generic_spec_has_no_model_code() -> None:
    assert load_spec().model_code is None


@pytest.mark.parametrize("name", MAGPRO_NAMES[1:])
def test_generic_spec_is_no_more_permissive_than_any_model(name: str) -> None:
    generic, model = load_spec(), load_spec(name)
    assert generic.capabilities <= model.capabilities
    assert generic.modes <= model.modes and generic.waveforms <= model.waveforms
    assert generic.current_directions <= model.current_directions
    assert generic.max_frequency_hz(100) <= model.max_frequency_hz(100)


# --- grids ---------------------------------------------------------------------------------------


def test_rate_grid_is_tenths_to_one_hertz_then_whole_hertz() -> None:
    grid = load_spec().grids.rate_hz_x10
    expected = list(range(1, 11)) + list(range(20, 1001, 10))
    assert [v for v in range(-10, 1100) if v in grid] == expected
    assert list(grid.values()) == expected


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("pulses_per_train", [1, 999, 1000], [0, 1001, 1100]),
        ("train_count", [1, 500], [0, 501]),
        ("iti_s_x10", [1, 260, 1200], [0, 1201]),
        ("input_delay_ms_x10", [0, 5, 10, 20, 1000], [15, 1010, -1]),
        ("output_delay_ms_x10", [-1000, -100, -99, -10, 0, 99, 100, 1000], [-105, -1001, 105, 1001]),
        ("charge_delay_ms", [0, 10, 90, 100, 200, 900, 1000, 10000], [5, 95, 150, 1500, 10001]),
        ("ba_ratio_x100", [20, 100, 105, 500], [19, 102, 505]),
        ("burst_pulses", [2, 3, 4, 5], [1, 6]),
    ],
)
def test_grids_match_reference(field: str, good: list[int], bad: list[int]) -> None:
    grid: Grid = getattr(load_spec().grids, field)
    assert all(v in grid for v in good)
    assert not any(v in grid for v in bad)


def test_off_grid_values_are_refused_with_neighbours() -> None:
    spec = load_spec("magventure-magpro-x100")
    with pytest.raises(InvalidArgument, match="10 Hz or 11 Hz"):
        spec.check_rate(105)
    with pytest.raises(InvalidArgument, match=r"inter-train interval 120.1 s"):
        spec.check_train(100, 40, 75, 1201)
    with pytest.raises(InvalidArgument, match="pulses per train"):
        spec.check_train(100, 1001, 75, 260)
    with pytest.raises(InvalidArgument, match=r"charge delay 150 ms .* 100 ms or 200 ms"):
        spec.check_delays(0, 0, 150, timing_control=c.TimingControl.SEQUENCE)


def test_negative_output_delay_needs_sequence_timing() -> None:
    spec = load_spec("magventure-magpro-x100")
    spec.check_delays(0, -10, 100, timing_control=c.TimingControl.SEQUENCE)
    with pytest.raises(InvalidArgument, match="negative trigger-out delay"):
        spec.check_delays(0, -10, 100, timing_control=c.TimingControl.EXTERNAL_TRIG)
    spec.check_delays(0, 10, 100, timing_control=c.TimingControl.EXTERNAL_TRIG)


def test_check_waveform_refuses_what_the_model_lacks() -> None:
    r30, x100 = load_spec("magventure-magpro-r30"), load_spec("magventure-magpro-x100")
    x100.check_waveform(M.STANDARD, D.REVERSE, W.BIPHASIC_BURST, burst_pulses=3, ba_ratio_x100=100)
    with pytest.raises(InvalidArgument, match="no Biphasic Burst waveform"):
        r30.check_waveform(M.STANDARD, D.NORMAL, W.BIPHASIC_BURST, burst_pulses=3, ba_ratio_x100=100)
    with pytest.raises(InvalidArgument, match="no Reverse current direction"):
        r30.check_waveform(M.STANDARD, D.REVERSE, W.BIPHASIC, burst_pulses=3, ba_ratio_x100=100)
    with pytest.raises(InvalidArgument, match="no Twin mode"):
        x100.check_waveform(M.TWIN, D.NORMAL, W.BIPHASIC, burst_pulses=3, ba_ratio_x100=100)
    with pytest.raises(InvalidArgument, match="Biphasic Burst"):
        load_spec("magventure-magpro-x100-option").max_rate_hz(M.TWIN, W.BIPHASIC_BURST)
    with pytest.raises(InvalidArgument, match="pulses per burst"):
        x100.check_waveform(M.STANDARD, D.NORMAL, W.BIPHASIC_BURST, burst_pulses=6, ba_ratio_x100=100)


@given(
    st.lists(st.tuples(st.integers(-50, 50), st.integers(0, 20), st.integers(1, 7)), min_size=1, max_size=4),
    st.integers(-100, 200),
)
def test_grid_neighbours_bracket_the_value(raw: list[tuple[int, int, int]], value: int) -> None:
    grid = Grid(tuple((first, first + span * step, step) for first, span, step in raw))
    below, above = grid.neighbours(value)
    members = [v for v in range(-200, 400) if v in grid]
    assert below == max((v for v in members if v <= value), default=None)
    assert above == min((v for v in members if v >= value), default=None)


# --- spec and codec agree ------------------------------------------------------------------------


@given(st.sampled_from(MAGPRO_NAMES), st.data())
def test_every_value_a_spec_allows_the_codec_encodes(name: str, data: st.DataObject) -> None:
    spec = load_spec(name)
    grids = spec.grids

    def on(grid: Grid) -> int:
        return data.draw(st.sampled_from(grid.values()))

    mode = data.draw(st.sampled_from(sorted(spec.modes)))
    twin_or_dual = mode in (M.TWIN, M.DUAL)
    waveform = data.draw(
        st.sampled_from(sorted(w for w in spec.waveforms if not (twin_or_dual and w is W.BIPHASIC_BURST)))
    )
    ceiling_x10 = spec.max_rate_hz(mode, waveform) * 10
    rate = data.draw(st.sampled_from([v for v in grids.rate_hz_x10.values() if v <= ceiling_x10]))
    train = (spec.check_rate(rate, mode=mode, waveform=waveform), on(grids.pulses_per_train),
             on(grids.train_count), on(grids.iti_s_x10))
    spec.check_train(*train, mode=mode, waveform=waveform)
    c.encode_host_command(c.SetTrainLegacy(*train))
    c.encode_host_command(c.SetTiming(c.TimingControl.SEQUENCE, *train, warning_sound=False))
    delays = (on(grids.input_delay_ms_x10), on(grids.output_delay_ms_x10), on(grids.charge_delay_ms))
    spec.check_delays(*delays, timing_control=c.TimingControl.SEQUENCE)
    c.encode_host_command(c.SetDelays(*delays))
    c.encode_host_command(c.SetDelaysLegacy(*delays))
    assert on(grids.ba_ratio_x100) % 5 == 0 and 2 <= on(grids.burst_pulses) <= 5


def test_duomag_delay_range_is_encodable_and_strict() -> None:
    spec = load_duomag()
    assert spec.check_recharge_delay_us(120_000) == duomag_codec.delay_code_for(120_000)
    assert spec.check_ttl_out_delay_us(50) == duomag_codec.DelayCode(1, duomag_codec.DelayStep.US_50)
    assert spec.check_ttl_out_delay_us(600_000).delay_us == 600_000
    for bad in (0, 49, 600_001, 13_100, 1.5, True):
        with pytest.raises(InvalidArgument):
            spec.check_recharge_delay_us(bad)


# --- coil temperature ----------------------------------------------------------------------------


def test_coil_temperature_boundary_refuses() -> None:
    spec = load_spec("magventure-magpro-x100")
    assert spec.coil_temperature_limit_c == 40.0
    assert spec.coil_temperature_allows_arming(39.9) is True
    assert spec.coil_temperature_allows_arming(40.0) is False
    assert spec.coil_temperature_allows_arming(90) is False  # a Cool-B35 without its cooling unit
    with pytest.raises(InvalidArgument):
        spec.coil_temperature_allows_arming(math.nan)


# --- provenance and file validation --------------------------------------------------------------


def test_unverified_magpro_values_are_the_reviewed_list() -> None:
    spec = load_spec()
    raw = _raw_yaml("tmsctl.drivers.magventure", "magpro.yaml")
    leaves = _leaves({k: v for k, v in raw.items() if k not in ("schema_version", "family", "reviewed")})
    unverified = {leaf for leaf in leaves if spec.provenance(leaf).status == "U"}
    assert unverified == EXPECTED_UNVERIFIED_MAGPRO
    assert all(spec.provenance(leaf).note for leaf in unverified)


def test_unverified_duomag_values_are_the_reviewed_list() -> None:
    spec = load_duomag()
    raw = _raw_yaml("tmsctl.drivers.deymed", "duomag.yaml")
    header = ("schema_version", "model", "display_name", "reviewed")
    leaves = _leaves({k: v for k, v in raw.items() if k not in header})
    assert {leaf for leaf in leaves if spec.provenance(leaf).status == "U"} == EXPECTED_UNVERIFIED_DUOMAG


def test_most_specific_fact_wins() -> None:
    spec = load_spec()
    assert spec.provenance("models.magventure-magpro-x100.modes").status == "C"
    assert spec.provenance("models.magventure-magpro-r30-option-mono.modes").status == "U"
    assert spec.provenance("models.magventure-magpro-x100-option.max_rate_hz.power").status == "U"
    assert spec.provenance("models.magventure-magpro-x100-option.max_rate_hz.default").status == "C"
    assert spec.provenance("models.magventure-magpro.max_rate_hz.default").status == "D"


R30, X100 = "magventure-magpro-r30", "magventure-magpro-x100"


def _magpro(mutate: Any) -> dict[str, Any]:
    raw = deepcopy(_raw_yaml("tmsctl.drivers.magventure", "magpro.yaml"))
    mutate(raw)
    return raw


MAGPRO_TAMPERING = {
    "value without provenance": lambda r: r["timing"].update(extra_s=1.0),
    "fact naming nothing": lambda r: r["reviewed"]["facts"].update(
        {"timing.nothing": {"status": "C", "from": ["MPC"]}}
    ),
    "U without a note": lambda r: r["reviewed"]["facts"]["timing.max_train_duration_s"].pop("note"),
    "unknown source": lambda r: r["reviewed"]["facts"]["output.max_pct"].update({"from": ["NOBODY"]}),
    "generic claims theta burst": lambda r: r["models"][GENERIC_MODEL]["capabilities"].append("theta_burst"),
    "generic rate above R30": lambda r: r["models"][GENERIC_MODEL]["max_rate_hz"].update(default=40),
    "theta burst without Biphasic Burst": lambda r: r["models"][R30]["capabilities"].append("theta_burst"),
    "burst ceiling without Biphasic Burst": lambda r: r["models"][R30]["max_rate_hz"].update(
        biphasic_burst=20
    ),
    "burst ceiling above default": lambda r: r["models"][X100]["max_rate_hz"].update(biphasic_burst=120),
    "MST listed": lambda r: r["models"][R30].update(model_code=5),
    "duplicate model code": lambda r: r["models"][R30].update(model_code=1),
    "ragged grid": lambda r: r["grids"].update(rate_hz_x10=[[1, 10, 3]]),
    "unknown mode": lambda r: r["models"][R30]["modes"].append("turbo"),
    "missing confirmed replies": lambda r: r["models"][R30]["capabilities"].remove("confirmed_replies"),
    "unknown key": lambda r: r["output"].update(min_pct=0),
}


def test_shipped_magpro_file_validates() -> None:
    assert SpecFile.model_validate(_magpro(lambda r: None)).family == "magventure-magpro"


@pytest.mark.parametrize("tamper", MAGPRO_TAMPERING.values(), ids=MAGPRO_TAMPERING.keys())
def test_tampered_magpro_file_is_refused(tamper: Any) -> None:
    with pytest.raises((ValidationError, ValueError)):
        SpecFile.model_validate(_magpro(tamper))


DUOMAG_TAMPERING = {
    "claims confirmed replies": lambda r: r["capabilities"].append("confirmed_replies"),
    "claims internal trains": lambda r: r["capabilities"].append("internal_train"),
    "value without provenance": lambda r: r["timing"].update(extra_s=1.0),
    "U without a note": lambda r: r["reviewed"]["facts"]["capabilities"].pop("note"),
    "delay range beyond the encoding": lambda r: r["delays"]["recharge_delay_us"].update(max=1_270_001),
    "empty delay range": lambda r: r["delays"]["ttl_out_delay_us"].update(min=700_000),
}


@pytest.mark.parametrize("tamper", DUOMAG_TAMPERING.values(), ids=DUOMAG_TAMPERING.keys())
def test_tampered_duomag_file_is_refused(tamper: Any) -> None:
    raw = deepcopy(_raw_yaml("tmsctl.drivers.deymed", "duomag.yaml"))
    DuoMagSpecFile.model_validate(deepcopy(raw))
    tamper(raw)
    with pytest.raises((ValidationError, ValueError)):
        DuoMagSpecFile.model_validate(raw)


def test_specs_are_immutable() -> None:
    spec = load_spec("magventure-magpro-x100")
    with pytest.raises(ValidationError):
        spec.name = "magventure-magpro-r30"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.data.models["magventure-magpro-r30"] = spec.entry  # type: ignore[index]
