"""The Acme LineStim: a made-up stimulator with an ASCII line protocol, 19200 8N1.

Host → unit, one line each: ``ST`` (status, the keep-alive), ``PWnnn`` (output in %, effective at once), ``AR`` (arm:
charges for 0.2 s), ``FI`` (fire; recharges for 0.5 s), ``DA`` (disarm). The unit answers every
line with one 12-byte status frame: ``S`` (or ``X`` for a refusal), four flags (armed, ready, coil
connected, error), the output (3 digits), the coil temperature (2 digits), a checksum letter and a
newline. Armed and silent for 1 s, it disarms itself.
"""

BAUD_RATE = 19200
FRAME_LENGTH = 12
WATCHDOG_S = 1.0
CHARGE_S = 0.2
RECHARGE_S = 0.5
COIL_LIMIT_C = 40


def checksum(body: bytes) -> bytes:
    return bytes((0x41 + sum(body) % 26,))


def encode_status(refused: bool, armed: bool, ready: bool, coil: bool, error: bool, power: int, temp_c: int) -> bytes:
    flags = bytes(0x30 + int(f) for f in (armed, ready, coil, error))
    body = (b"X" if refused else b"S") + flags + b"%03d%02d" % (power, min(99, temp_c))
    return body + checksum(body) + b"\n"
