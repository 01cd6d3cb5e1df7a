"""Hard limits: what the connected stimulator can deliver (refused, never overridable).

Each function is one registered rule (``tmsctl.protocols.rulebook.rule``); it returns None where it
does not apply, so that ``Verdict.checked`` names only the rules that judged this schedule.
"""

from __future__ import annotations

from tmsctl.drivers.base import (
    Capability,
    DeviceLimits,
    PairedPulseLimits,
    StimulusShapeLimits,
    paired_isi_mode,
)
from tmsctl.protocols.findings import Issue, Severity
from tmsctl.protocols.models import Protocol
from tmsctl.protocols.rule_context import (
    ABSOLUTE_MAX_PCT_MSO,
    DEVICE_SOURCE,
    Evaluation,
    TrainCase,
    TrainLimits,
    Unanswered,
    below,
    exceeds,
    rate_text,
    unanswered,
)
from tmsctl.protocols.rule_context import number as _n
from tmsctl.protocols.rulebook import Scope, rule
from tmsctl.protocols.schedule import RTS_BURST_GAP_S, RTS_BURST_MAX_S, host_bursts

# --- intensity ------------------------------------------------------------------------------


@rule("intensity.max-output", Severity.REFUSE, scope=Scope.TRAIN)
def intensity_max_output(case: TrainCase) -> list[Issue] | None:
    if case.device is not None:
        return None  # the device's own maximum applies (device.intensity)
    train = case.train
    return [
        Issue(
            "intensity.max-output",
            Severity.REFUSE,
            f"{value} %MSO is above the {ABSOLUTE_MAX_PCT_MSO} %MSO any stimulator delivers for this "
            "(never clamped)",
            "safety.md §7: intensity above the device maximum is refused, never clamped",
            value=value,
            limit=ABSOLUTE_MAX_PCT_MSO,
            unit="%MSO",
            status="D",
            hint="check the motor threshold and the prescription",
        )
        for value in (train.intensity_pct_mso, train.conditioning_intensity_pct_mso)
        if value is not None and value > ABSOLUTE_MAX_PCT_MSO
    ]


@rule("device.intensity", Severity.REFUSE, scope=Scope.TRAIN)
def device_intensity(case: TrainCase) -> list[Issue] | None:
    device, train = case.device, case.train
    if device is None or train.intensity_pct_mso is None:
        return None
    over = [
        value
        for value in (train.intensity_pct_mso, train.conditioning_intensity_pct_mso)
        if value is not None and value > device.max_intensity_pct_mso
    ]
    if not over:
        return []
    return [
        Issue(
            "device.intensity",
            Severity.REFUSE,
            f"{max(over)} %MSO is above the {device.display_name}'s maximum of {device.max_intensity_pct_mso} %MSO "
            "(refused, never clamped)",
            DEVICE_SOURCE,
            value=max(over),
            limit=device.max_intensity_pct_mso,
            unit="%MSO",
            status="V",
            hint="the prescription cannot be delivered with this threshold on this stimulator",
        )
    ]


# --- a train the device can deliver: its answers at that output and rate ---------------------


@rule("device.spec-unanswered", Severity.REFUSE, scope=Scope.TRAIN, listed=False)
def device_spec_unanswered(case: TrainCase) -> list[Issue] | None:
    """A spec that cannot answer for a train's parameters makes it refused, never passed."""
    device, limits, single = case.device, case.repetitive_limits, case.single_pulse_interval
    if device is None or case.deliverable_mso is None:
        return None
    if isinstance(limits, Unanswered):
        return [unanswered(device, limits, case.deliverable_mso)]
    if single is not None and isinstance(single[2], Unanswered):
        return [unanswered(device, single[2], single[1])]
    return []


def _repetitive(case: TrainCase) -> tuple[DeviceLimits, int, TrainLimits | None] | None:
    """The device, output and answers for a repetitive train it can deliver; the answers are None
    when the spec could not give them (device.spec-unanswered refuses the train)."""
    limits = case.repetitive_limits
    if limits is None or case.device is None or case.deliverable_mso is None:
        return None
    return case.device, case.deliverable_mso, None if isinstance(limits, Unanswered) else limits


