"""End to end through a real LSL loopback: simulated subject → EMG stream → detector → MT hunt → record.

Run in a subprocess so LSL's discovery is confined to this machine before the first LSL call.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os, random, sys
    import pylsl
    pylsl.set_config_filename(sys.argv[1])
    from tmsctl.clinic.emg import LslEmgSource, EmgClockMismatch, EmgSampleRateError
    from tmsctl.clinic.responder import EmgResponder
    from tmsctl.core.clock import SystemClock
    from tmsctl.session.controller import Controller
    from tmsctl.clinic.mt_session import HuntSettings, HuntStopped, MtHunt, make_procedure, parse_coil, threshold_record
    from tmsctl.records import Records
    from tmsctl.core.registry import open_driver
    from tmsctl.simulators import registry as sims
    from tmsctl.simulators.emg import SimulatedEmg
    from tmsctl.simulators.emg_lsl import SimulatedEmgPublisher
    from tmsctl.simulators.subject import RecruitmentCurve, SimulatedSubject

    case = sys.argv[2]
    clock = SystemClock()
    sim = sims.create("rapid2", clock=clock, name="lsl-emg")
    subject = SimulatedSubject(RecruitmentCurve(threshold_pct_mso=47.3), seed=5)
    emg = SimulatedEmg(subject, sim.device.truth, seed=5, start_s=clock.now())
    name = f"sim-emg-{os.getpid()}"
    options = {"shift": {"timestamp_shift_s": 30.0}, "rate": {"declared_rate_hz": 500.0}}.get(case, {})
    publisher = SimulatedEmgPublisher(emg, clock, name=name, **options).start()
    result = {"case": case}
    try:
        try:
            source = LslEmgSource(name, clock, resolve_timeout_s=10)
        except EmgSampleRateError as exc:
            result["error"] = type(exc).__name__
            result["message"] = exc.message
            raise SystemExit(0)
        controller = Controller(open_driver("sim://lsl-emg", clock), clock)
        hunt = MtHunt(controller, make_procedure("ml-pest", start_pct_mso=50, max_trials=12),
                      EmgResponder(source), rng=random.Random(1),
                      settings=HuntSettings(inter_trial_interval_s=0.25, inter_trial_jitter_s=0.05))
        try:
            outcome = hunt.run()
        except HuntStopped as stopped:
            result["error"] = type(stopped.cause).__name__
            result["message"] = stopped.message
            result["armed"] = sim.device.armed
            raise SystemExit(0)
        records = Records(sys.argv[3])
        records.ensure_subject("S1")
        stored = records.record_motor_threshold(threshold_record(
            outcome, subject_id="S1", coil=parse_coil("figure8"), reference="rMT", operator="t",
            stimulator_serial="SIM-rapid2"))
        records.close()
        result.update(
            value=stored.value_pct_mso, log=list(stored.trial_log),
            truth=[p.intensity_pct for p in sim.device.truth()], meps=[a for _, a in emg.meps()],
            offset=source.offset_s, armed=sim.device.armed,
        )
    finally:
        publisher.stop()
        print(json.dumps(result))
    """
)


def _run(tmp_path: Path, case: str) -> dict:
    config = tmp_path / "lsl_api.cfg"
    config.write_text("[ports]\nIPv6 = disable\n[multicast]\nResolveScope = machine\n")
    script = tmp_path / "emg_loopback.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(config), case, str(tmp_path / "r.db")],
                          capture_output=True, text=True, timeout=110, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_an_mt_hunt_reads_its_meps_from_a_real_lsl_stream_and_records_them(tmp_path: Path, real_lsl: None) -> None:
    result = _run(tmp_path, "ok")
    assert "error" not in result, result
    assert abs(result["value"] - 47.3) <= 2.5
    log = result["log"]
    assert [e["intensity_pct_mso"] for e in log] == result["truth"]  # every true pulse, on record
    accepted = [e for e in log if e["trial"] is not None]
    assert len(accepted) == 12
    # the amplitude read from the stream is the MEP the subject gave to that true pulse (± noise)
    for entry in accepted:
        assert entry["amplitude_uv"] == pytest.approx(result["meps"][entry["pulse"] - 1], abs=30)
    assert result["armed"] is False


@pytest.mark.slow
def test_a_stream_on_another_clock_stops_the_hunt_disarmed(tmp_path: Path, real_lsl: None) -> None:
    result = _run(tmp_path, "shift")
    assert result["error"] == "EmgClockMismatch" and "clock" in result["message"]
    assert result["armed"] is False


@pytest.mark.slow
def test_a_stream_declaring_too_slow_a_rate_is_refused(tmp_path: Path, real_lsl: None) -> None:
    result = _run(tmp_path, "rate")
    assert result["error"] == "EmgSampleRateError" and "500 Hz" in result["message"]
