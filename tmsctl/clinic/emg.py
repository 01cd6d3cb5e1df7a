"""EMG inputs for MEP measurement: a Lab Streaming Layer stream, a recorded file, a simulated subject.

Every source hands out :class:`~tmsctl.clinic.mep.EmgEpoch` s around a pulse, on the pulse's time
base: the hunt's clock. A source maps its own timestamps onto that clock (an LSL stream by the
offset between LSL's ``local_clock()`` and the clock, captured when it opens, after LSL's own
clock-sync correction of the sender's clock).

Waiting happens on the injected clock only: :meth:`EmgSource.fetch` polls the stream and sleeps
on the clock until the epoch is covered, and raises :class:`EmgStreamStalled` when no sample
arrives ``stall_timeout_s`` after the epoch should have been complete.

Bad input is an error, never a silent measurement:

* a stream that stops → :class:`EmgStreamStalled`;
* a sampling rate that is not what was declared/expected, or too slow → :class:`EmgSampleRateError`;
* timestamps far from the clock (an unsynchronised clock between streams) → :class:`EmgClockMismatch`;
* a replayed recording whose pulses do not match the hunt's → :class:`EmgReplayMismatch`.

File format ``tmsctl-emg/1`` (plain text, one channel; documented in docs/emg.md)::

    NAME.json          {"format": "tmsctl-emg/1", "sampling_frequency_hz": 5000, "channel": "FDI",
                        "units": "uV", "samples_file": "NAME_emg.tsv", "pulses_file": "NAME_pulses.tsv"}
    NAME_emg.tsv       time_s<TAB>emg_uv         one row per sample; times need not be continuous
    NAME_pulses.tsv    onset_s<TAB>intensity_pct_mso   one row per pulse, on the samples' time base

A replay hands out the n-th recorded pulse's epoch for the n-th pulse of the hunt, and refuses a
hunt that asks another intensity than the recording holds (the replay would be meaningless).
"""

from __future__ import annotations

import bisect
import csv
import itertools
import json
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tmsctl.core.clock import Clock
from tmsctl.core.errors import InvalidArgument, TmsError

from .mep import MIN_SAMPLE_RATE_HZ, EmgEpoch, cut_epoch

__all__ = [
    "FILE_FORMAT",
    "BufferedEmgSource",
    "EmgClockMismatch",
    "EmgError",
    "EmgRecorder",
    "EmgReplayMismatch",
    "EmgSampleRateError",
    "EmgSource",
    "EmgStreamStalled",
    "FileEmgSource",
    "LslEmgSource",
    "PulseMark",
    "SimulatedEmgSource",
    "open_emg_source",
    "write_recording",
]

FILE_FORMAT = "tmsctl-emg/1"
DEFAULT_STALL_TIMEOUT_S = 1.0
# Timestamps further than this from the clock are not a transport delay but another time base.
DEFAULT_MAX_CLOCK_OFFSET_S = 2.0
# A measured rate more than this fraction off the declared one means a mis-declared stream.
RATE_TOLERANCE = 0.05
BUFFER_SECONDS = 20.0


class EmgError(TmsError):
    """The EMG input cannot give a trustworthy epoch."""

    hint = "check the EMG amplifier and its stream, then hunt again"


class EmgStreamStalled(EmgError):
    hint = "check that the EMG amplifier is recording and its stream is running (cable, battery, LSL app)"


class EmgSampleRateError(EmgError):
    hint = "set the EMG amplifier to the expected sampling rate (2–5 kHz for MEPs) and restart its stream"


class EmgClockMismatch(EmgError):
    hint = (
        "the EMG timestamps are on another clock: let the amplifier's LSL app stamp samples with LSL's "
        "local_clock(), or synchronise the two computers"
    )


class EmgReplayMismatch(EmgError):
    hint = "replay a recording with the same method, start intensity and seeds as the hunt that made it"


@dataclass(frozen=True)
class PulseMark:
    """A pulse on the hunt's clock: its instant (taken just before the trigger) and its power."""

    index: int  # 1-based count of pulses asked for from this source
    t_s: float
    intensity_pct_mso: int