def _timed_by_device(protocol: Protocol) -> bool:
    """The train timer's own limits bind only when the stimulator times the train."""
    return protocol.timed_by == "stimulator"


@rule("device.frequency", Severity.REFUSE, scope=Scope.TRAIN)
def device_frequency(case: TrainCase) -> list[Issue] | None:
    if (facts := _repetitive(case)) is None:
        return None
    device, mso, limits = facts
    train, peak = case.train, case.train.peak_frequency_hz
    assert peak is not None
    if limits is None or not exceeds(peak, limits.max_frequency_hz):
        return []
    inside = " inside bursts" if train.kind != "train" else ""
    return [
        Issue(
            "device.frequency",
            Severity.REFUSE,
            f"{_n(peak)} Hz{inside} at {mso} %MSO is above the {device.display_name}'s maximum of "
            f"{_n(limits.max_frequency_hz)} Hz at that output",
            DEVICE_SOURCE,
            value=peak,
            limit=limits.max_frequency_hz,
            unit="Hz",
            status="V",
            hint="lower the frequency or the intensity, or use a stimulator that can deliver it",
        )
    ]


@rule("device.frequency-step", Severity.REFUSE, scope=Scope.TRAIN)
def device_frequency_step(case: TrainCase) -> list[Issue] | None:
    facts = _repetitive(case)
    train = case.train
    if facts is None or facts[2] is None or train.kind != "train":
        return None
    device = facts[0]
    step = device.frequency_step_hz
    # A step of 0 means the device has no train timer (its capability refusal says so).
    if not _timed_by_device(case.evaluation.protocol) or step <= 0:
        return None
    assert train.frequency_hz is not None
    steps = train.frequency_hz / step
    if abs(steps - round(steps)) <= 1e-6:
        return []
    return [
        Issue(
            "device.frequency-step",
            Severity.REFUSE,
            f"{_n(train.frequency_hz)} Hz is not on the {device.display_name}'s {step:g} Hz frequency grid",
            DEVICE_SOURCE,
            value=train.frequency_hz,
            limit=step,
            unit="Hz",
            status="V",
            hint="choose a frequency the stimulator can set exactly; tmsctl never rounds it",
        )
    ]


@rule("device.pulses-per-train", Severity.REFUSE, scope=Scope.TRAIN)
def device_pulses_per_train(case: TrainCase) -> list[Issue] | None:
    if (facts := _repetitive(case)) is None:
        return None
    device, _, limits = facts
    train = case.train
    if limits is None or not _timed_by_device(case.evaluation.protocol):
        return []
    if train.n_pulses <= device.max_pulses_per_train:
        return []
    return [
        Issue(
            "device.pulses-per-train",
            Severity.REFUSE,
            f"{train.n_pulses:,} pulses in one train; the {device.display_name} allows at most "
            f"{device.max_pulses_per_train:,}",
            DEVICE_SOURCE,
            value=train.n_pulses,
            limit=device.max_pulses_per_train,
            unit="pulses",
            status="V",
            hint="split the train",
        )
    ]


@rule("device.train-duration", Severity.REFUSE, scope=Scope.TRAIN)
def device_train_duration(case: TrainCase) -> list[Issue] | None:
    if (facts := _repetitive(case)) is None:
        return None
    device, _, limits = facts
    train = case.train
    if limits is None or not _timed_by_device(case.evaluation.protocol):
        return []
    if not exceeds(train.duration_s, device.max_train_duration_s):
        return []
    return [
        Issue(
            "device.train-duration",
            Severity.REFUSE,
            f"a {_n(train.duration_s)} s train is longer than the {device.display_name}'s maximum of "
            f"{_n(device.max_train_duration_s)} s",
            DEVICE_SOURCE,
            value=train.duration_s,
            limit=device.max_train_duration_s,
            unit="s",
            status="V",
            hint="split the train",
        )
    ]


