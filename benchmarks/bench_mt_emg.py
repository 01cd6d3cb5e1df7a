"""Automatic motor threshold from EMG over 200 seeded simulated subjects (issue 17).

Each subject (threshold 30–80 %MSO, slope 0.15–0.40 /%MSO, trial-to-trial spread 0.07·t) wears
simulated EMG electrodes that answer the simulated Rapid²'s *true* pulses (its truth log): noise
3 µV RMS, latency 21 ± 1.5 ms, pre-activation episodes. The hunt runs through the controller on
a virtual clock, MEPs measured by the detector (15–50 ms, background ≤ 50 µV), rejected trials
given again. Success: |MT − true| ≤ 2 %MSO with at most 30 pulses delivered (rejected ones
counted).

The true threshold is the *recorded* one (``SimulatedEmg.recorded_threshold_pct_mso``): the
intensity at which the peak-to-peak the detector measures in its window — MEP plus baseline noise —
reaches 50 µV in half the pulses, computed from the subject's and the EMG's models. That is the
IFCN definition (a 50 µV MEP in the recording), and what any hunt on this recording estimates. The
subject's own ``threshold_pct_mso`` (half the noise-free MEPs ≥ 50 µV) lies 0.3–1 %MSO higher: the
noise under a near-criterion MEP's peaks adds ~7 µV to it. Earlier versions of this benchmark
compared against that parameter and so charged the hunt with a 0.64 %MSO median "error" that was
the definition's, not the hunt's; the error against it is still printed.

ML-PEST (Awiszus 2003; the TMS Motor Threshold Assessment Tool, MTAT 2.0) gets a pulse budget of 30
(``max_pulses``: rejected pulses count against it, the hunt ends with its estimate) instead of a
fixed 26 answered trials. 5 of 10 (Rossini et al. 1994/2015, IFCN) runs to its own stop rule.

Why 95 % is at the edge of what any hunt can do here: with the response curve's spread σ = 0.07·t,
even an ideal estimator with every pulse at the threshold has an error SD of 1.2533·σ/√n (the
probit's Fisher information at its centre is 0.637/σ²): at n = 28 and t uniform in 30–80 %MSO that
gives 95.8 % within 2 %MSO, 88 % at t = 80. ML-PEST without EMG (pure procedure, 200 subjects) is at
that bound: 94 % after 26 trials, 96 % after 30.

5 of 10 cannot reach it as a faithful method, and that is a finding, not a tuning problem: the
"lowest level with ≥ 5 of 10" rule on 1 %MSO steps spreads by itself (without EMG, 200 subjects, any
pulse count: 90 % within 2 %MSO), and its blocks of 5–10 pulses per level need more than 30 pulses
to descend even from an ideal start — started 2 %MSO above each subject's true threshold (an oracle
no hunt has), 56.5 % finish within 2 %MSO in ≤ 30 pulses (median 26 pulses, p90 39); from 4 %MSO
above, 12 %. A coarse-to-fine or threshold-hunting start (Qi et al. 2011, adaptive) only moves the
start: it cannot lift either figure. ``--oracle`` reprints those bounds.

Measured (200 subjects, this commit), against the recorded threshold: ML-PEST 94.5 % within 2 %MSO
in ≤ 30 pulses (error median 0.00, p5 −1.81, p95 +1.52, worst −3.80; always 30 pulses) — 189 of the
190 needed, at the bound above (its SE over 200 subjects is 1.6 points); against the subject's
parameter it would be 89.5 % (median −0.66). 5 of 10: 89.5 % within 2 %MSO, 12.0 % in ≤ 30 pulses
(median 57 pulses, p95 111). The ≥ 95 % target is NOT met by either binary method; for ML-PEST the
remaining gap is the information 30 probit trials hold at σ = 0.07·t, not a bias. (Rerun with this
commit: the same figures.)

Past that bound: the amplitudes (``ml-amplitude``, :class:`~tmsctl.clinic.threshold.MlAmplitude`). The
bound above is for one bit per pulse. The recorded peak-to-peak holds more: near threshold ln(MEP) is
about linear in the intensity with the trial-to-trial shift of excitability on the intensity axis
(Goetz et al. 2014's model), so ln(MEP) = ln(50 µV) + β·(x − T) + ε, and T — where half the recorded
MEPs reach 50 µV, the IFCN threshold the benchmark scores against — is fitted with β and the scatter
by maximum likelihood on each hunt's own MEPs, amplitudes below 25 µV (the EMG's noise) and above
1 mV (the curve's bend) censored (Tobit). Nothing about the subject is given to it. Its pulses go
where ML-PEST's would until the amplitudes determine the fit, then to the fit's estimate; the same
30-pulse budget. Its floor, ceiling and bounds were set before the first benchmark run and not
changed after it.

Measured (this commit), within 2 %MSO of the recorded threshold in ≤ 30 pulses:

* seeds 0–199 (the population above): ml-amplitude 96.5 % (193 of 200; error median −0.20, p5 −1.65,
  p95 +1.11, worst −3.24; |error| median 0.49, p95 1.81; always 30 pulses) against ML-PEST's 94.5 %.
  Target ≥ 95 % met, by 3 subjects; the SE of a fraction near 95 % over 200 subjects is 1.5 points.
* seeds 200–399 (a second population of the same distribution, run once as a check, not used to set
  anything): ml-amplitude 96.5 % (median −0.17, p5 −1.64, p95 +1.33), ML-PEST 92.0 %.
* The estimate is about 0.2 %MSO low at the median: the EMG noise under a near-criterion MEP bends
  the foot of ln(recorded MEP) away from a straight line. The gain is in the spread, where the 2 %MSO
  misses were: |error| p95 1.81 against ML-PEST's 2.06 (seeds 200–399: 1.85 against 2.32), worst
  −3.24 against −3.80.
* 5 of 10, unchanged: 89.5 % within 2 %MSO, 12.0 % in ≤ 30 pulses.

Run: ``python benchmarks/bench_mt_emg.py [--subjects 200] [--first-seed 0] [--methods ml-amplitude,ml-pest,5of10]
[--oracle]`` (about 90 s per method).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys

from tmsctl.clinic.emg import SimulatedEmgSource
from tmsctl.clinic.mt_session import HuntStopped, MtHunt, make_procedure
from tmsctl.clinic.responder import EmgResponder
from tmsctl.clinic.threshold import MepResponse, MlPest, RelativeFrequency, run_procedure
from tmsctl.core.clock import VirtualClock
from tmsctl.core.registry import open_driver
from tmsctl.session.controller import Controller
from tmsctl.simulators import registry as sims
from tmsctl.simulators.emg import SimulatedEmg
from tmsctl.simulators.subject import SimulatedSubject

TOLERANCE_PCT_MSO = 2.0
MAX_PULSES = 30
TARGET_FRACTION = 0.95
ML_PEST_PULSES = MAX_PULSES


def hunt_one(method: str, seed: int) -> tuple[float | None, int, float, float]:
    """(MT or None if stopped/unconverged, pulses delivered, recorded threshold, the subject's own)."""
    clock = VirtualClock()
    name = f"bench-mt-emg-{method}-{seed}"
    sim = sims.create("rapid2", clock=clock, name=name)
    try:
        subject = SimulatedSubject.sample(seed)
        emg = SimulatedEmg(subject, sim.device.truth, seed=seed, start_s=clock.now())
        start = 50
        budget = ({"max_trials": ML_PEST_PULSES, "max_pulses": ML_PEST_PULSES}
                  if method in ("ml-pest", "ml-amplitude") else {})
        procedure = make_procedure(method, start_pct_mso=start, **budget)
        responder = EmgResponder(SimulatedEmgSource(emg, clock))
        window = (responder.muscle.window_start_ms, responder.muscle.window_end_ms)
        recorded = emg.recorded_threshold_pct_mso(window_ms=window)
        hunt = MtHunt(Controller(open_driver(f"sim://{name}", clock), clock), procedure,
                      responder, rng=random.Random(f"iti-{seed}"))
        try:
            outcome = hunt.run()
        except HuntStopped as stopped:
            return None, stopped.pulses_delivered, recorded, subject.threshold_pct_mso
        value = outcome.result.value_pct_mso if outcome.recordable else None
        truth = sim.device.truth()
        assert len(truth) == outcome.pulses_delivered, (len(truth), outcome.pulses_delivered, truth[-3:])
        return value, outcome.pulses_delivered, recorded, subject.threshold_pct_mso
    finally:
        sims.remove(name)


def quantiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    q = statistics.quantiles(values, n=20, method="inclusive") if len(values) > 1 else [values[0]] * 19
    return (f"min {min(values):.2f}  p5 {q[0]:.2f}  p25 {q[4]:.2f}  median {statistics.median(values):.2f}  "
            f"p75 {q[14]:.2f}  p95 {q[18]:.2f}  max {max(values):.2f}")


def run(method: str, subjects: int, first_seed: int = 0) -> tuple[float, dict[str, object]]:
    errors, own_errors, pulses, ok = [], [], [], 0
    unconverged = 0
    for seed in range(first_seed, first_seed + subjects):
        value, n, recorded, own = hunt_one(method, seed)
        pulses.append(n)
        if value is None:
            unconverged += 1
            continue
        errors.append(value - recorded)
        own_errors.append(value - own)
        if abs(value - recorded) <= TOLERANCE_PCT_MSO and n <= MAX_PULSES:
            ok += 1
    fraction = ok / subjects
    within_2 = sum(abs(e) <= TOLERANCE_PCT_MSO for e in errors) / subjects
    own_ok = sum(abs(e) <= TOLERANCE_PCT_MSO and n <= MAX_PULSES for e, n in zip(own_errors, pulses, strict=False))
    print(f"\n{method}: {subjects} subjects (seeds {first_seed}–{first_seed + subjects - 1})")
    print(f"  error (MT − recorded threshold), %MSO: {quantiles(errors)}")
    print(f"  |error|, %MSO:                         {quantiles([abs(e) for e in errors])}")
    print(f"  error against the noise-free MEP's threshold (the subject's parameter): {quantiles(own_errors)}")
    print(f"  pulses delivered:        {quantiles([float(p) for p in pulses])}")
    print(f"  unconverged or stopped:  {unconverged}")
    print(f"  within {TOLERANCE_PCT_MSO:g} %MSO (any pulse count): {within_2:.1%}")
    print(f"  within {TOLERANCE_PCT_MSO:g} %MSO in ≤ {MAX_PULSES} pulses: {fraction:.1%} "
          f"(target ≥ {TARGET_FRACTION:.0%}: {'met' if fraction >= TARGET_FRACTION else 'NOT met'})")
    print(f"  (against the subject's parameter instead: {own_ok / subjects:.1%})")
    return fraction, {"errors": errors, "pulses": pulses}


def procedure_bounds(subjects: int) -> None:
    """The procedures alone, answered by the subject's noise-free MEPs (no EMG, no rejections):
    ML-PEST after n trials, and 5 of 10 started an oracle 2/4 %MSO above each true threshold."""
    print(f"\nprocedures without EMG, {subjects} subjects (truth: the subject's threshold)")
    for trials in (20, 26, 30):
        hits = 0
        for seed in range(subjects):
            subject = SimulatedSubject.sample(seed)
            result = run_procedure(MlPest(start_pct_mso=50, max_trials=trials),
                                   lambda x, s=subject: MepResponse.of_amplitude(s.mep_uv(x)))
            assert result.value_pct_mso is not None
            hits += abs(result.value_pct_mso - subject.threshold_pct_mso) <= TOLERANCE_PCT_MSO
        print(f"  ML-PEST, {trials} trials: {hits / subjects:.1%} within {TOLERANCE_PCT_MSO:g} %MSO")
    for above in (None, 2, 4):
        within = fast = 0
        counts = []
        for seed in range(subjects):
            subject = SimulatedSubject.sample(seed)
            start = 50 if above is None else round(subject.threshold_pct_mso) + above
            result = run_procedure(RelativeFrequency(start_pct_mso=start),
                                   lambda x, s=subject: MepResponse.of_amplitude(s.mep_uv(x)))
            counts.append(float(len(result.trials)))
            if result.value_pct_mso is not None and (
                    abs(result.value_pct_mso - subject.threshold_pct_mso) <= TOLERANCE_PCT_MSO):
                within += 1
                fast += len(result.trials) <= MAX_PULSES
        label = "from 50 %MSO" if above is None else f"from true + {above} %MSO (oracle)"
        print(f"  5 of 10 {label}: {within / subjects:.1%} within {TOLERANCE_PCT_MSO:g} %MSO, "
              f"{fast / subjects:.1%} also in ≤ {MAX_PULSES} pulses; pulses {quantiles(counts)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subjects", type=int, default=200)
    parser.add_argument("--methods", default="ml-amplitude,ml-pest,5of10")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="another population of the same distribution (e.g. 200 for seeds 200–399)")
    parser.add_argument("--oracle", action="store_true", help="also print the procedures' bounds without EMG")
    args = parser.parse_args(argv)
    for method in args.methods.split(","):
        run(method, args.subjects, args.first_seed)
    if args.oracle:
        procedure_bounds(args.subjects)
    return 0


if __name__ == "__main__":
    sys.exit(main())
