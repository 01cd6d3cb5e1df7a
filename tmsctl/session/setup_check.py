"""``tmsctl fire``: one pulse to check a set-up, through the controller and on record.

A set-up check is a one-pulse session. It runs through the ``Controller`` like any protocol
session — state machine, guards, fault latching, events — with a pulse cap of one and an
intensity cap at the requested power, and it is recorded: a session whose protocol id is
``setup-check``, its one delivery (intent before the trigger, result after) or the fault that
stopped it, and, with a log directory, its audit log. The subject is the one under the coil, or
``SETUP-0`` (reserved) for a check on a phantom or with nobody under the coil.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tmsctl.core.clock import Clock
from tmsctl.core.errors import DeviceStateError, InvalidArgument, TmsError
from tmsctl.core.url import parse
from tmsctl.drivers.base import Capability, DeviceInfo
from tmsctl.session.controller import Controller
from tmsctl.session.host import SessionHost, clock_for
from tmsctl.session.safety import PulseCap

SETUP_CHECK_PROTOCOL_ID = "setup-check"
SETUP_SUBJECT_ID = "SETUP-0"  # reserved: a check on a phantom, or with nobody under the coil
MIN_POWER_PCT_MSO = 1  # 0 % charges nothing: a "pulse" at 0 % would be recorded but never happen


@dataclass(frozen=True)
class SetupCheckResult:
    """What the device confirmed: the power it read back and whether it acknowledged the trigger."""

    session_id: str
    device: DeviceInfo
    intensity_pct_mso: int
    pulses: int
    acknowledged: bool


def check_power(power_pct_mso: object) -> int:
    """The power for a set-up check: a whole percentage of at least 1 %MSO."""
    if isinstance(power_pct_mso, bool) or not isinstance(power_pct_mso, int):
        raise InvalidArgument(f"the set-up check's power must be a whole %MSO, got {power_pct_mso!r}")
    if power_pct_mso < MIN_POWER_PCT_MSO:
        raise InvalidArgument(
            f"a set-up check fires at {MIN_POWER_PCT_MSO} %MSO or more, not {power_pct_mso} %: at 0 % the "
            "unit charges nothing, and a pulse would be recorded that never happened",
            hint="give --power as the output to check, e.g. --power 40",
        )
    return power_pct_mso


def protocol_text(power_pct_mso: int) -> str:
    """The 'protocol' a set-up check runs, as recorded with the session (and hashed)."""
    return (
        f"id: {SETUP_CHECK_PROTOCOL_ID}\n"
        "title: one single pulse to check a set-up (tmsctl fire)\n"
        f"intensity_pct_mso: {power_pct_mso}\n"
        "pulses: 1\n"
    )


def run_setup_check(
    device_url: str,
    power_pct_mso: int,
    records: Any,
    *,
    subject_id: str = SETUP_SUBJECT_ID,
    operator: str = "operator",
    log_dir: Path | None = None,
    clock: Clock | None = None,
    on_step: Callable[[str], None] | None = None,
) -> SetupCheckResult:
    """Take control, set the power, arm, fire one pulse, wait for it, disarm, release — on record.

    Raises what the controller raises (after it disarmed and latched the fault); a failure after
    the session was opened is recorded as the session's fault.
    """
    from tmsctl import records as rec

    power = check_power(power_pct_mso)
    rec.validate_subject_id(subject_id)
    device = parse(device_url)
    clock = clock or clock_for(device)
    step = on_step or (lambda label: None)
    text = protocol_text(power)

    with SessionHost(device, clock, records=records) as host:
        controller = host.open()
        records.ensure_subject(subject_id)
        session_id = records.create_session(
            rec.SessionPlan(
                subject_id=subject_id, protocol_id=SETUP_CHECK_PROTOCOL_ID,
                protocol_hash="sha256:" + hashlib.sha256(text.encode()).hexdigest(), protocol_text=text,
                device_url=device.redacted, device_model=controller.driver.name, simulated=device.is_simulator,
                planned_deliveries=1, planned_pulses=1,
                replies_confirmed=Capability.CONFIRMED_REPLIES in controller.driver.limits.capabilities,
            )
        ).session_id
        records.start_session(session_id, operator=operator, offset_s=0.0)
        if log_dir is not None:
            host.open_audit(log_dir, session_id, simulated=device.is_simulator, origin_s=clock.now())
        return _check(host, controller, records, session_id, power, operator, step)


def _check(
    host: SessionHost, controller: Controller, records: Any, session_id: str, power: int, operator: str,
    step: Callable[[str], None],
) -> SetupCheckResult:
    from tmsctl import records as rec

    clock = host.clock
    controller.pulse_cap = PulseCap(1)
    controller.intensity_cap_pct_mso = power
    origin = clock.now()
    doing = "connecting"

    def offset() -> float:
        return max(0.0, clock.now() - origin)

    try:
        info = host.connect()
        host.record_unit(session_id)
        step("take remote control")
        # A unit left in train mode would fire a whole train on this one trigger: leave it first.
        controller.configure_single_pulse()
        doing = "setting the power"
        controller.set_intensity(power)
        step(f"set power {controller.intensity_pct_mso} %MSO (read back)")
        doing = "arming"
        controller.arm()
        step("arm and wait until charged")
        doing = "firing"
        records.begin_delivery(
            rec.DeliveryPlan(session_id, 0, rec.DeliveryKind.SINGLE, 0.0, 1, float(power), rec.TriggerSource.SERIAL)
        )
        delivery = controller.fire()
        controller.wait_until(delivery.expected_end)
        if controller.delivery is not None:
            raise DeviceStateError(
                f"{info.display_name} did not finish the pulse",
                hint="check the unit's front panel",
            )
        step("fire")
        settled = controller.last_delivery
        assert settled is not None and settled.dose is not None
        dose = settled.dose  # what the device's answers show went out (tmsctl.session.dose)
        records.finish_delivery(
            rec.DeliveryResult(
                session_id, 0, dose.delivered, dose.complete,
                onset_offset_s=max(0.0, delivery.started_at - origin),
                pulses_uncertain=dose.uncertain, evidence=dose.evidence,
            )
        )
        doing = "disarming"
        controller.disarm()
        controller.finish()
        step("disarm")
        records.complete_session(session_id)
    except TmsError as exc:
        records.fault_session(rec.Fault(session_id, type(exc).__name__, exc.message, doing, offset_s=offset()))
        raise
    except KeyboardInterrupt:
        records.abort_session(session_id, operator=operator, reason=f"operator abort while {doing}", offset_s=offset())
        raise
    return SetupCheckResult(session_id, info, delivery.intensity_pct_mso, delivery.pulses, delivery.confirmed)


__all__ = [
    "MIN_POWER_PCT_MSO", "SETUP_CHECK_PROTOCOL_ID", "SETUP_SUBJECT_ID", "SetupCheckResult", "check_power",
    "protocol_text", "run_setup_check",
]
