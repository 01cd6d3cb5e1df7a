"""Motor-threshold hunting through the controller and a simulated stimulator, on a virtual clock.

The device path must not change the algorithm: for the same simulated subject it gives the very
trial sequence the pure procedure gives. Every pulse the simulator delivered is one trial on
record, at the recorded intensity. Run this file as a script for the distribution over many seeds:
``python tests/threshold/test_mt_session.py --seeds 200``.
"""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tmsctl.clinic.mt_session import (
    HuntSettings,
    HuntStopped,
    MtHunt,
    MtRequest,
    PendingTrial,
    check_request,
    make_procedure,
    parse_coil,
    run_mt,
    stimulator_serial_for,
)
from tmsctl.clinic.threshold import (
    NOT_SEEN,
    SEEN,
    MepResponse,
    MlPest,
    RelativeFrequency,
    parse_mep_entry,
    run_procedure,
)
from tmsctl.core.clock import VirtualClock
from tmsctl.core.errors import DeviceStateError, InvalidArgument
from tmsctl.core.registry import open_driver
from tmsctl.core.url import parse
from tmsctl.records import Records
from tmsctl.session.controller import Controller
from tmsctl.session.fsm import State
from tmsctl.simulators import registry as sims
from tmsctl.simulators.device import parse_fault_plan
from tmsctl.simulators.subject import RecruitmentCurve, SimulatedSubject

_names = itertools.count()


@dataclass
class Bench:
    clock: VirtualClock
    sim: sims.SimulatorInstance
    url: str

    def controller(self) -> Controller:
        return Controller(open_driver(self.url, self.clock), self.clock)

    @property
    def pulses(self):
        return self.sim.device.pulses


@pytest.fixture
def make_bench() -> Iterator[Callable[..., Bench]]:
    made: list[str] = []

    def make(profile: str = "rapid2", faults: str = "", clock: VirtualClock | None = None) -> Bench:
        clock = clock or VirtualClock()
        name = f"mt-{profile}-{next(_names)}"
        sim = sims.create(profile, clock=clock, faults=parse_fault_plan(faults), name=name)
        made.append(name)
        return Bench(clock, sim, f"sim://{name}")

    yield make
    for name in made:
        sims.remove(name)


def subject_answers(subject: SimulatedSubject) -> Callable[[PendingTrial], MepResponse]:
    return lambda pending: MepResponse.of_amplitude(subject.mep_uv(pending.intensity_pct_mso))


def deterministic(threshold_pct_mso: float) -> Callable[[PendingTrial], MepResponse]:
    return lambda pending: SEEN if pending.intensity_pct_mso >= threshold_pct_mso else NOT_SEEN


def hunt_on(bench: Bench, procedure, respond, *, rng_seed: int = 0, settings: HuntSettings | None = None, **kw):
    hunt = MtHunt(bench.controller(), procedure, respond, rng=random.Random(rng_seed), settings=settings, **kw)
    return hunt, hunt.run()


def assert_released_and_disarmed(bench: Bench) -> None:
    device = bench.sim.device
    assert not device.is_energised
    assert not device.remote  # remote control handed back to the unit's panel


def assert_pulses_are_the_trials(bench: Bench, trials, started_at: float = 0.0) -> None:
    pulses = bench.pulses
    assert len(pulses) == len(trials)
    for pulse, trial in zip(pulses, trials, strict=True):
        assert pulse.intensity_pct == trial.intensity_pct_mso
        assert pulse.source == "serial"
        # The pulse lands when the fire command's last byte arrives: a few ms after the trigger.
        assert 0 <= pulse.t - (started_at + trial.fired_offset_s) < 0.05


# --------------------------------------------------------------------------------------------
# The device path gives the pure procedure's trials
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["rapid2", "m200"])
@pytest.mark.parametrize("seed", range(8))
def test_ml_pest_through_the_device_gives_the_pure_trial_sequence(make_bench, profile, seed):
    bench = make_bench(profile)
    start = random.Random(10_000 + seed).randint(40, 70)
    pure_subject = SimulatedSubject.sample(seed)
    pure = run_procedure(MlPest(start_pct_mso=start), lambda x: MepResponse.of_amplitude(pure_subject.mep_uv(x)))
    subject = SimulatedSubject.sample(seed)
    _, outcome = hunt_on(bench, MlPest(start_pct_mso=start), subject_answers(subject), rng_seed=seed)
    device_trials = [(t.intensity_pct_mso, t.responded, t.estimate_pct_mso) for t in outcome.trials]
    assert device_trials == [(t.intensity_pct_mso, t.responded, t.estimate_pct_mso) for t in pure.trials]
    assert outcome.result == pure
    assert outcome.result.converged and len(outcome.trials) == 20
    assert_pulses_are_the_trials(bench, outcome.trials)
    assert bench.sim.device.interlocks == [] and bench.sim.device.fault_log == []
    assert_released_and_disarmed(bench)


