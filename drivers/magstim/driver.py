"""Drivers for the Magstim 200², BiStim² and Rapid².

A driver turns one call into one exchange over the transport (or a short status poll with a
deadline), checks its arguments strictly against the model's limits before anything is sent,
reads back what it set, and turns the unit's refusals into typed errors. It holds no timers and
no threads: keep-alive timing belongs to the controller, which calls ``keepalive()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from tmsctl.core.errors import (
    DeviceRefused,
    DeviceStateError,
    IntensityMismatch,
    InvalidArgument,
    ProtocolError,
    TransportTimeout,
)
from tmsctl.core.transport import Transport, wire_time_s
from tmsctl.drivers.base import (
    Capability,
    DeviceInfo,
    DeviceLimits,
    DeviceStatus,
    PairedPulseLimits,
    PairSettings,
    paired_isi_mode,
)

from . import codec as c
from .codec import Model

# The bulletins' recommended keep-alive period; the unit's own limits are 1 s armed, 10 s standby.
KEEPALIVE_PERIOD_S = 0.5
READY_POLL_PERIOD_S = 0.05
ARM_TO_READY_MAX_S = 1.0  # TDb087 §5.5(b): "up to 1 s"


class RemoteControlLost(DeviceStateError):
    hint = (
        "the stimulator dropped remote control (a keep-alive was missed or someone pressed its front "
        "panel); it disarmed itself. Check the unit, then reconnect"
    )


@dataclass(frozen=True)
class MagstimStatus:
    instrument: c.InstrumentStatus
    rapid: c.RapidStatus | None = None

    def neutral(self) -> DeviceStatus:
        return _neutral(self.instrument.raw, self.rapid.raw if self.rapid else None)


@lru_cache(maxsize=1024)
def _neutral(instrument_raw: int, rapid_raw: int | None) -> DeviceStatus:
    # Status bytes repeat endlessly (every keep-alive); their meaning is computed once.
    i, r = c.InstrumentStatus(instrument_raw), c.RapidStatus(rapid_raw) if rapid_raw is not None else None
    return DeviceStatus(
        remote_control=i.remote_control,
        armed=i.armed,
        ready=i.ready,
        coil_present=i.coil_present,
        error=i.error_present,
        fatal_error=i.fatal_error and i.error_present,
        train_running=bool(r and r.train_running),
        post_train_wait=bool(r and r.wait),
        raw=i.describe() + (f", rapid 0x{r.raw:02X}" if r else ""),
    )


def _whole_percent(value: object, what: str, ceiling: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise InvalidArgument(f"{what} must be a whole percentage of maximum output, got {value!r}")
    pct = int(value)
    if not 0 <= pct <= ceiling:
        raise InvalidArgument(f"{what} {pct} % is outside 0..{ceiling} %")
    return pct


def _on_grid(value: float, step: float, what: str, unit: str) -> int:
    """``value`` as a whole number of ``step``s; refuses values between grid points."""
    scaled = value / step
    nearest = round(scaled)
    if not math.isfinite(scaled) or abs(scaled - nearest) > 1e-6:
        raise InvalidArgument(
            f"{what} {value:g} {unit} is not a multiple of {step:g} {unit}",
            hint=f"the stimulator works in {step:g} {unit} steps; choose {nearest * step:g} {unit} explicitly",
        )
    return int(nearest)


class MagstimDriver:
    """What the three models share: remote control, power, arm/fire/disarm, status, coil temperature."""

    model: Model
    name: str
    display_name: str
    capabilities: frozenset[Capability] = frozenset(
        {Capability.SINGLE_PULSE, Capability.EXTERNAL_TRIGGER, Capability.CONFIRMED_REPLIES, Capability.COIL_TEMPERATURE}
    )
    reply_timeout_s = 0.3  # beyond the wire time; MAGIC uses 0.3 s

    def __init__(self, transport: Transport, limits: DeviceLimits, *, simulated: bool = False) -> None:
        self.transport = transport
        self.clock = transport.clock
        self.limits = limits
        self.simulated = simulated
        self.version: c.Version | None = None
        self.last_status: MagstimStatus | None = None
        self.power_pct: int | None = None
        self._reply_plans: dict[tuple[int, int, c.Version | None], tuple[Callable[[bytes], int], float]] = {}
        self._status_reply: c.Reply | None = None
        self._neutral_status: DeviceStatus | None = None
        # A status query, not Q@: re-sending Q@ would silently take back remote control the unit
        # dropped, hiding a missed keep-alive from us. Fixed per connection (a Rapid²'s by its version).
        self._keepalive_query = c.encode_query(c.GET_PARAMETERS)

    # -- one exchange -----------------------------------------------------------------------------
    def _exchange(self, frame: bytes, *, what: str) -> c.Reply:
        command = frame[0]
        reader, allowance_s = self._reply_plan(command, len(frame))
        try:
            raw = self.transport.exchange(frame, reader, self.clock.now() + allowance_s)
        except TransportTimeout as exc:
            raise TransportTimeout(
                f"{self.display_name} did not answer {what} ({c.show_host_frame(frame)!r}) within "
                f"{self.reply_timeout_s * 1000:.0f} ms; received {c.show(exc.partial)!r}",
                partial=exc.partial,
            ) from exc
        try:
            reply = c.decode_reply(command, raw, self.version, self.model)
        except DeviceRefused as exc:
            raise DeviceRefused(
                f"{self.display_name} refused {what} ({c.show_host_frame(frame)!r} → {c.show(raw)!r}): {exc.message}",
                code=exc.code, command=c.redact_host_frame(frame), raw=raw, hint=exc.hint,
            ) from exc
        except ProtocolError as exc:
            raise type(exc)(f"{self.display_name}, {what}: {exc.message}", raw=raw) from exc
        if reply.status is not None and reply is not self._status_reply:
            # Decoded replies are cached, so a repeated status reply is the very same object.
            self.last_status = MagstimStatus(reply.status, reply.rapid_status)
            self._status_reply, self._neutral_status = reply, self.last_status.neutral()
        return reply

    def _reply_plan(self, command: int, frame_length: int) -> tuple[Callable[[bytes], int], float]:
        """How to read the reply to ``command``: its length reader, and how long it may take."""
        key = (command, frame_length, self.version)
        plan = self._reply_plans.get(key)
        if plan is None:
            expected = c.reply_length(command, self.version, self.model) or 16
            plan = (
                c.reply_reader(command, self.version, self.model),
                wire_time_s(frame_length + expected) + self.reply_timeout_s,
            )
            self._reply_plans[key] = plan
        return plan

    def _status_of(self, reply: c.Reply) -> DeviceStatus:
        assert reply.status is not None
        neutral = self._neutral_status  # set together with _status_reply
        if reply is self._status_reply and neutral is not None:
            return neutral
        return MagstimStatus(reply.status, reply.rapid_status).neutral()

    # -- connection -------------------------------------------------------------------------------
    def connect(self) -> DeviceInfo:
        reply = self._exchange(self._remote_on_frame(), what="enable remote control")
        status = self._status_of(reply)
        if not status.remote_control:
            raise DeviceStateError(f"{self.display_name} did not take remote control (status {status.raw})")
        if status.armed:
            self.disarm()
        self.power_pct = self._read_power()
        return DeviceInfo(
            model=self.name,
            display_name=self.display_name,
            version=self.version,
            capabilities=self.capabilities,
            simulated=self.simulated,
        )

    def _remote_on_frame(self) -> bytes:
        return c.encode_remote_on()

    def keepalive(self) -> DeviceStatus:
        """Refresh the unit's keep-alive deadline; raises RemoteControlLost if it already let go, and
        IntensityMismatch when the reply carries a power (J@, \\@) other than the one set."""
        reply = self._exchange(self._keepalive_query, what="keep-alive")
        status = self._status_of(reply)
        if not status.remote_control:
            raise RemoteControlLost(f"{self.display_name} is no longer under remote control (status {status.raw})")
        self._check_power(reply.payload)
        return status

    def verify_intensity(self) -> DeviceStatus:
        reply = self._exchange(self._power_query_frame(), what="read back the output power")
        status = self._status_of(reply)
        if not status.remote_control:
            raise RemoteControlLost(f"{self.display_name} is no longer under remote control (status {status.raw})")
        self._check_power(reply.payload)
        return status

    def _power_query_frame(self) -> bytes:
        return c.encode_query(c.GET_PARAMETERS)

    def _check_power(self, payload: object) -> None:
        """The parameters reply of a 200² or BiStim² (J@) carries output A's power: the one set, or a fault."""
        if not isinstance(payload, c.Parameters):
            return
        if self.power_pct is not None and payload.power_a_pct != self.power_pct:
            raise IntensityMismatch(self.display_name, payload.power_a_pct, self.power_pct)

    def status(self) -> DeviceStatus:
        return self._status_of(self._exchange(self._keepalive_query, what="status read"))

    def release(self) -> None:
        """Disarm and hand control back to the unit's own panel."""
        self.disarm()
        self._exchange(c.encode_query(c.REMOTE_OFF), what="release remote control")

    def close(self) -> None:
        """Best effort: disarm, release remote control, close the port. Never raises."""
        try:
            self.release()
        except Exception:  # closing must not fail; the unit disarms itself when keep-alives stop
            pass
        finally:
            self.transport.close()

    # -- power --------------------------------------------------------------------------------------
    def _power_ceiling(self) -> int:
        return 100

    def set_intensity(self, intensity_pct_mso: int) -> None:
        """Set output A and read it back (the alternate-controller rule of TDb087 §2)."""
        pct = _whole_percent(intensity_pct_mso, "intensity", self._power_ceiling())
        self._exchange(c.encode_set_power(pct), what=f"set power {pct} %")
        readback = self._read_power()
        if readback != pct:
            raise DeviceStateError(
                f"{self.display_name} reports power {readback} % after being set to {pct} %"
            )
        self.power_pct = pct

    def _read_power(self) -> int:
        payload = self._exchange(c.encode_query(c.GET_PARAMETERS), what="read parameters").payload
        assert isinstance(payload, c.Parameters)
        return payload.power_a_pct

    # -- arm / fire / disarm ---------------------------------------------------------------------------
    def arm(self) -> DeviceStatus:
        self._exchange(c.encode_mode(c.Mode.ARM), what="arm")
        return self.status()

    def wait_ready(self, timeout_s: float = ARM_TO_READY_MAX_S + 0.5) -> DeviceStatus:
        """Poll status until the unit is charged; raises DeviceStateError (after disarming) if not."""
        deadline = self.clock.now() + timeout_s
        while True:
            status = self.status()
            if status.ready:
                return status
            if not status.armed or not status.remote_control:
                raise DeviceStateError(f"{self.display_name} stopped arming (status {status.raw})")
            if self.clock.now() >= deadline:
                self.disarm()
                raise DeviceStateError(
                    f"{self.display_name} was not ready {timeout_s:.1f} s after arming (status {status.raw})"
                )
            self.clock.sleep(READY_POLL_PERIOD_S)

    @property
    def trigger_lead_s(self) -> float:
        """From sending the fire command (``EH`` + CRC, 3 bytes) to the pulse: its wire time at 9600
        baud (the pulse happens when its last byte arrives)."""
        return wire_time_s(len(c.encode_mode(c.Mode.FIRE)))

    def fire(self) -> DeviceStatus:
        """One serial trigger (``EH``): a single pulse, or a whole train in Rapid² train mode."""
        return self._status_of(self._exchange(c.encode_mode(c.Mode.FIRE), what="fire"))

    def trigger_via_rts(self, pulse_width_s: float = 0.002) -> None:
        """Quick-fire through RTS wired to the trigger input (needs that cable and a real port)."""
        self.transport.set_rts(True)
        self.clock.sleep(pulse_width_s)
        self.transport.set_rts(False)

    def disarm(self) -> DeviceStatus:
        """Send ``EA`` (accepted even without remote control) and confirm the unit is in standby."""
        self._exchange(c.encode_mode(c.Mode.DISARM), what="disarm")
        status = self.status()
        if status.armed:
            raise DeviceStateError(f"{self.display_name} still reports armed after disarm (status {status.raw})")
        return status

    # -- coil -------------------------------------------------------------------------------------------
    def coil_temperature_c(self) -> tuple[float, float]:
        payload = self._exchange(c.encode_query(c.GET_COIL_TEMPERATURE), what="read coil temperature").payload
        assert isinstance(payload, c.CoilTemperature)
        return payload.coil1_decidegc / 10, payload.coil2_decidegc / 10


