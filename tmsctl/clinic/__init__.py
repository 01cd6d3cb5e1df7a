"""What a clinician measures and prescribes, built on the session core.

* MEPs from EMG: detection (``mep``), EMG inputs (``emg``) and the responder a motor-threshold hunt
  asks (``responder``).
* Courses: outcome measures (``outcomes``) and course templates (``templates``), pure data and pure
  functions; the records of courses and outcome entries live in ``tmsctl.records.courses``.
"""
