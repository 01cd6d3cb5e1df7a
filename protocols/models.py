"""The protocol file format: what a technician writes to describe a stimulation session.

A protocol file is one YAML 1.2 mapping. Every key is checked: unknown keys, wrong types and
absurd values are refused with the file, line and field (see ``tmsctl.protocols.loader``).
Units are part of every field name (``frequency_hz``, ``interval_ms``, ``distance_cm``).

Example — the NeuroStar 10 Hz left-DLPFC protocol::

    # yaml-language-server: $schema=../schema/protocol.schema.json
    schema_version: 1
    id: neurostar-10hz-ldlpfc
    title: 10 Hz left DLPFC, 3000 pulses (NeuroStar)
    sources:
      - citation: O'Reardon JP et al. 2007, Biol Psychiatry 62:1208
        status: S
    coil: {family: figure8}
    target: {method: beam_f3, site: F3, region: left DLPFC}
    hemisphere: left
    intensity: {reference: rMT, scaling_pct: 120}
    pattern:
      kind: rtms
      frequency_hz: 10
      pulses_per_train: 40          # 4 s per train
      inter_train_interval_s: 26    # off time: end of one train to the next train's first pulse
      trains: 75
    limits: {max_total_pulses: 3000}

Top-level keys
--------------
``schema_version`` (required, ``1``) — the file format version; later versions migrate old files.
``id`` — lower-case letters, digits and ``-``; ``title``; optional ``description`` and ``notes``.
``status`` — optional; ``provisional`` marks parameters still to be confirmed. Such a protocol is
never vetted by the library: a session needs a site approval (``tmsctl protocol approve``).
``sources`` — citations, each ``{citation, status, url?, note?}``; ``status`` is the evidence tag
used throughout the reference: V verified, S secondary, C from code, R recalled, D our design,
U unverified.
``coil`` — ``{family, model?}``; ``family`` selects the safety rules (``figure8`` uses the
Wassermann/Chen tables, ``H1``/``H4``/``H7`` the envelopes of the cleared deep-TMS protocols,
every other family has no table, so repetitive protocols need a recorded override).
``target`` — where the coil goes; ``method`` is one of ``eeg_10_20`` (``site: F3``),
``beam_f3`` (``site: F3|F4``), ``distance_rule`` (``distance_cm: 5``, from the hand or foot motor
hot spot), ``mni`` (``x_mm, y_mm, z_mm``), ``neuronavigation`` (``landmark``), ``motor_hotspot``
(``muscle``) or ``described`` (free ``description``). Optional ``region`` names the brain area.
``hemisphere`` — ``left``, ``right``, ``bilateral`` or ``midline``; checked against the target.
``stimulus`` — optional ``{waveform, current_direction}``.
``intensity`` — ``{reference, scaling_pct, ramp?}``: ``reference`` is ``rMT``, ``aMT`` (percent of
the resting/active motor threshold measured with this stimulator and coil) or ``MSO`` (absolute
percent of maximum stimulator output, a whole number). ``scaling_pct: 120`` means 120 %, never
write ``1.2``. ``ramp: {first_trains: 5, start_pct_of_target: 80}`` raises the intensity linearly
from 80 % of the target at the first train to the full target at train 6.
``pattern`` — what is delivered; ``kind`` is one of:

* ``single_pulse``: ``pulses``, ``interval_s`` (onset to onset).
* ``paired_pulse`` (BiStim): ``conditioning_intensity`` (``{reference, scaling_pct}``; the
  top-level ``intensity`` is the test pulse), ``inter_stimulus_interval_ms``, ``pairs``,
  ``pair_interval_s`` (onset to onset).
* ``rtms``: ``frequency_hz``, ``pulses_per_train`` *or* ``train_duration_s``, ``trains`` and, when
  there is more than one train, *either* ``inter_train_interval_s`` (the off time from the end of
  a train — its first pulse plus pulses/frequency — to the next train's first pulse) *or*
  ``train_onset_interval_s`` (first pulse to first pulse).
* ``theta_burst``: ``pulses_per_burst`` (3), ``burst_frequency_hz`` (50, inside a burst),
  ``burst_rate_hz`` (5, bursts per second), ``bursts_per_train``, ``trains`` and the train
  spacing as for ``rtms``. iTBS: 10 bursts per train, trains every 10 s; cTBS600: 200 bursts.
* ``layers``: nested repetitions, innermost first, like NIBS-BIDS ``pattern1..N``. Each layer is
  ``{count, interval_ms | interval_s | frequency_hz, builds}``; the interval is onset to onset
  between the items of the layer below (pulses for the first layer); ``builds`` names what the
  layer makes: ``burst``, ``train`` (exactly one layer), ``block`` or ``session``.

``timed_by`` — ``stimulator`` (default: the device times trains and bursts itself) or
``external_trigger`` (a trigger input times the pulses; tmsctl arms and records).
``trigger`` — with ``timed_by: external_trigger`` only, and then required: which source drives the
trigger input. ``rts``: tmsctl itself, one edge of the serial port's RTS line per pulse, on the
schedule's instants (the Magstim quick-fire cable); ``external``: a box outside tmsctl (a lab's
DAQ or EEG system).
``accelerated`` — several sessions a day: ``{sessions_per_day, inter_session_interval_min,
interval_measured: start_to_start | end_to_start}``.
``requires`` — ``{capabilities: [...], models: [...]}``: device capabilities and, optionally, the
stimulator models the protocol may run on. Capabilities implied by the pattern are added.
``limits`` — the author's own ceilings, checked when the file is loaded: ``max_total_pulses``,
``max_session_duration_s``, ``max_pulses_per_day``.

Timing conventions (stated once, used everywhere): a train of n pulses at f Hz lasts n/f seconds
(each pulse owns a 1/f slot, so 40 pulses at 10 Hz last 4 s); all repetition intervals inside the
expanded schedule are onset to onset. A schedule reports the nominal session duration (the
outermost repetition's count × interval, e.g. 75 × 30 s = 37.5 min), the end of the last train and
the onset of the last pulse.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator
from pydantic_core import PydanticCustomError

from tmsctl.drivers.base import Capability

SCHEMA_VERSION = 1

# Absurdity guards: far beyond any published protocol, small enough that expansion stays cheap.
MAX_PULSES_PER_SESSION = 100_000
MAX_SESSION_DURATION_S = 12 * 3600.0
MAX_FREQUENCY_HZ = 250.0
# Hard physical bounds of every time and frequency field, the same whichever unit the author
# chose: no pulse rate above MAX_FREQUENCY_HZ (so no onset-to-onset interval below 4 ms, be it
# written as interval_ms, interval_s or frequency_hz) and nothing longer than a 12 h session.
# Beyond them a file does not load; they are not guideline limits and no override lifts them.
MIN_INTERVAL_S = 1 / MAX_FREQUENCY_HZ
MAX_INTERVAL_S = MAX_SESSION_DURATION_S
MIN_FREQUENCY_HZ = 1 / MAX_INTERVAL_S
# Paired pulses come from two stimulators (BiStim), so they may be closer than one unit's pulses:
# down to the BiStim's 0.1 ms high-resolution step (magstim.md).
MIN_INTER_STIMULUS_INTERVAL_MS = 0.1
MAX_INTER_STIMULUS_INTERVAL_MS = 1000.0

_T = TypeVar("_T")
Seq = Annotated[tuple[_T, ...], Strict(False)]
"""A YAML sequence, stored as a tuple so protocols stay immutable and hashable."""

Name = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=4000)]
IntervalSeconds = Annotated[float, Field(ge=MIN_INTERVAL_S, le=MAX_INTERVAL_S)]
IntervalMs = Annotated[float, Field(ge=MIN_INTERVAL_S * 1000, le=MAX_INTERVAL_S * 1000)]
OffSeconds = Annotated[float, Field(ge=0, le=MAX_INTERVAL_S)]
"""An off time (end of one train to the next one's first pulse); 0 means back to back."""
Frequency = Annotated[float, Field(ge=MIN_FREQUENCY_HZ, le=MAX_FREQUENCY_HZ)]
Count = Annotated[int, Field(ge=1, le=MAX_PULSES_PER_SESSION)]

CoilFamily = Literal["figure8", "H1", "H4", "H7", "circular", "double_cone", "other"]
IntensityReference = Literal["rMT", "aMT", "MSO"]
Hemisphere = Literal["left", "right", "bilateral", "midline"]
TrainKind = Literal["single_pulse", "paired_pulse", "train", "theta_burst", "patterned"]

# 10-20 / 10-10 electrode names; odd numbers lie over the left hemisphere, even over the right.
_EEG_SITE = re.compile(r"^(Fp|AF|F|FT|FC|C|T|TP|CP|P|PO|O|I)(z|[1-9]|10)$")


def invalid(field: str, message: str, hint: str = "") -> PydanticCustomError:
    """A validation error that names the offending field below the model that raises it."""
    return PydanticCustomError(
        "tmsctl_invalid", "{message}", {"message": message, "field": field, "hint": hint}
    )


def exact(value: float) -> Fraction:
    """The decimal a person wrote (0.02 stays 1/50), so timing arithmetic does not drift."""
    return Fraction(repr(float(value)))


def format_number(value: float) -> str:
    return f"{value:,.6g}" if abs(value) >= 1000 else f"{value:.6g}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# --- provenance -----------------------------------------------------------------------------


class Source(_Model):
    citation: Annotated[str, Field(min_length=3, max_length=500)] = Field(
        description='Author, year, journal or document, e.g. "Huang YZ et al. 2005, Neuron 45:201".',
    )
    status: Literal["V", "S", "C", "R", "D", "U"] = Field(
        description=(
            "Evidence tag: V verified, S secondary, C from code, R recalled, D our design, U unverified."
        ),
    )
    url: Annotated[str, Field(pattern=r"^https?://\S+$", max_length=500)] | None = None
    note: LongText | None = None


# --- coil, target, stimulus -----------------------------------------------------------------


class Coil(_Model):
    family: CoilFamily = Field(
        description=(
            "Selects the safety rules: figure8 (Wassermann/Chen), H1/H4/H7 (cleared envelopes), others none."
        ),
    )
    model: Name | None = Field(
        None,
        description='The coil model, e.g. "Magstim D70² Alpha"; a motor threshold must come from this model.',
    )


class _TargetBase(_Model):
    region: Name | None = Field(None, description='The brain area aimed at, e.g. "left DLPFC".')


class EegSiteTarget(_TargetBase):
    method: Literal["eeg_10_20"]
    site: Annotated[str, Field(max_length=4)] = Field(
        description="A 10-20/10-10 electrode position, e.g. F3, F4, Fz, AF3.",
    )

    @model_validator(mode="after")
    def _known_site(self) -> EegSiteTarget:
        if not (_EEG_SITE.match(self.site) or self.site in {"T3", "T4", "T5", "T6"}):
            raise invalid(
                "site", f"{self.site!r} is not a 10-20/10-10 electrode name", "e.g. F3, F4, Fz, AF3"
            )
        return self


class BeamF3Target(_TargetBase):
    method: Literal["beam_f3"]
    site: Literal["F3", "F4"] = Field(
        description="F3 (left) or F4 (right), located with the Beam et al. 2009 head-measurement method.",
    )


class DistanceRuleTarget(_TargetBase):
    method: Literal["distance_rule"]
    distance_cm: Annotated[float, Field(gt=0, le=15)] = Field(
        description='Distance along the scalp from the reference point, e.g. 5, 5.5 or 6 (the "n-cm rule").',
    )
    reference_point: Literal["hand_motor_hotspot", "foot_motor_hotspot"] = "hand_motor_hotspot"
    direction: Literal["anterior", "posterior"] = "anterior"


class MniTarget(_TargetBase):
    method: Literal["mni"]
    x_mm: Annotated[float, Field(ge=-130, le=130)] = Field(description="MNI x in mm; negative is left.")
    y_mm: Annotated[float, Field(ge=-130, le=130)]
    z_mm: Annotated[float, Field(ge=-130, le=130)]


class NeuronavigationTarget(_TargetBase):
    method: Literal["neuronavigation"]
    landmark: Name = Field(
        description=(
            "The individual target marked in the neuronavigation system, e.g. the "
            "sgACC-anticorrelated cluster."
        ),
    )


class MotorHotspotTarget(_TargetBase):
    method: Literal["motor_hotspot"]
    muscle: Annotated[str, Field(min_length=2, max_length=40)] = Field(
        description="The muscle whose hot spot is stimulated, e.g. FDI, APB, TA.",
    )


class DescribedTarget(_TargetBase):
    method: Literal["described"]
    description: LongText = Field(
        description=(
            "A written placement procedure, when none of the structured methods fits (e.g. H7 helmet"
            " placement)."
        ),
    )


Target = Annotated[
    EegSiteTarget
    | BeamF3Target
    | DistanceRuleTarget
    | MniTarget
    | NeuronavigationTarget
    | MotorHotspotTarget
    | DescribedTarget,
    Field(discriminator="method"),
]


class Stimulus(_Model):
    waveform: Literal["biphasic", "monophasic", "half_sine", "biphasic_burst"]
    current_direction: Literal["normal", "reversed"] = "normal"


# --- intensity ------------------------------------------------------------------------------


class Intensity(_Model):
    reference: IntensityReference = Field(
        description=(
            "rMT / aMT: percent of the motor threshold measured with this stimulator and coil; MSO: absolute."
        ),
    )
    scaling_pct: Annotated[float, Field(gt=0, le=300)] = Field(
        description="Percent of the reference: 120 means 120 % rMT; with MSO a whole number such as 55.",
    )

    @model_validator(mode="after")
    def _plausible(self) -> Intensity:
        if self.reference == "MSO":
            if self.scaling_pct != int(self.scaling_pct) or self.scaling_pct > 110:
                raise invalid(
                    "scaling_pct",
                    f"{format_number(self.scaling_pct)} %MSO is not a whole percent between 1 and 110",
                    "stimulators take whole percent of maximum output",
                )
        elif self.scaling_pct < 10:
            raise invalid(
                "scaling_pct",
                f"{format_number(self.scaling_pct)} % {self.reference} is implausibly low",
                "scaling_pct is in percent: write 120 for 120 % MT, not 1.2",
            )
        return self

    def describe(self) -> str:
        if self.reference == "MSO":
            return f"{format_number(self.scaling_pct)} %MSO"
        return f"{format_number(self.scaling_pct)} % {self.reference}"


class Ramp(_Model):
    first_trains: Annotated[int, Field(ge=1, le=1000)] = Field(
        description="How many trains the ramp spans; the train after them runs at the full target.",
    )
    start_pct_of_target: Annotated[float, Field(ge=10, lt=100)] = Field(
        description="Intensity of the first train in percent of the target intensity, e.g. 80.",
    )


class SessionIntensity(Intensity):
    ramp: Ramp | None = None


# --- patterns -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanLayer:
    """One repetition layer in canonical form: ``count`` items, ``interval_s`` onset to onset."""

    count: int
    interval_s: Fraction
    builds: str


@dataclass(frozen=True)
class Plan:
    """Any pattern in canonical nested-layer form, split at the train.

    ``inner`` builds one train from pulses, ``outer`` repeats trains; both innermost first.
    """

    kind: TrainKind
    inner: tuple[PlanLayer, ...]
    outer: tuple[PlanLayer, ...]
    conditioning: Intensity | None = None

    @property
    def pulses_per_train(self) -> int:
        return math.prod(layer.count for layer in self.inner)

    @property
    def trains(self) -> int:
        return math.prod(layer.count for layer in self.outer)

    @property
    def total_pulses(self) -> int:
        return self.pulses_per_train * self.trains

    @property
    def train_duration_s(self) -> Fraction:
        """Nominal train length: n/f for a train; the pulse span for a pair; 0 for one pulse."""
        if self.kind == "paired_pulse":
            return self.inner[0].interval_s
        return nominal_duration_s(self.inner)

    @property
    def session_duration_s(self) -> Fraction:
        """Nominal session length: the outermost repetition's count × interval."""
        nominal = nominal_duration_s(self.outer)
        return nominal if nominal else self.train_duration_s

    @property
    def end_s(self) -> Fraction:
        """End of the last train: its onset plus its nominal duration."""
        return span_s(self.outer) + self.train_duration_s

    @property
    def last_pulse_onset_s(self) -> Fraction:
        return span_s(self.outer) + span_s(self.inner)


def nominal_duration_s(layers: tuple[PlanLayer, ...]) -> Fraction:
    """count × interval of the outermost layer that repeats anything (0 when nothing repeats)."""
    for layer in reversed(layers):
        if layer.count > 1:
            return layer.count * layer.interval_s
    return Fraction(0)


def span_s(layers: tuple[PlanLayer, ...]) -> Fraction:
    """Onset of the last item relative to the first."""
    return sum(((layer.count - 1) * layer.interval_s for layer in layers), Fraction(0))


def _check_fits(layers: tuple[PlanLayer, ...], field_of: list[str]) -> None:
    """Each layer's interval must leave room for the group it repeats (groups never overlap)."""
    for index in range(1, len(layers)):
        layer = layers[index]
        group = nominal_duration_s(layers[:index])
        if layer.count > 1 and layer.interval_s < group:
            raise invalid(
                field_of[index],
                f"the interval {format_number(float(layer.interval_s))} s is shorter than the "
                f"{format_number(float(group))} s group it repeats",
                "intervals are onset to onset: make the interval at least as long as the group",
            )


class SinglePulsePattern(_Model):
    kind: Literal["single_pulse"]
    pulses: Count
    interval_s: IntervalSeconds | None = Field(
        None,
        description="Onset to onset; required when there is more than one pulse.",
    )

    @model_validator(mode="after")
    def _interval(self) -> SinglePulsePattern:
        if self.pulses > 1 and self.interval_s is None:
            raise invalid("interval_s", "more than one pulse needs interval_s", "e.g. interval_s: 5")
        return self

    def plan(self) -> Plan:
        outer = (PlanLayer(self.pulses, exact(self.interval_s or 0), "session"),)
        return Plan("single_pulse", (), outer)


class PairedPulsePattern(_Model):
    kind: Literal["paired_pulse"]
    conditioning_intensity: Intensity = Field(
        description="The first pulse of each pair; the top-level intensity is the test (second) pulse.",
    )
    inter_stimulus_interval_ms: Annotated[
        float, Field(ge=MIN_INTER_STIMULUS_INTERVAL_MS, le=MAX_INTER_STIMULUS_INTERVAL_MS)
    ] = Field(
        description="Conditioning pulse onset to test pulse onset.",
    )
    pairs: Count
    pair_interval_s: IntervalSeconds | None = Field(
        None,
        description="Onset of one pair to the onset of the next; required with more than one pair.",
    )

    @model_validator(mode="after")
    def _intervals(self) -> PairedPulsePattern:
        if self.pairs > 1 and self.pair_interval_s is None:
            raise invalid(
                "pair_interval_s", "more than one pair needs pair_interval_s", "e.g. pair_interval_s: 5"
            )
        if (
            self.pair_interval_s is not None
            and self.pair_interval_s * 1000 <= self.inter_stimulus_interval_ms
        ):
            raise invalid(
                "pair_interval_s", "pairs would overlap: pair_interval_s ≤ the inter-stimulus interval"
            )
        return self

    def plan(self) -> Plan:
        inner = (PlanLayer(2, exact(self.inter_stimulus_interval_ms) / 1000, "train"),)
        outer = (PlanLayer(self.pairs, exact(self.pair_interval_s or 0), "session"),)
        return Plan("paired_pulse", inner, outer, conditioning=self.conditioning_intensity)


class _TrainSpacing(_Model):
    trains: Annotated[int, Field(ge=1, le=10_000)] = 1
    inter_train_interval_s: OffSeconds | None = Field(
        None,
        description=(
            "Off time: from the end of a train (first pulse + pulses/frequency) to the next train's "
            "first pulse."
        ),
    )
    train_onset_interval_s: IntervalSeconds | None = Field(
        None,
        description=(
            "Alternative to inter_train_interval_s: first pulse of a train to the first pulse of the next."
        ),
    )

    def _cycle_s(self, train_duration_s: Fraction) -> Fraction:
        if self.trains == 1:
            return Fraction(0)
        if self.inter_train_interval_s is not None:
            return train_duration_s + exact(self.inter_train_interval_s)
        assert self.train_onset_interval_s is not None  # enforced by _check_spacing
        return exact(self.train_onset_interval_s)

    def _check_spacing(self, train_duration_s: Fraction) -> None:
        both = self.inter_train_interval_s is not None and self.train_onset_interval_s is not None
        if both:
            raise invalid(
                "train_onset_interval_s",
                "give either inter_train_interval_s (off time) or train_onset_interval_s (onset to onset), not both",
            )
        if self.trains > 1 and self.inter_train_interval_s is None and self.train_onset_interval_s is None:
            raise invalid(
                "inter_train_interval_s",
                f"{self.trains} trains need their spacing",
                "add inter_train_interval_s (off time after each train) or train_onset_interval_s",
            )
        if self.train_onset_interval_s is not None and exact(self.train_onset_interval_s) < train_duration_s:
            raise invalid(
                "train_onset_interval_s",
                f"trains would overlap: onset interval {format_number(self.train_onset_interval_s)} s is "
                f"shorter than the {format_number(float(train_duration_s))} s train",
            )


class RtmsPattern(_TrainSpacing):
    kind: Literal["rtms"]
    frequency_hz: Frequency
    pulses_per_train: Count | None = None
    train_duration_s: IntervalSeconds | None = Field(
        None,
        description="Alternative to pulses_per_train: pulses = frequency × duration must be a whole number.",
    )

    @model_validator(mode="after")
    def _shape(self) -> RtmsPattern:
        if (self.pulses_per_train is None) == (self.train_duration_s is None):
            raise invalid(
                "pulses_per_train",
                "give exactly one of pulses_per_train and train_duration_s",
                "e.g. pulses_per_train: 40 (at 10 Hz that is a 4 s train)",
            )
        if self.pulses_per_train is None:
            pulses = exact(self.frequency_hz) * exact(self.train_duration_s or 0)
            if pulses.denominator != 1:
                raise invalid(
                    "train_duration_s",
                    f"{format_number(self.frequency_hz)} Hz × {format_number(self.train_duration_s or 0)} s "
                    f"= {float(pulses):g} pulses, not a whole number",
                    "use pulses_per_train, or a duration that holds a whole number of pulses",
                )
            if pulses < 2:
                raise invalid(
                    "train_duration_s", "a train needs at least 2 pulses; use single_pulse otherwise"
                )
        elif self.pulses_per_train < 2:
            raise invalid("pulses_per_train", "a train needs at least 2 pulses", "use kind: single_pulse")
        self._check_spacing(self._pulse_count() / exact(self.frequency_hz))
        return self

    def _pulse_count(self) -> int:
        if self.pulses_per_train is not None:
            return self.pulses_per_train
        return int(exact(self.frequency_hz) * exact(self.train_duration_s or 0))

    def plan(self) -> Plan:
        interval = 1 / exact(self.frequency_hz)
        inner = (PlanLayer(self._pulse_count(), interval, "train"),)
        cycle = self._cycle_s(self._pulse_count() * interval)
        return Plan("train", inner, (PlanLayer(self.trains, cycle, "session"),))


class ThetaBurstPattern(_TrainSpacing):
    kind: Literal["theta_burst"]
    pulses_per_burst: Annotated[int, Field(ge=2, le=10)] = 3
    burst_frequency_hz: Frequency = Field(
        50.0,
        description="Pulse rate inside a burst (50 Hz in standard TBS).",
    )
    burst_rate_hz: Frequency = Field(5.0, description="Bursts per second (5 Hz, theta, in standard TBS).")
    bursts_per_train: Annotated[int, Field(ge=1, le=10_000)] = Field(
        description="iTBS: 10 (a 2 s train); cTBS300: 100; cTBS600: 200.",
    )

    @model_validator(mode="after")
    def _shape(self) -> ThetaBurstPattern:
        burst_s = self.pulses_per_burst / exact(self.burst_frequency_hz)
        if self.bursts_per_train > 1 and burst_s > 1 / exact(self.burst_rate_hz):
            raise invalid(
                "burst_rate_hz",
                f"a burst of {self.pulses_per_burst} pulses at {format_number(self.burst_frequency_hz)} Hz "
                f"lasts {float(burst_s) * 1000:g} ms, longer than the {1000 / self.burst_rate_hz:g} ms between bursts",
            )
        self._check_spacing(self.bursts_per_train / exact(self.burst_rate_hz))
        return self

    def plan(self) -> Plan:
        inner = (
            PlanLayer(self.pulses_per_burst, 1 / exact(self.burst_frequency_hz), "burst"),
            PlanLayer(self.bursts_per_train, 1 / exact(self.burst_rate_hz), "train"),
        )
        cycle = self._cycle_s(nominal_duration_s(inner))
        return Plan("theta_burst", inner, (PlanLayer(self.trains, cycle, "session"),))


_LEVELS = {"burst": 0, "train": 1, "block": 2, "session": 3}


class Layer(_Model):
    count: Count
    interval_ms: IntervalMs | None = None
    interval_s: IntervalSeconds | None = None
    frequency_hz: Frequency | None = Field(
        None,
        description="Items per second; the same as interval_s = 1/frequency_hz.",
    )
    builds: Literal["burst", "train", "block", "session"] = Field(
        description=(
            "What this layer makes from the items of the layer below: burst, train, block or session."
        ),
    )

    @model_validator(mode="after")
    def _one_interval(self) -> Layer:
        given = [v for v in (self.interval_ms, self.interval_s, self.frequency_hz) if v is not None]
        if len(given) > 1:
            raise invalid("interval_s", "give one of interval_ms, interval_s and frequency_hz, not several")
        if self.count > 1 and not given:
            raise invalid(
                "interval_ms",
                f"{self.count} items need their spacing",
                "add interval_ms, interval_s or frequency_hz",
            )
        return self

    def interval(self) -> Fraction:
        if self.interval_ms is not None:
            return exact(self.interval_ms) / 1000
        if self.interval_s is not None:
            return exact(self.interval_s)
        if self.frequency_hz is not None:
            return 1 / exact(self.frequency_hz)
        return Fraction(0)


def is_standard_theta_burst(inner: tuple[PlanLayer, ...]) -> bool:
    """3 pulses at 50 Hz per burst, bursts at 5 Hz (Huang 2005)."""
    effective = [layer for layer in inner if layer.count > 1]
    return (
        len(effective) == 2
        and effective[0].count == 3
        and effective[0].interval_s == Fraction(1, 50)
        and effective[1].interval_s == Fraction(1, 5)
    )


class LayersPattern(_Model):
    kind: Literal["layers"]
    layers: Annotated[Seq[Layer], Field(min_length=1, max_length=8)] = Field(
        description=(
            "Innermost first: the first layer repeats pulses, each next layer repeats the group below."
        ),
    )

    @model_validator(mode="after")
    def _structure(self) -> LayersPattern:
        trains = [i for i, layer in enumerate(self.layers) if layer.builds == "train"]
        if len(trains) != 1:
            raise invalid(
                "layers",
                f"exactly one layer must have builds: train (found {len(trains)})",
                "mark the layer that completes one train, e.g. the 10 bursts of an iTBS train",
            )
        levels = [_LEVELS[layer.builds] for layer in self.layers]
        for index in range(1, len(levels)):
            if levels[index] < levels[index - 1] or (
                levels[index] == levels[index - 1] == _LEVELS["session"]
            ):
                raise invalid(
                    f"layers.{index}.builds",
                    f"a {self.layers[index].builds} layer cannot come after a {self.layers[index - 1].builds} layer",
                    "order from the inside out: burst, train, block, session",
                )
        total = math.prod(layer.count for layer in self.layers)
        if total > MAX_PULSES_PER_SESSION:
            raise invalid(
                "layers",
                f"{total:,} pulses per session is beyond any protocol (limit {MAX_PULSES_PER_SESSION:,})",
            )
        plan_layers = tuple(PlanLayer(layer.count, layer.interval(), layer.builds) for layer in self.layers)
        _check_fits(plan_layers, [f"layers.{i}" for i in range(len(self.layers))])
        return self

    def plan(self) -> Plan:
        plan_layers = tuple(PlanLayer(layer.count, layer.interval(), layer.builds) for layer in self.layers)
        split = next(i for i, layer in enumerate(self.layers) if layer.builds == "train") + 1
        inner, outer = plan_layers[:split], plan_layers[split:]
        effective = [layer for layer in inner if layer.count > 1]
        kind: TrainKind
        if not effective:
            kind = "single_pulse"
        elif len(effective) == 1:
            kind = "train"
        elif is_standard_theta_burst(inner):
            kind = "theta_burst"
        else:
            kind = "patterned"
        return Plan(kind, inner, outer)


Pattern = Annotated[
    SinglePulsePattern | PairedPulsePattern | RtmsPattern | ThetaBurstPattern | LayersPattern,
    Field(discriminator="kind"),
]


# --- sessions, requirements, limits -----------------------------------------------------------


class Accelerated(_Model):
    sessions_per_day: Annotated[int, Field(ge=2, le=24)]
    inter_session_interval_min: Annotated[float, Field(gt=0, le=720)]
    interval_measured: Literal["start_to_start", "end_to_start"] = Field(
        description="Which points the interval joins; sources are often ambiguous, so it must be stated.",
    )


class Requirements(_Model):
    capabilities: Annotated[Seq[Annotated[Capability, Strict(False)]], Field(max_length=16)] = Field(
        (),
        description="Device capabilities needed beyond those the pattern implies.",
    )
    models: Annotated[Seq[Name], Field(max_length=32)] = Field(
        (),
        description="Stimulator models (driver names) the protocol may run on; empty means any.",
    )


class Limits(_Model):
    max_total_pulses: Annotated[int, Field(ge=1, le=MAX_PULSES_PER_SESSION)] | None = Field(
        None,
        description="The most pulses one session may deliver.",
    )
    max_session_duration_s: IntervalSeconds | None = Field(None, description="The longest nominal session.")
    max_pulses_per_day: Annotated[int, Field(ge=1, le=24 * MAX_PULSES_PER_SESSION)] | None = None


# --- the protocol ---------------------------------------------------------------------------


class Protocol(_Model):
    """A stimulation protocol file (tmsctl protocol format, schema_version 1)."""

    schema_version: Literal[1] = Field(description="The file format version; write 1.")
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")] = Field(
        description="A short name: lower-case letters, digits and '-'.",
    )
    title: Name
    description: LongText | None = None
    status: Literal["provisional"] | None = Field(
        None,
        description=(
            "provisional: parameters still to be confirmed (e.g. against the paper). A provisional "
            "protocol is never a vetted library protocol: a session needs a site approval."
        ),
    )
    sources: Annotated[Seq[Source], Field(max_length=32)] = ()
    coil: Coil
    target: Target
    hemisphere: Hemisphere
    stimulus: Stimulus | None = None
    intensity: SessionIntensity = Field(description="The train intensity (the test pulse for paired_pulse).")
    pattern: Pattern
    timed_by: Literal["stimulator", "external_trigger"] = Field(
        "stimulator",
        description="Who times the pulses: the stimulator itself, or an external TTL trigger source.",
    )
    trigger: Literal["rts", "external"] | None = Field(
        None,
        description=(
            "With timed_by: external_trigger (and only then, where it is required): what drives the "
            "trigger input. rts: tmsctl, one RTS edge per pulse at the scheduled instant; external: "
            "a trigger box outside tmsctl."
        ),
    )
    accelerated: Accelerated | None = None
    requires: Requirements = Requirements()
    limits: Limits = Limits()
    notes: LongText | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Protocol:
        self._check_hemisphere()
        self._check_trigger()
        plan = self.pattern.plan()
        self._check_ramp(plan)
        self._check_totals(plan)
        return self

    def plan(self) -> Plan:
        return self.pattern.plan()

    def _check_trigger(self) -> None:
        if self.timed_by == "external_trigger" and self.trigger is None:
            raise invalid(
                "trigger",
                "timed_by: external_trigger needs trigger: rts or trigger: external",
                "rts: tmsctl times each pulse on the serial port's RTS line; external: a trigger box does",
            )
        if self.timed_by == "stimulator" and self.trigger is not None:
            raise invalid(
                "trigger",
                f"trigger: {self.trigger} says who drives a trigger input, which timed_by: stimulator does not use",
                "write timed_by: external_trigger, or drop trigger",
            )

    def _check_hemisphere(self) -> None:
        target = self.target
        expected: set[str] | None = None
        if isinstance(target, (EegSiteTarget, BeamF3Target)):
            suffix = target.site.lstrip("AFCTPOIpz")
            if target.site.endswith("z"):
                expected = {"midline", "bilateral"}
            elif suffix.isdigit():
                expected = {"left"} if int(suffix) % 2 else {"right"}
        elif isinstance(target, MniTarget):
            if target.x_mm < 0:
                expected = {"left"}
            elif target.x_mm > 0:
                expected = {"right"}
            else:
                expected = {"midline", "bilateral"}
        if expected is not None and self.hemisphere not in expected:
            raise invalid(
                "hemisphere",
                f"hemisphere {self.hemisphere} does not match the target (expected {' or '.join(sorted(expected))})",
                "odd 10-20 numbers and negative MNI x are left; even numbers and positive x are right",
            )

    def _check_ramp(self, plan: Plan) -> None:
        ramp = self.intensity.ramp
        if ramp is not None and ramp.first_trains >= plan.trains:
            raise invalid(
                "intensity.ramp.first_trains",
                f"the ramp spans {ramp.first_trains} trains but the session has only {plan.trains}",
                "a ramp must reach the target intensity before the last train",
            )

    def _check_totals(self, plan: Plan) -> None:
        total = plan.total_pulses
        if total > MAX_PULSES_PER_SESSION:
            raise invalid(
                "pattern",
                f"{total:,} pulses per session is beyond any protocol (limit {MAX_PULSES_PER_SESSION:,})",
            )
        duration = float(plan.session_duration_s)
        if duration > MAX_SESSION_DURATION_S:
            raise invalid("pattern", f"a {duration / 3600:.1f} h session is beyond any protocol (limit 12 h)")
        limits = self.limits
        if limits.max_total_pulses is not None and total > limits.max_total_pulses:
            raise invalid(
                "limits.max_total_pulses",
                f"the pattern delivers {total:,} pulses but limits.max_total_pulses is {limits.max_total_pulses:,}",
                "check the counts in pattern, or raise the limit if the larger session is intended",
            )
        if limits.max_session_duration_s is not None and duration > limits.max_session_duration_s:
            raise invalid(
                "limits.max_session_duration_s",
                f"the session lasts {format_number(duration)} s but limits.max_session_duration_s is "
                f"{format_number(limits.max_session_duration_s)} s",
            )
        sessions = self.accelerated.sessions_per_day if self.accelerated else 1
        if limits.max_pulses_per_day is not None and total * sessions > limits.max_pulses_per_day:
            raise invalid(
                "limits.max_pulses_per_day",
                f"{sessions} session(s) of {total:,} pulses make {total * sessions:,} a day, above "
                f"limits.max_pulses_per_day {limits.max_pulses_per_day:,}",
            )
        if self.accelerated is not None:
            self._check_day(plan)

    def _check_day(self, plan: Plan) -> None:
        accelerated = self.accelerated
        assert accelerated is not None
        interval_s = accelerated.inter_session_interval_min * 60
        session_end = float(plan.end_s)
        if accelerated.interval_measured == "start_to_start" and interval_s < session_end:
            raise invalid(
                "accelerated.inter_session_interval_min",
                f"sessions would overlap: a session lasts {session_end / 60:.1f} min but starts every "
                f"{format_number(accelerated.inter_session_interval_min)} min",
            )
        step = interval_s if accelerated.interval_measured == "start_to_start" else interval_s + session_end
        day_span = (accelerated.sessions_per_day - 1) * step + session_end
        if day_span > 24 * 3600:
            raise invalid(
                "accelerated",
                f"{accelerated.sessions_per_day} sessions span {day_span / 3600:.1f} h, more than a day",
            )
