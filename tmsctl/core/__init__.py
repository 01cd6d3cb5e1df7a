"""The ground every other layer stands on: one clock, typed errors, events, device URLs, the port
(transport) and plugin discovery (the driver and simulator registries).

Nothing here imports from ``tmsctl.records``, ``session``, ``lab``, ``clinic`` or ``cli``
(tests/meta/test_layers.py keeps it so). Above it, from the bottom floor up: ``records`` (the source of
truth), ``session`` (one session host: plan, guards, state machine, runner, audit), ``lab`` (embedding
and exchange: API, test kit, LSL, BIDS, reports), ``clinic`` (what a clinician measures and
prescribes) and ``cli`` (the technician's commands). ``drivers``, ``protocols`` and ``simulators``
stand beside ``core`` and import only it.
"""
