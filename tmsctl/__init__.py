"""tmsctl: a safe, testable controller for TMS stimulators."""

from __future__ import annotations

__version__ = "0.1.0"
