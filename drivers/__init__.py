"""Device drivers (import as ``tmsctl.drivers``)."""
