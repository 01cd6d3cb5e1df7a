"""Hotspot search: N single pulses at each site of a grid, the site with the largest mean MEP chosen.

Before the first pulse at a site the stimulator is disarmed (fail safe while the coil is handled)
and ``move(site)`` is called: the operator is prompted to place the coil there, or a
neuronavigation system is told where to go and reports where the coil actually is (the callback
returns that position in mm, or None when the operator only confirms). The controller keeps being
serviced meanwhile, as while an MEP is awaited. The pulses are given by
:class:`~tmsctl.clinic.mt_session.MtHunt` — rejected trials are given again at the same site.

The chosen site is the one with the largest mean peak-to-peak MEP over its accepted trials; a
site whose trials were all rejected cannot be chosen.
"""

from __future__ import annotations

import random
import statistics
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tmsctl.clinic.mt_session import MtHunt
from tmsctl.clinic.stopped import MeasurementStopped
from tmsctl.clinic.threshold import MepResponse
from tmsctl.core.clock import ParticipantSlot
from tmsctl.core.errors import InvalidArgument
from tmsctl.session.fsm import ENERGISED

__all__ = [
    "HotspotOutcome",
    "HotspotProcedure",
    "HotspotRequest",
    "HotspotResult",
    "HotspotSearch",
    "HotspotStopped",
    "Site",
    "grid_sites",
    "run_hotspot",
]


@dataclass(frozen=True)
class Site:
    label: str
    x_mm: float
    y_mm: float

    @property
    def position(self) -> tuple[float, float]:
        return (self.x_mm, self.y_mm)


def grid_sites(rows: int, cols: int, spacing_mm: float, centre_mm: tuple[float, float] = (0.0, 0.0)) -> tuple[Site, ...]:
    """A rows × cols grid around ``centre_mm``, labelled by row letter and column number (A1, A2, …),
    visited row by row in a serpentine so the coil moves one step at a time."""
    if not (isinstance(rows, int) and isinstance(cols, int) and 1 <= rows <= 26 and 1 <= cols <= 26):
        raise InvalidArgument(f"a grid has 1–26 rows and columns, got {rows!r} × {cols!r}")
    if not 1.0 <= spacing_mm <= 50.0:
        raise InvalidArgument(f"grid spacing must be 1–50 mm, got {spacing_mm!r}", hint="hotspot grids: 5–10 mm")
    sites = []
    for r in range(rows):
        columns = range(cols) if r % 2 == 0 else reversed(range(cols))
        for c in columns:
            sites.append(Site(f"{chr(ord('A') + r)}{c + 1}", centre_mm[0] + (c - (cols - 1) / 2) * spacing_mm,
                              centre_mm[1] + ((rows - 1) / 2 - r) * spacing_mm))
    return tuple(sites)


@dataclass(frozen=True)
class _Trial:
    index: int
    site: str
    amplitude_uv: float
    responded: bool
    estimate_pct_mso: float | None = None


@dataclass(frozen=True)
class HotspotResult:
    method: str
    converged: bool
    stop_reason: str
    means_uv: dict[str, float]
    chosen: Site | None
    reported_positions: dict[str, tuple[float, float] | None]
    value_pct_mso: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "chosen": None if self.chosen is None else {"site": self.chosen.label, "x_mm": self.chosen.x_mm,
                                                        "y_mm": self.chosen.y_mm,
                                                        "reported": self.reported_positions.get(self.chosen.label)},
            "mean_mep_uv": {k: round(v, 3) for k, v in self.means_uv.items()},
        }