def test_the_reference_vector_through_the_device():
    # targeting.md §5.1: deterministic subject at 47.3 %MSO, start 60 → 60, 23, 40, 50, 45, 47, 49, 48, …
    clock = VirtualClock()
    sim = sims.create("rapid2", clock=clock, name="mt-vector")
    try:
        hunt = MtHunt(Controller(open_driver("sim://mt-vector", clock), clock), MlPest(start_pct_mso=60),
                      deterministic(47.3), rng=random.Random(1))
        outcome = hunt.run()
    finally:
        sims.remove("mt-vector")
    intensities = [t.intensity_pct_mso for t in outcome.trials]
    assert intensities[:12] == [60, 23, 40, 50, 45, 47, 49, 48, 47, 48, 47, 48]
    assert [p.intensity_pct for p in sim.device.pulses] == intensities
    assert outcome.result.value_pct_mso == pytest.approx(47.2, abs=1e-9)


def test_relative_frequency_through_the_device_gives_the_pure_result(make_bench):
    curve = RecruitmentCurve(threshold_pct_mso=47.3, spread_pct_mso=1.0)
    pure_subject = SimulatedSubject(curve, seed=5)
    pure = run_procedure(RelativeFrequency(start_pct_mso=40), lambda x: MepResponse.of_amplitude(pure_subject.mep_uv(x)))
    bench = make_bench("rapid2")
    _, outcome = hunt_on(bench, RelativeFrequency(start_pct_mso=40), subject_answers(SimulatedSubject(curve, seed=5)))
    assert outcome.result == pure
    assert outcome.result.converged and outcome.result.value_pct_mso in (46.0, 47.0, 48.0, 49.0)
    assert_pulses_are_the_trials(bench, outcome.trials)


def test_timing_does_not_touch_the_algorithm_and_the_jitter_comes_from_the_injected_rng(make_bench):
    runs = []
    for rng_seed in (1, 1, 2):
        bench = make_bench("rapid2")
        _, outcome = hunt_on(bench, MlPest(start_pct_mso=55), subject_answers(SimulatedSubject.sample(4)),
                             rng_seed=rng_seed)
        runs.append(([t.intensity_pct_mso for t in outcome.trials], [p.t for p in bench.pulses]))
    assert runs[0] == runs[1]  # same seeds: same trials at the same instants
    assert runs[2][0] == runs[0][0]  # other jitter: the same trials …
    assert runs[2][1] != runs[0][1]  # … at other instants


# --------------------------------------------------------------------------------------------
# Pulse timing: the inter-trial interval and the device's own minimum interval
# --------------------------------------------------------------------------------------------


def test_pulses_follow_the_jittered_inter_trial_interval(make_bench):
    bench = make_bench("rapid2")
    settings = HuntSettings(inter_trial_interval_s=5.0, inter_trial_jitter_s=1.0)
    hunt_on(bench, MlPest(start_pct_mso=50), subject_answers(SimulatedSubject.sample(9)), settings=settings)
    gaps = [b.t - a.t for a, b in itertools.pairwise(bench.pulses)]
    assert len(gaps) == 19
    assert all(4.0 - 1e-6 <= gap <= 6.05 for gap in gaps), gaps
    assert max(gaps) - min(gaps) > 0.5  # jittered, not a metronome


def test_a_short_interval_waits_for_the_devices_recharge_instead_of_being_refused(make_bench):
    # A Magstim 200² recharges for 2–4 s depending on output; ask for pulses every 1.5 s.
    bench = make_bench("m200")
    settings = HuntSettings(inter_trial_interval_s=1.5, inter_trial_jitter_s=0.0)
    hunt, outcome = hunt_on(bench, MlPest(start_pct_mso=60), subject_answers(SimulatedSubject.sample(2)),
                            settings=settings)
    limits = hunt.controller.driver.limits
    for before, after in itertools.pairwise(bench.pulses):
        assert after.t - before.t >= limits.min_single_pulse_interval_s(before.intensity_pct) - 1e-9
    assert bench.sim.device.interlocks == []  # the unit never had to refuse a trigger
    assert len(outcome.trials) == 20


