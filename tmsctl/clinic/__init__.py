"""Clinical tools around sessions: outcome measures (``outcomes``) and course templates (``templates``).

Everything here is pure data and pure functions; the records of courses and outcome entries live
in ``tmsctl.records.courses``.
"""
