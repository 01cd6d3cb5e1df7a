"""One treatment room, as its own process, for the two-rooms test (virtual time, one records server).

    room_child.py URL treat SUBJECT HOUR TRAINS leave|complete
        plans a 4-train session at HOUR:00 UTC on 2026-03-02, delivers TRAINS trains, then
        completes it or leaves it running (the process ends: the session is found interrupted);
        prints "before N SESSIONS", "session ID", "after N".
    room_child.py URL resume SESSION_ID HOUR
        resumes the session from here and delivers what is left; prints "resumed FROM", "after N".
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime

from records_helpers import deliver, running_session

from tmsctl.core.clock import VirtualClock
from tmsctl.records import Records

DAY = date(2026, 3, 2)


def main(url: str, command: str, *args: str) -> None:
    hour = int(args[1])
    clock = VirtualClock(autojump=False, wall_start=datetime(2026, 3, 2, hour, tzinfo=UTC))
    records = Records(url, clock=clock)
    if command == "treat":
        subject, trains, ending = args[0], int(args[2]), args[3]
        exposure = records.exposure_on_day(subject, DAY)
        print(f"before {exposure.possible_pulses} {exposure.sessions_started}", flush=True)
        session_id = running_session(records, subject_id=subject)
        print(f"session {session_id}", flush=True)
        for index in range(trains):
            clock.advance(10.0)
            deliver(records, session_id, index)
        if ending == "complete":
            records.complete_session(session_id)
        print(f"after {records.pulses_on_day(subject, DAY)}", flush=True)
        if ending == "leave":
            sys.stdout.close()
            import os

            os._exit(0)  # the workstation goes away without closing anything
    else:
        session_id = args[0]
        records.resume_session(session_id, operator="room 3", reason="resumed in another room")
        point = records.resume_point(session_id)
        print(f"resumed {point.next_index}", flush=True)
        for index in range(point.next_index, point.planned_deliveries):
            clock.advance(10.0)
            deliver(records, session_id, index)
        records.complete_session(session_id)
        subject = records.session(session_id).subject_id
        print(f"after {records.pulses_on_day(subject, DAY)}", flush=True)
    records.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
