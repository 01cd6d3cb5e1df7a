"""What a clinician measures and prescribes, built on the session core.

* MEPs from EMG: detection (``mep``), EMG inputs (``emg``) and the responder a motor-threshold hunt
  asks (``responder``).
* Motor threshold (``threshold``: ML-PEST, 5-of-10; ``mt_session``: the hunt on a stimulator), hotspot
  search (``hotspot``), recruitment curves (``iocurve``), targeting (``targeting``).
* Courses: course templates (``templates``) and the course report (``course_report``); the rating
  scales live with the records that validate them (``tmsctl.records.scales``), the records of courses
  and outcome entries in ``tmsctl.records.courses``.
"""
