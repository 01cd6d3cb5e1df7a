"""Magstim 200², BiStim² and Rapid²: codec, drivers and model specs."""
