"""Wire-faithful simulated stimulators (import as ``tmsctl.simulators``).

Importing this package registers the ``sim://`` URL handler with pyserial, once.
"""

from __future__ import annotations

import serial

_HANDLERS = "tmsctl.simulators.urlhandler"
if _HANDLERS not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append(_HANDLERS)
