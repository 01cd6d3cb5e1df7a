"""Outcome measures: the standard rating scales as data, and pure scoring, response and remission.

A scale is its items (each with its own range), how items become a score (sum, or mean for
BSL-23), its severity bands, and the published rules for response (a relative reduction from
baseline) and remission (a score at or below a cut-off). Every rule carries its source and a
confidence tag, as protocol sources do (reference/protocols.md):

* **V** checked against the cited primary text or abstract;
* **S** secondary source only;
* **R** recalled from the literature, not verified here: check the primary paper before a clinic
  relies on it (none of /work/shared/reference covers rating scales, so most facts here are R);
* **D** our own decision where the literature has no single rule.

Nothing here reads a clock or a database: ``score_items``, ``check_total`` and ``assess`` are
functions of their arguments only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from tmsctl.core.errors import InvalidArgument


class UnknownScale(InvalidArgument):
    """No scale by that name."""

    hint = "`tmsctl outcome scales` lists the scales tmsctl knows"


class ScoreOutOfRange(InvalidArgument):
    """A total or item score outside what the scale allows."""

    hint = "check the score sheet; nothing was recorded"


@dataclass(frozen=True)
class Item:
    number: int
    label: str
    low: int
    high: int


@dataclass(frozen=True)
class Band:
    """A severity band: scores from ``low`` to ``high`` inclusive."""

    low: float
    high: float
    label: str


@dataclass(frozen=True)
class Rule:
    """A published rule with where it comes from and how sure we are of it."""

    text: str
    source: str
    confidence: Literal["V", "S", "R", "D"]


@dataclass(frozen=True)
class ResponseRule(Rule):
    min_reduction_pct: float  # response: (baseline - score) / baseline >= this


@dataclass(frozen=True)
class RemissionRule(Rule):
    max_score: float  # remission: score <= this


@dataclass(frozen=True)
class Scale:
    id: str
    name: str
    rater: Literal["self", "clinician"]
    items: tuple[Item, ...]
    scoring: Literal["sum", "mean"]
    bands: tuple[Band, ...]
    response: ResponseRule
    remission: RemissionRule | None  # None: no published remission cut-off
    source: str
    confidence: Literal["V", "S", "R", "D"]
    note: str = ""
    aliases: tuple[str, ...] = ()
    decimals: int = 0  # a mean score is kept to two decimals, a sum is whole
    flag_items: tuple[tuple[int, str], ...] = ()  # item number, what a non-zero answer means

    @property
    def low(self) -> float:
        if self.scoring == "mean":
            return float(min(i.low for i in self.items))
        return float(sum(i.low for i in self.items))

    @property
    def high(self) -> float:
        if self.scoring == "mean":
            return float(max(i.high for i in self.items))
        return float(sum(i.high for i in self.items))

    def severity(self, score: float) -> str:
        for band in self.bands:
            if band.low <= score <= band.high:
                return band.label
        # a mean between two bands' printed bounds (e.g. 1.495) belongs to the upper one
        for band in reversed(self.bands):
            if score >= band.low:
                return band.label
        return self.bands[0].label


def _items(labels: Sequence[str], low: int, high: int) -> tuple[Item, ...]:
    return tuple(Item(n, label, low, high) for n, label in enumerate(labels, start=1))


_FIFTY = "response: a reduction of at least 50 % from the course baseline"

PHQ9 = Scale(
    id="phq9",
    name="Patient Health Questionnaire-9",
    rater="self",
    items=_items(
        (
            "little interest or pleasure", "feeling down, depressed or hopeless", "sleep",
            "tired or little energy", "appetite", "feeling bad about yourself", "trouble concentrating",
            "moving or speaking slowly, or restless", "thoughts of being better off dead or of self-harm",
        ),
        0, 3,
    ),
    scoring="sum",
    bands=(Band(0, 4, "minimal"), Band(5, 9, "mild"), Band(10, 14, "moderate"),
           Band(15, 19, "moderately severe"), Band(20, 27, "severe")),
    response=ResponseRule(_FIFTY, "Kroenke K, Spitzer RL, Williams JBW 2001, J Gen Intern Med 16:606; "
                          "Löwe B et al. 2004, Med Care 42:1194 (50 % change)", "R", 50.0),
    remission=RemissionRule("remission: total below 5 (the 'minimal' band)",
                            "Kroenke K et al. 2001 (bands); Kroenke K et al. 2010, Gen Hosp Psychiatry 32:345", "R", 4),
    source="Kroenke K, Spitzer RL, Williams JBW 2001, J Gen Intern Med 16:606-613",
    confidence="R",
    note="items 0-3 over the last two weeks; item 9 (self-harm) needs a clinician's attention at any score above 0",
    aliases=("phq-9",),
    flag_items=((9, "thoughts of self-harm reported: a clinician must assess suicide risk today"),),
)

BDI2 = Scale(
    id="bdi2",
    name="Beck Depression Inventory-II",
    rater="self",
    items=_items(
        (
            "sadness", "pessimism", "past failure", "loss of pleasure", "guilty feelings", "punishment feelings",
            "self-dislike", "self-criticalness", "suicidal thoughts or wishes", "crying", "agitation",
            "loss of interest", "indecisiveness", "worthlessness", "loss of energy", "changes in sleeping pattern",
            "irritability", "changes in appetite", "concentration difficulty", "tiredness or fatigue",
            "loss of interest in sex",
        ),
        0, 3,
    ),
    scoring="sum",
    bands=(Band(0, 13, "minimal"), Band(14, 19, "mild"), Band(20, 28, "moderate"), Band(29, 63, "severe")),
    response=ResponseRule(_FIFTY, "Beck AT, Steer RA, Brown GK 1996, BDI-II Manual (Psychological Corporation); "
                          "50 % convention of depression trials", "R", 50.0),
    remission=RemissionRule("remission: total 12 or below",
                            "a convention of depression trials, not the manual's: the manual's minimal band is 0-13, "
                            "and studies use <= 12 or <= 13", "R", 12),
    source="Beck AT, Steer RA, Brown GK 1996, Manual for the Beck Depression Inventory-II",
    confidence="R",
    note="items 16 and 18 have 7 answer options (0, 1a, 1b, 2a, 2b, 3a, 3b) that score 0-3; "
         "the remission cut-off varies between studies (<= 12 or <= 13): check the study's own rule",
    aliases=("bdi-ii", "bdi"),
    flag_items=((9, "suicidal thoughts reported: a clinician must assess suicide risk today"),),
)

_HAMD_ITEMS = (
    ("depressed mood", 4), ("feelings of guilt", 4), ("suicide", 4), ("insomnia: early", 2),
    ("insomnia: middle", 2), ("insomnia: late", 2), ("work and activities", 4), ("retardation", 4),
    ("agitation", 4), ("anxiety: psychic", 4), ("anxiety: somatic", 4), ("somatic: gastrointestinal", 2),
    ("somatic: general", 2), ("genital symptoms", 2), ("hypochondriasis", 4), ("loss of weight", 2),
    ("insight", 2),
)

HAMD17 = Scale(
    id="hamd17",
    name="Hamilton Depression Rating Scale, 17 items",
    rater="clinician",
    items=tuple(Item(n, label, 0, high) for n, (label, high) in enumerate(_HAMD_ITEMS, start=1)),
    scoring="sum",
    bands=(Band(0, 7, "normal"), Band(8, 13, "mild"), Band(14, 18, "moderate"), Band(19, 22, "severe"),
           Band(23, 52, "very severe")),
    response=ResponseRule(_FIFTY, "Frank E et al. 1991, Arch Gen Psychiatry 48:851 (response/remission "
                          "conventions); Hamilton M 1960", "R", 50.0),
    remission=RemissionRule("remission: total 7 or below", "Frank E et al. 1991; Zimmerman M et al. 2005, "
                            "J Affect Disord 84:1 (<= 7)", "R", 7),
    source="Hamilton M 1960, J Neurol Neurosurg Psychiatry 23:56-62",
    confidence="R",
    note="nine items scored 0-4 and eight 0-2 (0-52); severity bands follow Zimmerman 2013 (J Affect Disord "
         "150:384) and differ between sources",
    aliases=("ham-d17", "hamd", "ham-d", "hdrs17", "hrsd17"),
    flag_items=((3, "suicide item above 0: a clinician must assess suicide risk today"),),
)

MADRS = Scale(
    id="madrs",
    name="Montgomery-Åsberg Depression Rating Scale",
    rater="clinician",
    items=_items(
        (
            "apparent sadness", "reported sadness", "inner tension", "reduced sleep", "reduced appetite",
            "concentration difficulties", "lassitude", "inability to feel", "pessimistic thoughts",
            "suicidal thoughts",
        ),
        0, 6,
    ),
    scoring="sum",
    bands=(Band(0, 6, "normal"), Band(7, 19, "mild"), Band(20, 34, "moderate"), Band(35, 60, "severe")),
    response=ResponseRule(_FIFTY, "Montgomery SA, Åsberg M 1979; the SAINT trial (Cole 2022, Am J Psychiatry "
                          "179:132) reports MADRS change the same way", "R", 50.0),
    remission=RemissionRule("remission: total 10 or below", "Hawley CJ et al. 2002, Hum Psychopharmacol 17:383; "
                            "Cole EJ et al. 2022 (SAINT, MADRS < 11)", "R", 10),
    source="Montgomery SA, Åsberg M 1979, Br J Psychiatry 134:382-389",
    confidence="R",
    note="items 0-6 (the even steps are anchored); remission cut-offs of <= 10 and <= 12 are both used",
    aliases=("madrs10",),
    flag_items=((10, "suicidal thoughts item above 0: a clinician must assess suicide risk today"),),
)

GAD7 = Scale(
    id="gad7",
    name="Generalized Anxiety Disorder-7",
    rater="self",
    items=_items(
        (
            "feeling nervous, anxious or on edge", "not being able to stop or control worrying",
            "worrying too much about different things", "trouble relaxing", "so restless that it is hard to sit still",
            "becoming easily annoyed or irritable", "feeling afraid as if something awful might happen",
        ),
        0, 3,
    ),
    scoring="sum",
    bands=(Band(0, 4, "minimal"), Band(5, 9, "mild"), Band(10, 14, "moderate"), Band(15, 21, "severe")),
    response=ResponseRule(_FIFTY + " (no scale-specific rule published; the issue's default)",
                          "Spitzer RL et al. 2006 define bands, not response", "D", 50.0),
    remission=RemissionRule("remission: total below 5 (the 'minimal' band)",
                            "Spitzer RL et al. 2006 (bands); the band as remission is our decision", "D", 4),
    source="Spitzer RL, Kroenke K, Williams JBW, Löwe B 2006, Arch Intern Med 166:1092-1097",
    confidence="R",
    note="bands 5/10/15 are the source's; response and remission rules are not from it",
    aliases=("gad-7",),
)

YBOCS = Scale(
    id="ybocs",
    name="Yale-Brown Obsessive Compulsive Scale",
    rater="clinician",
    items=_items(
        (
            "obsessions: time occupied", "obsessions: interference", "obsessions: distress",
            "obsessions: resistance", "obsessions: degree of control", "compulsions: time spent",
            "compulsions: interference", "compulsions: distress", "compulsions: resistance",
            "compulsions: degree of control",
        ),
        0, 4,
    ),
    scoring="sum",
    bands=(Band(0, 7, "subclinical"), Band(8, 15, "mild"), Band(16, 23, "moderate"), Band(24, 31, "severe"),
           Band(32, 40, "extreme")),
    response=ResponseRule(
        "response: a reduction of at least 35 % from the course baseline (OCD consensus; the H7 trial "
        "used >= 30 %)",
        "Mataix-Cols D et al. 2016, World Psychiatry 15:80 (>= 35 % with CGI-I 1-2); Carmi L et al. 2019, "
        "Am J Psychiatry 176:931 used >= 30 %", "R", 35.0,
    ),
    remission=RemissionRule("remission: total 12 or below (consensus adds CGI-S 1-2 for a week)",
                            "Mataix-Cols D et al. 2016, World Psychiatry 15:80", "R", 12),
    source="Goodman WK et al. 1989, Arch Gen Psychiatry 46:1006-1011",
    confidence="R",
    note="items 1-5 obsessions, 6-10 compulsions, each 0-4 (0-40); the consensus response also needs "
         "CGI-I, which tmsctl does not record",
    aliases=("y-bocs",),
)

BSL23 = Scale(
    id="bsl23",
    name="Borderline Symptom List 23",
    rater="self",
    items=tuple(Item(n, f"item {n}", 0, 4) for n in range(1, 24)),
    scoring="mean",
    bands=(Band(0, 0.28, "none or low"), Band(0.29, 1.05, "mild"), Band(1.06, 1.83, "moderate"),
           Band(1.84, 2.67, "high"), Band(2.68, 3.48, "very high"), Band(3.49, 4, "extremely high")),
    response=ResponseRule(_FIFTY + " of the mean item score (no scale-specific rule published; the issue's "
                          "default)", "Bohus M et al. 2009 give no response rule", "D", 50.0),
    remission=None,
    source="Bohus M et al. 2009, Psychopathology 42:32-39",
    confidence="R",
    note="23 items 0-4 over the last week; the score is the mean item score (0-4, two decimals). Severity "
         "bands from Kleindienst N et al. 2020, BMC Psychiatry 20:1 (recalled, check before use). The 11-item "
         "behaviour supplement is not part of the score. No published remission cut-off: none is computed",
    aliases=("bsl-23",),
    decimals=2,
)

ZANBPD = Scale(
    id="zanbpd",
    name="Zanarini Rating Scale for Borderline Personality Disorder",
    rater="clinician",
    items=_items(
        (
            "intense anger", "affective instability", "chronic emptiness", "identity disturbance",
            "stress-related paranoia or dissociation", "self-mutilation or suicidal efforts",
            "frantic efforts to avoid abandonment", "unstable relationships", "impulsivity",
        ),
        0, 4,
    ),
    scoring="sum",
    bands=(Band(0, 36, "—"),),
    response=ResponseRule(_FIFTY + " (no scale-specific rule published; the issue's default)",
                          "Zanarini MC et al. 2003 give no response rule", "D", 50.0),
    remission=None,
    source="Zanarini MC et al. 2003, J Pers Disord 17:233-242",
    confidence="R",
    note="nine items, one per DSM-IV criterion, each 0-4 (0-36) over the last week; no published severity "
         "bands or remission cut-off: none is computed",
    aliases=("zan-bpd", "zan"),
    flag_items=((6, "self-mutilation or suicidal efforts rated above 0: a clinician must assess risk today"),),
)

SCALES: Mapping[str, Scale] = {s.id: s for s in (PHQ9, BDI2, HAMD17, MADRS, GAD7, YBOCS, BSL23, ZANBPD)}
_BY_NAME = {name: s for s in SCALES.values() for name in (s.id, *s.aliases)}


def scale(name: str) -> Scale:
    """The scale called ``name`` (its id or an alias, any case, with or without the hyphen)."""
    key = name.strip().lower().replace("_", "-").replace(" ", "")
    found = _BY_NAME.get(key) or _BY_NAME.get(key.replace("-", ""))
    if found is None:
        raise UnknownScale(
            f"outcome.unknown_scale: no scale {name!r}; known: {', '.join(sorted(SCALES))}"
        )
    return found


# -- scoring (pure) ---------------------------------------------------------------------------------


def _rounded(scale_: Scale, value: float) -> float:
    quantum = Decimal(1).scaleb(-scale_.decimals)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def score_items(scale_: Scale, items: Sequence[int]) -> float:
    """The scale's score from every item's answer, each checked against its own range."""
    if len(items) != len(scale_.items):
        raise ScoreOutOfRange(
            f"outcome.item_count: {scale_.id} has {len(scale_.items)} items, {len(items)} were given"
        )
    for item, answer in zip(scale_.items, items, strict=True):
        if isinstance(answer, bool) or not isinstance(answer, int):
            raise ScoreOutOfRange(f"outcome.item_range: {scale_.id} item {item.number} must be a whole number, "
                                  f"got {answer!r}")
        if not item.low <= answer <= item.high:
            raise ScoreOutOfRange(
                f"outcome.item_range: {scale_.id} item {item.number} ({item.label}) is scored "
                f"{item.low}-{item.high}, got {answer}"
            )
    total = sum(items)
    return float(total) if scale_.scoring == "sum" else _rounded(scale_, total / len(items))


def check_total(scale_: Scale, score: float) -> float:
    """A total entered without items: inside the scale's range and on its grid (whole, or 2 decimals)."""
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise ScoreOutOfRange(f"outcome.score_range: {scale_.id} score must be a number, got {score!r}")
    if not scale_.low <= score <= scale_.high:
        raise ScoreOutOfRange(
            f"outcome.score_range: {scale_.id} scores run from {scale_.low:g} to {scale_.high:g}, got {score:g}"
        )
    if _rounded(scale_, score) != score:
        grain = "a whole number" if scale_.decimals == 0 else f"at most {scale_.decimals} decimals"
        raise ScoreOutOfRange(f"outcome.score_grain: a {scale_.id} score is {grain}, got {score!r}")
    return float(score)