class M200Driver(MagstimDriver):
    model = Model.M200
    name = "magstim-200"
    display_name = "Magstim 200²"


class BiStimDriver(MagstimDriver):
    """A BiStim² in BiStim timing: output A fires on the trigger, output B one ISI later (when B > 0 %).

    Implements ``PairedPulseDriver``. Power B and the ISI are kept as last read back, and every
    ``J@`` reply (keep-alives, the read-back before each trigger) is checked against them, as power A
    is: a unit that changed either is caught before it fires.
    """

    model = Model.BISTIM
    name = "magstim-bistim"
    display_name = "Magstim BiStim²"
    capabilities = MagstimDriver.capabilities | {Capability.PAIRED_PULSE}
    HIGH_RESOLUTION_MODE = 1  # index in paired_isi_modes_ms(): tenths of a ms

    def __init__(self, transport: Transport, limits: DeviceLimits, *, simulated: bool = False) -> None:
        super().__init__(transport, limits, simulated=simulated)
        self.high_resolution = False
        self.power_b_pct: int | None = None
        self.isi_raw: int | None = None

    def connect(self) -> DeviceInfo:
        self.power_b_pct = self.isi_raw = None  # adopted from the unit's first reply, checked after
        info = super().connect()
        mode = self._exchange(c.encode_query(c.GET_SYSTEM_MODE), what="read system mode").payload
        assert isinstance(mode, c.SystemMode)
        self.high_resolution = mode.mode in ("4", "T")
        return info

    def _read_power(self) -> int:
        params = self._read_parameters()
        if self.power_b_pct is None:
            self.power_b_pct, self.isi_raw = params.power_b_pct, params.isi_raw
        else:
            self._check_pair(params)
        return params.power_a_pct

    def _read_parameters(self) -> c.Parameters:
        params = self._exchange(c.encode_query(c.GET_PARAMETERS), what="read parameters").payload
        assert isinstance(params, c.Parameters)
        return params

    def _isi_ms(self, isi_raw: int) -> float:
        return round(isi_raw * (0.1 if self.high_resolution else 1.0), 1)

    @property
    def pair(self) -> PairSettings | None:
        if not self.power_b_pct or self.power_pct is None or self.isi_raw is None:
            return None
        return PairSettings(self.power_pct, self.power_b_pct, self._isi_ms(self.isi_raw))

    def _check_power(self, payload: object) -> None:
        super()._check_power(payload)
        if isinstance(payload, c.Parameters):
            self._check_pair(payload)

    def _check_pair(self, payload: c.Parameters) -> None:
        if self.power_b_pct is not None and payload.power_b_pct != self.power_b_pct:
            raise IntensityMismatch(f"{self.display_name} output B", payload.power_b_pct, self.power_b_pct)
        if self.isi_raw is not None and payload.isi_raw != self.isi_raw:
            raise DeviceStateError(
                f"{self.display_name} reports an ISI of {self._isi_ms(payload.isi_raw):g} ms where "
                f"{self._isi_ms(self.isi_raw):g} ms was set and validated",
                hint="the device was disarmed; check its front panel and who changed it before resuming",
            )

    def set_pair(self, first_pct_mso: int, second_pct_mso: int, isi_ms: float) -> PairSettings:
        """Power A (first), power B (second) and the ISI, in the resolution the ISI needs; read back."""
        first = _whole_percent(first_pct_mso, "intensity A (first pulse)", 100)
        second = _whole_percent(second_pct_mso, "intensity B (second pulse)", 100)
        if second == 0:
            raise InvalidArgument("a paired pulse needs output B above 0 %", hint="use clear_pair() for single pulses")
        modes = self._isi_modes()
        current = self.HIGH_RESOLUTION_MODE if self.high_resolution else 0
        mode = current if paired_isi_mode(modes[current : current + 1], isi_ms) == 0 else paired_isi_mode(modes, isi_ms)
        if mode is None:
            settable = "; ".join(f"{lo:g}–{hi:g} ms in {step:g} ms steps" for lo, hi, step in modes)
            raise InvalidArgument(
                f"{self.display_name} cannot time an inter-pulse interval of {isi_ms:g} ms",
                hint=f"it sets {settable}",
            )
        high = mode == self.HIGH_RESOLUTION_MODE
        raw = _on_grid(isi_ms, modes[mode][2], "inter-pulse interval", "ms")
        if high != self.high_resolution:
            # Switching the resolution resets the ISI (magstim.md §8), so it goes first.
            self._exchange(c.encode_query(c.HIGH_RES_ON if high else c.HIGH_RES_OFF), what="set ISI resolution")
            self.high_resolution = high
            self.isi_raw = None  # unknown until read back
        self._exchange(c.encode_set_power(first), what=f"set power A {first} %")
        self._exchange(c.encode_set_power(second, output="B"), what=f"set power B {second} %")
        self._exchange(c.encode_isi(raw), what=f"set ISI {isi_ms:g} ms")
        got = self._read_parameters()
        if (got.power_a_pct, got.power_b_pct, got.isi_raw) != (first, second, raw):
            raise DeviceStateError(
                f"{self.display_name} read back A {got.power_a_pct} %, B {got.power_b_pct} %, ISI "
                f"{self._isi_ms(got.isi_raw):g} ms after being set to A {first} %, B {second} %, ISI {isi_ms:g} ms"
            )
        self.power_pct, self.power_b_pct, self.isi_raw = first, second, raw
        pair = self.pair
        assert pair is not None
        return pair

    def clear_pair(self) -> None:
        """Output B to 0 %: a trigger then fires output A alone."""
        self._exchange(c.encode_set_power(0, output="B"), what="set power B 0 %")
        got = self._read_parameters()
        if got.power_b_pct != 0:
            raise DeviceStateError(f"{self.display_name} reports power B {got.power_b_pct} % after setting 0 %")
        self.power_b_pct, self.isi_raw = 0, got.isi_raw

    def _isi_modes(self) -> tuple[tuple[float, float, float], ...]:
        limits: PairedPulseLimits = self.limits  # type: ignore[assignment]  # declared by PAIRED_PULSE
        return limits.paired_isi_modes_ms()

    def set_intensity_b(self, intensity_pct_mso: int) -> None:
        pct = _whole_percent(intensity_pct_mso, "intensity B", 100)
        self._exchange(c.encode_set_power(pct, output="B"), what=f"set power B {pct} %")
        params = self._read_parameters()
        if params.power_b_pct != pct:
            raise DeviceStateError(f"{self.display_name} reports power B {params.power_b_pct} % after setting {pct} %")
        self.power_b_pct = pct

    def set_high_resolution(self, on: bool) -> None:
        """High-resolution ISI timing (0.1 ms steps up to 99.9 ms). Not allowed while armed."""
        self._exchange(c.encode_query(c.HIGH_RES_ON if on else c.HIGH_RES_OFF), what="set ISI resolution")
        self.high_resolution = on
        self.isi_raw = None  # the unit resets it; unknown until read back

    def set_isi_ms(self, isi_ms: float) -> None:
        step, top = (0.1, 99.9) if self.high_resolution else (1.0, 999.0)
        if not 0 <= isi_ms <= top:
            raise InvalidArgument(
                f"inter-pulse interval {isi_ms:g} ms is outside 0..{top:g} ms in "
                f"{'high' if self.high_resolution else 'low'}-resolution mode"
            )
        raw = _on_grid(isi_ms, step, "inter-pulse interval", "ms")
        self._exchange(c.encode_isi(raw), what=f"set ISI {isi_ms:g} ms")
        params = self._read_parameters()
        if params.isi_raw != raw:
            raise DeviceStateError(f"{self.display_name} reports ISI {params.isi_raw} after setting {raw}")
        self.isi_raw = raw


