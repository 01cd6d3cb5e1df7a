"""Registry entry for the Deymed DuoMAG (``deymed-duomag``; the ``tmsctl.drivers`` entry point
``deymed`` in tmsctl's pyproject.toml names ``DRIVER_ENTRIES``)."""

from __future__ import annotations

from typing import Any

import serial

from tmsctl.core.registry import DriverEntry
from tmsctl.core.transport import Transport
from tmsctl.drivers.base import DeviceLimits

from .codec import BAUD_RATE
from .spec import MODEL, load_spec

SERIAL_SETTINGS: dict[str, Any] = {
    "baudrate": BAUD_RATE,  # 1 000 000 baud, 8 data bits, no parity, 2 stop bits (all sources agree)
    "bytesize": serial.EIGHTBITS,
    "parity": serial.PARITY_NONE,
    "stopbits": serial.STOPBITS_TWO,
    "xonxoff": False,
    "rtscts": False,
}


def _load_limits(options: dict[str, str]) -> DeviceLimits:
    return load_spec(MODEL)


def _factory(transport: Transport, limits: DeviceLimits, options: dict[str, Any], simulated: bool) -> Any:
    from .driver import DuoMagDriver

    return DuoMagDriver(transport, limits, simulated=simulated)


DRIVER_ENTRIES = [
    DriverEntry(MODEL, "Deymed DuoMAG", _load_limits, _factory, SERIAL_SETTINGS, manufacturer="Deymed")
]
