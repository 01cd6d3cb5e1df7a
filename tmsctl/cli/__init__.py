"""The technician's commands. ``main`` builds the ``tmsctl`` command and dispatches to one module per
command group, each imported only when its command runs (start-up stays fast).
"""
