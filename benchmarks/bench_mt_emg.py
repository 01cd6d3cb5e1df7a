"""Automatic motor threshold from EMG over 200 seeded simulated subjects (issue 17).

Each subject (threshold 30–80 %MSO, slope 0.15–0.40 /%MSO, trial-to-trial spread 0.07·t) wears
simulated EMG electrodes that answer the simulated Rapid²'s *true* pulses (its truth log): noise
3 µV RMS, latency 21 ± 1.5 ms, pre-activation episodes. The hunt runs through the controller on
a virtual clock, MEPs measured by the detector (15–50 ms, background ≤ 50 µV), rejected trials
given again. Success: |MT − true| ≤ 2 %MSO with at most 30 pulses delivered (rejected ones
counted). ML-PEST is given 26 trials, leaving room for rejections inside the 30; 5 of 10 runs to
its own stop rule and its pulse counts are printed as they are.

Measured (200 subjects, this commit): ML-PEST 88 % within 2 %MSO in ≤ 30 pulses (median error
−0.64, p5 −2.71, p95 +1.05; 26–29 pulses); 5 of 10 86.5 % within 2 %MSO but only 12 % in ≤ 30
pulses (median 57 pulses). The ≥ 95 % target is NOT met. Why: the algorithm alone, without EMG,
reaches 89 % within 2 %MSO after 20 pulses for these subjects (tests/threshold/test_mt_session.py
--seeds 200, σ = 0.07·MT); EMG noise (3 µV RMS) adds ~12 µV to near-threshold peak-to-peak
amplitudes and biases MT down by about 0.6 %MSO; and a pre-activation episode that starts after
the background window but inside the MEP window makes a false response (one subject: −24 %MSO).

After the after-MEP activity check (60–110 ms, commit "MEP detector: reject a trial with activity
after the MEP window"): ML-PEST 88.0 % within 2 %MSO in ≤ 30 pulses (median error −0.67, p5 −2.73,
p95 +1.04, worst −4.08 instead of −24: the false response from a contraction inside the MEP window
is gone; 26–30 pulses); 5 of 10 85.5 % within 2 %MSO, 12.0 % in ≤ 30 pulses (median 57). Still NOT
the ≥ 95 %: what remains is the algorithm's own spread at σ = 0.07·MT and the noise bias, not tuned.

Run: ``python benchmarks/bench_mt_emg.py [--subjects 200]`` (about 45 s).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys

from tmsctl.clinic.emg import SimulatedEmgSource
from tmsctl.clinic.mt_session import HuntStopped, MtHunt, make_procedure
from tmsctl.clinic.responder import EmgResponder
from tmsctl.core.clock import VirtualClock
from tmsctl.core.registry import open_driver
from tmsctl.session.controller import Controller
from tmsctl.simulators import registry as sims
from tmsctl.simulators.emg import SimulatedEmg
from tmsctl.simulators.subject import SimulatedSubject

TOLERANCE_PCT_MSO = 2.0
MAX_PULSES = 30
TARGET_FRACTION = 0.95
ML_PEST_TRIALS = 26


def hunt_one(method: str, seed: int) -> tuple[float | None, int, float]:
    """(error %MSO or None if stopped/unconverged, pulses delivered, true threshold)."""
    clock = VirtualClock()
    name = f"bench-mt-emg-{method}-{seed}"
    sim = sims.create("rapid2", clock=clock, name=name)
    try:
        subject = SimulatedSubject.sample(seed)
        emg = SimulatedEmg(subject, sim.device.truth, seed=seed, start_s=clock.now())
        start = 50
        procedure = make_procedure(method, start_pct_mso=start,
                                   max_trials=ML_PEST_TRIALS if method == "ml-pest" else None)
        hunt = MtHunt(Controller(open_driver(f"sim://{name}", clock), clock), procedure,
                      EmgResponder(SimulatedEmgSource(emg, clock)), rng=random.Random(f"iti-{seed}"))
        try:
            outcome = hunt.run()
        except HuntStopped as stopped:
            return None, stopped.pulses_delivered, subject.threshold_pct_mso
        value = outcome.result.value_pct_mso if outcome.recordable else None
        error = None if value is None else value - subject.threshold_pct_mso
        truth = sim.device.truth()
        assert len(truth) == outcome.pulses_delivered, (len(truth), outcome.pulses_delivered, truth[-3:])
        return error, outcome.pulses_delivered, subject.threshold_pct_mso
    finally:
        sims.remove(name)


def quantiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    q = statistics.quantiles(values, n=20, method="inclusive") if len(values) > 1 else [values[0]] * 19
    return (f"min {min(values):.2f}  p5 {q[0]:.2f}  p25 {q[4]:.2f}  median {statistics.median(values):.2f}  "
            f"p75 {q[14]:.2f}  p95 {q[18]:.2f}  max {max(values):.2f}")


def run(method: str, subjects: int) -> tuple[float, dict[str, object]]:
    errors, pulses, ok = [], [], 0
    unconverged = 0
    for seed in range(subjects):
        error, n, _true = hunt_one(method, seed)
        pulses.append(n)
        if error is None:
            unconverged += 1
            continue
        errors.append(error)
        if abs(error) <= TOLERANCE_PCT_MSO and n <= MAX_PULSES:
            ok += 1
    fraction = ok / subjects
    within_2 = sum(abs(e) <= TOLERANCE_PCT_MSO for e in errors) / subjects
    print(f"\n{method}: {subjects} subjects")
    print(f"  error (MT − true), %MSO: {quantiles(errors)}")
    print(f"  |error|, %MSO:           {quantiles([abs(e) for e in errors])}")
    print(f"  pulses delivered:        {quantiles([float(p) for p in pulses])}")
    print(f"  unconverged or stopped:  {unconverged}")
    print(f"  within {TOLERANCE_PCT_MSO:g} %MSO (any pulse count): {within_2:.1%}")
    print(f"  within {TOLERANCE_PCT_MSO:g} %MSO in ≤ {MAX_PULSES} pulses: {fraction:.1%} "
          f"(target ≥ {TARGET_FRACTION:.0%}: {'met' if fraction >= TARGET_FRACTION else 'NOT met'})")
    return fraction, {"errors": errors, "pulses": pulses}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subjects", type=int, default=200)
    parser.add_argument("--methods", default="ml-pest,5of10")
    args = parser.parse_args(argv)
    for method in args.methods.split(","):
        run(method, args.subjects)
    return 0


if __name__ == "__main__":
    sys.exit(main())