class EmgSource(Protocol):
    channel: str
    sample_rate_hz: float
    description: str

    def fetch(self, pulse: PulseMark, before_s: float, after_s: float) -> EmgEpoch: ...

    def close(self) -> None: ...


def check_sample_rate(rate: object, expected_hz: float | None, where: str) -> float:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
        raise EmgSampleRateError(f"{where} declares no regular sampling rate ({rate!r})")
    if rate < MIN_SAMPLE_RATE_HZ:
        raise EmgSampleRateError(
            f"{where} is sampled at {rate:g} Hz, too slow for MEPs (at least {MIN_SAMPLE_RATE_HZ:g} Hz)"
        )
    if expected_hz is not None and abs(rate - expected_hz) > RATE_TOLERANCE * expected_hz:
        raise EmgSampleRateError(f"{where} is sampled at {rate:g} Hz, not the expected {expected_hz:g} Hz")
    return float(rate)


class BufferedEmgSource:
    """Keeps the latest samples on the clock's time base; subclasses add samples in ``_poll``."""

    poll_interval_s = 0.005

    def __init__(
        self, *, clock: Clock, channel: str, sample_rate_hz: float, description: str,
        stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S, max_clock_offset_s: float = DEFAULT_MAX_CLOCK_OFFSET_S,
        check_clock: bool = True,
    ) -> None:
        self.clock = clock
        self.channel = channel
        self.sample_rate_hz = sample_rate_hz
        self.description = description
        self.stall_timeout_s = stall_timeout_s
        self.max_clock_offset_s = max_clock_offset_s
        self.check_clock = check_clock
        self._times: deque[float] = deque()
        self._values: deque[float] = deque()
        self._rate_checked = False
        self.samples_received = 0

    def _poll(self) -> None:
        raise NotImplementedError

    def _add(self, times: Sequence[float], values: Sequence[float]) -> None:
        if not times:
            return
        if self.check_clock:
            now = self.clock.now()
            if abs(times[-1] - now) > self.max_clock_offset_s:
                raise EmgClockMismatch(
                    f"the EMG stream {self.description} stamps its samples {times[-1] - now:+.2f} s from this "
                    f"computer's clock (more than {self.max_clock_offset_s:g} s): its pulses could not be found"
                )
        self._times.extend(times)
        self._values.extend(values)
        self.samples_received += len(times)
        horizon = self._times[-1] - BUFFER_SECONDS
        while self._times and self._times[0] < horizon:
            self._times.popleft()
            self._values.popleft()
        self._check_measured_rate()

    def _check_measured_rate(self) -> None:
        if self._rate_checked or len(self._times) < 2:
            return
        span = self._times[-1] - self._times[0]
        if span < 1.0:
            return
        measured = (len(self._times) - 1) / span
        self._rate_checked = True
        if abs(measured - self.sample_rate_hz) > RATE_TOLERANCE * self.sample_rate_hz:
            raise EmgSampleRateError(
                f"the EMG stream {self.description} declares {self.sample_rate_hz:g} Hz but delivers "
                f"{measured:.0f} samples per second"
            )

    def fetch(self, pulse: PulseMark, before_s: float, after_s: float) -> EmgEpoch:
        needed_until = pulse.t_s + after_s
        give_up_at = max(needed_until, self.clock.now()) + self.stall_timeout_s
        while True:
            self._poll()
            if self._times and self._times[-1] >= needed_until - 0.5 / self.sample_rate_hz:
                break
            if self.clock.now() >= give_up_at:
                last = (
                    "no samples at all" if not self._times
                    else f"the last sample is {needed_until - self._times[-1]:.2f} s short of the epoch's end"
                )
                raise EmgStreamStalled(
                    f"the EMG stream {self.description} stopped: nothing for pulse {pulse.index} "
                    f"{self.stall_timeout_s:g} s after its epoch ended ({last})"
                )
            self.clock.sleep(self.poll_interval_s)
        return cut_epoch(
            self._times, self._values, pulse.t_s, before_s=before_s, after_s=after_s,
            sample_rate_hz=self.sample_rate_hz,
        )

    def close(self) -> None:
        pass