# --------------------------------------------------------------------------------------------
# The technician's entries
# --------------------------------------------------------------------------------------------


def test_bad_entries_are_asked_again_and_no_trial_is_lost(make_bench):
    # The answers a careful technician would give for a subject at 47.3 %MSO, with slips in between.
    slips = iter(["sixty", "", "65", "0,12 mV", "-40 uV", "mep?", "70 V"])
    asked: list[PendingTrial] = []
    rejected: list[tuple[PendingTrial, InvalidArgument]] = []

    def technician(pending: PendingTrial) -> MepResponse:
        asked.append(pending)
        if pending.index % 3 == 0 and pending.attempt <= 2:
            return parse_mep_entry(next(slips, "garbage"))
        return parse_mep_entry("0.2 mV" if pending.intensity_pct_mso >= 47.3 else "12 uV")

    bench = make_bench("rapid2")
    _, outcome = hunt_on(bench, MlPest(start_pct_mso=60), technician,
                         on_bad_entry=lambda p, exc: rejected.append((p, exc)))
    clean = run_procedure(MlPest(start_pct_mso=60), lambda x: SEEN if x >= 47.3 else NOT_SEEN)
    assert [t.intensity_pct_mso for t in outcome.trials] == [t.intensity_pct_mso for t in clean.trials]
    assert outcome.result.value_pct_mso == clean.value_pct_mso
    assert len(rejected) == 2 * len([t for t in outcome.trials if t.index % 3 == 0])
    assert all(isinstance(exc, InvalidArgument) and exc.hint for _, exc in rejected)
    assert {t.index: t.entry_attempts for t in outcome.trials if t.index % 3 == 0} == {
        i: 3 for i in range(3, 21, 3)
    }
    # Re-asking never re-fires: one pulse per trial, and every ask was about a pulse already given.
    assert_pulses_are_the_trials(bench, outcome.trials)
    assert len(asked) == 20 + len(rejected)


def test_a_slow_entry_keeps_the_device_serviced_and_armed(make_bench):
    # 12 s to read each MEP: far beyond the Magstim's 1 s armed keep-alive, below the 20 s disarm.
    bench = make_bench("rapid2", clock=VirtualClock())
    clock = bench.clock
    answer = deterministic(47.3)

    def slow_technician(pending: PendingTrial) -> MepResponse:
        clock.sleep(12.0)  # the helper thread waits on the hunt's clock, like a person thinking
        return answer(pending)

    hunt, outcome = hunt_on(bench, MlPest(start_pct_mso=60, max_trials=6), slow_technician)
    assert hunt.disarms_for_slow_entries == 0
    assert bench.sim.device.fault_log == [] and bench.sim.device.interlocks == []
    gaps = [b.t - a.t for a, b in itertools.pairwise(bench.pulses)]
    assert all(12.0 <= gap < 12.1 for gap in gaps)  # the next pulse as soon as the entry is in
    assert len(outcome.trials) == 6


def test_an_entry_slower_than_the_limit_disarms_until_the_next_pulse(make_bench):
    bench = make_bench("rapid2", clock=VirtualClock())
    clock = bench.clock
    notices: list[str] = []
    states: list[tuple[float, bool]] = []

    def technician_who_walks_away(pending: PendingTrial) -> MepResponse:
        if pending.index == 2:
            clock.sleep(45.0)
            states.append((clock.now(), bench.sim.device.is_energised))
        return deterministic(47.3)(pending)

    settings = HuntSettings(armed_answer_wait_s=20.0)
    hunt, outcome = hunt_on(bench, MlPest(start_pct_mso=60, max_trials=4), technician_who_walks_away,
                            settings=settings, on_notice=notices.append)
    assert hunt.disarms_for_slow_entries == 1
    assert len(notices) == 1 and "disarmed" in notices[0] and "pulse 2" in notices[0]
    assert states and states[0][1] is False  # disarmed while the technician was away
    # The device's own idle disarm (60 s) and keep-alive watchdog never had to act.
    assert bench.sim.device.fault_log == [] and bench.sim.device.interlocks == []
    assert [t.intensity_pct_mso for t in outcome.trials] == [60, 23, 40, 50]
    assert_pulses_are_the_trials(bench, outcome.trials)


