"""Plan factories shared by the records tests (a uniquely named module: tests have no packages)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from tmsctl.records.server import is_server_url
from tmsctl.records import (
    DeliveryKind,
    DeliveryPlan,
    DeliveryResult,
    Records,
    SessionPlan,
    TriggerSource,
)

PROTOCOL_HASH = "sha256:" + "3f" * 32
OTHER_HASH = "sha256:" + "a1" * 32


def session_plan(**changes: Any) -> SessionPlan:
    plan = SessionPlan(
        subject_id="S017",
        protocol_id="itbs-600",
        protocol_hash=PROTOCOL_HASH,
        protocol_text="schema_version: 1\nid: itbs-600\n",
        device_url="sim://rapid2?seed=7",
        device_model="magstim-rapid2",
        simulated=False,
        planned_deliveries=4,
        planned_pulses=40,
        device_serial="SN-1234",
        device_firmware="9.1",
        coil="D70",
    )
    return replace(plan, **changes)


def train_plan(session_id: str, index: int = 0, **changes: Any) -> DeliveryPlan:
    fields: dict[str, Any] = {
        "session_id": session_id,
        "index": index,
        "kind": DeliveryKind.TRAIN,
        "planned_onset_s": 10.0 * max(index, 0),
        "pulses_planned": 10,
        "intensity_pct_mso": 55.0,
        "trigger_source": TriggerSource.SERIAL,
    }
    return DeliveryPlan(**{**fields, **changes})


def deliver(records: Records, session_id: str, index: int, *, pulses: int = 10) -> None:
    """Record one complete train of ``pulses`` pulses at ``index``."""
    records.begin_delivery(train_plan(session_id, index, pulses_planned=pulses))
    records.finish_delivery(DeliveryResult(session_id, index, pulses, True, onset_offset_s=10.0 * index))


def running_session(records: Records, **changes: Any) -> str:
    records.ensure_subject(changes.get("subject_id", "S017"))
    session = records.create_session(session_plan(**changes))
    records.start_session(session.session_id, operator="tech1")
    return session.session_id


def wait_until_the_server_saw_it_end(db: Path | str, pid: int) -> None:
    """A server frees a dead client's owner lock when it notices the connection closed, a moment
    after the kill (the kernel frees a file lock at once): wait for that, on the server's clock."""
    if not is_server_url(str(db)):
        return
    import psycopg

    with psycopg.connect(str(db), autocommit=True) as watcher:
        for _ in range(500):
            (left,) = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s", (f"tmsctl pid {pid} on %",)
            ).fetchone()
            if left == 0:
                return
            watcher.execute("SELECT pg_sleep(0.01)")
    raise AssertionError(f"the server still serves the killed process {pid}")
