"""pylsl, the optional Lab Streaming Layer library, loaded on first use with an error that says how to
install it. Marker outlets (``tmsctl.lab.lsl``), EMG inlets (``tmsctl.clinic.emg``) and the simulated
EMG stream (``tmsctl.simulators.emg_lsl``) all load it here.
"""

from __future__ import annotations

from typing import Any

from tmsctl.core.errors import TmsError


class LslUnavailable(TmsError):
    hint = "install the extra: pip install 'tmsctl[lsl]' (pylsl bundles liblsl on Linux with glibc >= 2.35)"


def load_pylsl() -> Any:
    try:
        import pylsl
    except (ImportError, RuntimeError, OSError) as exc:  # pylsl raises RuntimeError without liblsl
        raise LslUnavailable(f"pylsl cannot be loaded: {exc}") from exc
    return pylsl
