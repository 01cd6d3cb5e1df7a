"""One session host (issue 18, finding 3): every path holds its device through ``SessionHost``; a run
refuses a unit other than the one its plan was checked against; the record holds what answered."""

from __future__ import annotations

import ast
import itertools
import random
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from tmsctl.clinic.mt_session import MtRequest, parse_coil, run_mt
from tmsctl.clinic.threshold import MepResponse
from tmsctl.core.clock import ParticipantSlot, SystemClock, VirtualClock
from tmsctl.core.errors import SafetyViolation, UnitMismatch
from tmsctl.core.events import CollectingListener
from tmsctl.lab import api
from tmsctl.records import Records, SessionStatus
from tmsctl.session.host import SessionHost, UnitIdentity
from tmsctl.session.planned import SessionRequest, plan_session, run_planned
from tmsctl.session.runner import RunOutcome
from tmsctl.session.setup_check import run_setup_check
from tmsctl.simulators import registry as sims
from tmsctl.simulators.subject import RecruitmentCurve, SimulatedSubject

SHORT = """\
schema_version: 1
id: host-short
title: Two short trains
coil: {family: figure8}
target: {method: eeg_10_20, site: F3}
hemisphere: left
intensity: {reference: rMT, scaling_pct: 100}
pattern:
  kind: rtms
  frequency_hz: 10
  pulses_per_train: 10
  inter_train_interval_s: 5
  trains: 2
"""
_names = itertools.count()


@pytest.fixture
def records(tmp_path: Path):
    with Records(tmp_path / "records.db") as rec:
        yield rec


@pytest.fixture
def protocol(tmp_path: Path, records) -> Path:
    from tmsctl.protocols.canonical import content_hash
    from tmsctl.protocols.loader import load_protocol

    path = tmp_path / "short.yaml"
    path.write_text(SHORT)
    loaded = load_protocol(path)
    records.approve_protocol(loaded.id, content_hash(loaded), approved_by="reviewer")
    return path


@pytest.fixture
def simulator():
    """``make(profile, name=None, clock=None)``: a registered simulator (removed afterwards)."""
    made: list[str] = []

    def make(profile: str, *, name: str | None = None, clock: VirtualClock | None = None):
        name = name or f"host-{profile}-{next(_names)}"
        made.append(name)
        return sims.create(profile, clock=clock or VirtualClock(), name=name)

    yield make
    for name in made:
        sims.remove(name)


def _plan(protocol: Path, sim, records):
    request = SessionRequest(protocol, f"sim://{sim.name}", "S001", operator="tester", mt_pct_mso=50)
    return plan_session(request, records)


def _never_armed(events: CollectingListener) -> bool:
    return not any(getattr(e, "dest", "") in ("arming", "armed", "stimulating") for e in events.of("state_changed"))


# -- the run checks that the planned unit answered ------------------------------------------------------


def test_another_firmware_answering_at_run_time_is_refused_before_anything_is_armed(
    simulator, protocol, records
) -> None:
    planned_on = simulator("rapid2")  # software V9.0
    planned = _plan(protocol, planned_on, records)
    # Between plan and run another unit answers at the same address: a Rapid² on software V8.1.
    swapped = simulator("rapid2-v8", name=planned_on.name, clock=planned_on.clock)
    events = CollectingListener()
    with pytest.raises(UnitMismatch) as refused:
        run_planned(planned, records, listeners=[events])
    assert isinstance(refused.value, SafetyViolation)
    assert refused.value.planned == UnitIdentity("magstim-rapid2", "9.0", None)
    assert refused.value.connected == UnitIdentity("magstim-rapid2", "8.1", None)
    assert "firmware 9.0" in refused.value.message and "firmware 8.1" in refused.value.message
    assert refused.value.hint
    assert _never_armed(events) and events.of("connected")  # it connected, checked, and stopped there
    assert swapped.device.pulses == [] and not swapped.device.is_energised
    (session,) = records.sessions()
    detail = records.session_detail(session.session_id)
    assert session.status is SessionStatus.FAULTED and detail.deliveries == ()
    assert [f.code for f in detail.faults] == ["UnitMismatch"]


def test_another_serial_number_answering_is_refused(simulator, protocol, records) -> None:
    sim = simulator("magpro-x100")
    planned = _plan(protocol, sim, records)
    sim.device.profile = replace(sim.device.profile, serial_number=654321)  # the unit next door
    with pytest.raises(UnitMismatch) as refused:
        run_planned(planned, records)
    assert refused.value.planned.serial == "123456" and refused.value.connected.serial == "654321"
    assert "serial 123456" in refused.value.message and "serial 654321" in refused.value.message
    assert sim.device.pulses == []


def test_the_same_unit_runs_and_the_record_holds_what_it_reported(simulator, protocol, records) -> None:
    sim = simulator("magpro-x100")
    planned = _plan(protocol, sim, records)
    session_id, result = run_planned(planned, records)
    assert result.outcome is RunOutcome.COMPLETED, result.reason
    session = records.session(session_id)
    # The serial came from the run's own connect: a plan records no serial.
    assert (session.device_model, session.device_serial) == (planned.info.model, "123456")


