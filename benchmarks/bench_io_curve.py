"""Input–output curve recovery over seeded simulated subjects (issue 17).

Each subject (SimulatedSubject.sample: threshold uniform in 30–66 %MSO so that 150 % rMT stays
within the Rapid²'s 100 %MSO; slope 0.15–0.40 /%MSO; trial-to-trial spread σ = 0.07·MT on the
intensity axis) wears simulated EMG answering the simulator's true pulses (noise 3 µV RMS,
pre-activation episodes). The curve is run through the controller on a virtual clock: rMT given
as the subject's true threshold rounded, 90–150 % rMT in steps of 10, 10 pulses per intensity,
random order; MEPs from the detector; rejected trials given again. The subject's true S50 is
MT + ln(A_max/criterion − 1)/k and its true slope k (the median curve). Success: |S50 error| ≤ 3
%MSO and |slope error| ≤ 25 %. All fits are printed (two-source maximum likelihood, the default;
log-scale and linear least squares), with the 95 % CI coverage, and the subjects whose true S50
lies inside the sampled range separately.

Why least squares missed (75 % with both, log scale): this subject's variability lives on the
intensity axis (σ = 0.07·MT, 2–5 %MSO), so the log amplitudes scatter by a factor of several on
the rising limb and hardly at all on the plateau; least squares weights both alike. The
two-source fit (Goetz et al. 2014, see tmsctl/clinic/iocurve.py) models that, and does not assume
this simulator's model: it fits an intensity-axis and an amplitude-axis spread from the data.
What the fit alone cannot fix: subjects whose S50 (MT + 10–27 %MSO here) lies above 150 % rMT — at MT
30 %MSO the plan stops at 45 %MSO — have no plateau in the data; their S50 is an extrapolation.

The adaptive upper range (``UpperRange``, on by default; ``--no-extend`` turns it off): after the
planned pulses, while the two-source fit reaches less than 90 % of its MEPmax at the top intensity
given, one more level 10 % rMT higher, 10 pulses, up to 200 % rMT and never above the stimulator's
maximum or 100 %MSO. Its step, cap and plateau rule were set before the first run and not changed.

Measured (this commit), 10 pulses per intensity, S50 within 3 %MSO and slope within 25 %:

* seeds 0–99 (the population of the earlier figure, 88 % without the upper range): 95.0 % (S50 within
  3: 96 %, slope within 25 %: 97 %); 47 subjects got 1–5 levels added, 8 reached the cap without the
  fit's 90 %; pulses median 75, max 127. Target ≥ 95 % met, exactly (95 of 100).
* seeds 100–299 (200 more subjects, a check run once): 98.0 % with the upper range (S50 p5 −1.28, median
  +0.32, p95 +1.67; slope p5 −12.9 %, p95 +13.9 %), 89.5 % without it on the same subjects; 96 got
  levels added, pulses median 76, max 127.
* The fit's 95 % intervals still cover the true S50 less often than 95 % (74–80 %), as before.

Run: ``python benchmarks/bench_io_curve.py [--subjects 100] [--first-seed 0] [--no-extend] [--scales two-source]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys

from tmsctl.clinic.emg import SimulatedEmgSource
from tmsctl.clinic.iocurve import (
    FIT_SCALES,
    FitFailed,
    IoCurvePlan,
    IoCurveProcedure,
    UpperRange,
    fit_boltzmann,
)
from tmsctl.clinic.mt_session import MtHunt
from tmsctl.clinic.responder import EmgResponder
from tmsctl.core.clock import VirtualClock
from tmsctl.core.registry import open_driver
from tmsctl.session.controller import Controller
from tmsctl.simulators import registry as sims
from tmsctl.simulators.emg import SimulatedEmg
from tmsctl.simulators.subject import SimulatedSubject


def curve_one(seed: int, pulses: int, upper: UpperRange | None) -> dict[str, object]:
    clock = VirtualClock()
    name = f"bench-io-{seed}"
    sim = sims.create("rapid2", clock=clock, name=name)
    try:
        subject = SimulatedSubject.sample(seed, threshold_range_pct_mso=(30.0, 66.0))
        emg = SimulatedEmg(subject, sim.device.truth, seed=seed, start_s=clock.now())
        plan = IoCurvePlan(round(subject.threshold_pct_mso), pulses_per_level=pulses)
        rng = random.Random(f"io-{seed}")
        procedure = IoCurveProcedure(plan.sequence(rng), max_pct_mso=100, plan=plan, upper=upper)
        hunt = MtHunt(Controller(open_driver(f"sim://{name}", clock), clock), procedure,
                      EmgResponder(SimulatedEmgSource(emg, clock)), rng=rng)
        hunt.run()
        truth = sim.device.truth()
        assert len(truth) == hunt.pulses_delivered
        assert [p.intensity_pct for p in truth] == [e["intensity_pct_mso"] for e in hunt.log_so_far()]
        assert max(p.intensity_pct for p in truth) <= procedure.cap_pct_mso <= 100
        curve = subject.curve
        true_s50 = curve.threshold_pct_mso + curve._half_criterion_offset_pct_mso
        row: dict[str, object] = {"true_s50": true_s50, "top": max(plan.intensities_pct_mso),
                                  "pulses": hunt.pulses_delivered, "top_given": max(procedure.sequence),
                                  "levels_added": len(procedure.extension_levels_pct_rmt),
                                  "outcome": procedure.extension_outcome or ""}
        for scale in FIT_SCALES:
            try:
                fit = fit_boltzmann(procedure.points(), scale=scale)
            except FitFailed:
                row[scale] = None
                continue
            row[scale] = (fit.s50_pct_mso.value - true_s50,
                          fit.slope_per_pct_mso.value / curve.slope_per_pct_mso - 1.0,
                          fit.s50_pct_mso.low <= true_s50 <= fit.s50_pct_mso.high,
                          fit.slope_per_pct_mso.low <= curve.slope_per_pct_mso <= fit.slope_per_pct_mso.high)
        return row
    finally:
        sims.remove(name)


def q(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    c = statistics.quantiles(values, n=20, method="inclusive")
    return f"p5 {c[0]:+.2f}  median {statistics.median(values):+.2f}  p95 {c[18]:+.2f}"


def report(rows: list[dict[str, object]], scale: str, label: str) -> None:
    fits = [r[scale] for r in rows if r[scale] is not None]
    n = len(rows)
    if not n:
        return
    ok = sum(1 for f in fits if abs(f[0]) <= 3.0 and abs(f[1]) <= 0.25)
    print(f"  {scale:6} {label}: n={n}, failed fits {n - len(fits)}")
    print(f"     S50 error %MSO: {q([f[0] for f in fits])};  within 3: {sum(abs(f[0]) <= 3 for f in fits) / n:.1%}")
    print(f"     slope error:    {q([100 * f[1] for f in fits])} %;  within 25 %: "
          f"{sum(abs(f[1]) <= 0.25 for f in fits) / n:.1%}")
    print(f"     both: {ok / n:.1%};  95 % CI covers the truth: S50 {sum(f[2] for f in fits) / n:.1%}, "
          f"slope {sum(f[3] for f in fits) / n:.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subjects", type=int, default=100)
    parser.add_argument("--pulses", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="another population of the same distribution (e.g. 100 for seeds 100–199)")
    parser.add_argument("--no-extend", action="store_true", help="the plan's 90–150 %% rMT only (no upper range)")
    parser.add_argument("--scales", default=",".join(FIT_SCALES))
    args = parser.parse_args(argv)
    upper = None if args.no_extend else UpperRange()
    rows = [curve_one(seed, args.pulses, upper) for seed in range(args.first_seed, args.first_seed + args.subjects)]
    inside = [r for r in rows if r["true_s50"] <= r["top"]]
    pulses = [float(r["pulses"]) for r in rows]
    print(f"I/O curve, {args.subjects} subjects (seeds {args.first_seed}–{args.first_seed + args.subjects - 1}), "
          f"{args.pulses} pulses per intensity, 90–150 % rMT"
          + ("" if upper is None else f", upper range: +{upper.step_pct_rmt:g} % rMT steps to "
             f"{upper.cap_pct_rmt:g} % rMT or 100 %MSO until the fit reaches {upper.plateau_fraction:.0%} of MEPmax"))
    print(f"  pulses delivered: median {statistics.median(pulses):g}, max {max(pulses):g}")
    if upper is not None:
        added = [int(r["levels_added"]) for r in rows]
        print(f"  levels added: {', '.join(f'{n}: {added.count(n)} subjects' for n in sorted(set(added)))}; "
              f"plateau not shown by the cap: {sum('no plateau' in str(r['outcome']) for r in rows)} subjects")
        print(f"  true S50 above the top intensity given: {sum(r['true_s50'] > r['top_given'] for r in rows)} "
              f"subjects (above the plan's 150 % rMT: {sum(r['true_s50'] > r['top'] for r in rows)})")
    for scale in args.scales.split(","):
        report(rows, scale, "all subjects")
        report(inside, scale, "true S50 within the plan's 90–150 % rMT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
