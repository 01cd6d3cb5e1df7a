"""The example experiment script runs on the simulator (here in simulated time) and prints its events."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "experiment_single_pulses.py"


def load_example():
    spec = importlib.util.spec_from_file_location("experiment_single_pulses", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_single_pulse_experiment_fires_ten_jittered_pulses(capsys) -> None:
    example = load_example()
    assert example.main(["--virtual-time", "--seed", "7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    trials = [line for line in lines if line.startswith("trial ")]
    pulses = [line for line in lines if "pulse_delivered" in line]
    assert len(trials) == 10 and len(pulses) == 10
    times = [float(line.split(" at ")[1].split(" s")[0]) for line in trials]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(2.0 <= gap <= 3.1 for gap in gaps) and len(set(round(g, 3) for g in gaps)) > 1  # jittered
    assert lines[-1] == "done: disarmed and released"
