"""tmsctl: a safe, testable controller for TMS stimulators.

    import tmsctl
    with tmsctl.open("sim://rapid2") as stim:   # or "magstim-rapid2:///dev/ttyUSB0?unlock=env:CODE"
        stim.connect(); stim.set_intensity(40); stim.arm(); stim.fire()

See ``tmsctl.lab.api`` for the embedding API and ``tmsctl.cli.main`` for the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Stimulator", "__version__", "open"]

if TYPE_CHECKING:
    from tmsctl.lab.api import Stimulator, open


def __getattr__(name: str) -> Any:
    # Imported on first use: `import tmsctl` stays light for the CLI and for tools that only
    # need a codec or the clock.
    if name in ("open", "Stimulator"):
        from tmsctl.lab import api

        return getattr(api, name)
    raise AttributeError(f"module 'tmsctl' has no attribute {name!r}")
