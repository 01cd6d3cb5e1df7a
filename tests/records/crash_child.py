"""A stand-in session runner for the kill tests: records trains in a loop, reporting every commit.

Usage: ``python crash_child.py DB LOG (new|SESSION_ID) TRAINS PULSES (lockstep|free)``

Prints ``session ID`` once, then for each train ``begun I``, ``progress I P`` per pulse and
``done I`` — each line only after the corresponding transaction committed (and, for ``done``,
after the audit log line was written), flushed at once. In ``lockstep`` mode it then waits for
a line on stdin: ``go`` continues to the next step, ``run`` switches to running freely (so a
kill lands at an arbitrary instant, possibly inside a commit). Resuming a session (a SESSION_ID
instead of ``new``) resolves a partial train by delivering its remainder, as a runner might.
"""

from __future__ import annotations

import sys

from tmsctl.core.clock import SystemClock
from tmsctl.records import (
    DeliveryKind,
    DeliveryPlan,
    DeliveryResult,
    Records,
    SessionPlan,
    TriggerSource,
)
from tmsctl.session.audit import SessionAuditLog

LOCKSTEP = [False]


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if LOCKSTEP[0]:
        command = sys.stdin.readline().strip()
        if command == "run":
            LOCKSTEP[0] = False
        elif command != "go":
            raise SystemExit(f"unexpected command {command!r}")


def main(db: str, log_path: str, which: str, trains: int, pulses: int) -> None:
    clock = SystemClock()
    origin = clock.now()
    records = Records(db, clock=clock)
    if which == "new":
        records.ensure_subject("S017")
        session_id = records.create_session(
            SessionPlan(
                subject_id="S017",
                protocol_id="crash-test",
                protocol_hash="sha256:" + "5e" * 32,
                protocol_text="id: crash-test\n",
                device_url="sim://rapid2?unlock=KILLTESTSECRET",
                device_model="magstim-rapid2",
                simulated=True,
                planned_deliveries=trains,
                planned_pulses=trains * pulses,
            )
        ).session_id
        records.start_session(session_id, operator="child")
    else:
        session_id = which
        records.resume_session(session_id, operator="child", reason="resume after kill")
    say(f"session {session_id}")
    with SessionAuditLog.open(log_path, session_id=session_id, simulated=True, clock=clock,
                              monotonic_origin_s=origin) as audit:
        point = records.resume_point(session_id)
        remainder: dict[int, int] = {}
        if point.partial is not None:
            left = point.partial.pulses_planned - point.partial.pulses_delivered
            if left > 0:
                records.retry_partial(session_id, point.partial.index, operator="child",
                                      reason=f"deliver the remaining {left} pulses")
                remainder[point.partial.index] = left
            else:
                records.skip_partial(session_id, point.partial.index, operator="child",
                                     reason="every pulse was recorded before the kill")
            point = records.resume_point(session_id)
        for index in range(point.next_index, trains):
            planned = remainder.get(index, pulses)
            records.begin_delivery(
                DeliveryPlan(
                    session_id, index, DeliveryKind.TRAIN, 1.0 * index, planned, 50.0, TriggerSource.SERIAL
                )
            )
            say(f"begun {index}")
            for pulse in range(1, planned + 1):
                records.record_progress(session_id, index, pulses_delivered=pulse)
                say(f"progress {index} {pulse}")
            records.finish_delivery(DeliveryResult(session_id, index, planned, True, clock.now() - origin,
                                                   clock.wall()))
            audit.logger.info("train_finished", index=index, pulses_delivered=planned, durable=True,
                              unlock_code="KILLTESTSECRET")
            say(f"done {index}")
        records.complete_session(session_id)
        say("completed")
    records.close()


if __name__ == "__main__":
    LOCKSTEP[0] = sys.argv[6] == "lockstep"
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