def test_ctrl_c_while_waiting_for_an_entry_disarms_and_releases(make_bench):
    bench = make_bench("rapid2")

    def interrupted(pending: PendingTrial) -> MepResponse:
        if pending.index == 3:
            raise KeyboardInterrupt
        return SEEN

    with pytest.raises(KeyboardInterrupt):
        hunt_on(bench, MlPest(start_pct_mso=60), interrupted)
    assert len(bench.pulses) == 3
    assert_released_and_disarmed(bench)


def test_a_respond_callback_returning_the_wrong_type_is_a_bug_and_still_disarms(make_bench):
    bench = make_bench("rapid2")
    with pytest.raises(TypeError, match="MepResponse"):
        hunt_on(bench, MlPest(start_pct_mso=60), lambda pending: "y")  # type: ignore[arg-type,return-value]
    assert len(bench.pulses) == 1
    assert_released_and_disarmed(bench)


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


def test_coil_unplugged_mid_hunt_ends_disarmed_with_a_clear_error(make_bench):
    bench = make_bench("rapid2", faults="coil_unplugged@20s")
    fired: list[PendingTrial] = []
    hunt = MtHunt(bench.controller(), MlPest(start_pct_mso=60), subject_answers(SimulatedSubject.sample(3)),
                  rng=random.Random(0), on_fired=fired.append)
    with pytest.raises(HuntStopped) as stopped:
        hunt.run()
    exc = stopped.value
    assert "no threshold was recorded" in exc.message and "coil" in exc.message
    assert isinstance(exc.cause, DeviceStateError)
    assert exc.pulses_delivered == len(bench.pulses) == len(fired) >= 3
    assert [t.intensity_pct_mso for t in exc.trials] == [p.intensity_pct for p in bench.pulses][: len(exc.trials)]
    assert all(p.t < 20.0 for p in bench.pulses)
    assert hunt.controller.state in (State.FAULT, State.DISCONNECTED)
    assert not bench.sim.device.is_energised


def test_a_fault_while_an_entry_is_awaited_stops_at_once(make_bench):
    # The coil comes off 3 s after pulse 1 while the technician still reads its MEP (10 s).
    bench = make_bench("rapid2", faults="coil_unplugged@4s", clock=VirtualClock())
    clock = bench.clock

    def reading(pending: PendingTrial) -> MepResponse:
        clock.sleep(10.0)
        return SEEN

    with pytest.raises(HuntStopped) as stopped:
        hunt_on(bench, MlPest(start_pct_mso=60), reading)
    assert stopped.value.pulses_delivered == 1 and stopped.value.trials == ()
    assert "1 pulse (0 answered)" in stopped.value.message
    assert not bench.sim.device.is_energised


# --------------------------------------------------------------------------------------------
# Recording and the checks before any pulse
# --------------------------------------------------------------------------------------------


def test_run_mt_records_the_threshold_per_stimulator_serial_and_coil(make_bench, tmp_path: Path):
    bench = make_bench("rapid2")
    subject = SimulatedSubject(RecruitmentCurve(threshold_pct_mso=47.3, spread_pct_mso=0.0), seed=1)
    request = MtRequest(bench.url, "S017", parse_coil("figure8/D70 Alpha"), operator="tech1",
                        method_note="simulated subject")
    with Records(tmp_path / "r.db") as records:
        outcome = run_mt(request, subject_answers(subject), records, rng=random.Random(3))
        stored = records.motor_thresholds("S017")
    assert stored == (outcome.recorded,)
    record = stored[0]
    pure = run_procedure(MlPest(start_pct_mso=50), lambda x: SEEN if x >= 47.3 else NOT_SEEN)
    assert record.value_pct_mso == pure.value_pct_mso and abs(record.value_pct_mso - 47.3) < 0.5
    assert (record.stimulator_model, record.stimulator_serial, record.coil) == (
        "magstim-rapid2", "SIM-rapid2", "figure8/D70 Alpha"
    )
    assert record.reference.value == "rMT" and record.operator == "tech1"
    assert record.method.startswith("ml-pest, 20 pulses") and "SIMULATED device" in record.method
    assert [entry["intensity_pct_mso"] for entry in record.trial_log] == [p.intensity_pct for p in bench.pulses]
    first = record.trial_log[0]
    assert set(first) == {"trial", "intensity_pct_mso", "entry", "seen", "amplitude_uv", "responded",
                          "estimate_pct_mso", "fired_offset_s", "entry_attempts"}
    assert (first["trial"], first["intensity_pct_mso"], first["seen"], first["responded"]) == (1, 50, None, True)
    assert first["amplitude_uv"] >= 50.0 and first["entry"].endswith("µV")
    assert first["estimate_pct_mso"] == pytest.approx(18.8) and first["entry_attempts"] == 1
    assert [e["fired_offset_s"] for e in record.trial_log] == [
        round(t.fired_offset_s, 4) for t in outcome.hunt.trials
    ]
    assert record.measured_at == outcome.hunt.ended_at_utc


