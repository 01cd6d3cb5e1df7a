"""The pytest plugin as a lab would use it: the example lab suite, and the fixtures' own contract."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

LAB_SUITE = Path(__file__).resolve().parents[2] / "examples" / "lab_test_suite"


def plugin_args() -> list[str]:
    """Load the plugin by hand only where the installed tmsctl does not register its entry point."""
    registered = any(ep.name == "tmsctl" for ep in entry_points(group="pytest11"))
    return [] if registered else ["-p", "tmsctl.lab.pytest_plugin"]


@pytest.fixture(scope="session")
def warm() -> None:
    """Import every module the inner runs use before any pytester fixture snapshots sys.modules: a
    module first imported after the snapshot is dropped at teardown, and the next run would then mix
    two copies of tmsctl's classes."""
    from tmsctl.core.clock import VirtualClock
    from tmsctl.lab import api
    from tmsctl.simulators import registry

    for profile in ("rapid2", "bistim"):
        clock = VirtualClock()
        registry.create(profile, clock=clock, name=f"warm-{profile}")
        try:
            with api.open(f"sim://warm-{profile}", clock=clock) as stim:
                stim.status()
        finally:
            registry.remove(f"warm-{profile}")


def test_the_example_lab_suite_passes_with_the_plugin(warm: None, pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess(str(LAB_SUITE), "-p", "no:cacheprovider", "-p", "no:randomly", *plugin_args())
    result.assert_outcomes(passed=4)


def test_the_fixtures_keep_their_promises(warm: None, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from tmsctl.simulators import registry as sims

        NAMES = []

        def test_factory_registers_on_the_test_clock(tms_simulator, tms_clock):
            sim = tms_simulator("bistim")
            NAMES.append(sim.name)
            assert sims.lookup(sim.name).clock is tms_clock and sim.url == f"sim://{sim.name}"

        def test_simulators_are_removed_after_their_test():
            assert NAMES and sims.lookup(NAMES[0]) is None

        @pytest.mark.tms_faults("coil_unplugged@30s")
        def test_the_fault_plan_comes_from_the_marker(tms_fault_plan, tms_simulator):
            assert tms_fault_plan.text == "coil_unplugged@30s" and len(tms_fault_plan.faults) == 1
            assert tms_simulator(faults="").device.fault_log == []

        def test_the_stimulator_is_connected_and_traced(tms_stimulator, tms_trace, tms_events):
            assert tms_stimulator.status().connected
            assert tms_trace.tx() and tms_trace.rx() and "tx" in tms_trace.dump()
            assert tms_events.of("connected")

        @pytest.mark.tms_profile(42)
        def test_a_bad_marker_is_a_usage_error(tms_stimulator):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:randomly", *plugin_args())
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*tms_profile takes one string*"])


def test_a_labs_own_test_gets_the_truth_invariant(warm: None, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        import tmsctl
        from tmsctl.lab.testing import DoseTruthViolation

        PROTOCOL = '''
        schema_version: 1
        id: lab-truth
        title: Lab truth check
        coil: {family: figure8}
        target: {method: eeg_10_20, site: F3}
        hemisphere: left
        intensity: {reference: rMT, scaling_pct: 80}
        pattern: {kind: rtms, frequency_hz: 10, pulses_per_train: 10, inter_train_interval_s: 10, trains: 3}
        '''

        def _run(tmp_path, sim, clock):
            path = tmp_path / "p.yaml"
            path.write_text(PROTOCOL)
            with tmsctl.open(sim.url, clock=clock, db=tmp_path / "tmsctl-records.db") as stim:
                return stim.run(path, subject="LAB01", mt=50, allow_unapproved="lab test")

        def test_a_session_cut_by_a_fault_keeps_the_truth(tmp_path, tms_simulator, tms_clock, tms_dose_truth):
            sim = tms_simulator("rapid2", faults="coil_unplugged@14s")
            result = _run(tmp_path, sim, tms_clock)
            assert result.outcome.value == "faulted"
            tms_dose_truth(sim, result.session_id)

        def test_pulses_nobody_reported_break_it(tmp_path, tms_simulator, tms_clock, tms_dose_truth):
            sim = tms_simulator("rapid2", faults="extra_pulses@0s=2")
            result = _run(tmp_path, sim, tms_clock)
            with pytest.raises(DoseTruthViolation, match="the simulator fired 32 pulses"):
                tms_dose_truth(sim, result.session_id)
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:randomly", *plugin_args())
    result.assert_outcomes(passed=2)
