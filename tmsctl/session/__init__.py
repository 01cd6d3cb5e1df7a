"""One session: the state machine, the guards, the controller, the runner, the delivered-dose model,
the session host that owns driver, controller, records and audit log, and the planned session
(``planned``: plan, check, confirm, run, record, resume) that ``tmsctl run``, ``fire``, ``mt`` and the
API all go through.
"""
