"""The error of a measurement built on a threshold hunt's pulses that stopped before its plan's end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tmsctl.core.errors import TmsError

if TYPE_CHECKING:
    from tmsctl.clinic.mt_session import HuntStopped


class MeasurementStopped(TmsError):
    """A measurement built on the hunt's pulses (a hotspot search, an input–output curve) stopped before
    its plan's end: the hunt's ``HuntStopped`` told in the measurement's own words. The device was
    disarmed and released; what was given is on record (``recorded``)."""

    measurement = "measurement"
    nothing_kept = "nothing was kept"

    def __init__(self, stopped: HuntStopped, recorded: Any | None) -> None:
        super().__init__(
            stopped.message.replace("threshold hunt", self.measurement).replace(
                "no threshold was recorded", self.nothing_kept),
            hint=stopped.hint,
        )
        self.cause = stopped.cause
        self.pulses_delivered = stopped.pulses_delivered
        self.recorded = recorded
