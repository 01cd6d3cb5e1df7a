"""The controller's state machine: states, the transition table (data), and how it is driven.

``transitions`` is used narrowly (see STYLE.md): no ``to_<state>`` shortcuts
(``auto_transitions=False``), invalid triggers raise, one transition completes before the next
(``queued=True``), and every attempted trigger is audited through ``finalize_event``. Guards are
not conditions inside the machine — transitions would return ``False`` silently — but named
predicates the controller evaluates first, raising ``GuardRejected`` with every failing reason.
No device I/O happens in callbacks: the controller does the I/O, then fires the trigger that
records the confirmed fact.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from transitions import EventData, Machine, MachineError

from tmsctl.core.errors import FaultLatched, SafetyViolation


class State(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    IDLE = "idle"  # under remote control, disarmed
    ARMING = "arming"
    ARMED = "armed"  # charged, able to fire
    STIMULATING = "stimulating"  # a pulse or train is being delivered
    PAUSED = "paused"  # a session is paused: disarmed, resumable
    DISARMING = "disarming"
    FAULT = "fault"  # latched until acknowledged
    ESTOP = "estop"  # terminal for this controller
    DONE = "done"  # the session completed; disarmed


S = State


def _as_state(value: object) -> State:
    """transitions names Enum states by member name in transitions and by member in the model."""
    if isinstance(value, State):
        return value
    text = str(value)
    return State[text] if text in State.__members__ else State(text)

_ANY_LIVE = [S.CONNECTING, S.IDLE, S.ARMING, S.ARMED, S.STIMULATING, S.PAUSED, S.DISARMING, S.DONE]

# (trigger, sources, destination)
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "connect", "source": S.DISCONNECTED, "dest": S.CONNECTING},
    {"trigger": "connected", "source": S.CONNECTING, "dest": S.IDLE},
    {"trigger": "arm", "source": [S.IDLE, S.PAUSED], "dest": S.ARMING},
    {"trigger": "armed", "source": S.ARMING, "dest": S.ARMED},
    {"trigger": "fire", "source": S.ARMED, "dest": S.STIMULATING},
    {"trigger": "delivered", "source": S.STIMULATING, "dest": S.ARMED},
    {"trigger": "disarm", "source": [S.ARMING, S.ARMED, S.STIMULATING, S.IDLE], "dest": S.DISARMING},
    {"trigger": "disarmed", "source": S.DISARMING, "dest": S.IDLE},
    {"trigger": "pause", "source": [S.IDLE, S.ARMING, S.ARMED, S.STIMULATING, S.DISARMING], "dest": S.PAUSED},
    {"trigger": "resume", "source": S.PAUSED, "dest": S.IDLE},
    {"trigger": "finish", "source": [S.IDLE, S.ARMED, S.DISARMING], "dest": S.DONE},
    {"trigger": "disconnect", "source": [S.IDLE, S.DONE, S.PAUSED], "dest": S.DISCONNECTED},
    {"trigger": "fault", "source": [*_ANY_LIVE, S.FAULT], "dest": S.FAULT},
    {"trigger": "acknowledge", "source": S.FAULT, "dest": S.DISCONNECTED},
    {"trigger": "estop", "source": [*_ANY_LIVE, S.FAULT, S.DISCONNECTED, S.ESTOP], "dest": S.ESTOP},
]

TRIGGERS = sorted({t["trigger"] for t in TRANSITIONS})
# States in which the device may hold charge; any fault from here must try to disarm.
# A tuple: membership is tested on every exchange, by identity first, where a set would hash the
# enum in Python each time.
ENERGISED = (S.ARMING, S.ARMED, S.STIMULATING)


class _Model:
    """The object the machine drives; it only holds the state."""

    state: State


class StateMachine:
    def __init__(self, on_change: Callable[[State, State, str], None], audit: Callable[[str, State, bool], None]):
        self._model = _Model()
        self._on_change = on_change
        self._audit = audit
        self._machine = Machine(
            model=self._model,
            states=State,
            transitions=TRANSITIONS,
            initial=State.DISCONNECTED,
            auto_transitions=False,
            ignore_invalid_triggers=False,
            queued=True,
            send_event=True,
            after_state_change=self._changed,
            finalize_event=self._finalize,
        )
        self._state = State.DISCONNECTED
        # The table never changes after construction: which triggers each state allows, once.
        self._triggers = {state: frozenset(self._machine.get_triggers(state)) for state in State}

    @property
    def state(self) -> State:
        return self._state

    def may(self, trigger: str) -> bool:
        return trigger in self._triggers[self._state]

    def allowed_triggers(self) -> list[str]:
        return sorted(t for t in self._triggers[self._state] if t in TRIGGERS)

    def fire(self, trigger: str) -> None:
        """Take a transition; a trigger not allowed in this state raises with the reason."""
        if not self.may(trigger):
            if self.state is State.FAULT:
                raise FaultLatched(f"cannot {trigger}: a fault is latched")
            if self.state is State.ESTOP:
                raise FaultLatched(f"cannot {trigger}: the emergency stop was pressed", hint="restart the session")
            raise SafetyViolation(
                f"cannot {trigger} while {self.state.value}",
                hint=f"allowed now: {', '.join(self.allowed_triggers()) or 'nothing'}",
            )
        try:
            self._model.trigger(trigger)  # type: ignore[attr-defined]
        except MachineError as exc:  # unreachable after may(); kept so nothing escapes untyped
            raise SafetyViolation(str(exc)) from exc

    def _changed(self, event: EventData) -> None:
        self._state = _as_state(self._model.state)
        transition = event.transition
        assert transition is not None, "transitions calls after_state_change only for a transition"
        self._on_change(_as_state(transition.source), _as_state(transition.dest), event.event.name)

    def _finalize(self, event: EventData) -> None:
        self._audit(event.event.name, self.state, event.result is not False and event.error is None)

    def force(self, state: State) -> None:
        """Tests only (the h2-style table test): put the machine in ``state``."""
        self._machine.set_state(state, model=self._model)
        self._state = state

    def mermaid(self) -> str:
        lines = ["stateDiagram-v2", f"    [*] --> {State.DISCONNECTED.value}"]
        for t in TRANSITIONS:
            sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
            for src in sources:
                lines.append(f"    {_as_state(src).value} --> {_as_state(t['dest']).value}: {t['trigger']}")
        return "\n".join(lines)
