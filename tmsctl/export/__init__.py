"""Exports of recorded sessions to community formats (each pinned to a named version)."""
