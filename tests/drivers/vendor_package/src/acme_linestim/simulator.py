"""The LineStim's simulator: the ``tmsctl.simulators`` entry point names its profile."""

from __future__ import annotations

from tmsctl.simulators.device import Fault, FaultKind, SimulatedDevice
from tmsctl.simulators.registry import SimulatorProfile

from . import BAUD_RATE, CHARGE_S, COIL_LIMIT_C, RECHARGE_S, WATCHDOG_S, encode_status

ENERGY_J_PER_PCT = 0.5


class LineStimSimulator(SimulatedDevice):
    baudrate = BAUD_RATE

    def __init__(self, *, start: float = 0.0, faults: tuple[Fault, ...] = ()) -> None:
        super().__init__(start=start, faults=faults)
        self.interlocks: list[tuple[float, str]] = []  # fire lines refused to protect the unit
        self.armed = False
        self.ready_at = start
        self.power = 0
        self.error = False

    @property
    def is_energised(self) -> bool:
        return self.armed

    def _ready(self, now: float) -> bool:
        return self.armed and now >= self.ready_at

    def _on_bytes(self, now: float) -> int | None:
        buf = self._inbuf
        while (end := buf.find(b"\n")) >= 0:
            line = bytes(buf[:end])
            del buf[: end + 1]
            self._count_command(now)
            self._command(line, now)
        return None

    def _command(self, line: bytes, now: float) -> None:
        refused = False
        if self.armed:
            self._watchdog_at = now + WATCHDOG_S
        if line.startswith(b"PW") and line[2:].isdigit() and int(line[2:]) <= 100:
            self.power = int(line[2:])  # the capacitor follows at once (a made-up unit may)
        elif line == b"AR":
            refused = self.error or not self.coil.present or self.power == 0
            if not refused and not self.armed:
                self.armed, self.ready_at = True, now + CHARGE_S
                self._watchdog_at = now + WATCHDOG_S
        elif line == b"FI":
            if self._ready(now) and self.coil.present and not self.error:
                self._record_pulse(now, self.power, self.power * ENERGY_J_PER_PCT, "serial")
                self.ready_at = now + RECHARGE_S
            else:
                refused = True
                self.interlocks.append((now, "fire refused: not armed and charged"))
        elif line == b"DA":
            self._disarm()
        elif line != b"ST":
            refused = True
        self._reply(self._status(refused, now), now)

    def _status(self, refused: bool, now: float) -> bytes:
        return encode_status(refused, self.armed, self._ready(now), self.coil.present, self.error, self.power,
                             round(self.coil.at(now)))

    def _disarm(self) -> None:
        self.armed = False
        self._watchdog_at = float("inf")

    def _on_watchdog(self, now: float) -> None:
        if self.armed:
            self.fault_log.append((now, "keep-alive missed: disarmed"))
            self._disarm()

    def _on_fault(self, fault: Fault, now: float) -> None:
        if fault.kind is FaultKind.OVER_TEMPERATURE:
            self.coil.force(now, COIL_LIMIT_C + 5)
        if fault.kind in (FaultKind.OVER_TEMPERATURE, FaultKind.DEVICE_ERROR):
            self.error = True
        if fault.kind in (FaultKind.OVER_TEMPERATURE, FaultKind.COIL_UNPLUGGED, FaultKind.DEVICE_ERROR):
            self._disarm()


SIMULATOR_PROFILE = SimulatorProfile(
    "acme-linestim",
    driver="acme-linestim",
    display_name="Acme LineStim (simulated)",
    create=lambda start, faults: LineStimSimulator(start=start, faults=faults),
    driver_options={},
)