@dataclass(frozen=True)
class TrainSettings:
    frequency_hz: float
    pulses: int
    duration_s: float


class Rapid2Driver(MagstimDriver):
    model = Model.RAPID2
    name = "magstim-rapid2"
    display_name = "Magstim Rapid²"
    capabilities = MagstimDriver.capabilities | {
        Capability.INTERNAL_TRAIN,
        Capability.ENHANCED_POWER,
        Capability.RTS_TRIGGER,
    }

    def __init__(
        self,
        transport: Transport,
        limits: DeviceLimits,
        *,
        unlock_code: bytes | None = None,
        simulated: bool = False,
    ) -> None:
        super().__init__(transport, limits, simulated=simulated)
        self._unlock_code = unlock_code
        self._keepalive_query = c.encode_query(c.GET_RAPID_PARAMETERS)  # until connect() reads the version
        self.enhanced = False
        self.train: TrainSettings | None = None

    def connect(self) -> DeviceInfo:
        # Version first: it decides the unlock frame, field widths and reply lengths (magstim.md §12).
        payload = self._exchange(c.encode_query(c.GET_VERSION), what="read software version").payload
        assert isinstance(payload, c.SoftwareVersion)
        self.version = payload.version
        # x@ on v9+ (the bulletins' recommendation), \@ before: both carry the Rapid² status.
        self._keepalive_query = c.encode_query(
            c.GET_SYSTEM_STATUS if c.uses_unlock_code(self.version) else c.GET_RAPID_PARAMETERS
        )
        refine = getattr(self.limits, "for_version", None)
        if refine is not None:
            self.limits = refine(self.version)  # field widths and caps depend on the version
        if c.uses_unlock_code(self.version) and self._unlock_code is None:
            raise InvalidArgument(
                f"this Rapid² runs software {payload.text}, which needs its unlock code for remote control",
                hint="add ?unlock=env:VARIABLE to the device URL, with the code in that environment variable",
            )
        super().connect()
        params = self._read_parameters()
        self.train = None if params.duration_ds == 0 else self._settings_of(params)
        return DeviceInfo(
            model=self.name,
            display_name=self.display_name,
            version=self.version,
            capabilities=self.capabilities,
            # A served simulator (`tmsctl sim serve`) is reached like a real port; it names itself
            # in its version reply, which no URL can fake.
            simulated=self.simulated or payload.from_simulator,
            details={"software": payload.text},
        )

    def _remote_on_frame(self) -> bytes:
        if c.uses_unlock_code(self.version):
            return c.encode_remote_on(self._unlock_code)
        return c.encode_remote_on()

    def _power_ceiling(self) -> int:
        return 110 if self.enhanced else 100

    def _power_query_frame(self) -> bytes:
        return c.encode_query(c.GET_RAPID_PARAMETERS)

    def _check_power(self, payload: object) -> None:
        """The Rapid²'s parameters reply (\\@) carries its power: the one set, or a fault."""
        if not isinstance(payload, c.RapidParameters):
            return  # the v9+ keep-alive (x@) carries no power
        if self.power_pct is not None and payload.power_pct != self.power_pct:
            raise IntensityMismatch(self.display_name, payload.power_pct, self.power_pct)

    def _read_parameters(self) -> c.RapidParameters:
        payload = self._exchange(c.encode_query(c.GET_RAPID_PARAMETERS), what="read Rapid² parameters").payload
        assert isinstance(payload, c.RapidParameters)
        return payload

    def _read_power(self) -> int:
        return self._read_parameters().power_pct

    @staticmethod
    def _settings_of(p: c.RapidParameters) -> TrainSettings:
        return TrainSettings(p.frequency_dhz / 10, p.pulses, p.duration_ds / 10)

    def set_intensity(self, intensity_pct_mso: int) -> None:
        pct = _whole_percent(intensity_pct_mso, "intensity", self._power_ceiling())
        if self.train is not None and pct > 100:
            raise InvalidArgument("enhanced power above 100 % is for single pulses only, not trains")
        if self.train is not None and self.train.frequency_hz > self.limits.max_frequency_hz(pct):
            raise InvalidArgument(
                f"{pct} % is too strong for the current train frequency {self.train.frequency_hz:g} Hz: this "
                f"unit allows at most {self.limits.max_frequency_hz(pct):g} Hz at {pct} %",
                hint="lower the frequency first, or choose a lower intensity",
            )
        super().set_intensity(pct)

    def set_train(self, frequency_hz: float, pulses: int) -> TrainSettings:
        """Enter train mode: ``pulses`` at ``frequency_hz`` (the unit derives the duration).

        Power must be set first: the maximum frequency depends on it (TDb087 §5.6(c)).
        """
        if self.power_pct is None:
            raise InvalidArgument("set the intensity before the train: the frequency limit depends on it")
        if isinstance(pulses, bool) or not isinstance(pulses, int) or not 1 <= pulses <= self.limits.max_pulses_per_train:
            raise InvalidArgument(f"pulses per train must be 1..{self.limits.max_pulses_per_train}, got {pulses!r}")
        frequency_dhz = _on_grid(frequency_hz, 0.1, "frequency", "Hz")
        ceiling = self.limits.max_frequency_hz(self.power_pct)
        if not 0 < frequency_hz <= ceiling:
            raise InvalidArgument(
                f"{frequency_hz:g} Hz is above this unit's limit of {ceiling:g} Hz at {self.power_pct} %"
            )
        duration_s = pulses / frequency_hz
        duration_ds = _on_grid(duration_s, 0.1, f"train duration ({pulses} pulses at {frequency_hz:g} Hz)", "s")
        if duration_s > self.limits.max_train_duration_s:
            raise InvalidArgument(f"a {duration_s:g} s train exceeds the unit's {self.limits.max_train_duration_s:g} s limit")
        on_time = self.limits.max_train_on_time_s(self.power_pct, frequency_hz)
        if duration_s > on_time:
            raise InvalidArgument(
                f"a {duration_s:g} s train at {frequency_hz:g} Hz and {self.power_pct} % exceeds the Rapid² "
                f"energy limit (at most {on_time:.2f} s)"
            )
        if self.enhanced:
            self.set_enhanced_power(False)
        self._exchange(c.encode_frequency(frequency_dhz), what=f"set frequency {frequency_hz:g} Hz")
        self._exchange(c.encode_pulses(pulses, self.version), what=f"set {pulses} pulses per train")
        self._exchange(c.encode_duration(duration_ds, self.version), what=f"set train duration {duration_s:g} s")
        got = self._read_parameters()
        wanted = c.RapidParameters(self.power_pct, frequency_dhz, pulses, duration_ds, got.wait_ds)
        if got != wanted:
            raise DeviceStateError(
                f"{self.display_name} read back {self._settings_of(got)} after setting "
                f"{pulses} pulses at {frequency_hz:g} Hz ({duration_s:g} s)"
            )
        self.train = self._settings_of(got)
        return self.train

    def set_single_pulse_mode(self) -> None:
        self._exchange(c.encode_duration(0, self.version), what="leave train mode")
        got = self._read_parameters()
        if got.duration_ds != 0:
            raise DeviceStateError(f"{self.display_name} is still in train mode after leaving it")
        self.train = None

    def set_enhanced_power(self, on: bool) -> None:
        if on and self.train is not None:
            raise InvalidArgument("enhanced power is for single pulses only: leave train mode first")
        reply = self._exchange(c.encode_query(c.ENHANCED_ON if on else c.ENHANCED_OFF), what="set enhanced power")
        if reply.rapid_status is None or reply.rapid_status.enhanced_power != on:
            # the reply may show the state before the change; confirm with a fresh read
            status = self._exchange(c.encode_query(c.GET_RAPID_PARAMETERS), what="read Rapid² status")
            if status.rapid_status is None or status.rapid_status.enhanced_power != on:
                raise DeviceStateError(f"{self.display_name} did not switch enhanced power {'on' if on else 'off'}")
        self.enhanced = on

    def error_code(self) -> c.ErrorCode:
        payload = self._exchange(c.encode_query(c.GET_ERROR_CODE), what="read error code").payload
        assert isinstance(payload, c.ErrorCode)
        return payload

    def system_status(self) -> c.ExtendedStatus:
        payload = self._exchange(c.encode_query(c.GET_SYSTEM_STATUS), what="read system status").payload
        assert isinstance(payload, c.ExtendedStatus)
        return payload


DRIVERS: dict[str, type[MagstimDriver]] = {d.name: d for d in (M200Driver, BiStimDriver, Rapid2Driver)}