class SimulatedEmgSource(BufferedEmgSource):
    """A simulated subject's EMG (``tmsctl.simulators.emg.SimulatedEmg``) read in process, on any clock.

    It renders only what the clock says has happened, so it works on a virtual clock as the EMG of a
    real subject would: the epoch is there once its last sample's time has passed.
    """

    def __init__(self, emg: Any, clock: Clock, *, channel: str = "FDI", **kwargs: Any) -> None:
        super().__init__(
            clock=clock, channel=channel, sample_rate_hz=emg.sample_rate_hz, description="(simulated subject)",
            **kwargs,
        )
        self.emg = emg
        self._next_index = 0

    def _poll(self) -> None:
        raise AssertionError("SimulatedEmgSource renders on demand")

    def fetch(self, pulse: PulseMark, before_s: float, after_s: float) -> EmgEpoch:
        # one sample period past the window's end, so the sample at (or just after) it exists
        needed_until = pulse.t_s + after_s + 1.0 / self.sample_rate_hz
        if self.clock.now() < needed_until:
            self.clock.sleep_until(needed_until)
        last = self.emg.last_index_until(self.clock.now())
        first = self.emg.index_at_or_after(pulse.t_s - before_s)
        if last < 0 or self.emg.time_of(last) < needed_until - 1.5 / self.sample_rate_hz:
            self.clock.sleep(self.stall_timeout_s)
            raise EmgStreamStalled(
                f"the EMG stream {self.description} stopped: nothing for pulse {pulse.index} "
                f"{self.stall_timeout_s:g} s after its epoch ended"
            )
        values = self.emg.render(first, last)
        times = [self.emg.time_of(k) for k in range(first, last + 1)]
        return cut_epoch(times, values, pulse.t_s, before_s=before_s, after_s=after_s,
                         sample_rate_hz=self.sample_rate_hz)


def _pylsl() -> Any:
    from tmsctl.core.lsl_library import load_pylsl as load

    return load()


class LslEmgSource(BufferedEmgSource):
    """One channel of an LSL EMG stream, found by name. Real time only (LSL time is not virtual)."""

    def __init__(
        self, name: str, clock: Clock, *, channel: int | str = 0, expected_rate_hz: float | None = None,
        resolve_timeout_s: float = 5.0, local_clock: Callable[[], float] | None = None, **kwargs: Any,
    ) -> None:
        if clock.is_virtual:
            raise InvalidArgument(
                "an LSL EMG stream runs in real time; it cannot be read on a virtual clock",
                hint="leave --virtual-time out, or use a simulated subject without LSL",
            )
        pylsl = _pylsl()
        found = pylsl.resolve_byprop("name", name, 1, resolve_timeout_s)
        if not found:
            raise EmgStreamStalled(
                f"no LSL stream named {name!r} was found within {resolve_timeout_s:g} s",
                hint="start the EMG amplifier's LSL app; `python -m pylsl.examples.ReceiveData` lists streams",
            )
        info = found[0]
        where = f"{name!r}"
        rate = check_sample_rate(info.nominal_srate(), expected_rate_hz, f"the LSL stream {where}")
        labels = _channel_labels(info)
        if isinstance(channel, str):
            if channel not in labels:
                raise InvalidArgument(
                    f"the LSL stream {where} has no channel {channel!r}", hint=f"channels: {', '.join(labels)}"
                )
            index = labels.index(channel)
        else:
            index = channel
            if not 0 <= index < info.channel_count():
                raise InvalidArgument(f"the LSL stream {where} has {info.channel_count()} channels, not {index + 1}")
        super().__init__(clock=clock, channel=labels[index], sample_rate_hz=rate, description=where, **kwargs)
        self._index = index
        self._inlet = pylsl.StreamInlet(info, max_buflen=30, processing_flags=pylsl.proc_clocksync)
        self._inlet.open_stream(resolve_timeout_s)
        local = local_clock or pylsl.local_clock
        # LSL time = clock time + offset (both monotonic; sampled back to back).
        self.offset_s = local() - clock.now()

    def _poll(self) -> None:
        samples, stamps = self._inlet.pull_chunk(timeout=0.0)
        if stamps:
            self._add([t - self.offset_s for t in stamps], [float(s[self._index]) for s in samples])

    def close(self) -> None:
        try:
            self._inlet.close_stream()
        except Exception:  # closing a stream whose sender is gone must not mask the real error
            pass


