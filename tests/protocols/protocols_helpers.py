"""Shared helpers for the protocol tests: small DeviceLimits implementations and builders.

``TestRapid2`` re-implements the Rapid² (type 0, 240 V) limits straight from the reference
tables (magstim.md §10, TDb087 §3) so the protocol checker is tested against numbers written
down independently of ``tmsctl.drivers.magstim.spec``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from tmsctl.drivers.base import Capability
from tmsctl.protocols import MotorThreshold, Protocol
from tmsctl.protocols.models import Coil

# Energy per pulse (J) by power 0..100 % (TDb087 Table 1).
ENERGY_J = (
    0.0, 0.0, 0.1, 0.2, 0.4, 0.6, 0.9, 1.2, 1.6, 2.0,
    2.5, 3.0, 3.6, 4.3, 4.9, 5.7, 6.4, 7.3, 8.2, 9.1,
    10.1, 11.1, 12.2, 13.3, 14.5, 15.7, 17.0, 18.4, 19.7, 21.2,
    22.7, 24.2, 25.8, 27.4, 29.1, 30.8, 32.6, 34.5, 36.4, 38.3,
    40.3, 42.3, 44.4, 46.6, 48.8, 51.0, 53.3, 55.6, 58.0, 60.5,
    63.0, 65.5, 68.1, 70.7, 73.4, 76.2, 79.0, 81.8, 84.7, 87.7,
    90.7, 93.7, 96.8, 100.0, 103.2, 106.4, 109.7, 113.0, 116.4, 119.9,
    123.4, 126.9, 130.5, 134.2, 137.9, 141.7, 145.5, 149.3, 153.2, 157.2,
    161.2, 165.2, 169.3, 173.5, 177.7, 181.9, 186.3, 190.6, 195.0, 199.5,
    204.0, 208.5, 213.1, 217.8, 222.5, 227.3, 232.1, 236.9, 241.9, 246.8,
    252.0,
)  # fmt: skip

# Max frequency (Hz), Rapid² type 0 at 240 V, powers 30..100; 50 Hz below 30 %.
MAX_HZ_FROM_30 = (
    50, 46, 45, 44, 42, 41, 41, 39, 39, 38,
    37, 36, 34, 33, 33, 33, 33, 33, 32, 31,
    30, 30, 29, 29, 28, 28, 27, 27, 26, 26,
    25, 25, 24, 24, 23, 23, 22, 22, 21, 21,
    20, 20, 20, 20, 19, 19, 19, 19, 19, 18,
    18, 18, 18, 18, 18, 17, 17, 17, 17, 17,
    17, 17, 16, 16, 16, 16, 16, 16, 15, 15,
    15,
)  # fmt: skip


@dataclass(frozen=True)
class TestRapid2:
    """DeviceLimits for a Rapid² (type 0, 240 V, software ≥ 9), from the reference tables."""

    __test__ = False  # not a pytest test class

    model: str = "magstim-rapid2"
    display_name: str = "Magstim Rapid² (test)"
    capabilities: frozenset[Capability] = frozenset(
        {Capability.SINGLE_PULSE, Capability.INTERNAL_TRAIN, Capability.EXTERNAL_TRIGGER}
    )
    max_intensity_pct_mso: int = 100
    max_pulses_per_train: int = 6000
    max_train_duration_s: float = 999.9
    frequency_step_hz: float = 0.1

    def _power(self, intensity_pct_mso: float) -> int:
        power = int(intensity_pct_mso)
        assert power == intensity_pct_mso and 0 <= power <= 100, intensity_pct_mso
        return power

    def max_frequency_hz(self, intensity_pct_mso: float) -> float:
        power = self._power(intensity_pct_mso)
        return float(MAX_HZ_FROM_30[power - 30]) if power >= 30 else 50.0

    def max_train_on_time_s(self, intensity_pct_mso: float, frequency_hz: float) -> float:
        energy = ENERGY_J[self._power(intensity_pct_mso)]
        on_time = math.inf if energy == 0 else 63000 / (frequency_hz * energy)
        return math.inf if on_time > 60 else on_time

    def min_inter_train_interval_s(
        self, intensity_pct_mso: float, frequency_hz: float, pulses_per_train: int
    ) -> float:
        energy = ENERGY_J[self._power(intensity_pct_mso)]
        return max(0.5, pulses_per_train * (frequency_hz * energy - 1050) / (1050 * frequency_hz))

    def min_single_pulse_interval_s(self, intensity_pct_mso: float) -> float:
        return 1.0


@dataclass(frozen=True)
class TestBurstStimulator(TestRapid2):
    """A fast stimulator that times theta bursts itself (a MagPro-like unit for the tests)."""

    __test__ = False

    model: str = "test-burst"
    display_name: str = "burst-capable test stimulator"
    capabilities: frozenset[Capability] = field(
        default=frozenset(
            {
                Capability.SINGLE_PULSE,
                Capability.INTERNAL_TRAIN,
                Capability.THETA_BURST,
                Capability.PAIRED_PULSE,
                Capability.EXTERNAL_TRIGGER,
            }
        )
    )

    def max_frequency_hz(self, intensity_pct_mso: float) -> float:
        return 100.0

    def max_train_on_time_s(self, intensity_pct_mso: float, frequency_hz: float) -> float:
        return math.inf

    def min_inter_train_interval_s(
        self, intensity_pct_mso: float, frequency_hz: float, pulses_per_train: int
    ) -> float:
        return 0.5


RAPID2 = TestRapid2()
BURST = TestBurstStimulator()

BASE: dict[str, Any] = {
    "schema_version": 1,
    "id": "test-protocol",
    "title": "A test protocol",
    "coil": {"family": "figure8"},
    "target": {"method": "beam_f3", "site": "F3"},
    "hemisphere": "left",
    "intensity": {"reference": "rMT", "scaling_pct": 120},
    "pattern": {
        "kind": "rtms",
        "frequency_hz": 10,
        "pulses_per_train": 40,
        "inter_train_interval_s": 26,
        "trains": 75,
    },
}


def document(**changes: Any) -> dict[str, Any]:
    """A valid protocol document with top-level keys replaced."""
    data = copy.deepcopy(BASE)
    data.update(copy.deepcopy(changes))
    return data


def rtms(
    frequency_hz: float,
    pulses: int,
    *,
    pct: float = 120,
    reference: str = "rMT",
    iti_s: float | None = 26,
    trains: int = 2,
    family: str = "figure8",
    **top: Any,
) -> Protocol:
    pattern: dict[str, Any] = {
        "kind": "rtms",
        "frequency_hz": frequency_hz,
        "pulses_per_train": pulses,
        "trains": trains,
    }
    if trains > 1 and iti_s is not None:
        pattern["inter_train_interval_s"] = iti_s
    fields: dict[str, Any] = {"coil": {"family": family}, **top}
    return Protocol.model_validate(
        document(intensity={"reference": reference, "scaling_pct": pct}, pattern=pattern, **fields)
    )


def mt(
    value: float = 55,
    *,
    reference: str = "rMT",
    family: str = "figure8",
    coil_model: str | None = None,
    stimulator: str = "magstim-rapid2",
) -> MotorThreshold:
    return MotorThreshold(reference, value, stimulator, Coil(family=family, model=coil_model))  # type: ignore[arg-type]


def rule_ids(findings: Any, severity: str | None = None) -> set[str]:
    return {f.rule_id for f in findings if severity is None or f.severity == severity}
