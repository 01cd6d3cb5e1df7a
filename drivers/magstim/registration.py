"""Registry entries for the Magstim 200², BiStim² and Rapid² (the ``tmsctl.drivers`` entry point
``magstim`` in tmsctl's pyproject.toml names ``DRIVER_ENTRIES``)."""

from __future__ import annotations

from typing import Any

import serial

from tmsctl.core.errors import InvalidArgument
from tmsctl.core.registry import DriverEntry
from tmsctl.core.transport import Transport
from tmsctl.drivers.base import DeviceLimits

SERIAL_SETTINGS: dict[str, Any] = {  # 9600 8N1 (magstim.md §1)
    "baudrate": 9600,
    "bytesize": serial.EIGHTBITS,
    "parity": serial.PARITY_NONE,
    "stopbits": serial.STOPBITS_ONE,
}
RAPID2 = "magstim-rapid2"
# Rapid² only: the unlock code (V9+, a secret), the model variant and the mains voltage its spec
# tables depend on.
RAPID2_URL_OPTIONS = frozenset({"unlock", "variant", "mains_v"})
# The 200² and BiStim² give only monophasic pulses, the Rapid² only biphasic ones.
PULSE_SHAPES = {"magstim-200": "Monophasic", "magstim-bistim": "Monophasic", RAPID2: "Biphasic"}


def unlock_code(raw: bytes) -> bytes:
    """The Rapid² unlock code: 16 raw bytes, or the 14 text characters followed by 4 hex digits."""
    if len(raw) == 18:
        try:
            return raw[:14] + bytes.fromhex(raw[14:].decode("ascii"))
        except ValueError:
            pass
    return raw


def _redact_tx(frame: bytes) -> bytes:
    from .codec import redact_host_frame

    return redact_host_frame(frame)


def _entry(name: str, display_name: str) -> DriverEntry:
    def load_limits(options: dict[str, str]) -> DeviceLimits:
        from .spec import load_spec

        if name == RAPID2:
            try:
                mains_v = int(options.get("mains_v", "240"))
            except ValueError:
                raise InvalidArgument(f"mains_v must be 240 or 115, got {options['mains_v']!r}") from None
            return load_spec(name, variant=options.get("variant", "rapid2"), mains_v=mains_v)
        return load_spec(name)

    def factory(transport: Transport, limits: DeviceLimits, options: dict[str, Any], simulated: bool) -> Any:
        from .driver import DRIVERS, Rapid2Driver

        if name == RAPID2:
            code = options.get("unlock")
            return Rapid2Driver(
                transport, limits, unlock_code=None if code is None else unlock_code(code), simulated=simulated
            )
        return DRIVERS[name](transport, limits, simulated=simulated)

    rapid2 = name == RAPID2
    return DriverEntry(
        name,
        display_name,
        load_limits,
        factory,
        SERIAL_SETTINGS,
        manufacturer="Magstim",
        pulse_shape=PULSE_SHAPES[name],
        url_options=RAPID2_URL_OPTIONS if rapid2 else frozenset(),
        secret_options=frozenset({"unlock"}) if rapid2 else frozenset(),
        redact_tx=_redact_tx,
    )


DRIVER_ENTRIES = [
    _entry("magstim-200", "Magstim 200²"),
    _entry("magstim-bistim", "Magstim BiStim²"),
    _entry(RAPID2, "Magstim Rapid²"),
]
