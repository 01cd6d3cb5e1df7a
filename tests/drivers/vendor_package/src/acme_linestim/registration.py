"""What tmsctl's registry needs to build the driver: the ``tmsctl.drivers`` entry point names it."""

from __future__ import annotations

from typing import Any

import serial

from tmsctl.core.registry import DriverEntry

from . import BAUD_RATE
from .driver import LIMITS, LineStimDriver

SERIAL_SETTINGS: dict[str, Any] = {
    "baudrate": BAUD_RATE,
    "bytesize": serial.EIGHTBITS,
    "parity": serial.PARITY_NONE,
    "stopbits": serial.STOPBITS_ONE,
}

DRIVER_ENTRY = DriverEntry(
    "acme-linestim",
    "Acme LineStim",
    load_limits=lambda options: LIMITS,
    factory=lambda transport, limits, options, simulated: LineStimDriver(transport, limits, simulated=simulated),
    serial_settings=SERIAL_SETTINGS,
    manufacturer="Acme",
    pulse_shape="Biphasic",
)