@rule("device.on-time", Severity.REFUSE, scope=Scope.TRAIN)
def device_on_time(case: TrainCase) -> list[Issue] | None:
    if (facts := _repetitive(case)) is None:
        return None
    device, mso, limits = facts
    train = case.train
    if limits is None or not exceeds(train.duration_s, limits.max_on_time_s):
        return []
    return [
        Issue(
            "device.on-time",
            Severity.REFUSE,
            f"{_n(train.duration_s)} s of {rate_text(train)} at {mso} %MSO exceeds the {device.display_name}'s "
            f"energy limit: at most {_n(limits.max_on_time_s)} s at this output and rate",
            DEVICE_SOURCE,
            value=train.duration_s,
            limit=limits.max_on_time_s,
            unit="s",
            status="V",
            hint="shorten the trains or lower the intensity or frequency",
        )
    ]


@rule("device.inter-train-wait", Severity.REFUSE, scope=Scope.TRAIN)
def device_inter_train_wait(case: TrainCase) -> list[Issue] | None:
    if (facts := _repetitive(case)) is None:
        return None
    device, mso, limits = facts
    train, gap = case.train, case.gap
    if limits is None or gap is None:
        return []
    name = device.display_name
    if not limits.asked_wait:
        return [
            Issue(
                "device.inter-train-wait",
                Severity.REFUSE,
                f"the {name} cannot tell the recovery time after a {train.n_pulses:,}-pulse train",
                DEVICE_SOURCE,
                value=train.n_pulses,
                limit=device.max_pulses_per_train,
                unit="pulses",
                status="V",
                hint="split the trains",
            )
        ]
    if not below(gap, limits.min_wait_s):
        return []
    return [
        Issue(
            "device.inter-train-wait",
            Severity.REFUSE,
            f"only {_n(gap)} s from the end of a train to the next; the {name} needs at least "
            f"{_n(round(limits.min_wait_s, 3))} s after {train.n_pulses} pulses at {mso} %MSO to recover",
            DEVICE_SOURCE,
            value=gap,
            limit=limits.min_wait_s,
            unit="s",
            status="V",
            hint="lengthen the inter-train interval",
        )
    ]


@rule("device.single-pulse-rate", Severity.REFUSE, scope=Scope.TRAIN)
def device_single_pulse_rate(case: TrainCase) -> list[Issue] | None:
    if case.device is None or (single := case.single_pulse_interval) is None:
        return None
    interval, highest, minimum = single
    if isinstance(minimum, Unanswered) or not below(interval, minimum):
        return []
    what = "pairs" if case.train.kind == "paired_pulse" else "single pulses"
    return [
        Issue(
            "device.single-pulse-rate",
            Severity.REFUSE,
            f"{what} every {_n(interval)} s at {highest} %MSO; the {case.device.display_name} needs at least "
            f"{_n(minimum)} s between host-triggered pulses to recharge",
            DEVICE_SOURCE,
            value=interval,
            limit=minimum,
            unit="s",
            status="V",
            hint="lengthen the interval between pulses",
        )
    ]


@rule("device.paired-isi", Severity.REFUSE, scope=Scope.TRAIN)
def device_paired_isi(case: TrainCase) -> list[Issue] | None:
    """The device must time the pair's interval exactly, in one of its ISI modes (never rounded)."""
    device, train = case.device, case.train
    if device is None or case.deliverable_mso is None:
        return None
    if train.kind != "paired_pulse" or Capability.PAIRED_PULSE not in device.capabilities:
        return None
    isi_ms = round(1000 * (train.pulse_offsets_s[-1] - train.pulse_offsets_s[0]), 6)
    modes = tuple(device.paired_isi_modes_ms()) if isinstance(device, PairedPulseLimits) else ()
    if modes and paired_isi_mode(modes, isi_ms) is not None:
        return []
    settable = "; ".join(f"{_n(lo)}–{_n(hi)} ms in {step:g} ms steps" for lo, hi, step in modes)
    return [
        Issue(
            "device.paired-isi",
            Severity.REFUSE,
            f"the {device.display_name} cannot time a {_n(isi_ms)} ms inter-stimulus interval"
            + (f" (it sets {settable})" if settable else ": tmsctl cannot set its paired-pulse interval"),
            DEVICE_SOURCE,
            value=isi_ms,
            unit="ms",
            status="V",
            hint="choose an interval the stimulator sets exactly (tmsctl never rounds it), or another stimulator",
        )
    ]


