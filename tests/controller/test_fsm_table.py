"""Every state × every trigger either moves to the table's destination or refuses with our error (h2 style)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tmsctl.core.errors import FaultLatched, SafetyViolation
from tmsctl.session.fsm import TRANSITIONS, TRIGGERS, State, StateMachine, _as_state


def _table() -> dict[tuple[State, str], State]:
    table = {}
    for t in TRANSITIONS:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        for src in sources:
            table[(_as_state(src), t["trigger"])] = _as_state(t["dest"])
    return table


TABLE = _table()


@given(st.sampled_from(list(State)), st.sampled_from(TRIGGERS))
def test_every_state_and_trigger_is_defined(state: State, trigger: str) -> None:
    changes: list[tuple[State, State, str]] = []
    fsm = StateMachine(lambda a, b, t: changes.append((a, b, t)), lambda *a: None)
    fsm.force(state)
    expected = TABLE.get((state, trigger))
    if expected is None:
        try:
            fsm.fire(trigger)
        except (SafetyViolation, FaultLatched) as exc:
            assert trigger in str(exc)
        else:
            raise AssertionError(f"{trigger} from {state} should be refused")
        assert fsm.state is state
        assert not fsm.may(trigger)
    else:
        assert fsm.may(trigger)
        fsm.fire(trigger)
        assert fsm.state is expected
        assert changes[-1] == (state, expected, trigger)


def test_fault_and_estop_reach_every_live_state() -> None:
    for state in State:
        if state not in (State.DISCONNECTED, State.ESTOP):
            assert TABLE[(state, "fault")] is State.FAULT or state is State.FAULT
        assert TABLE[(state, "estop")] is State.ESTOP


def test_only_acknowledge_leaves_fault_and_nothing_leaves_estop() -> None:
    assert {t for (s, t) in TABLE if s is State.FAULT} == {"fault", "acknowledge", "estop"}
    assert {t for (s, t) in TABLE if s is State.ESTOP} == {"estop"}


def test_no_trigger_arms_from_outside_idle_or_paused() -> None:
    assert {s for (s, t) in TABLE if t == "arm"} == {State.IDLE, State.PAUSED}
    assert {s for (s, t) in TABLE if t == "fire"} == {State.ARMED}


def test_diagram_lists_every_transition() -> None:
    fsm = StateMachine(lambda *a: None, lambda *a: None)
    diagram = fsm.mermaid()
    assert diagram.count("-->") == len(TABLE) + 1
