"""What every driver offers and what every device model's limits look like.

``DeviceLimits`` is the contract between device specs (data under ``drivers/*/specs``) and the
protocol checker (``tmsctl.protocols``): a protocol is expanded and checked against whatever the
connected model says here, so the checker never hard-codes a device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol, overload, runtime_checkable

from tmsctl.core.errors import InvalidArgument, TmsError

# How a simulator names itself in what a real unit's protocol carries (a Rapid²'s software
# version, a threshold's stimulator serial): a real unit never answers "SIM-…", so a device that
# does is a simulator whatever URL reached it, and its sessions count for no real subject.
SIMULATOR_IDENTITY_PREFIX = "SIM-"


class Capability(StrEnum):
    SINGLE_PULSE = "single_pulse"
    PAIRED_PULSE = "paired_pulse"  # two outputs with a settable inter-pulse interval (BiStim²)
    INTERNAL_TRAIN = "internal_train"  # the device times the pulses of a train itself
    THETA_BURST = "theta_burst"  # the device times bursts inside a train itself
    EXTERNAL_TRIGGER = "external_trigger"  # a TTL input fires the armed device
    RTS_TRIGGER = "rts_trigger"  # the serial RTS line wired to the trigger input
    ENHANCED_POWER = "enhanced_power"  # up to 110 % output, single pulses only
    CONFIRMED_REPLIES = "confirmed_replies"  # the device answers every command (DuoMAG does not)
    COIL_TEMPERATURE = "coil_temperature"
    # The device reports every pulse it fires (the MagPro's di/dt message): the driver then counts
    # them in ``pulses_reported`` (see PulseReporting), the exact evidence of what a train delivered.
    PULSE_REPORTS = "pulse_reports"
    # The pulse's waveform and current direction are settings the driver writes and reads back
    # (the MagPro's); a protocol's ``stimulus`` is applied through StimulusShaping.
    STIMULUS_SHAPE = "stimulus_shape"


@dataclass(frozen=True)
class EnergyModel:
    """How a unit limits the energy it holds: a bucket of ``capacity_j`` draining at ``drain_w``,
    each pulse adding ``energy_per_pulse_j(power_pct)`` (the Rapid²'s published budget)."""

    capacity_j: float
    drain_w: float
    energy_per_pulse_j: Callable[[float], float]


@dataclass(frozen=True)
class NoEnergyModel:
    """A unit whose maker publishes no energy budget; ``reason`` says what limits it instead."""

    reason: str


@runtime_checkable
class DeviceLimits(Protocol):
    """A device model's limits, as data the protocol checker can query.

    Intensities are % of maximum stimulator output (%MSO); times in seconds; frequencies in Hz.
    """

    # Read-only: the specs are frozen models. (A bare annotation here would ask for a settable
    # attribute, which no spec is.)
    @property
    def model(self) -> str:
        """The driver name, e.g. "magstim-rapid2"."""

    @property
    def display_name(self) -> str:
        """E.g. "Magstim Rapid²"."""

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    @property
    def max_intensity_pct_mso(self) -> int:
        """The highest output usable for repetitive stimulation."""

    @property
    def max_pulses_per_train(self) -> int: ...

    @property
    def max_train_duration_s(self) -> float: ...

    @property
    def frequency_step_hz(self) -> float:
        """The device's frequency resolution (0.1 Hz on a Rapid²)."""

    def max_frequency_hz(self, intensity_pct_mso: float) -> float:
        """Highest train frequency the device allows at this output."""

    def max_train_on_time_s(self, intensity_pct_mso: float, frequency_hz: float) -> float:
        """Longest train the device's energy/duty limit allows (``inf`` if unlimited)."""

    def min_inter_train_interval_s(
        self, intensity_pct_mso: float, frequency_hz: float, pulses_per_train: int
    ) -> float:
        """Shortest wait after a train before the next may start (device protection)."""

    def min_single_pulse_interval_s(self, intensity_pct_mso: float) -> float:
        """Shortest interval between host-triggered single pulses (recharge time)."""

    def energy_model(self) -> EnergyModel | NoEnergyModel:
        """The unit's energy budget, or why it has none: required, so none is ever assumed by omission."""

    def for_version(self, version: tuple[int, ...] | None) -> DeviceLimits:
        """These limits refined for a software version; InvalidArgument where they do not depend on one."""


@dataclass(frozen=True)
class DeviceInfo:
    """What a driver learned at connect."""

    model: str
    display_name: str
    version: tuple[int, ...] | None
    capabilities: frozenset[Capability]
    simulated: bool = False
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceStatus:
    """What a device reported, in vendor-neutral terms. ``raw`` keeps the vendor's own words."""

    remote_control: bool
    armed: bool  # armed or charged: pulses can follow
    ready: bool  # charged and able to fire now
    coil_present: bool
    error: bool = False
    fatal_error: bool = False
    train_running: bool = False
    post_train_wait: bool = False
    confirmed: bool = True  # False when the device cannot report (DuoMAG): these are our assumptions
    raw: str = ""


# -- what each capability adds to the common surface -------------------------------------------
# A driver declares its capabilities (its limits' ``capabilities``); registration checks that it
# implements what it declares (``check_capabilities``), and the core reaches a capability's
# members only through ``capability()``: a missing member is an error at connect, never an
# interlock silently switched off.


@runtime_checkable
class DeviceTimedTrain(Protocol):
    """``Capability.INTERNAL_TRAIN``: the device times a train's pulses itself."""

    def set_train(self, frequency_hz: float, pulses: int) -> object: ...
    def set_single_pulse_mode(self) -> None: ...


@runtime_checkable
class ThetaBurstTiming(Protocol):
    """``Capability.THETA_BURST``: the device times bursts inside a train itself."""

    def set_theta_burst(
        self, *, pulses_per_burst: int, burst_frequency_hz: float, burst_rate_hz: float, bursts: int
    ) -> object: ...


@runtime_checkable
class RtsTriggering(Protocol):
    """``Capability.RTS_TRIGGER``: the serial RTS line is wired to the trigger input."""

    def trigger_via_rts(self) -> None: ...


@runtime_checkable
class CoilThermometer(Protocol):
    """``Capability.COIL_TEMPERATURE``: the device reports its coil's temperature (°C, one per sensor)."""

    def coil_temperature_c(self) -> tuple[float, ...]: ...


@runtime_checkable
class PulseReporting(Protocol):
    """``Capability.PULSE_REPORTS``: the device reports every pulse it fires."""

    pulses_reported: int  # every pulse the device has reported since connect


@dataclass(frozen=True)
class PairSettings:
    """A paired pulse as the device holds it: one trigger, two pulses ``isi_ms`` apart."""

    first_pct_mso: int  # the pulse the trigger fires (BiStim² output A): the conditioning stimulus
    second_pct_mso: int  # the pulse the device fires one ISI later (output B): the test stimulus
    isi_ms: float  # first pulse onset to second pulse onset


@runtime_checkable
class PairedPulseDriver(Protocol):
    """What a driver with ``Capability.PAIRED_PULSE`` offers beside the common surface.

    The device times the pair itself: one trigger fires the first output, and the device fires the
    second one ISI later. Every setter reads back what it set and raises when the unit disagrees.
    """

    @property
    def pair(self) -> PairSettings | None:
        """The pair the device is set for, as last read back; None when a trigger fires one pulse."""

    def set_pair(self, first_pct_mso: int, second_pct_mso: int, isi_ms: float) -> PairSettings:
        """Set both outputs and the interval (in the timing resolution the interval needs) and read
        them back. Only while disarmed: a unit may refuse to change its timing resolution when armed."""

    def clear_pair(self) -> None:
        """Turn the second output off (0 %), so that a trigger fires one pulse; read back."""


@runtime_checkable
class PairedPulseLimits(Protocol):
    """What the limits of a device with ``Capability.PAIRED_PULSE`` say about a pair's interval."""

    def paired_isi_modes_ms(self) -> tuple[tuple[float, float, float], ...]:
        """``(min, max, step)`` of every timing mode the device sets a pair's interval in, coarsest
        first (BiStim²: whole ms to 999 ms, then tenths of a ms to 99.9 ms)."""


def paired_isi_mode(modes: tuple[tuple[float, float, float], ...], isi_ms: float) -> int | None:
    """The first (coarsest) mode in which ``isi_ms`` is a setting the device can take exactly, or None."""
    for index, (low, high, step) in enumerate(modes):
        steps = isi_ms / step
        if low - 1e-9 <= isi_ms <= high + 1e-9 and abs(steps - round(steps)) <= 1e-6:
            return index
    return None


@dataclass(frozen=True)
class StimulusShape:
    """A pulse's shape as the device holds it, in a protocol's words (``tmsctl.protocols.models.Stimulus``)."""

    waveform: str  # "monophasic", "biphasic", "half_sine", "biphasic_burst"
    current_direction: str  # "normal", "reversed"


@runtime_checkable
class StimulusShaping(Protocol):
    """``Capability.STIMULUS_SHAPE``: the waveform and current direction are settings, set and read back."""

    @property
    def stimulus(self) -> StimulusShape | None:
        """The shape the device is set to, as last read back; None before it was read."""

    def set_stimulus(self, waveform: str, current_direction: str) -> StimulusShape:
        """Set both and read them back; raises when the unit disagrees. Only while disarmed."""


@runtime_checkable
class StimulusShapeLimits(Protocol):
    """What the limits of a device with ``Capability.STIMULUS_SHAPE`` say about a protocol's stimulus."""

    def stimulus_problem(
        self, waveform: str, current_direction: str, *, kind: str, isi_ms: float | None = None
    ) -> str | None:
        """Why the device cannot give this shape to a train of ``kind`` (a pair ``isi_ms`` apart); None if it can."""


CAPABILITY_CONTRACTS: dict[Capability, type] = {
    Capability.PAIRED_PULSE: PairedPulseDriver,
    Capability.STIMULUS_SHAPE: StimulusShaping,
    Capability.INTERNAL_TRAIN: DeviceTimedTrain,
    Capability.THETA_BURST: ThetaBurstTiming,
    Capability.RTS_TRIGGER: RtsTriggering,
    Capability.COIL_TEMPERATURE: CoilThermometer,
    Capability.PULSE_REPORTS: PulseReporting,
}

class DriverContractError(TmsError):
    """A driver declares a capability it does not implement."""


def check_capabilities(driver: object, declared: frozenset[Capability]) -> None:
    """Refuse a driver that declares a capability without the members it needs."""
    missing = [
        f"{cap.value} needs {contract.__name__}"
        for cap, contract in CAPABILITY_CONTRACTS.items()
        if cap in declared and not isinstance(driver, contract)
    ]
    if missing:
        raise DriverContractError(
            f"driver {type(driver).__name__} declares what it does not implement: " + "; ".join(missing),
            hint="fix the driver or its declared capabilities (docs/writing-a-driver.md)",
        )


# One overload per capability: the capability names the contract the caller gets. (`contract`
# cannot be typed `type[C]`: a Protocol class is not a `type[...]` value for a type checker,
# by the typing spec; it stays a parameter so the call site shows what it relies on.)
@overload
def capability(
    driver: StimulatorDriver, declared: frozenset[Capability], cap: Literal[Capability.INTERNAL_TRAIN],
    contract: type,
) -> DeviceTimedTrain: ...
@overload
def capability(
    driver: StimulatorDriver, declared: frozenset[Capability], cap: Literal[Capability.THETA_BURST],
    contract: type,
) -> ThetaBurstTiming: ...
@overload
def capability(
    driver: StimulatorDriver, declared: frozenset[Capability], cap: Literal[Capability.RTS_TRIGGER],
    contract: type,
) -> RtsTriggering: ...
@overload
def capability(
    driver: StimulatorDriver, declared: frozenset[Capability], cap: Literal[Capability.COIL_TEMPERATURE],
    contract: type,
) -> CoilThermometer: ...
@overload
def capability(
    driver: StimulatorDriver, declared: frozenset[Capability], cap: Literal[Capability.PULSE_REPORTS],
    contract: type,
) -> PulseReporting: ...
@overload
def capability(
    driver: StimulatorDriver, declared: frozenset[Capability], cap: Literal[Capability.PAIRED_PULSE],
    contract: type,
) -> PairedPulseDriver: ...
@overload
def capability(
    driver: StimulatorDriver, declared: frozenset[Capability], cap: Literal[Capability.STIMULUS_SHAPE],
    contract: type,
) -> StimulusShaping: ...
def capability(driver: StimulatorDriver, declared: frozenset[Capability], cap: Capability, contract: type) -> object:
    """``driver`` seen through one declared capability; InvalidArgument when it does not have it."""
    if cap not in declared:
        raise InvalidArgument(f"{driver.display_name} does not have the {cap.value.replace('_', ' ')} capability")
    # check_capabilities verified the contract when the driver was registered and connected; a
    # runtime-checkable isinstance here would repeat it on every coil read (7 µs each)
    return driver


@runtime_checkable
class StimulatorDriver(Protocol):
    """Every driver's surface. Drivers hold no timers and no threads; each call is one exchange
    (or a short poll with a deadline) that returns a confirmation or raises."""

    name: str
    display_name: str
    limits: DeviceLimits
    trigger_lead_s: float  # from the trigger leaving the host to the pulse (a serial command's wire time)

    def connect(self) -> DeviceInfo: ...
    def keepalive(self) -> DeviceStatus: ...
    def status(self) -> DeviceStatus: ...
    def set_intensity(self, intensity_pct_mso: int) -> None: ...
    def arm(self) -> DeviceStatus: ...
    def wait_ready(self, timeout_s: float = ...) -> DeviceStatus:
        """Poll until the device reports charged. The core calls it without ``timeout_s``: each
        driver's default is its own device's charge time, with a margin."""
    def verify_intensity(self) -> DeviceStatus:
        """A status read that also carries the output setting (the cheapest command that does);
        raises IntensityMismatch when it differs from what was set. Runs before every trigger."""
    def fire(self) -> DeviceStatus: ...
    def disarm(self) -> DeviceStatus: ...
    def close(self) -> None: ...
