"""MEPs for a threshold hunt from EMG: the ``respond`` callback of :class:`~tmsctl.clinic.mt_session.MtHunt`.

For each pulse the responder asks its EMG source for the epoch around the pulse's instant (the
source waits on the hunt's clock until the MEP window has passed), measures the MEP with
:func:`~tmsctl.clinic.mep.detect_mep`, and answers the procedure with the amplitude. A trial the
detector rejects raises :class:`TrialRejected`: the hunt records the rejection and gives another
pulse at the same intensity, and stops (disarmed) when rejections pile up.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from tmsctl.clinic.threshold import MepResponse
from tmsctl.core.errors import InvalidArgument, TmsError

from .emg import EmgSampleRateError, EmgSource, PulseMark
from .mep import DEFAULT_MUSCLE, MepMeasurement, MuscleConfig, detect_mep

__all__ = ["DetectedMep", "EmgResponder", "TrialRejected"]


@dataclass(frozen=True)
class DetectedMep(MepResponse):
    """An amplitude measured from EMG, with the measurement it came from."""

    measurement: MepMeasurement | None = None


class TrialRejected(TmsError):
    """The pulse's EMG gave no MEP measurement; ``measurement`` says why."""

    hint = "keep the muscle relaxed and check the EMG electrodes; the pulse is given again"

    def __init__(self, measurement: MepMeasurement) -> None:
        super().__init__(f"trial rejected ({measurement.rejection}): {measurement.detail}")
        self.measurement = measurement


class EmgResponder:
    """``respond(PendingTrial)`` from an EMG source and a muscle's detection settings."""

    def __init__(self, source: EmgSource, muscle: MuscleConfig = DEFAULT_MUSCLE) -> None:
        self.source = source
        self.muscle = muscle
        self.pulses_asked = 0
        self.measurements: list[MepMeasurement] = []
        self._lock = threading.Lock()

    def __call__(self, pending: Any) -> MepResponse:
        with self._lock:
            self.pulses_asked += 1
            mark = PulseMark(self.pulses_asked, pending.fired_at_s, pending.intensity_pct_mso)
        epoch = self.source.fetch(mark, self.muscle.before_s, self.muscle.after_s)
        try:
            measurement = detect_mep(epoch, self.muscle)
        except InvalidArgument as exc:  # never re-asked for the same pulse: it is the stream, not an entry
            raise EmgSampleRateError(exc.message, hint=exc.hint) from None
        self.measurements.append(measurement)
        if measurement.rejected:
            raise TrialRejected(measurement)
        assert measurement.amplitude_uv is not None
        return DetectedMep(amplitude_uv=min(measurement.amplitude_uv, 50_000.0), measurement=measurement)
