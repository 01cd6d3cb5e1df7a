"""Course templates: the schedules the library's protocols were given in, as data with their sources.

Confidence tags as in reference/protocols.md (V checked against the cited abstract, S secondary,
R recalled and not verified, D our decision). A template fills a course's prescription; the
prescriber can change every field at ``course start`` and later with a recorded plan change.
Two-phase schedules (H1's taper to twice weekly, H4's weekly phase) keep their first phase as the
calendar and state the second in ``taper``: the calendar does not model a second phase yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Literal

from tmsctl.core.errors import InvalidArgument

LIBRARY = Path(str(files("tmsctl.protocols").joinpath("library")))


@dataclass(frozen=True)
class CourseTemplate:
    id: str
    title: str
    protocol_file: str  # in the protocol library
    planned_sessions: int
    sessions_per_day: int
    days_per_week: int
    source: str
    confidence: Literal["V", "S", "R", "D"]
    min_interval_min: float | None = None  # start to start; an accelerated protocol's own spacing applies too
    taper: str | None = None
    note: str = ""

    @property
    def protocol_path(self) -> Path:
        return LIBRARY / self.protocol_file


TEMPLATES: dict[str, CourseTemplate] = {t.id: t for t in (
    CourseTemplate(
        "daily-6wk-10hz", "10 Hz left DLPFC, daily on weekdays for 6 weeks (30 sessions)",
        "neurostar-10hz-ldlpfc.yaml", 30, 1, 5,
        "Perera T et al. 2016 consensus (PMC5612370): 20-30 sessions over 4-6 weeks; protocols.md §1", "V",
    ),
    CourseTemplate(
        "daily-6wk-itbs", "iTBS left DLPFC (THREE-D), daily on weekdays for 6 weeks (30 sessions)",
        "three-d-itbs-ldlpfc.yaml", 30, 1, 5,
        "Blumberger DM et al. 2018, Lancet 391:1683: 4-6 weeks; 30 sessions is the 6-week upper end", "V",
        note="THREE-D gave 20 sessions, then up to 10 more to those improving (R)",
    ),
    CourseTemplate(
        "saint-5day", "SAINT / SNT accelerated iTBS: 10 sessions a day, 50 min apart, 5 days (50 sessions)",
        "saint-accelerated-itbs.yaml", 50, 10, 5,
        "Cole EJ et al. 2020 and 2022, Am J Psychiatry (abstracts); protocols.md §1", "V",
        note="spacing from the protocol: 50 min start to start, as the library protocol states",
    ),
    CourseTemplate(
        "h1-mdd", "BrainsWay H1 for depression: daily on weekdays for 4 weeks (20 sessions)",
        "h1-18hz-mdd.yaml", 20, 1, 5,
        "Levkovitz Y et al. 2015, World Psychiatry 14:64 (PMC4329899)", "V",
        taper="then twice weekly for 12 weeks (24 more sessions): add them with a plan change",
    ),
    CourseTemplate(
        "h7-ocd", "BrainsWay H7 for OCD: daily on weekdays for 6 weeks (29 sessions)",
        "h7-20hz-ocd.yaml", 29, 1, 5,
        "Carmi L et al. 2019, Am J Psychiatry 176:931; protocols.md §1 (29 sessions R)", "R",
        note="each session follows an individual symptom provocation",
    ),
    CourseTemplate(
        "h4-smoking", "BrainsWay H4 for smoking cessation: daily on weekdays for 3 weeks (15 sessions)",
        "h4-10hz-smoking.yaml", 15, 1, 5,
        "Zangen A et al. 2021, World Psychiatry 20:397 (PMC8429333)", "V",
        taper="then weekly for 3 weeks (3 more sessions): add them with a plan change",
        note="each session follows cue-induced craving",
    ),
    CourseTemplate(
        "bpd-5hz-3wk", "BPD: 5 Hz left DLPFC, weekdays for 3 weeks (15 sessions)",
        "bpd-5hz-ldlpfc.yaml", 15, 1, 5,
        "Reyes-López J et al. 2018, Rev Bras Psiquiatr (NCT02273674), arms and 15 sessions", "V",
    ),
    CourseTemplate(
        "bpd-1hz-3wk", "BPD: 1 Hz right DLPFC, weekdays for 3 weeks (15 sessions)",
        "bpd-1hz-rdlpfc.yaml", 15, 1, 5,
        "Reyes-López J et al. 2018, Rev Bras Psiquiatr (NCT02273674), arms and 15 sessions", "V",
    ),
    CourseTemplate(
        "bpd-20hz-dmpfc", "BPD: 20 Hz bilateral DMPFC, twice daily 1 h apart, 5 days a week (30 sessions, 15 days)",
        "bpd-20hz-dmpfc-bilateral.yaml", 30, 2, 5,
        "Feffer K et al. 2022 (NCT03472638), abstract and registry", "V",
        note="spacing from the protocol: 60 min from one session's end to the next start",
    ),
)}


def template(name: str) -> CourseTemplate:
    found = TEMPLATES.get(name.strip().lower())
    if found is None:
        raise InvalidArgument(f"course.unknown_template: no course template {name!r}; known: "
                              f"{', '.join(sorted(TEMPLATES))}")
    return found


__all__ = ["LIBRARY", "TEMPLATES", "CourseTemplate", "template"]
