"""``timed_by: external_trigger`` is refused at validation: tmsctl has no path that lets a trigger
input time the pulses, so the runner would fire them itself over serial and fault mid-session."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from protocols_helpers import mt, rule_ids

from tmsctl.core.clock import VirtualClock
from tmsctl.drivers.magstim.spec import load_spec
from tmsctl.protocols import check, load_library_protocol
from tmsctl.protocols.canonical import content_hash
from tmsctl.protocols.loader import load_protocol
from tmsctl.records import Records
from tmsctl.session.planned import SessionRefused, SessionRequest, plan_session
from tmsctl.simulators import registry as sims

LIBRARY = Path(__file__).resolve().parents[2] / "protocols" / "library"
EXTERNAL_ITBS = (LIBRARY / "itbs-600.yaml").read_text().replace("id: itbs-600", "id: itbs-600-external") + (
    "timed_by: external_trigger\n"
)


def test_an_externally_timed_protocol_is_refused_with_or_without_a_device(tmp_path) -> None:
    path = tmp_path / "itbs-external.yaml"
    path.write_text(EXTERNAL_ITBS)
    protocol = load_protocol(path)
    assert "timing.external-trigger" in rule_ids(check(protocol).refusals)
    rapid2 = load_spec("magstim-rapid2").for_version((9, 0))
    verdict = check(protocol, device=rapid2, thresholds=[mt(25, reference="aMT", stimulator=rapid2.model)])
    assert rule_ids(verdict.refusals) == {"timing.external-trigger"}


def test_the_rapid2_refusal_of_itbs_no_longer_points_at_external_triggering() -> None:
    rapid2 = load_spec("magstim-rapid2").for_version((9, 0))
    verdict = check(load_library_protocol("itbs-600"), device=rapid2,
                    thresholds=[mt(25, reference="aMT", stimulator=rapid2.model)])
    hints = " ".join(f.hint or "" for f in verdict.refusals)
    assert "device.capability" in rule_ids(verdict.refusals)
    assert "external_trigger" not in hints


def test_a_session_of_it_is_refused_before_it_starts(tmp_path) -> None:
    path = tmp_path / "itbs-external.yaml"
    path.write_text(EXTERNAL_ITBS)
    clock = VirtualClock()
    sim = sims.create("rapid2", clock=clock, name=f"rapid2-external-{next(_names)}")
    with Records(tmp_path / "records.db") as records:
        protocol = load_protocol(path)
        records.approve_protocol(protocol.id, content_hash(protocol), approved_by="reviewer")
        with pytest.raises(SessionRefused) as refused:
            plan_session(SessionRequest(path, f"sim://{sim.name}", "S001", operator="tester", mt_pct_mso=35), records)
        assert "timing.external-trigger" in rule_ids(refused.value.verdict.refusals)
    assert sim.device.truth() == ()


_names = itertools.count()
