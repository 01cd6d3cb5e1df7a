"""Scalp targeting for DLPFC TMS: what a technician measures with a tape and marks on the cap.

Every function here is pure: head measurements (cm) in, a frozen :class:`TargetResult` out. A
result names the method, its published source and the reference status of the facts behind it
(tags as in ``shared/reference/targeting.md``: V verified, C named public code, S secondary,
R recalled, D our computation, U unverified), and lists the distances to mark, in the order a
technician marks them.

Methods:

* :func:`beam_f3` — Beam et al. 2009, the *web-calculator* variant (the equations printed in the
  paper contain typographical errors; the calculator reproduces the published demonstration).
  ``side=Side.RIGHT`` gives F4, the mirror image.
* :func:`beam_f3_linear` — the linear approximation of Beam F3 used by a public Android app.
* :func:`mir_moghtadaei_2022` — the 2022 "updated scalp heuristics" for anterior / posterior
  DLPFC on either side.
* :func:`fixed_distance_rule` — the 5 / 5.5 / 6 cm rules anterior to the hand motor hot spot.
* :data:`MNI_TARGETS` — published MNI coordinates of DLPFC targets, for neuronavigation.

Implausible head measurements raise :class:`~tmsctl.core.errors.InvalidArgument` naming the
measurement, the value and the accepted range (:data:`PLAUSIBLE_ADULT_HEAD_CM`). Nothing is
clamped or rounded before the display layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tmsctl.core.errors import InvalidArgument

__all__ = [
    "ARC_TO_CIRCUMFERENCE_RATIO",
    "BEAM_F3_SOURCE",
    "FIXED_DISTANCE_RULES",
    "MNI_TARGETS",
    "PLAUSIBLE_ADULT_HEAD_CM",
    "TRAGUS_TO_NASION_ARC_RATIO",
    "BeamF3Geometry",
    "CapMark",
    "DlpfcRegion",
    "FixedDistanceRule",
    "HeadMeasurements",
    "MniTarget",
    "PlausibleRange",
    "Side",
    "TargetResult",
    "beam_f3",
    "beam_f3_geometry",
    "beam_f3_linear",
    "fixed_distance_rule",
    "mir_moghtadaei_2022",
    "mni_targets",
]


class Side(StrEnum):
    LEFT = "left"
    RIGHT = "right"

    @classmethod
    def parse(cls, text: str | Side) -> Side:
        if isinstance(text, Side):
            return text
        try:
            return cls(str(text).strip().lower())
        except ValueError:
            raise InvalidArgument(
                f"side must be 'left' or 'right', got {text!r}",
                hint="left targets F3 (left DLPFC), right targets F4 (right DLPFC)",
            ) from None


class DlpfcRegion(StrEnum):
    ANTERIOR = "anterior"
    POSTERIOR = "posterior"

    @classmethod
    def parse(cls, text: str | DlpfcRegion) -> DlpfcRegion:
        if isinstance(text, DlpfcRegion):
            return text
        try:
            return cls(str(text).strip().lower())
        except ValueError:
            raise InvalidArgument(
                f"DLPFC region must be 'anterior' or 'posterior', got {text!r}",
                hint="Mir-Moghtadaei 2022 gives one anterior and one posterior site per side",
            ) from None


# --------------------------------------------------------------------------------------------
# Plausible adult head measurements (reviewed data)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlausibleRange:
    """Accepted range of one tape measurement, with why the bounds are where they are."""

    field: str
    label: str
    low_cm: float
    high_cm: float
    basis: str
    status: str

    def describe(self) -> str:
        return f"{self.low_cm:g}–{self.high_cm:g} cm"


# The bounds are deliberately wide: they catch typing and unit slips (mm entered as cm, a value in
# the wrong box), not unusual heads. Published adult norms sit well inside them. Status D: our
# bounds, to be reviewed by a clinician before clinical use.
PLAUSIBLE_ADULT_HEAD_CM: tuple[PlausibleRange, ...] = (
    PlausibleRange(
        field="nasion_inion_cm",
        label="nasion–inion distance (over the vertex)",
        low_cm=28.0,
        high_cm=46.0,
        basis=(
            "adult 10-20 nasion–inion arcs are typically 33–40 cm (R); the reference test vectors span "
            "33–40 cm (shared/reference/targeting.md §2); bounds widened by ≥ 5 cm"
        ),
        status="D",
    ),
    PlausibleRange(
        field="tragus_tragus_cm",
        label="tragus–tragus distance (over the vertex)",
        low_cm=26.0,
        high_cm=44.0,
        basis=(
            "adult pre-auricular arcs are typically 32–39 cm (R); the reference test vectors span "
            "32–38 cm (shared/reference/targeting.md §2); bounds widened by ≥ 5 cm"
        ),
        status="D",
    ),
    PlausibleRange(
        field="circumference_cm",
        label="head circumference",
        low_cm=46.0,
        high_cm=66.0,
        basis=(
            "adult head-circumference centiles (Bushby et al. 1992, Arch Dis Child 67:1286, 354 adults) "
            "put the 3rd–97th centiles at roughly 52–61 cm (R); bounds widened by ≥ 5 cm"
        ),
        status="D",
    ),
)

# On a sphere the Fpz–Cz–Oz and T3–Cz–T4 arcs (80 % of NI and of TT) are half the Fpz–Oz
# circumference, so NI ≈ TT ≈ 0.625·HC; real heads sit near that. A ratio far off means a value
# was typed into the wrong box or measured along the wrong path. Status D.
ARC_TO_CIRCUMFERENCE_RATIO: tuple[float, float] = (0.50, 0.80)
# Neither over-the-vertex arc is more than about a third longer than the other on adult heads
# (10-20 geometry, R); outside this the Beam planar approximation is not meaningful either. Status D.
TRAGUS_TO_NASION_ARC_RATIO: tuple[float, float] = (0.75, 1.33)

_RANGE_BY_FIELD = {r.field: r for r in PLAUSIBLE_ADULT_HEAD_CM}


def _check_number(label: str, value: object) -> float:
    if value is None:
        raise InvalidArgument(
            f"{label} is missing",
            hint="measure it with a tape and enter it in cm",
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(
            f"{label} must be a number of centimetres, got {value!r}",
            hint="enter a plain number such as 36.5",
        )
    number = float(value)
    if not math.isfinite(number):
        raise InvalidArgument(f"{label} must be a finite number of centimetres, got {value!r}")
    if number <= 0:
        raise InvalidArgument(
            f"{label} must be positive, got {number:g} cm",
            hint="enter the length measured with the tape, in cm",
        )
    return number


@dataclass(frozen=True, kw_only=True)
class HeadMeasurements:
    """The three tape measurements of the 10-20 system, in cm, validated on construction."""

    nasion_inion_cm: float
    tragus_tragus_cm: float
    circumference_cm: float

    def __post_init__(self) -> None:
        values = {}
        for plausible in PLAUSIBLE_ADULT_HEAD_CM:
            number = _check_number(plausible.label, getattr(self, plausible.field))
            object.__setattr__(self, plausible.field, number)
            values[plausible.field] = number
        for plausible in PLAUSIBLE_ADULT_HEAD_CM:
            number = values[plausible.field]
            if not plausible.low_cm <= number <= plausible.high_cm:
                raise InvalidArgument(
                    f"{plausible.label} {number:g} cm is outside the plausible adult range "
                    f"{plausible.describe()}",
                    hint=_range_hint(plausible, values),
                )
        circumference = values["circumference_cm"]
        low, high = ARC_TO_CIRCUMFERENCE_RATIO
        for field in ("nasion_inion_cm", "tragus_tragus_cm"):
            plausible = _RANGE_BY_FIELD[field]
            ratio = values[field] / circumference
            if not low <= ratio <= high:
                raise InvalidArgument(
                    f"{plausible.label} {values[field]:g} cm is {ratio:.2f} × the head circumference "
                    f"{circumference:g} cm; accepted {low:g}–{high:g} × (about 0.63 on adult heads)",
                    hint="check that each value is in its own box and that both arcs pass over the vertex",
                )
        low, high = TRAGUS_TO_NASION_ARC_RATIO
        ratio = values["tragus_tragus_cm"] / values["nasion_inion_cm"]
        if not low <= ratio <= high:
            raise InvalidArgument(
                f"tragus–tragus {values['tragus_tragus_cm']:g} cm is {ratio:.2f} × nasion–inion "
                f"{values['nasion_inion_cm']:g} cm; accepted {low:g}–{high:g} ×",
                hint="re-measure both arcs over the vertex; they are usually within a few cm of each other",
            )

    @property
    def mean_arc_cm(self) -> float:
        """(NI + TT) / 2, the head-size term of the linear heuristics."""
        return (self.nasion_inion_cm + self.tragus_tragus_cm) / 2

    def as_dict(self) -> dict[str, float]:
        return {
            "nasion_inion_cm": self.nasion_inion_cm,
            "tragus_tragus_cm": self.tragus_tragus_cm,
            "circumference_cm": self.circumference_cm,
        }


def _range_hint(plausible: PlausibleRange, values: dict[str, float]) -> str:
    number = values[plausible.field]
    for other in PLAUSIBLE_ADULT_HEAD_CM:
        if other is plausible:
            continue
        other_value = values[other.field]
        if other.low_cm <= number <= other.high_cm and plausible.low_cm <= other_value <= plausible.high_cm:
            return f"did you swap the {plausible.label} and the {other.label}?"
    if plausible.low_cm <= number / 10 <= plausible.high_cm:
        return f"enter centimetres, not millimetres ({number:g} mm = {number / 10:g} cm)"
    return "re-measure with a tape; the method is for adult heads"


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CapMark:
    """One distance the technician measures and marks, in the order given by the result."""

    key: str
    value_cm: float
    instruction: str


@dataclass(frozen=True)
class TargetResult:
    """What to mark on the cap for one target, with the method and where it comes from."""

    target: str
    side: Side | None
    method: str
    method_name: str
    source: str
    status: str
    marks: tuple[CapMark, ...]
    inputs: tuple[tuple[str, float], ...] = ()
    notes: tuple[str, ...] = ()

    def value_cm(self, key: str) -> float:
        for mark in self.marks:
            if mark.key == key:
                return mark.value_cm
        known = ", ".join(m.key for m in self.marks)
        raise KeyError(f"{self.method} result has no mark {key!r}; it has: {known}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "side": None if self.side is None else self.side.value,
            "method": self.method,
            "method_name": self.method_name,
            "source": self.source,
            "status": self.status,
            "inputs": dict(self.inputs),
            "marks": [
                {"key": m.key, "value_cm": m.value_cm, "instruction": m.instruction} for m in self.marks
            ],
            "notes": list(self.notes),
        }


def _circumference_marks(
    measurements: HeadMeasurements, side: Side, x_cm: float, y_cm: float, target: str
) -> tuple[CapMark, ...]:
    direction = side.value
    return (
        CapMark(
            key="nasion_to_vertex_cm",
            value_cm=measurements.nasion_inion_cm / 2,
            instruction="vertex (Cz), part 1: along the nasion–inion line from the nasion",
        ),
        CapMark(
            key="tragus_to_vertex_cm",
            value_cm=measurements.tragus_tragus_cm / 2,
            instruction="vertex (Cz), part 2: along the tragus–tragus line from either tragus",
        ),
        CapMark(
            key="circumference_from_midline_cm",
            value_cm=x_cm,
            instruction=(
                f"mark A: along the head circumference from the front midline (Fpz), going {direction}"
            ),
        ),
        CapMark(
            key="vertex_to_target_cm",
            value_cm=y_cm,
            instruction=f"{target}: from the vertex along the line toward mark A",
        ),
    )


# --------------------------------------------------------------------------------------------
# Beam F3 (web-calculator variant)
# --------------------------------------------------------------------------------------------

BEAM_F3_SOURCE = (
    "Beam W, Borckardt JJ, Reeves ST, George MS. Brain Stimul 2009;2(1):50–54, PMID 20539835, "
    "PMC2882797; web-calculator variant (GitHub zhenlidada/Finding-F3, Beam_F3.m)"
)
_BEAM_NI_SHARE = 0.4  # Cz→Fpz is 40 % of the nasion–inion arc
_BEAM_TT_SHARE = 0.4  # Cz→T3 is 40 % of the tragus–tragus arc
_BEAM_ANGLE_A_DEG = 324.0
_BEAM_ANGLE_B_DEG = 298.0
_BEAM_ARC_FACTOR = 0.91  # planar radius → scalp distance from the vertex


def _sin_deg(angle_deg: float) -> float:
    return math.sin(math.radians(angle_deg))


def _cos_deg(angle_deg: float) -> float:
    return math.cos(math.radians(angle_deg))


@dataclass(frozen=True)
class BeamF3Geometry:
    """Intermediate values of the Beam F3 computation (named as in the reference)."""

    a: float
    d: float
    x: float
    y: float
    r_cm: float
    theta_deg: float
    x_along_circumference_cm: float
    y_from_vertex_cm: float


def beam_f3_geometry(measurements: HeadMeasurements) -> BeamF3Geometry:
    """The planar construction behind :func:`beam_f3` (left and right are mirror images)."""
    r1 = _BEAM_NI_SHARE * measurements.nasion_inion_cm
    r2 = _BEAM_TT_SHARE * measurements.tragus_tragus_cm
    sin_a = _sin_deg(_BEAM_ANGLE_A_DEG)
    sin_b = _sin_deg(_BEAM_ANGLE_B_DEG)
    cos_b = _cos_deg(_BEAM_ANGLE_B_DEG)
    a = (r2 * sin_a + r1 / 2) / r2
    d = r1 * cos_b - r2 / 2
    # The calculator writes x = (r1 − r2·b) / (2(a − b)) with b = r1·sin B / d; d vanishes at
    # TT ≈ 0.939·NI, an ordinary head. Multiplying through by d gives the same x without the pole.
    x = (r1 * d - r1 * r2 * sin_b) / (2 * (a * d - r1 * sin_b))
    y = a * x - r1 / 2
    r_cm = math.hypot(x, y)
    theta_deg = math.degrees(math.atan(y / x))
    return BeamF3Geometry(
        a=a,
        d=d,
        x=x,
        y=y,
        r_cm=r_cm,
        theta_deg=theta_deg,
        x_along_circumference_cm=(measurements.circumference_cm / 4) * (90 + theta_deg) / 90,
        y_from_vertex_cm=_BEAM_ARC_FACTOR * r_cm,
    )


def _electrode(side: Side) -> str:
    return "F3" if side is Side.LEFT else "F4"


def beam_f3(measurements: HeadMeasurements, side: Side | str = Side.LEFT) -> TargetResult:
    """Beam F3 (F4 for ``side="right"``) from NI, TT and HC, as the published web calculator does.

    Computation (trigonometry in degrees), with R₁ = 0.4·NI and R₂ = 0.4·TT:
    a = (R₂·sin 324° + R₁/2)/R₂; D = R₁·cos 298° − R₂/2; x = (R₁·D − R₁·R₂·sin 298°) /
    (2·(a·D − R₁·sin 298°)); y = a·x − R₁/2; r = √(x²+y²); θ = arctan(y/x);
    X = (HC/4)·(90 + θ)/90; Y = 0.91·r.
    """
    side = Side.parse(side)
    geometry = beam_f3_geometry(measurements)
    electrode = _electrode(side)
    return TargetResult(
        target=f"{electrode} ({side.value} DLPFC)",
        side=side,
        method="beam_f3",
        method_name=f"Beam {electrode} (web-calculator variant)",
        source=BEAM_F3_SOURCE,
        status=(
            "C+D (calculator variant reproduces the published demonstration; "
            "printed equations have typos)"
        ),
        marks=_circumference_marks(
            measurements, side, geometry.x_along_circumference_cm, geometry.y_from_vertex_cm, electrode
        ),
        inputs=tuple(measurements.as_dict().items()),
        notes=(
            f"angle from the midline θ = {geometry.theta_deg:.2f}°, planar radius r = {geometry.r_cm:.4f} cm",
            "the MRI-guided site for MNI (−38, 44, 26) was within 1.36 cm of Beam F3 in 95 % of "
            "100 subjects (Mir-Moghtadaei et al. 2015, Brain Stimul 8:965–973)",
        ),
    )


# --------------------------------------------------------------------------------------------
# Linear heuristics
# --------------------------------------------------------------------------------------------

_LINEAR_X_PER_HC = 0.1154
_LINEAR_Y_PER_MEAN_ARC = 0.2637
MRI_GUIDED_ARC_EXTENSION_CM = 0.35  # Mir-Moghtadaei 2015: vertex-to-target arc 0.35 cm longer (V)

_LINEAR_SOURCE = (
    "linear approximation of Beam F3 in the Android app class BeamF3Calculator "
    "(package com.cocode.tmsmeasurement; coefficients' origin unpublished; S/U)"
)


def beam_f3_linear(
    measurements: HeadMeasurements, side: Side | str = Side.LEFT, *, mri_adjusted: bool = False
) -> TargetResult:
    """Linear shortcut for Beam F3: X = 0.1154·HC, Y = 0.2637·(NI+TT)/2.

    Within about 0.035 cm of :func:`beam_f3` on normal head shapes. ``mri_adjusted`` adds 0.35 cm
    to Y, the mean extra vertex-to-target arc of the MRI-guided site (Mir-Moghtadaei 2015); the
    app does the same as "Y_adj" — that this is its origin is our inference.
    """
    side = Side.parse(side)
    electrode = _electrode(side)
    x_cm = _LINEAR_X_PER_HC * measurements.circumference_cm
    y_cm = _LINEAR_Y_PER_MEAN_ARC * measurements.mean_arc_cm
    notes = ["a shortcut: prefer the exact Beam F3 calculator (`beam_f3`) when it is available"]
    source = _LINEAR_SOURCE
    if mri_adjusted:
        y_cm += MRI_GUIDED_ARC_EXTENSION_CM
        source += (
            "; +0.35 cm on Y: Mir-Moghtadaei et al. 2015, Brain Stimul 8:965–973 (MRI-guided "
            "vertex-to-target arc 0.35 cm longer on average)"
        )
        notes.append("Y includes +0.35 cm toward the MRI-guided site (our reading of the app's Y_adj)")
    return TargetResult(
        target=f"{electrode} ({side.value} DLPFC), linear approximation",
        side=side,
        method="beam_f3_linear_adjusted" if mri_adjusted else "beam_f3_linear",
        method_name=f"Beam {electrode} linear shortcut" + (" (+0.35 cm)" if mri_adjusted else ""),
        source=source,
        status="S/U",
        marks=_circumference_marks(measurements, side, x_cm, y_cm, electrode),
        inputs=tuple(measurements.as_dict().items()),
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class _HeuristicCoefficients:
    y_per_mean_arc: float
    x_per_circumference: float


# Mir-Moghtadaei et al. 2022, "Updated scalp heuristics…" (coefficients V from the abstract).
_MIR_MOGHTADAEI_2022: dict[tuple[Side, DlpfcRegion], _HeuristicCoefficients] = {
    (Side.LEFT, DlpfcRegion.ANTERIOR): _HeuristicCoefficients(0.3167, 0.1359),
    (Side.RIGHT, DlpfcRegion.ANTERIOR): _HeuristicCoefficients(0.2884, 0.1352),
    (Side.LEFT, DlpfcRegion.POSTERIOR): _HeuristicCoefficients(0.2480, 0.1847),
    (Side.RIGHT, DlpfcRegion.POSTERIOR): _HeuristicCoefficients(0.2316, 0.1968),
}
MIR_MOGHTADAEI_2022_SOURCE = (
    "Mir-Moghtadaei A, et al. Updated scalp heuristics for localizing the dorsolateral prefrontal "
    "cortex… 2022 (journal believed Brain Stimul — R; coefficients V from the abstract)"
)


def mir_moghtadaei_2022(
    measurements: HeadMeasurements, side: Side | str, region: DlpfcRegion | str
) -> TargetResult:
    """Updated scalp heuristics: Y = k_y·(NI+TT)/2 from the vertex, X = k_x·HC along the circumference."""
    side = Side.parse(side)
    region = DlpfcRegion.parse(region)
    coefficients = _MIR_MOGHTADAEI_2022[(side, region)]
    x_cm = coefficients.x_per_circumference * measurements.circumference_cm
    y_cm = coefficients.y_per_mean_arc * measurements.mean_arc_cm
    target = f"{side.value} {region.value} DLPFC"
    return TargetResult(
        target=target,
        side=side,
        method=f"mir_moghtadaei_2022_{side.value}_{region.value}",
        method_name=f"Mir-Moghtadaei 2022 heuristic, {target}",
        source=MIR_MOGHTADAEI_2022_SOURCE,
        status="V (coefficients); R (journal)",
        marks=_circumference_marks(measurements, side, x_cm, y_cm, target),
        inputs=tuple(measurements.as_dict().items()),
        notes=(
            f"X = {coefficients.x_per_circumference}·HC, Y = {coefficients.y_per_mean_arc}·(NI+TT)/2",
        ),
    )


# --------------------------------------------------------------------------------------------
# Fixed-distance rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedDistanceRule:
    distance_cm: float
    name: str
    source: str
    status: str
    note: str


FIXED_DISTANCE_RULES: tuple[FixedDistanceRule, ...] = (
    FixedDistanceRule(
        distance_cm=5.0,
        name="5 cm rule",
        source=(
            "Mir-Moghtadaei et al. 2015, Brain Stimul 8:965–973 (accuracy); "
            "average site near MNI (−41, 16, 54)"
        ),
        status="V",
        note="misses the DLPFC in more than a third of subjects; lands in a premotor/DLPFC transition zone",
    ),
    FixedDistanceRule(
        distance_cm=5.5,
        name="5.5 cm rule",
        source="MagVenture 510(k) K251125 summary (\"Beam F3 or 5.5 cm\" placement accessory)",
        status="V (510(k) summary)",
        note="fixed distance: does not scale with head size",
    ),
    FixedDistanceRule(
        distance_cm=6.0,
        name="6 cm rule",
        source="OPT-TMS, George et al. 2010 (R)",
        status="R",
        note="fixed distance: does not scale with head size",
    ),
)


def fixed_distance_rule(
    distance_cm: float,
    side: Side | str = Side.LEFT,
    *,
    hot_spot_xy_cm: tuple[float, float] = (0.0, 0.0),
) -> TargetResult:
    """The target ``distance_cm`` anterior to the hand motor hot spot along a parasagittal line.

    Only the named rules (5, 5.5, 6 cm) are accepted. The local scalp frame has the hot spot at
    ``hot_spot_xy_cm`` and anterior = +y; the target's coordinates are the ``target_x_cm`` /
    ``target_y_cm`` marks.
    """
    side = Side.parse(side)
    distance = _check_number("rule distance", distance_cm)
    rule = next((r for r in FIXED_DISTANCE_RULES if r.distance_cm == distance), None)
    if rule is None:
        accepted = ", ".join(f"{r.distance_cm:g}" for r in FIXED_DISTANCE_RULES)
        raise InvalidArgument(
            f"no fixed-distance rule of {distance:g} cm; accepted: {accepted} cm",
            hint="the published rules are 5, 5.5 and 6 cm anterior to the motor hot spot",
        )
    hot_x = _check_coordinate("hot spot x", hot_spot_xy_cm[0])
    hot_y = _check_coordinate("hot spot y", hot_spot_xy_cm[1])
    # The hand hot spot for a left-hemisphere target is over left M1, i.e. the right hand's muscle.
    hand = "right" if side is Side.LEFT else "left"
    return TargetResult(
        target=f"{side.value} DLPFC ({rule.name})",
        side=side,
        method=f"fixed_{rule.distance_cm:g}cm".replace(".", "_"),
        method_name=rule.name,
        source=rule.source,
        status=rule.status,
        marks=(
            CapMark(
                key="anterior_from_hot_spot_cm",
                value_cm=rule.distance_cm,
                instruction=(
                    f"from the {side.value}-hemisphere motor hot spot ({hand}-hand APB/FDI), "
                    "straight forward along a parasagittal line"
                ),
            ),
            CapMark(
                key="target_x_cm", value_cm=hot_x, instruction="target, lateral coordinate in the scalp frame"
            ),
            CapMark(
                key="target_y_cm",
                value_cm=hot_y + rule.distance_cm,
                instruction="target, anterior coordinate in the scalp frame (+y = anterior)",
            ),
        ),
        inputs=(("distance_cm", rule.distance_cm), ("hot_spot_x_cm", hot_x), ("hot_spot_y_cm", hot_y)),
        notes=(rule.note,),
    )


def _check_coordinate(label: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise InvalidArgument(f"{label} must be a finite number of cm, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------
# MNI coordinates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MniTarget:
    name: str
    mni_mm: tuple[int, int, int]
    source: str
    status: str
    verified: bool
    note: str = ""


_CONTARG = "Fox et al. 2012, Biol Psychiatry 72:595, as encoded in GitHub nih-fmrif/contarg README.md"

MNI_TARGETS: tuple[MniTarget, ...] = (
    MniTarget("average 5 cm-rule site", (-41, 16, 54), _CONTARG, "C; paper abstract V", True,
              "20 mm ROI sphere in contarg"),
    MniTarget("average Beam F3 site", (-37, 26, 49), _CONTARG, "C", True, "20 mm ROI sphere in contarg"),
    MniTarget("BA9 centre", (-36, 39, 43), _CONTARG, "C", True, "20 mm ROI sphere in contarg"),
    MniTarget("BA46 centre", (-44, 40, 29), _CONTARG, "C", True, "20 mm ROI sphere in contarg"),
    MniTarget("subgenual ACC seed", (6, 16, -10),
              "GitHub nih-fmrif/contarg README, based on Cash et al. 2022 (AFNI RAI signs converted)", "C",
              True, "10 mm sphere; a mirrored left seed (−6, 16, −10) is also built"),
    MniTarget("DLPFC target of Mir-Moghtadaei 2015 and THREE-D neuronavigation", (-38, 44, 26),
              "Mir-Moghtadaei et al. 2015, Brain Stimul 8:965–973 (abstract)", "V", True,
              "calling it the Fox 2012 peak is disputed"),
    MniTarget("Fox 2012 connectivity-optimised BA46 peak", (-44, 38, 34), "third-party code comment only",
              "unverified", False),
    MniTarget("Weigand et al. 2018 group target", (-42, 44, 30), "third-party code comment only",
              "unverified", False),
    MniTarget("Fitzgerald 2009 MRI target", (-46, 45, 38), "third-party code only", "unverified", False),
    MniTarget("Herbsman 2009 responder site", (-46, 23, 49), "third-party code only", "unverified", False),
)


def mni_targets(*, include_unverified: bool = False) -> tuple[MniTarget, ...]:
    """The MNI table; coordinates known only from third-party code are left out unless asked for."""
    return tuple(t for t in MNI_TARGETS if include_unverified or t.verified)