@rule("device.stimulus", Severity.REFUSE, scope=Scope.TRAIN)
def device_stimulus(case: TrainCase) -> list[Issue] | None:
    """A protocol's ``stimulus`` (waveform, current direction) is a setting the device must be able to
    make for every train it is given to; the runner sets and reads it back before arming."""
    stimulus, device, train = case.evaluation.protocol.stimulus, case.device, case.train
    if stimulus is None or device is None or not _sets_stimulus_shape(device):
        return None
    assert isinstance(device, StimulusShapeLimits)
    isi_ms = (
        round(1000 * (train.pulse_offsets_s[-1] - train.pulse_offsets_s[0]), 6)
        if train.kind == "paired_pulse" else None
    )
    problem = device.stimulus_problem(stimulus.waveform, stimulus.current_direction, kind=train.kind, isi_ms=isi_ms)
    if problem is None:
        return []
    return [
        Issue(
            "device.stimulus",
            Severity.REFUSE,
            f"the {_stimulus_text(case.evaluation.protocol)} cannot be set for this protocol: {problem}",
            DEVICE_SOURCE,
            status="V",
            hint="change the protocol's stimulus or use a stimulator that offers it",
        )
    ]


@rule("device.stimulus-unset", Severity.INFO, scope=Scope.SESSION)
def device_stimulus_unset(evaluation: Evaluation) -> list[Issue] | None:
    """A unit whose waveform is not a setting tmsctl can make (and read back) keeps its own: say so."""
    stimulus, device = evaluation.protocol.stimulus, evaluation.device
    if stimulus is None or device is None or _sets_stimulus_shape(device):
        return None
    return [
        Issue(
            "device.stimulus-unset",
            Severity.INFO,
            f"tmsctl cannot set or read back the waveform of the {device.display_name}: the protocol's "
            f"{_stimulus_text(evaluation.protocol)} is the unit's own (check it)",
            DEVICE_SOURCE,
            status="V",
        )
    ]


def _sets_stimulus_shape(device: DeviceLimits) -> bool:
    return Capability.STIMULUS_SHAPE in device.capabilities and isinstance(device, StimulusShapeLimits)


def _stimulus_text(protocol: Protocol) -> str:
    stimulus = protocol.stimulus
    assert stimulus is not None
    return f"{stimulus.waveform.replace('_', ' ')} waveform, {stimulus.current_direction} current"


# --- the protocol as a whole ----------------------------------------------------------------


@rule("timing.external-trigger", Severity.REFUSE, scope=Scope.SESSION)
def external_timing(evaluation: Evaluation) -> list[Issue]:
    """An externally timed protocol is checked against the device's limits like any other (the device
    rules do not ask who times the pulses). What is left is who drives the trigger: tmsctl's own RTS
    line (``timing.rts-burst``), or a trigger box outside tmsctl, which only a unit that reports every
    pulse lets tmsctl count and stop at the protocol's pulses."""
    protocol, device = evaluation.protocol, evaluation.device
    if protocol.timed_by != "external_trigger" or protocol.trigger != "external":
        return []
    if device is None or Capability.PULSE_REPORTS in device.capabilities:
        return []
    return [
        Issue(
            "timing.external-trigger",
            Severity.REFUSE,
            f"trigger: external: the {device.display_name} does not report the pulses it fires, so "
            "tmsctl could neither count what a trigger box fires nor stop it at the protocol's pulses",
            "tmsctl runner (issue 16)",
            status="D",
            hint="use a stimulator that reports every pulse (a MagPro), or write trigger: rts to have "
            "tmsctl time the pulses on the RTS line (Magstim quick-fire cable)",
        )
    ]


