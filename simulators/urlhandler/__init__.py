"""pyserial URL handlers provided by tmsctl (``sim://``)."""
