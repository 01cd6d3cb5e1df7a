"""LSL markers: payloads, time mapping, a sink that can never delay a pulse, and a real loopback stream."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

import tmsctl.lab.api as api
from tmsctl.core.clock import VirtualClock
from tmsctl.core.errors import InvalidArgument
from tmsctl.core.events import PulseDelivered, TrainStarted
from tmsctl.lab.lsl import LslMarkerSink, LslUnavailable, marker_payload, open_lsl_markers

WALL = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


class FakeOutlet:
    """Stands in for pylsl.StreamOutlet; can be made to block like a stuck network."""

    def __init__(self) -> None:
        self.samples: list[tuple[str, float]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.opened_by: list[tuple[str, str, str, dict]] = []

    def factory(self, name, stream_type, source_id, metadata):
        self.opened_by.append((name, stream_type, source_id, dict(metadata)))
        return self

    def push_sample(self, x, timestamp=0.0, pushthrough=True):
        self.gate.wait()
        self.samples.append((x[0], timestamp))

    def payloads(self, event: str | None = None) -> list[dict]:
        out = [json.loads(p) for p, _ in self.samples]
        return [p for p in out if event is None or p["event"] == event]


def test_a_pulse_marker_is_compact_json_with_the_reference_fields() -> None:
    event = PulseDelivered(t_mono=12.5, t_wall=WALL, n=17, intensity_pct_mso=52, trigger_source="serial")
    text = marker_payload(event, context={"protocol": "sici"})
    assert " " not in text
    assert json.loads(text) == {
        "event": "pulse", "n": 17, "intensity_pct": 52, "trigger": "serial", "protocol": "sici",
        "t_wall": WALL.isoformat(),
    }
    assert json.loads(marker_payload(event, dropped=3))["dropped"] == 3
    train = TrainStarted(t_mono=1.0, t_wall=WALL, index=0, n_pulses=40, intensity_pct_mso=60)
    assert json.loads(marker_payload(train))["train"] == 1


def test_a_virtual_clock_cannot_stamp_real_lsl_markers() -> None:
    with pytest.raises(InvalidArgument, match="virtual clock"):
        LslMarkerSink(clock=VirtualClock(), source_id="tmsctl:test")


def test_the_stream_is_declared_as_the_conventions_say() -> None:
    outlet = FakeOutlet()
    clock = VirtualClock()
    markers = open_lsl_markers(source_id="tmsctl:lab3", clock=clock, outlet_factory=outlet.factory,
                               local_clock=lambda: 100.0, metadata={"device_model": "magstim-rapid2"})
    try:
        ((name, stream_type, source_id, metadata),) = outlet.opened_by
        assert (name, stream_type, source_id) == ("tmsctl_markers", "Markers", "tmsctl:lab3")
        assert metadata["device_model"] == "magstim-rapid2" and "tmsctl_version" in metadata
        assert markers.sink.offset_s == 100.0 - clock.now()
    finally:
        markers.stop()


def test_one_marker_per_pulse_stamped_at_the_trigger(tms_simulator, tms_clock) -> None:
    outlet = FakeOutlet()
    sim = tms_simulator()
    tms_clock.advance(7.25)
    markers = open_lsl_markers(source_id="tmsctl:test", clock=tms_clock, outlet_factory=outlet.factory,
                               local_clock=lambda: 5000.0)
    offset = 5000.0 - 7.25
    with api.open(sim.url, clock=tms_clock, listeners=[markers]) as stim:
        stim.set_intensity(35)
        stim.arm()
        for _ in range(5):
            stim.fire()
            tms_clock.sleep(1.3)
    pulses = [(json.loads(p), ts) for p, ts in outlet.samples if json.loads(p)["event"] == "pulse"]
    assert [p["n"] for p, _ in pulses] == [1, 2, 3, 4, 5]
    assert {p["intensity_pct"] for p, _ in pulses} == {35}
    for (_, ts), device_pulse in zip(pulses, sim.device.pulses):
        assert 0 <= device_pulse.t - (ts - offset) < 0.02  # stamped just before the trigger's bytes


def test_a_stuck_sink_never_delays_a_pulse_and_flags_what_it_dropped(tms_simulator, tms_clock) -> None:
    def pulse_times(listeners) -> list[float]:
        sim = tms_simulator()
        start = tms_clock.now()
        with api.open(sim.url, clock=tms_clock, listeners=listeners) as stim:
            stim.set_intensity(35)
            stim.arm()
            for _ in range(12):
                stim.fire()
                tms_clock.sleep(1.1)
            if listeners:
                listeners[0].sink.outlet.gate.set()  # the network comes back before close
        return [p.t - start for p in sim.device.pulses]

    reference = pulse_times([])
    stuck = FakeOutlet()
    stuck.gate.clear()
    markers = open_lsl_markers(source_id="tmsctl:test", clock=tms_clock, outlet_factory=stuck.factory,
                               local_clock=lambda: 0.0, maxsize=3)
    assert pulse_times([markers]) == pytest.approx(reference, abs=1e-9)
    assert markers.dropped > 0
    flagged = [p for p in stuck.payloads() if "dropped" in p]
    assert flagged and sum(p["dropped"] for p in flagged) <= markers.dropped


LOOPBACK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import pylsl
    pylsl.set_config_filename(sys.argv[1])   # machine-only discovery, before any other LSL call
    from tmsctl.lab import api
    from tmsctl.core.events import CollectingListener
    from tmsctl.lab.lsl import open_lsl_markers

    source = f"tmsctl:loopback-{os.getpid()}"
    markers = open_lsl_markers(source_id=source, metadata={"purpose": "loopback test"})
    (stream,) = pylsl.resolve_byprop("source_id", source, timeout=10)
    inlet = pylsl.StreamInlet(stream)
    inlet.open_stream(timeout=10)
    events = CollectingListener()
    with api.open("sim://rapid2", listeners=[events, markers]) as stim:
        stim.set_intensity(30)
        stim.arm()
        for _ in range(5):
            stim.fire()
            stim.clock.sleep(1.05)
        received = []
        while sum('"event":"pulse"' in s for s, _ in received) < 5:
            sample, ts = inlet.pull_sample(timeout=10)
            if sample is None:
                break
            received.append((sample[0], ts))
    print(json.dumps({
        "offset": markers.sink.offset_s,
        "events": [[e.n, e.t_mono] for e in events.of("pulse_delivered")],
        "received": received,
        "info_source": stream.source_id(), "info_type": stream.type(), "channels": stream.channel_count(),
    }))
    """
)


