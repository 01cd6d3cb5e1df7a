"""MagVenture MagPro (R30, X100, with or without MagOption): wire codec and model specs."""
