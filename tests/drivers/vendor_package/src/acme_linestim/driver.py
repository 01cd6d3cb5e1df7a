"""The LineStim driver: each call is one line out and one status frame back."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tmsctl.core.errors import (
    ChecksumError,
    DeviceRefused,
    DeviceStateError,
    IntensityMismatch,
    InvalidArgument,
    ProtocolError,
)
from tmsctl.core.transport import Transport, wire_time_s
from tmsctl.drivers.base import Capability, DeviceInfo, DeviceLimits, DeviceStatus, EnergyModel, NoEnergyModel

from . import BAUD_RATE, CHARGE_S, FRAME_LENGTH, RECHARGE_S, checksum

CAPABILITIES = frozenset({Capability.SINGLE_PULSE, Capability.CONFIRMED_REPLIES})


@dataclass(frozen=True)
class LineStimLimits:
    model: str = "acme-linestim"
    display_name: str = "Acme LineStim"
    capabilities: frozenset[Capability] = field(default_factory=lambda: CAPABILITIES)
    max_intensity_pct_mso: int = 100
    max_pulses_per_train: int = 1000
    max_train_duration_s: float = 60.0
    frequency_step_hz: float = 0.1

    def max_frequency_hz(self, intensity_pct_mso: float) -> float:
        return 1 / RECHARGE_S

    def max_train_on_time_s(self, intensity_pct_mso: float, frequency_hz: float) -> float:
        return math.inf

    def min_inter_train_interval_s(self, intensity_pct_mso: float, frequency_hz: float, pulses_per_train: int) -> float:
        return RECHARGE_S

    def min_single_pulse_interval_s(self, intensity_pct_mso: float) -> float:
        return RECHARGE_S

    def energy_model(self) -> EnergyModel | NoEnergyModel:
        return NoEnergyModel("one pulse per command; the recharge time limits the rate")

    def for_version(self, version: tuple[int, ...] | None) -> DeviceLimits:
        raise InvalidArgument(f"{self.display_name} limits do not depend on a software version")


LIMITS: DeviceLimits = LineStimLimits()


def _needed(received: bytes) -> int:
    return FRAME_LENGTH - len(received)


class LineStimDriver:
    name = "acme-linestim"
    display_name = "Acme LineStim"
    capabilities = CAPABILITIES
    reply_timeout_s = 0.1

    def __init__(self, transport: Transport, limits: DeviceLimits, *, simulated: bool = False) -> None:
        self.transport = transport
        self.clock = transport.clock
        self.limits = limits
        self.simulated = simulated
        self.power_pct: int | None = None

    @property
    def trigger_lead_s(self) -> float:
        return wire_time_s(len(b"FI\n"), BAUD_RATE)

    def _exchange(self, line: bytes) -> tuple[DeviceStatus, int]:
        frame = line + b"\n"
        deadline = self.clock.now() + wire_time_s(len(frame) + FRAME_LENGTH, BAUD_RATE) + self.reply_timeout_s
        raw = self.transport.exchange(frame, _needed, deadline)
        body, check, end = raw[:10], raw[10:11], raw[11:]
        if end != b"\n" or body[:1] not in (b"S", b"X") or not body[1:].isdigit():
            raise ProtocolError(f"{self.display_name}: not a status frame: {raw!r}")
        if checksum(body) != check:
            raise ChecksumError(f"{self.display_name}: bad checksum in {raw!r}")
        armed, ready, coil, error = (b == 0x31 for b in body[1:5])
        status = DeviceStatus(
            remote_control=True, armed=armed, ready=ready, coil_present=coil, error=error, raw=raw.decode("ascii").strip()
        )
        if body[:1] == b"X":
            raise DeviceRefused(
                f"{self.display_name} refused {line.decode()} (status {status.raw})",
                code="state_conflict", command=line, raw=raw,
            )
        return status, int(body[5:8])

    def connect(self) -> DeviceInfo:
        self.status()
        return DeviceInfo(self.limits.model, self.display_name, None, self.capabilities, simulated=self.simulated)

    def status(self) -> DeviceStatus:
        return self._exchange(b"ST")[0]

    keepalive = status

    def set_intensity(self, intensity_pct_mso: int) -> None:
        if not 0 <= intensity_pct_mso <= self.limits.max_intensity_pct_mso:
            raise InvalidArgument(
                f"{self.display_name} takes 0–{self.limits.max_intensity_pct_mso} %, not {intensity_pct_mso} %"
            )
        _, power = self._exchange(b"PW%03d" % intensity_pct_mso)
        if power != intensity_pct_mso:
            raise DeviceStateError(f"{self.display_name} set {power} %, not {intensity_pct_mso} %")
        self.power_pct = intensity_pct_mso

    def arm(self) -> DeviceStatus:
        self._exchange(b"AR")
        return self.wait_ready()

    def wait_ready(self, timeout_s: float = CHARGE_S + RECHARGE_S + 0.5) -> DeviceStatus:
        deadline = self.clock.now() + timeout_s
        while True:
            status = self.status()
            if status.ready or not status.armed or self.clock.now() >= deadline:
                return status
            self.clock.sleep(0.05)

    def verify_intensity(self) -> DeviceStatus:
        status, power = self._exchange(b"ST")
        if power != self.power_pct:
            raise IntensityMismatch(self.display_name, power, self.power_pct or 0)
        return status

    def fire(self) -> DeviceStatus:
        return self._exchange(b"FI")[0]

    def disarm(self) -> DeviceStatus:
        return self._exchange(b"DA")[0]

    def close(self) -> None:
        try:
            self.disarm()
        except Exception:  # closing must not fail; the unit disarms itself when the host goes quiet
            pass
        finally:
            self.transport.close()