def test_an_unconverged_hunt_is_not_recorded(make_bench, tmp_path: Path):
    bench = make_bench("rapid2")
    out_of_range = SimulatedSubject(RecruitmentCurve(threshold_pct_mso=118.0, spread_pct_mso=0.0), seed=1)
    with Records(tmp_path / "r.db") as records:
        outcome = run_mt(MtRequest(bench.url, "S018", parse_coil("figure8")), subject_answers(out_of_range), records,
                         rng=random.Random(0))
        assert records.motor_thresholds("S018") == ()
    assert outcome.recorded is None and not outcome.hunt.recordable
    assert "above the maximum 100 %MSO" in outcome.hunt.result.stop_reason
    assert max(p.intensity_pct for p in bench.pulses) == 100


def test_a_fault_records_nothing(make_bench, tmp_path: Path):
    bench = make_bench("m200", faults="coil_unplugged@20s")
    with Records(tmp_path / "r.db") as records:
        with pytest.raises(HuntStopped):
            run_mt(MtRequest(bench.url, "S019", parse_coil("figure8")),
                   subject_answers(SimulatedSubject.sample(1)), records, rng=random.Random(0))
        assert records.motor_thresholds("S019") == ()
    assert not bench.sim.device.is_energised


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"subject_id": "Jane Doe"}, "subject"),
        ({"method": "staircase"}, "unknown threshold method"),
        ({"reference": "MSO"}, "rMT or aMT"),
        ({"start_pct_mso": 0}, "start intensity"),
        ({"operator": "  "}, "operator"),
        ({"device_url": "magstim-rapid2:///dev/ttyUSB0"}, "serial number is needed"),
        ({"device_url": "magstim-rapid2:///dev/ttyUSB0", "stimulator_serial": "SIM-rapid2"}, "reserved"),
        ({"device_url": "magstim-rapid2:///dev/ttyUSB0", "stimulator_serial": "1234", "virtual_time": True},
         "virtual time"),
        ({"stimulator_serial": "12345"}, "a simulator's serial is SIM-rapid2"),
        ({"coil": parse_coil("figure8/" + "x" * 90)}, "coil"),
    ],
)
def test_requests_are_refused_before_the_device_is_touched(changes, fragment):
    base = {"device_url": "sim://rapid2", "subject_id": "S001", "coil": parse_coil("figure8")}
    with pytest.raises(InvalidArgument, match=fragment):
        check_request(MtRequest(**{**base, **changes}))


def test_serials_and_coils():
    assert stimulator_serial_for(parse("sim://m200"), None) == "SIM-m200"
    assert stimulator_serial_for(parse("magstim-200:///dev/ttyUSB0"), " 2117-44 ") == "2117-44"
    coil = parse_coil("figure8/Magstim D70² Alpha")
    assert (coil.family, coil.model) == ("figure8", "Magstim D70² Alpha")
    assert parse_coil("H1").model is None
    with pytest.raises(InvalidArgument, match="figure8, H1"):
        parse_coil("figure-8")
    with pytest.raises(InvalidArgument):
        make_procedure("5of10", start_pct_mso=101)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"inter_trial_interval_s": 1.0, "inter_trial_jitter_s": 1.0},
        {"inter_trial_jitter_s": -0.5},
        {"armed_answer_wait_s": 60.0},
        {"inter_trial_interval_s": float("nan")},
    ],
)
def test_hunt_settings_are_checked(kwargs):
    with pytest.raises(InvalidArgument):
        HuntSettings(**kwargs)


