"""Publish a simulated subject's EMG as a Lab Streaming Layer stream, as an EMG amplifier's LSL app does.

A thread renders the EMG up to ``lag_s`` behind the clock (an amplifier's buffering) every
``chunk_s`` and pushes it with each sample's own timestamp, mapped to LSL's ``local_clock()`` by
the offset captured at start. Real time only (the SystemClock): LSL time is not virtual.

For bad-input tests: ``timestamp_shift_s`` stamps the samples on a wrong clock, ``declared_rate_hz``
declares another rate than the samples have; the EMG model's ``stops_at_s`` ends the stream.
"""

from __future__ import annotations

import threading
from typing import Any

from tmsctl.core.clock import Clock
from tmsctl.core.errors import InvalidArgument

from .emg import SimulatedEmg

__all__ = ["SimulatedEmgPublisher"]


class SimulatedEmgPublisher:
    def __init__(
        self, emg: SimulatedEmg, clock: Clock, *, name: str, channel: str = "FDI", lag_s: float = 0.02,
        chunk_s: float = 0.02, timestamp_shift_s: float = 0.0, declared_rate_hz: float | None = None,
    ) -> None:
        if clock.is_virtual:
            raise InvalidArgument("an LSL EMG stream runs in real time, not on a virtual clock")
        from tmsctl.core.lsl_library import load_pylsl as _pylsl

        self.pylsl = _pylsl()
        self.emg, self.clock, self.name = emg, clock, name
        self.lag_s, self.chunk_s, self.shift_s = lag_s, chunk_s, timestamp_shift_s
        info = self.pylsl.StreamInfo(name, "EMG", 1, declared_rate_hz or emg.sample_rate_hz,
                                     self.pylsl.cf_float32, f"tmsctl-sim-emg:{name}")
        channels = info.desc().append_child("channels")
        ch = channels.append_child("channel")
        ch.append_child_value("label", channel)
        ch.append_child_value("unit", "microvolts")
        ch.append_child_value("type", "EMG")
        self.outlet = self.pylsl.StreamOutlet(info, 256)
        self.offset_s = self.pylsl.local_clock() - clock.now()
        self._next = emg.index_at_or_after(clock.now())
        self._stop = clock.event()
        self.errors: list[BaseException] = []
        self.pushed = 0
        self._thread = threading.Thread(target=self._run, name=f"sim-emg-{name}", daemon=True)

    def start(self) -> SimulatedEmgPublisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._push_up_to(self.clock.now() - self.lag_s)
                self.clock.wait(self._stop, self.clock.now() + self.chunk_s)
        except BaseException as exc:  # kept for the test or caller that owns the publisher
            self.errors.append(exc)

    def _push_up_to(self, t: float) -> None:
        last = self.emg.last_index_until(t)
        if last < self._next:
            return
        values = self.emg.render(self._next, last)
        stamps = [self.emg.time_of(k) + self.offset_s + self.shift_s for k in range(self._next, last + 1)]
        samples: list[Any] = [[v] for v in values]
        self.outlet.push_chunk(samples, stamps)
        self.pushed += len(values)
        self._next = last + 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.outlet = None
