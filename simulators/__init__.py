"""Wire-faithful simulated stimulators (import as ``tmsctl.simulators``)."""
