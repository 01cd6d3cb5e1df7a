"""Stimulation protocols: models, expansion and safety rules (import as ``tmsctl.protocols``)."""
