"""Registry entries for the MagPro: ``magventure-magpro`` (any model) and one name per model
(the ``tmsctl.drivers`` entry point ``magventure`` in tmsctl's pyproject.toml names ``DRIVER_ENTRIES``).

``magventure-magpro`` starts from the generic spec (no more permissive than any MagPro) and
learns the model from the unit's status byte at connect. A per-model name (e.g.
``magventure-magpro-x100``) starts from that model's spec and refuses to drive any other model,
for protocols that name the model they were approved for.
"""

from __future__ import annotations

from typing import Any

import serial

from tmsctl.core.registry import DriverEntry
from tmsctl.core.transport import Transport
from tmsctl.drivers.base import DeviceLimits

from .codec import BAUD_RATE
from .spec import GENERIC_MODEL, load_spec, model_names

SERIAL_SETTINGS: dict[str, Any] = {
    "baudrate": BAUD_RATE,  # 38400 8N1, no flow control (reference §1: all sources agree)
    "bytesize": serial.EIGHTBITS,
    "parity": serial.PARITY_NONE,
    "stopbits": serial.STOPBITS_ONE,
    "xonxoff": False,
    "rtscts": False,
}


def _entry(name: str) -> DriverEntry:
    spec = load_spec(name)

    def load_limits(options: dict[str, str]) -> DeviceLimits:
        return load_spec(name)

    def factory(transport: Transport, limits: DeviceLimits, options: dict[str, Any], simulated: bool) -> Any:
        from .driver import MagProDriver

        driver = MagProDriver(
            transport, limits, simulated=simulated, expected_model=None if name == GENERIC_MODEL else name
        )
        driver.name = name
        return driver

    display = "MagVenture MagPro (any model)" if name == GENERIC_MODEL else spec.display_name
    # The pulse shape is a setting (monophasic, biphasic, half sine, burst): the protocol names it.
    return DriverEntry(name, display, load_limits, factory, SERIAL_SETTINGS, manufacturer="MagVenture")


DRIVER_ENTRIES = [_entry(name) for name in model_names()]