class HotspotProcedure:
    """The sites in order, ``pulses_per_site`` accepted MEPs each, at one intensity (an MtHunt procedure)."""

    method = "hotspot"

    def __init__(self, sites: Sequence[Site], *, intensity_pct_mso: int, pulses_per_site: int, max_pct_mso: int,
                 criterion_uv: float = 50.0) -> None:
        if not sites:
            raise InvalidArgument("a hotspot search needs at least one site")
        if len({s.label for s in sites}) != len(sites):
            raise InvalidArgument("hotspot sites need distinct labels")
        if not 1 <= intensity_pct_mso <= max_pct_mso:
            raise InvalidArgument(f"the search intensity must be within 1–{max_pct_mso} %MSO, got {intensity_pct_mso}")
        if not 1 <= pulses_per_site <= 50:
            raise InvalidArgument(f"pulses per site must be within 1–50, got {pulses_per_site}")
        self.sites = tuple(sites)
        self.intensity = intensity_pct_mso
        self.per_site = pulses_per_site
        self.max_pct_mso = max_pct_mso
        self.max_trials = len(self.sites) * pulses_per_site
        self.criterion_uv = criterion_uv
        self.trials: list[_Trial] = []
        self.reported: dict[str, tuple[float, float] | None] = {}

    @property
    def done(self) -> bool:
        return len(self.trials) >= self.max_trials

    def next_site(self) -> Site:
        return self.sites[len(self.trials) // self.per_site]

    def next_intensity(self) -> int:
        return self.intensity

    def record(self, intensity_pct_mso: int, response: MepResponse) -> _Trial:
        if response.amplitude_uv is None:
            raise InvalidArgument("a hotspot search needs measured MEP amplitudes", hint="measure them from EMG")
        trial = _Trial(len(self.trials) + 1, self.next_site().label, float(response.amplitude_uv),
                       response.amplitude_uv >= self.criterion_uv)
        self.trials.append(trial)
        return trial

    def result(self) -> HotspotResult:
        means = {s.label: statistics.fmean(t.amplitude_uv for t in self.trials if t.site == s.label)
                 for s in self.sites if any(t.site == s.label for t in self.trials)}
        chosen = None
        if self.done and means:
            best = max(means, key=lambda label: means[label])
            chosen = next(s for s in self.sites if s.label == best)
        return HotspotResult(self.method, self.done, "every site measured" if self.done else "stopped early",
                             means, chosen, dict(self.reported))


Move = Callable[[Site], "tuple[float, float] | None"]


class HotspotSearch(MtHunt):
    """MtHunt with a coil move (disarmed, controller serviced) before the first pulse at each site."""

    def __init__(self, controller: Any, procedure: HotspotProcedure, respond: Any, *, move: Move, **kwargs: Any) -> None:
        super().__init__(controller, procedure, respond, **kwargs)
        self.sites = procedure  # self.procedure, with its sites
        self.move = move
        self._at: Site | None = None
        self.site_of_pulse: list[str] = []

    def _trial(self) -> None:
        procedure = self.sites
        site = procedure.next_site()
        if site != self._at:
            c = self.controller
            if c.state in ENERGISED:
                c.disarm()  # nobody handles a coil over a charged stimulator
            procedure.reported[site.label] = self._while_servicing(lambda: self.move(site))
            self._at = site
        before = self.pulses_delivered
        try:
            super()._trial()
        finally:
            if self.pulses_delivered > before:
                self.site_of_pulse.append(site.label)

    def log_so_far(self) -> tuple[dict[str, Any], ...]:
        entries = []
        for number, entry in enumerate(super().log_so_far(), start=1):
            entries.append({**entry, "site": self.site_of_pulse[number - 1]})
        return tuple(entries)

    def _while_servicing(self, fn: Callable[[], Any]) -> Any:
        done = self.clock.event()
        box: dict[str, Any] = {}
        participation = ParticipantSlot(self.clock)

        def work() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # re-raised on the calling thread
                box["error"] = exc
            finally:
                done.set()
                participation.release()

        helper = threading.Thread(target=work, name="tmsctl-hotspot-move", daemon=True)
        try:
            helper.start()
            while not done.is_set():
                wake = self.controller.service()
                self.clock.wait(done, wake if wake != float("inf") else None)
        finally:
            participation.release()
        if "error" in box:
            raise box["error"]
        return box.get("value")


# -- a whole search on a device (what `tmsctl hotspot` runs) ----------------------------------------


@dataclass(frozen=True)
class HotspotRequest:
    device_url: str
    subject_id: str
    coil: Any  # tmsctl.protocols.models.Coil
    sites: tuple[Site, ...]
    intensity_pct_mso: int
    pulses_per_site: int = 5
    muscle: str = "FDI"
    operator: str = "operator"
    stimulator_serial: str | None = None
    virtual_time: bool = False
    settings: Any = None  # tmsctl.clinic.mt_session.HuntSettings
    note: str | None = None


@dataclass(frozen=True)
class HotspotOutcome:
    result: HotspotResult
    log: tuple[dict[str, Any], ...]
    pulses_delivered: int
    device: Any  # DeviceInfo
    stimulator_serial: str
    recorded: Any | None = None


class HotspotStopped(MeasurementStopped):
    """The search stopped before every site was measured; disarmed and released; what was given is on record."""

    measurement = "hotspot search"
    nothing_kept = "no site was chosen"


def _result_dict(request: HotspotRequest, result: HotspotResult) -> dict[str, Any]:
    return {
        "intensity_pct_mso": request.intensity_pct_mso, "pulses_per_site": request.pulses_per_site,
        "sites": [{"site": s.label, "x_mm": s.x_mm, "y_mm": s.y_mm,
                   "reported": result.reported_positions.get(s.label)} for s in request.sites],
        **result.as_dict(),
        **({"note": request.note} if request.note else {}),
    }


def run_hotspot(request: HotspotRequest, respond: Any, records: Any | None = None, *, move: Move,
                rng: random.Random | None = None, on_fired: Any = None, on_trial: Any = None,
                on_rejected: Any = None) -> HotspotOutcome:
    """Measure every site (``move`` before each), choose the largest mean MEP, and record (also a stopped search)."""
    from tmsctl.clinic.mt_session import HUNT_MAX_PCT_MSO, HuntSettings, HuntStopped, stimulator_serial_for
    from tmsctl.core.url import parse
    from tmsctl.session.host import SessionHost, clock_for

    rng = rng if rng is not None else random.Random()
    device = parse(request.device_url)
    serial = stimulator_serial_for(device, request.stimulator_serial)
    # refuse a bad plan before the device is touched; the stimulator's own maximum is checked below
    HotspotProcedure(request.sites, intensity_pct_mso=request.intensity_pct_mso,
                     pulses_per_site=request.pulses_per_site, max_pct_mso=HUNT_MAX_PCT_MSO)
    clock = clock_for(device, virtual_time=request.virtual_time)
    host = SessionHost(device, clock, records=records)
    try:
        controller = host.open()
        info = host.connect()
        max_pct = min(HUNT_MAX_PCT_MSO, int(controller.driver.limits.max_intensity_pct_mso))
        procedure = HotspotProcedure(request.sites, intensity_pct_mso=request.intensity_pct_mso,
                                     pulses_per_site=request.pulses_per_site, max_pct_mso=max_pct)
    except BaseException:
        host.close()
        raise
    search = HotspotSearch(controller, procedure, respond, move=move, rng=rng,
                           settings=request.settings or HuntSettings(), on_fired=on_fired, on_trial=on_trial,
                           on_rejected=on_rejected, release=host.release)

    def keep(status: str, reason: str | None) -> Any:
        if records is None or search.pulses_delivered == 0:
            return None
        from tmsctl.records.meps import MepMeasurementRecord, MepRecords
        from tmsctl.session.planned import coil_key

        records.ensure_subject(request.subject_id)
        return MepRecords(records).record(MepMeasurementRecord(
            subject_id=request.subject_id, kind="hotspot", status=status, stimulator_model=info.model,
            stimulator_serial=serial, coil=coil_key(request.coil), muscle=request.muscle,
            pulses_delivered=search.pulses_delivered, trial_log=search.log_so_far(), operator=request.operator,
            measured_at=clock.wall(), result=_result_dict(request, procedure.result()), stop_reason=reason,
        ))

    try:
        search.run()
    except HuntStopped as stopped:
        raise HotspotStopped(stopped, keep("stopped", stopped.message[:500])) from stopped
    except KeyboardInterrupt:
        keep("stopped", "interrupted by the operator")
        raise
    result = procedure.result()
    recorded = keep("completed", None)
    return HotspotOutcome(result, search.log_so_far(), search.pulses_delivered, info, serial, recorded)