# --------------------------------------------------------------------------------------------
# Convergence over many seeds, through the device
# --------------------------------------------------------------------------------------------


def device_hunt(seed: int, *, spread_fraction: float, trials: int = 20, profile: str = "rapid2"):
    """One ML-PEST hunt through controller + simulator: (true MT, estimates after each trial, duration)."""
    clock = VirtualClock()
    name = f"mt-dist-{profile}-{seed}-{next(_names)}"
    sims.create(profile, clock=clock, name=name)
    try:
        subject = SimulatedSubject.sample(seed, spread_fraction=spread_fraction)
        start = random.Random(10_000 + seed).randint(40, 70)
        hunt = MtHunt(Controller(open_driver(f"sim://{name}", clock), clock),
                      MlPest(start_pct_mso=start, max_trials=trials), subject_answers(subject),
                      rng=random.Random(seed))
        outcome = hunt.run()
    finally:
        sims.remove(name)
    return subject.threshold_pct_mso, [t.estimate_pct_mso for t in outcome.trials], outcome.duration_s


def trials_to_stay_within(true_mt: float, estimates: list[float], tolerance: float) -> int | None:
    for n in range(1, len(estimates) + 1):
        if all(abs(e - true_mt) <= tolerance for e in estimates[n - 1 :]):
            return n
    return None


def test_noise_free_subjects_converge_through_the_device():
    # The reference's property for deterministic subjects: |estimate₂₀ − MT| ≤ 1.0 (0.5 is the
    # identifiability limit of whole-%MSO steps).
    errors = []
    for seed in range(24):
        true_mt, estimates, duration = device_hunt(seed, spread_fraction=0.0)
        errors.append(abs(estimates[-1] - true_mt))
        assert 19 * 4.0 <= duration <= 19 * 6.0 + 5.0  # 20 pulses 4–6 s apart, plus arming
    assert max(errors) <= 1.0
    assert sum(e <= 0.5 for e in errors) >= 0.6 * len(errors)


def _distribution(seeds: int) -> None:
    from tmsctl.core.clock import monotonic_ns_for_benchmarks

    def quantiles(values):
        ordered = sorted(values)

        def pick(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]

        return f"median {statistics.median(ordered):.2f}, p90 {pick(0.9):.2f}, p95 {pick(0.95):.2f}, max {ordered[-1]:.2f}"

    for label, spread in (("noise-free subjects (σ = 0)", 0.0), ("noisy subjects (σ = 0.07·MT)", 0.07)):
        errors_20, to_half, to_one, walls, virtual = [], [], [], [], []
        for seed in range(seeds):
            began = monotonic_ns_for_benchmarks()
            *_, duration = device_hunt(seed, spread_fraction=spread, trials=20)  # the hunt as run
            walls.append((monotonic_ns_for_benchmarks() - began) / 1e9)
            virtual.append(duration)
            # Trials 1–20 of a 40-pulse hunt are those of the 20-pulse hunt (the stop rule only ends it).
            true_mt, estimates, _ = device_hunt(seed, spread_fraction=spread, trials=40)
            errors_20.append(abs(estimates[19] - true_mt))
            to_half.append(trials_to_stay_within(true_mt, estimates, 0.5))
            to_one.append(trials_to_stay_within(true_mt, estimates, 1.0))
        print(f"{label}, {seeds} seeds, ML-PEST via controller + simulated Rapid² on a virtual clock")
        print(f"  |error| after 20 pulses: {quantiles(errors_20)} %MSO; "
              f"within 0.5: {sum(e <= 0.5 for e in errors_20) / seeds:.0%}, within 1.0: "
              f"{sum(e <= 1.0 for e in errors_20) / seeds:.0%}, within 2.0: {sum(e <= 2.0 for e in errors_20) / seeds:.0%}")
        for tol, found in ((0.5, to_half), (1.0, to_one)):
            reached = [n for n in found if n is not None]
            print(f"  pulses until the estimate stays within {tol} for good (of 40): "
                  f"{quantiles(reached) if reached else 'never'}; never: {found.count(None)}")
        print(f"  wall time per 20-pulse hunt: {quantiles(walls)} s; "
              f"its simulated duration: {quantiles(virtual)} s")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=200)
    _distribution(parser.parse_args().seeds)