def test_an_lsl_inlet_on_loopback_receives_one_marker_per_pulse(tmp_path: Path, real_lsl: None) -> None:
    config = tmp_path / "lsl_api.cfg"
    config.write_text("[ports]\nIPv6 = disable\n[multicast]\nResolveScope = machine\n")
    script = tmp_path / "loopback.py"
    script.write_text(LOOPBACK_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(config)], capture_output=True, text=True, timeout=90,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["info_type"], result["channels"]) == ("Markers", 1)
    assert result["info_source"].startswith("tmsctl:loopback-")
    pulses = [(json.loads(s), ts) for s, ts in result["received"] if json.loads(s)["event"] == "pulse"]
    assert [p["n"] for p, _ in pulses] == [1, 2, 3, 4, 5]
    assert {(p["intensity_pct"], p["trigger"]) for p, _ in pulses} == {(30, "serial")}
    # each sample carries the event's own time, mapped by the offset captured at start
    for (payload, ts), (n, t_mono) in zip(pulses, result["events"]):
        assert payload["n"] == n
        assert ts == pytest.approx(t_mono + result["offset"], abs=1e-6)


def test_a_missing_library_is_a_clear_error(monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pylsl(name, *args, **kwargs):
        if name == "pylsl":
            raise RuntimeError("LSL binary library file was not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pylsl)
    with pytest.raises(LslUnavailable, match="tmsctl\\[lsl\\]"):
        open_lsl_markers(source_id="tmsctl:test", wait_open_s=5)


SESSION_LOOPBACK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, threading
    import pylsl
    pylsl.set_config_filename(sys.argv[1])   # machine-only discovery, before any other LSL call
    from tmsctl.lab import api
    from tmsctl.core.clock import SystemClock
    from tmsctl.simulators import registry as sims
    from tmsctl.lab.lsl import open_lsl_markers

    clock = SystemClock()
    source = f"tmsctl:session-loopback-{os.getpid()}"
    markers = open_lsl_markers(source_id=source, clock=clock)
    (stream,) = pylsl.resolve_byprop("source_id", source, timeout=10)
    inlet = pylsl.StreamInlet(stream)
    inlet.open_stream(timeout=10)
    received = []

    def pull():
        # the receiving side: each marker with the LSL time it arrived
        while True:
            sample, ts = inlet.pull_sample(timeout=30)
            if sample is None:
                return
            received.append((sample[0], ts, pylsl.local_clock()))
            if json.loads(sample[0])["event"] == "train_end" and json.loads(sample[0])["train"] == 2:
                return

    puller = threading.Thread(target=pull, daemon=True)
    puller.start()
    sim = sims.create("rapid2", clock=clock, name=f"lsl-session-{os.getpid()}")
    with api.open(f"sim://{sim.name}", clock=clock, listeners=[markers], db=sys.argv[2]) as stim:
        result = stim.run(sys.argv[3], subject="S001", mt=50, allow_unapproved="loopback test")
    truth = [p.t for p in sim.device.truth()]
    puller.join(30)
    print(json.dumps({
        "offset": markers.sink.offset_s, "received": received, "truth": truth,
        "session": result.session_id, "outcome": result.outcome.value,
    }))
    """
)

TWO_TRAINS = """\
schema_version: 1
id: lsl-two-trains
title: Two device-timed trains for the LSL test
coil: {family: figure8}
target: {method: eeg_10_20, site: F3}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 100}
pattern: {kind: rtms, frequency_hz: 10, pulses_per_train: 10, inter_train_interval_s: 3, trains: 2}
"""


def test_an_lsl_inlet_receives_train_start_within_10_ms_of_the_trains_first_pulse(tmp_path: Path, real_lsl: None) -> None:
    config = tmp_path / "lsl_api.cfg"
    config.write_text("[ports]\nIPv6 = disable\n[multicast]\nResolveScope = machine\n")
    script = tmp_path / "session_loopback.py"
    script.write_text(SESSION_LOOPBACK_SCRIPT)
    protocol = tmp_path / "two-trains.yaml"
    protocol.write_text(TWO_TRAINS)
    done = subprocess.run([sys.executable, str(script), str(config), str(tmp_path / "rec.db"), str(protocol)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "completed"
    markers = [(json.loads(s), ts, arrived) for s, ts, arrived in result["received"]]
    starts = [(m, ts, arrived) for m, ts, arrived in markers if m["event"] == "train_start"]
    ends = [m for m, _, _ in markers if m["event"] == "train_end"]
    assert [m["train"] for m, _, _ in starts] == [1, 2] and [m["train"] for m in ends] == [1, 2]
    assert all(m.get("session") == result["session"] for m, _, _ in markers if "train" in m)
    # every train_start comes in before its train's end, within 10 ms of its first pulse (real clock)
    first_pulses = [result["truth"][0], result["truth"][10]]
    for (marker, ts, arrived), first_pulse in zip(starts, first_pulses):
        pulse_lsl = first_pulse + result["offset"]
        assert arrived - pulse_lsl < 0.010, (marker, arrived - pulse_lsl)
        assert abs(ts - pulse_lsl) < 0.010
    order = [m["event"] for m, _, _ in markers if m["event"] in ("train_start", "train_end")]
    assert order == ["train_start", "train_end", "train_start", "train_end"]


CLI_LOOPBACK_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    import pylsl
    pylsl.set_config_filename(sys.argv[1])
    from tmsctl.cli.main import main
    from tmsctl.records import Records

    Records(sys.argv[2]).close()  # a new, empty database (tmsctl db init)
    received = []

    def pull():
        streams = pylsl.resolve_byprop("name", "tmsctl_markers", timeout=20)
        inlet = pylsl.StreamInlet(streams[0])
        inlet.open_stream(timeout=10)
        while True:
            sample, ts = inlet.pull_sample(timeout=15)
            if sample is None:
                return
            received.append(sample[0])

    puller = threading.Thread(target=pull, daemon=True)
    puller.start()
    sys.argv = ["tmsctl", "run", sys.argv[3], "--device", "sim://rapid2", "--subject", "S001", "--mt", "50",
                "--yes", "--no-live", "--lsl", "--allow-unapproved", "cli loopback", "--db", sys.argv[2]]
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    puller.join(20)
    print(json.dumps({"code": code, "received": received}))
    """
)


def test_tmsctl_run_lsl_publishes_the_sessions_markers(tmp_path: Path, real_lsl: None) -> None:
    config = tmp_path / "lsl_api.cfg"
    config.write_text("[ports]\nIPv6 = disable\n[multicast]\nResolveScope = machine\n")
    script = tmp_path / "cli_loopback.py"
    script.write_text(CLI_LOOPBACK_SCRIPT)
    protocol = tmp_path / "two-trains.yaml"
    protocol.write_text(TWO_TRAINS)
    done = subprocess.run([sys.executable, str(script), str(config), str(tmp_path / "rec.db"), str(protocol)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, done.stdout[-2000:] + done.stderr[-2000:]
    markers = [json.loads(s) for s in result["received"]]
    trains = [(m["event"], m["train"]) for m in markers if m["event"] in ("train_start", "train_end")]
    assert trains == [("train_start", 1), ("train_end", 1), ("train_start", 2), ("train_end", 2)]
    sessions = {m["session"] for m in markers if "train" in m}
    assert len(sessions) == 1 and sessions != {None}
    assert f"session {sessions.pop()}" in done.stdout