def _channel_labels(info: Any) -> list[str]:
    labels = []
    try:
        channel = info.desc().child("channels").child("channel")
        while not channel.empty():
            labels.append(channel.child_value("label"))
            channel = channel.next_sibling()
    except Exception:  # a stream without channel metadata: number them
        labels = []
    count = info.channel_count()
    if len(labels) != count or not all(labels):
        labels = [f"ch{k + 1}" for k in range(count)]
    return labels


# -- recorded files -----------------------------------------------------------------------------------


def _read_tsv(path: Path, columns: tuple[str, str]) -> tuple[list[float], list[float]]:
    try:
        with path.open(newline="") as handle:
            reader = csv.reader(handle, delimiter="\t")
            header = next(reader, None)
            if header is None or tuple(h.strip() for h in header) != columns:
                raise InvalidArgument(f"{path} must start with the header {'<TAB>'.join(columns)}, got {header!r}")
            a: list[float] = []
            b: list[float] = []
            for number, row in enumerate(reader, start=2):
                if len(row) != 2:
                    raise InvalidArgument(f"{path} line {number}: expected 2 columns, got {len(row)}")
                a.append(float(row[0]))
                b.append(float(row[1]))
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise InvalidArgument(f"{path} holds a value that is not a number: {exc}") from None
    return a, b


@dataclass(frozen=True)
class Recording:
    sample_rate_hz: float
    channel: str
    times_s: tuple[float, ...]
    values_uv: tuple[float, ...]
    pulses: tuple[tuple[float, int], ...]  # (onset, intensity)


def read_recording(path: str | Path, *, expected_rate_hz: float | None = None) -> Recording:
    sidecar = Path(path)
    try:
        meta = json.loads(sidecar.read_text())
    except OSError as exc:
        raise InvalidArgument(f"cannot read the EMG recording {sidecar}: {exc.strerror}",
                              hint="give the recording's .json sidecar") from None
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{sidecar} is not JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FILE_FORMAT:
        raise InvalidArgument(f"{sidecar} is not a {FILE_FORMAT} recording", hint="see docs/emg.md for the format")
    if meta.get("units") != "uV":
        raise InvalidArgument(f"{sidecar}: units must be 'uV', got {meta.get('units')!r}")
    rate = check_sample_rate(meta.get("sampling_frequency_hz"), expected_rate_hz, f"the recording {sidecar.name}")
    times, values = _read_tsv(sidecar.parent / meta["samples_file"], ("time_s", "emg_uv"))
    onsets, intensities = _read_tsv(sidecar.parent / meta["pulses_file"], ("onset_s", "intensity_pct_mso"))
    if any(b <= a for a, b in itertools.pairwise(times)):
        raise InvalidArgument(f"{meta['samples_file']}: sample times must increase")
    return Recording(rate, str(meta.get("channel", "ch1")), tuple(times), tuple(values),
                     tuple((t, round(i)) for t, i in zip(onsets, intensities)))