def flags(scale_: Scale, items: Sequence[int] | None) -> tuple[str, ...]:
    """What item answers need a clinician's attention (e.g. PHQ-9 item 9 above 0)."""
    if not items:
        return ()
    return tuple(text for number, text in scale_.flag_items if items[number - 1] > 0)


@dataclass(frozen=True)
class Assessment:
    scale_id: str
    baseline: float
    score: float
    reduction_pct: float | None  # None when the baseline is 0 (nothing to reduce)
    response: bool | None
    remission: bool | None  # None when the scale has no remission rule
    response_rule: str
    remission_rule: str
    severity: str


def assess(scale_: Scale, baseline: float, score: float) -> Assessment:
    """Response and remission of ``score`` against ``baseline``, each with the rule that decided it."""
    check_total(scale_, baseline)
    check_total(scale_, score)
    span = baseline - scale_.low
    if span > 0:
        reduction = 100.0 * (baseline - score) / span
        # exact arithmetic at the boundary: 14 -> 7 on PHQ-9 is 50 %, never 49.999…
        response: bool | None = (baseline - score) * 100 >= scale_.response.min_reduction_pct * span - 1e-9
        reduction_pct: float | None = round(reduction, 1)
    else:
        response, reduction_pct = None, None
    remission = None if scale_.remission is None else score <= scale_.remission.max_score
    return Assessment(
        scale_.id, baseline, score, reduction_pct, response, remission,
        f"{scale_.response.text} [{scale_.response.confidence}: {scale_.response.source}]",
        "no published remission rule: not computed" if scale_.remission is None
        else f"{scale_.remission.text} [{scale_.remission.confidence}: {scale_.remission.source}]",
        scale_.severity(score),
    )


__all__ = [
    "BDI2",
    "BSL23",
    "GAD7",
    "HAMD17",
    "MADRS",
    "PHQ9",
    "SCALES",
    "YBOCS",
    "ZANBPD",
    "Assessment",
    "Band",
    "Item",
    "RemissionRule",
    "ResponseRule",
    "Rule",
    "Scale",
    "ScoreOutOfRange",
    "UnknownScale",
    "assess",
    "check_total",
    "flags",
    "scale",
    "score_items",
]