@rule("timing.rts-burst", Severity.REFUSE, scope=Scope.TRAIN)
def rts_burst(case: TrainCase) -> list[Issue] | None:
    """tmsctl fires RTS pulses closer than ``RTS_BURST_GAP_S`` as one burst, with no intensity read-back
    and no pause inside it: such a burst may last at most ``RTS_BURST_MAX_S``."""
    protocol = case.evaluation.protocol
    if protocol.timed_by != "external_trigger" or protocol.trigger != "rts":
        return None
    longest = max(burst[-1] - burst[0] for burst in host_bursts(case.train.pulse_offsets_s))
    if not exceeds(longest, RTS_BURST_MAX_S):
        return []
    return [
        Issue(
            "timing.rts-burst",
            Severity.REFUSE,
            f"pulses less than {_n(RTS_BURST_GAP_S)} s apart for {_n(round(longest, 6))} s: tmsctl times "
            f"RTS pulses that close as one burst, with no intensity read-back and no pause inside it, "
            f"for at most {_n(RTS_BURST_MAX_S)} s",
            "tmsctl runner: RTS triggering",
            value=longest,
            limit=RTS_BURST_MAX_S,
            unit="s",
            status="D",
            hint="space the pulses at least 0.1 s apart, or shorten the bursts; a long fast train is for "
            "a stimulator that times it itself (timed_by: stimulator)",
        )
    ]


@rule("device.model", Severity.REFUSE, scope=Scope.SESSION)
def device_model(evaluation: Evaluation) -> list[Issue] | None:
    protocol, device = evaluation.protocol, evaluation.device
    if device is None:
        return None
    allowed_models = protocol.requires.models
    if not allowed_models or device.model in allowed_models:
        return []
    return [
        Issue(
            "device.model",
            Severity.REFUSE,
            f"this protocol may run only on {', '.join(allowed_models)}, not on the {device.display_name} "
            f"({device.model})",
            "the protocol's requires.models",
            status="D",
            hint="use one of the listed stimulators",
        )
    ]


@rule("device.capability", Severity.REFUSE, scope=Scope.SESSION)
def device_capability(evaluation: Evaluation) -> list[Issue] | None:
    protocol, device = evaluation.protocol, evaluation.device
    if device is None:
        return None
    needed = set(protocol.requires.capabilities) | implied_capabilities(protocol)
    return [
        Issue(
            "device.capability",
            Severity.REFUSE,
            _capability_text(device, Capability(capability)),
            DEVICE_SOURCE,
            status="V",
            hint=_capability_hint(Capability(capability)),
        )
        for capability in sorted(needed - set(device.capabilities))
    ]


def implied_capabilities(protocol: Protocol) -> set[Capability]:
    """What the pattern needs the device to do, given who times the pulses."""
    kind = protocol.plan().kind
    external = protocol.timed_by == "external_trigger"
    needed: set[Capability] = set()
    if kind == "paired_pulse":
        needed.add(Capability.PAIRED_PULSE)
    elif kind == "single_pulse":
        needed.add(Capability.SINGLE_PULSE)
    elif external:
        pass
    elif kind == "train":
        needed.add(Capability.INTERNAL_TRAIN)
    else:
        needed.add(Capability.THETA_BURST)
    if external:
        needed.add(Capability.EXTERNAL_TRIGGER)
    if external and protocol.trigger == "rts":
        needed.add(Capability.RTS_TRIGGER)
    return needed


def _capability_text(device: DeviceLimits, capability: Capability) -> str:
    name = device.display_name
    if capability is Capability.THETA_BURST:
        return f"the {name} cannot time theta bursts itself (no {capability.value} capability)"
    if capability is Capability.INTERNAL_TRAIN:
        return f"the {name} cannot time trains itself (no {capability.value} capability)"
    if capability is Capability.PAIRED_PULSE:
        return f"the {name} cannot deliver paired pulses (no {capability.value} capability)"
    if capability is Capability.EXTERNAL_TRIGGER:
        return f"the {name} has no external trigger input, which timed_by: external_trigger needs"
    if capability is Capability.RTS_TRIGGER:
        return f"the {name} has no trigger input tmsctl drives through the serial RTS line, which trigger: rts needs"
    return f"the {name} lacks the {capability.value} capability this protocol requires"


def _capability_hint(capability: Capability) -> str:
    if capability is Capability.THETA_BURST:
        return "use a stimulator that times theta bursts itself (e.g. a MagPro X100)"
    if capability is Capability.INTERNAL_TRAIN:
        return "use a stimulator that times trains itself (e.g. a Magstim Rapid² or a MagPro)"
    return "use a stimulator with this capability"
