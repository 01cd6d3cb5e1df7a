"""Streaming MagPro frame parsers — sans-I/O: ``feed(bytes) -> list[message]``.

The link is a message stream: the unit sends unprompted messages at any time, including between
a request and its answer, so frames are found by start byte and length (never by splitting on
0xFF: data and CRC bytes can be 0xFF) and checked by CRC and end byte. A candidate that fails
the checks loses only its start byte; scanning resumes at the next 0xFE, so one bad byte costs at
most the frame it hit.

Nothing is raised for bad wire data — a stream parser has to keep going. Every byte it drops is
reported as a ``ProtocolError`` (``ChecksumError`` for CRC mismatches) with the bytes attached,
collected in arrival order and handed out by ``drain_rejects()`` for the trace log. Results do
not depend on how the bytes were split across ``feed`` calls.

One parser per direction: ``MagProFrameParser`` reads what the unit sends (the driver's side),
``MagProHostFrameParser`` reads what the host sends (the simulator's side).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from tmsctl.core.errors import ProtocolError

from .commands import HostCommand, decode_host_frame_bytes, decode_host_payload
from .framing import MAX_PAYLOAD_LENGTH, OVERHEAD, START, hexdump, unframe
from .messages import DeviceMessage, decode_device_frame_bytes, decode_device_payload

_T = TypeVar("_T")


class _FrameParser(Generic[_T]):
    def __init__(self, decode_payload: Callable[..., _T], decode_frame: Callable[[bytes], _T]) -> None:
        # ``decode_frame(raw)`` must equal ``decode_payload(unframe(raw), raw=raw)``, raising
        # ``ProtocolError`` exactly when either step would: it is the shortcut for a frame that
        # is valid, and the two steps still decide what a bad frame costs.
        self._decode_payload = decode_payload
        self._decode_frame = decode_frame
        self._buffer = bytearray()
        self._garbage = bytearray()
        self._rejects: list[ProtocolError] = []

    @property
    def pending(self) -> bytes:
        """Bytes held back: a frame begun but not complete, or bytes still waiting for a start byte."""
        if not self._garbage:
            return bytes(self._buffer)
        return bytes(self._garbage + self._buffer)

    def drain_rejects(self) -> list[ProtocolError]:
        """Errors for every byte dropped since the last call, oldest first; then forgets them."""
        rejects, self._rejects = self._rejects, []
        return rejects

    def feed(self, data: bytes) -> list[_T]:
        """Add received bytes; return every complete, valid message they finish, in order."""
        self._buffer += data
        return self._scan()

    def abandon_partial(self) -> list[_T]:
        """Give up on the frame begun at the head of the buffer (call when the line went quiet).

        A stray 0xFE followed by a plausible length holds back the bytes after it until that
        many have arrived; when nothing more is coming, this drops the stray start byte and
        rescans what is buffered.
        """
        if self._buffer and self._buffer[0] == START:
            self._reject(ProtocolError(
                "incomplete MagPro frame abandoned after the line went quiet: "
                f"{hexdump(bytes(self._buffer))}",
                raw=bytes(self._buffer),
            ))
            del self._buffer[:1]
        return self._scan()

    def _reject(self, error: ProtocolError) -> None:
        self._flush_garbage()
        self._rejects.append(error)

    def _flush_garbage(self) -> None:
        if self._garbage:
            raw = bytes(self._garbage)
            self._garbage.clear()
            self._rejects.append(ProtocolError(
                f"skipped {len(raw)} byte(s) outside any MagPro frame (a frame starts with FE): "
                f"{hexdump(raw)}",
                raw=raw,
            ))

    def _scan(self) -> list[_T]:
        messages: list[_T] = []
        buffer = self._buffer
        while buffer:
            start = buffer.find(START)
            if start < 0:
                self._garbage += buffer
                buffer.clear()
                break
            if start:
                self._garbage += buffer[:start]
                del buffer[:start]
            self._flush_garbage()
            if len(buffer) < 2:
                break
            length = buffer[1]
            if not 1 <= length <= MAX_PAYLOAD_LENGTH:
                self._reject(ProtocolError(
                    f"FE followed by length {length} cannot start a MagPro frame (1..{MAX_PAYLOAD_LENGTH})",
                    raw=bytes(buffer[:2]),
                ))
                del buffer[:1]
                continue
            total = length + OVERHEAD
            if len(buffer) < total:
                break
            candidate = bytes(buffer[:total])
            try:
                message = self._decode_frame(candidate)
            except ProtocolError:
                pass  # which check failed decides how much is dropped: worked out below
            else:
                del buffer[:total]
                messages.append(message)
                continue
            try:
                payload = unframe(candidate)
            except ProtocolError as exc:
                # The boundaries are not trustworthy: drop only the start byte and rescan.
                self._reject(exc)
                del buffer[:1]
                continue
            # CRC and end byte vouch for the boundaries: the whole frame is consumed either way.
            del buffer[:total]
            try:
                messages.append(self._decode_payload(payload, raw=candidate))
            except ProtocolError as exc:
                self._reject(exc)
        return messages


class MagProFrameParser(_FrameParser[DeviceMessage]):
    """Device → host stream: replies and unprompted messages, in arrival order."""

    def __init__(self) -> None:
        super().__init__(decode_device_payload, decode_device_frame_bytes)


class MagProHostFrameParser(_FrameParser[HostCommand]):
    """Host → device stream, for the simulator."""

    def __init__(self) -> None:
        super().__init__(decode_host_payload, decode_host_frame_bytes)