def write_recording(
    path: str | Path, *, sample_rate_hz: float, channel: str, samples: Sequence[tuple[float, float]],
    pulses: Sequence[tuple[float, int]],
) -> Path:
    """Write a ``tmsctl-emg/1`` recording: ``path`` is the JSON sidecar; the TSVs go beside it."""
    sidecar = Path(path)
    if sidecar.suffix != ".json":
        raise InvalidArgument(f"an EMG recording is named by its .json sidecar, got {sidecar}")
    stem = sidecar.with_suffix("").name
    samples_file, pulses_file = f"{stem}_emg.tsv", f"{stem}_pulses.tsv"
    with (sidecar.parent / samples_file).open("w", newline="") as handle:
        handle.write("time_s\temg_uv\n")
        handle.writelines(f"{t:.6f}\t{v:.4f}\n" for t, v in samples)
    with (sidecar.parent / pulses_file).open("w", newline="") as handle:
        handle.write("onset_s\tintensity_pct_mso\n")
        handle.writelines(f"{t:.6f}\t{i}\n" for t, i in pulses)
    sidecar.write_text(json.dumps({
        "format": FILE_FORMAT, "sampling_frequency_hz": sample_rate_hz, "channel": channel, "units": "uV",
        "samples_file": samples_file, "pulses_file": pulses_file,
    }, indent=2) + "\n")
    return sidecar


class FileEmgSource:
    """Replays a recording: the n-th pulse asked for gets the n-th recorded pulse's epoch."""

    def __init__(self, path: str | Path, *, expected_rate_hz: float | None = None) -> None:
        self.recording = read_recording(path, expected_rate_hz=expected_rate_hz)
        self.channel = self.recording.channel
        self.sample_rate_hz = self.recording.sample_rate_hz
        self.description = f"(file {Path(path).name})"
        self._used = 0

    def fetch(self, pulse: PulseMark, before_s: float, after_s: float) -> EmgEpoch:
        pulses = self.recording.pulses
        if self._used >= len(pulses):
            raise EmgReplayMismatch(
                f"the recording holds {len(pulses)} pulses; the hunt asked for pulse {self._used + 1}"
            )
        onset, intensity = pulses[self._used]
        self._used += 1
        if intensity != pulse.intensity_pct_mso:
            raise EmgReplayMismatch(
                f"pulse {self._used} was given at {pulse.intensity_pct_mso} %MSO but the recording has it at "
                f"{intensity} %MSO"
            )
        times = self.recording.times_s
        lo = bisect.bisect_left(times, onset - before_s - 1.0 / self.sample_rate_hz)
        hi = bisect.bisect_right(times, onset + after_s + 1.0 / self.sample_rate_hz)
        return cut_epoch(times[lo:hi], self.recording.values_uv[lo:hi], onset, before_s=before_s,
                         after_s=after_s, sample_rate_hz=self.sample_rate_hz)

    def close(self) -> None:
        pass


class EmgRecorder:
    """Wraps a source and keeps every epoch it hands out, to be written as a replayable recording."""

    def __init__(self, source: EmgSource) -> None:
        self.source = source
        self.channel = source.channel
        self.sample_rate_hz = source.sample_rate_hz
        self.description = source.description
        self.samples: dict[float, float] = {}
        self.pulses: list[tuple[float, int]] = []

    def fetch(self, pulse: PulseMark, before_s: float, after_s: float) -> EmgEpoch:
        epoch = self.source.fetch(pulse, before_s, after_s)
        self.pulses.append((pulse.t_s, pulse.intensity_pct_mso))
        for t, v in zip(epoch.times_s, epoch.values_uv):
            self.samples[round(pulse.t_s + t, 7)] = v
        return epoch

    def write(self, path: str | Path) -> Path:
        return write_recording(path, sample_rate_hz=self.sample_rate_hz, channel=self.channel,
                               samples=sorted(self.samples.items()), pulses=self.pulses)

    def close(self) -> None:
        self.source.close()


def open_emg_source(spec: str, clock: Clock, *, expected_rate_hz: float | None = None,
                    channel: str | None = None) -> EmgSource:
    """``lsl:NAME`` (an LSL stream) or ``file:PATH`` (a recording's .json sidecar)."""
    kind, _, rest = spec.partition(":")
    if kind == "lsl" and rest:
        return LslEmgSource(rest, clock, channel=channel if channel is not None else 0,
                            expected_rate_hz=expected_rate_hz)
    if kind == "file" and rest:
        return FileEmgSource(rest, expected_rate_hz=expected_rate_hz)
    raise InvalidArgument(f"EMG input {spec!r} is not understood", hint="use lsl:STREAM_NAME or file:PATH.json")
