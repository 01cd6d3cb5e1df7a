"""Event sinks: listeners that carry controller events somewhere else (LSL markers, ...).

Every sink is a ``tmsctl.events.Listener``; one that can be slow is wrapped in a bounded queue
(``events.QueuedListener``) so it can never delay a pulse.
"""
