"""Embedding and exchange: the Python API (``tmsctl.open``), the pytest plugin and test kit, the
driver conformance suite, LSL markers, BIDS export and the HTML session report.
"""