def test_the_setup_check_records_the_firmware_the_unit_reported(simulator, records) -> None:
    sim = simulator("rapid2-v8")
    result = run_setup_check(f"sim://{sim.name}", 30, records)
    session = records.session(result.session_id)
    assert session.status is SessionStatus.COMPLETED
    assert (session.device_model, session.device_firmware, session.device_serial) == ("magstim-rapid2", "8.1", None)


# -- every path holds its device through the host ----------------------------------------------------------


@pytest.fixture
def host_opens(monkeypatch):
    opened: list[str] = []
    original = SessionHost.open

    def counting(self: SessionHost):
        opened.append(self.device.text)
        return original(self)

    monkeypatch.setattr(SessionHost, "open", counting)
    return opened


def test_run_goes_through_the_session_host(simulator, protocol, records, host_opens) -> None:
    sim = simulator("rapid2")
    planned = _plan(protocol, sim, records)
    run_planned(planned, records)
    assert host_opens == [f"sim://{sim.name}"]


def test_fire_goes_through_the_session_host(simulator, records, host_opens) -> None:
    sim = simulator("rapid2-v8")
    run_setup_check(f"sim://{sim.name}", 30, records)
    assert host_opens == [f"sim://{sim.name}"]


def test_mt_goes_through_the_session_host(simulator, records, host_opens) -> None:
    sim = simulator("rapid2")
    subject = SimulatedSubject(RecruitmentCurve(threshold_pct_mso=47.0, spread_pct_mso=0.0), seed=1)
    outcome = run_mt(
        MtRequest(f"sim://{sim.name}", "S002", parse_coil("figure8")),
        lambda pending: MepResponse.of_amplitude(subject.mep_uv(pending.intensity_pct_mso)), records,
        rng=random.Random(0),
    )
    assert outcome.hunt.trials and not sim.device.is_energised
    assert host_opens == [f"sim://{sim.name}"]


def test_the_api_goes_through_the_session_host(simulator, host_opens) -> None:
    sim = simulator("rapid2")
    with api.open(f"sim://{sim.name}", clock=sim.clock) as stim:
        assert stim.info is not None
    assert host_opens == [f"sim://{sim.name}"]


def test_closing_the_host_disarms_and_releases_the_device_before_it_closes_the_audit_log(
    simulator, tmp_path: Path, monkeypatch
) -> None:
    import tmsctl.session.audit

    sim = simulator("rapid2")
    steps: list[tuple[str, bool]] = []
    real_close = tmsctl.session.audit.close_session_logger

    def closing_the_log(logger) -> None:
        steps.append(("audit log closed", sim.device.is_energised))
        real_close(logger)

    monkeypatch.setattr(tmsctl.session.audit, "close_session_logger", closing_the_log)

    class Released(CollectingListener):
        def stop(self) -> None:  # the controller stops its listeners last thing in close()
            steps.append(("controller closed", sim.device.is_energised))

    host = SessionHost(f"sim://{sim.name}", sim.clock, listeners=[Released()])
    host.open_audit(tmp_path, "K7M2-9QXD", simulated=True, origin_s=0.0)
    controller = host.open()
    host.connect()
    controller.set_intensity(30)
    controller.arm()
    assert sim.device.is_energised
    host.close()
    assert steps == [("controller closed", False), ("audit log closed", False)]
    assert host.controller is None and host.audit is None
    host.close()  # idempotent
    assert len(steps) == 2


# -- clock participation belongs to the clock -------------------------------------------------------------


def test_a_participant_slot_holds_virtual_time_until_released_once() -> None:
    clock = VirtualClock()
    slot = ParticipantSlot(clock)
    woke = threading.Event()

    def sleeper() -> None:
        clock.sleep(5.0)
        woke.set()

    thread = threading.Thread(target=sleeper, daemon=True)
    thread.start()
    assert not woke.wait(0.2)  # the slot is held and not waiting: time cannot jump
    slot.release()
    slot.release()  # the second release gives nothing back twice
    assert woke.wait(5.0) and clock.now() == 5.0
    thread.join(5.0)


def test_a_real_clock_takes_part_without_effect() -> None:
    clock = SystemClock()
    with clock.participant():
        pass
    ParticipantSlot(clock).release()


def test_no_module_probes_a_clock_for_participation() -> None:
    root = Path(__file__).resolve().parents[2] / "tmsctl"
    probes = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value == "participant"):
                probes.append(f"{path.relative_to(root)}:{node.lineno}")
    assert probes == []


def test_only_the_running_session_records_its_connected_device(records) -> None:
    from tmsctl.records import RecordRefused, SessionPlan

    records.ensure_subject("S003")
    session = records.create_session(SessionPlan(
        subject_id="S003", protocol_id="p", protocol_hash="sha256:" + "0" * 64, protocol_text="p",
        device_url="sim://rapid2", device_model="magstim-rapid2", simulated=True, planned_deliveries=1,
        planned_pulses=1,
    ))
    with pytest.raises(RecordRefused):  # planned, not running: nothing has connected for it yet
        records.record_session_device(session.session_id, model="magstim-rapid2", firmware="9.0", serial=None)
    records.start_session(session.session_id, operator="tester")
    recorded = records.record_session_device(session.session_id, model="magstim-rapid2", firmware="9.0", serial="A1")
    assert (recorded.device_firmware, recorded.device_serial) == ("9.0", "A1")
