"""The session runner: executes an expanded schedule on the clock, through the controller.

Every train fires at its absolute scheduled instant (session start + onset, corrected for the
trigger's wire time), so errors never accumulate. Between trains the runner only services the
controller (keep-alives, train ends). Before a train fires, its intent is committed to the
records; after it ends, its completion — so a crash can never make a resume repeat a train.

Pause and abort are requests (thread- and signal-safe flags) honoured at the next service
point, within one keep-alive period; both disarm first.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from tmsctl.core.errors import DeviceStateError, GuardRejected, InvalidArgument, TmsError
from tmsctl.drivers.base import Capability
from tmsctl.protocols.schedule import Schedule, ScheduledTrain, host_bursts
from tmsctl.records.errors import RecordsUnavailable
from tmsctl.session.controller import UNCONFIRMED_DISARM_WORDS, Controller, Delivery
from tmsctl.session.dose import DoseCount
from tmsctl.session.fsm import ENERGISED, State
from tmsctl.session.safety import PulseCap

ARM_LEAD_S = 2.5  # arm this long before a train (arming takes up to 1 s on a Magstim)
PREPARE_LEAD_S = 4.0  # set intensity/train parameters this long before
START_LEAD_S = ARM_LEAD_S + 1.0  # the first train: time to set parameters, then arm
STAY_ARMED_GAP_S = 45.0  # stay armed between trains closer than this (devices self-disarm at 60 s)
FRESH_STATUS_LEAD_S = 0.05  # read status this long before each trigger (an exchange takes ~8 ms)
INTENT_LEAD_S = 0.1  # commit a train's intent this long before it fires (an fsync takes a few ms)
RECORDS_RETRY_S = 5.0  # while the records are unreachable, ask again this often (disarmed meanwhile)
RECORDS_WAIT_LIMIT_S = 600.0  # and give up after this long: the session then ends, resumable
EXTERNAL_POLL_S = 0.05  # a trigger box fires: ask the device this often (its pulse reports come with the answers)
EXTERNAL_START_TIMEOUT_S = 120.0  # the box must start this soon after tmsctl armed for it
EXTERNAL_SLACK_S = 5.0  # and may fall this far behind the protocol's timing before tmsctl stops it


class RunOutcome(StrEnum):
    COMPLETED = "completed"  # every train known delivered in full
    INCOMPLETE = "incomplete"  # the schedule ran to its end, but not every train is known delivered in full
    PAUSED = "paused"
    ABORTED = "aborted"
    FAULTED = "faulted"


@dataclass
class Progress:
    """What a live display shows; updated by the runner, read by anyone."""

    trains_total: int
    pulses_total: int
    next_index: int = 0
    pulses_delivered: int = 0  # known delivered (tmsctl.session.dose)
    pulses_uncertain: int = 0  # may have gone out
    state: str = "idle"
    session_start: float | None = None
    next_onset: float | None = None
    last_fault: str | None = None
    onset_errors_s: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class RunResult:
    outcome: RunOutcome
    next_index: int
    pulses_delivered: int
    reason: str = ""
    onset_errors_s: tuple[float, ...] = ()
    pulses_uncertain: int = 0
    disarm_unconfirmed: bool = False  # the device never confirmed a disarm: it may still be armed


class DeliveryLog:
    """Where the runner writes what it does. ``records``-backed in production; in-memory in tests."""

    def begin(self, train: ScheduledTrain, planned_at: float, trigger_source: str) -> None:
        """Put the train's intent on record; raises RecordsUnavailable when the records cannot be reached."""

    def reachable(self) -> bool:
        """Whether the records answer now (asked while waiting for them to come back)."""
        return True

    def fired(self, train: ScheduledTrain, pulses_known: int) -> None: ...
    def finish(self, train: ScheduledTrain, dose: DoseCount, started_at: float, onset_error_s: float) -> None: ...
    def fault(self, code: str, detail: str, index: int) -> None: ...
    def paused(self, index: int, reason: str) -> None: ...
    def aborted(self, index: int, reason: str) -> None: ...
    def completed(self) -> bool:
        """The schedule ran to its end; True when every position is known delivered in full."""
        return True


class SessionRunner:
    def __init__(
        self,
        controller: Controller,
        schedule: Schedule,
        *,
        log: DeliveryLog | None = None,
        start_index: int = 0,
        pulses_already_delivered: int = 0,
        pulses_already_uncertain: int = 0,
        trigger_source: str = "serial",
        on_progress: Callable[[Progress], None] | None = None,
        externally_timed: bool = False,
    ) -> None:
        if not schedule.intensity_resolved:
            raise InvalidArgument(
                "the schedule has no resolved intensity (%MT needs a motor threshold)",
                hint="give --mt or record a motor threshold for this subject, stimulator and coil",
            )
        self.controller = controller
        self.clock = controller.clock
        self.schedule = schedule
        self.log = log or DeliveryLog()
        self.start_index = start_index
        self.trigger_source = trigger_source
        # timed_by: external_trigger: every pulse is its own trigger (RTS edges, a trigger box), so the
        # unit is kept in single-pulse mode whatever the pattern; a device timer is never used.
        self.externally_timed = externally_timed or trigger_source == "external_ttl"
        self.on_progress = on_progress
        self.progress = Progress(
            len(schedule.trains), schedule.total_pulses, start_index, pulses_already_delivered,
            pulses_already_uncertain,
        )
        self._open: _OpenTrain | None = None  # the train begun on record and not yet finished there
        self._pause = threading.Event()
        self._abort = threading.Event()
        self._wake = self.clock.event()  # set by a request so waits end at once, not at a poll
        self._reason = ""
        self._stimulus_applied = False
        controller.pulse_cap = PulseCap(schedule.total_pulses, pulses_already_delivered + pulses_already_uncertain)
        controller.intensity_cap_pct_mso = max(
            max(t.intensity_pct_mso or 0, t.conditioning_intensity_pct_mso or 0) for t in schedule.trains
        )

    # -- requests (any thread, signal handlers) --------------------------------------------------------
    def request_pause(self, reason: str = "operator pause") -> None:
        """From another thread (a UI): stop before the next train, disarmed. Not for signal handlers."""
        self._reason = reason
        self._pause.set()
        self._wake.set()

    def request_abort(self, reason: str = "operator abort") -> None:
        """From another thread (a UI): stop now, disarmed. Not for signal handlers (use Ctrl-C)."""
        self._reason = reason
        self._abort.set()
        self._wake.set()

    # -- running -----------------------------------------------------------------------------------------
    def _publish(self) -> None:
        self.progress.state = str(self.controller.state)  # a StrEnum's str is its value, without the enum property's cost
        self.progress.last_fault = self.controller.last_fault
        if self.on_progress:
            self.on_progress(self.progress)

    def _wait(self, until: float, *, fire_at: float | None = None) -> None:
        """Service the device until ``until``, checking for pause/abort requests."""
        while True:
            self._check_requests()
            nxt = self.controller.service(keep_clear_until=fire_at)
            now = self.clock.now()
            if now >= until:
                return
            self._publish()
            self.clock.wait(self._wake, min(until, nxt))

    def _wait_for_train_end(self) -> None:
        """Service the device until the controller has settled the device-timed train in progress,
        checking for pause/abort requests: one service() per wake-up (a keep-alive, the watch read
        before its last pulse, its end), and at least every 0.5 s for the progress display."""
        c = self.controller
        while True:
            self._check_requests()
            nxt = c.service()
            if c.delivery is None:
                return
            self._publish()
            self.clock.wait(self._wake, min(nxt, self.clock.now() + 0.5))

    def _check_requests(self) -> None:
        if self._abort.is_set():
            raise _Stop(RunOutcome.ABORTED)
        if self._pause.is_set():
            raise _Stop(RunOutcome.PAUSED)

    def run(self) -> RunResult:
        """Deliver the schedule from ``start_index``; returns how it ended (never leaves it armed)."""
        trains = self.schedule.trains[self.start_index :]
        if not trains:
            whole = self.log.completed()
            return self._result(RunOutcome.COMPLETED if whole else RunOutcome.INCOMPLETE)
        # The session clock starts so that the first remaining train keeps its place relative to
        # the ones after it; a resumed session re-bases on its next train.
        first = trains[0]
        session_start = self.clock.now() + START_LEAD_S - first.onset_s
        self.progress.session_start = session_start
        try:
            if self.trigger_source == "external_ttl":
                self._deliver_from_trigger_box(trains)
            for i, train in enumerate(trains if self.trigger_source != "external_ttl" else ()):
                nxt = trains[i + 1] if i + 1 < len(trains) else None
                session_start = self._deliver(train, session_start, nxt)
            self.controller.finish()
            whole = self.log.completed() and self.progress.pulses_uncertain == 0
            self._publish()
            return self._result(RunOutcome.COMPLETED if whole else RunOutcome.INCOMPLETE)
        except _Stop as stop:
            self._safe_disarm()
            if self._unconfirmed_disarm():
                return self._result(RunOutcome.FAULTED, UNCONFIRMED_DISARM_WORDS)
            if stop.outcome is RunOutcome.PAUSED:
                self.log.paused(self.progress.next_index, self._reason)
            else:
                self.log.aborted(self.progress.next_index, self._reason)
            self._publish()
            return self._result(stop.outcome, self._reason)
        except KeyboardInterrupt:
            self._safe_disarm()
            if self._unconfirmed_disarm():
                return self._result(RunOutcome.FAULTED, UNCONFIRMED_DISARM_WORDS)
            self.log.aborted(self.progress.next_index, "operator interrupt (Ctrl-C or SIGTERM)")
            self._publish()
            return self._result(RunOutcome.ABORTED, "operator interrupt (Ctrl-C or SIGTERM)")
        except TmsError as exc:
            self._safe_disarm()
            detail = exc.message
            self.log.fault(type(exc).__name__, detail, self.progress.next_index)
            if self._unconfirmed_disarm():
                return self._result(RunOutcome.FAULTED, UNCONFIRMED_DISARM_WORDS)
            self._publish()
            return self._result(RunOutcome.FAULTED, f"{detail}" + (f" ({exc.hint})" if exc.hint else ""))
        except Exception as exc:  # a bug of ours: still end disarmed, and say so in the record
            self._safe_disarm()
            self.log.fault("internal_error", f"{type(exc).__name__}: {exc}", self.progress.next_index)
            self._unconfirmed_disarm()
            raise

    def _result(self, outcome: RunOutcome, reason: str = "") -> RunResult:
        # what a display shows once the run is over: how it ended, and no countdown to a train that will not come
        self.progress.next_onset = None
        self._publish()
        self.progress.state = outcome.value
        if self.on_progress:
            self.on_progress(self.progress)
        return RunResult(
            outcome, self.progress.next_index, self.progress.pulses_delivered, reason,
            tuple(self.progress.onset_errors_s), self.progress.pulses_uncertain,
            self.controller.disarm_unconfirmed,
        )

    def _safe_disarm(self) -> None:
        """Disarm, then settle the open train on record with what the evidence says it delivered."""
        c = self.controller
        try:
            if c.state in ENERGISED:
                try:
                    c.disarm()
                except TmsError:
                    pass  # the controller latched FAULT, tried again, and knows whether it was confirmed
            elif c.state is State.DISARMING:
                c._fault("disarm_interrupted", "a disarm was interrupted; disarming again")
        finally:
            c.settle_trigger()
            self._finish_open_train()

    def _unconfirmed_disarm(self) -> bool:
        """A disarm the device never confirmed is a critical fault on record, whatever stopped the run."""
        if not self.controller.disarm_unconfirmed:
            return False
        self.log.fault("disarm_unconfirmed", UNCONFIRMED_DISARM_WORDS, self.progress.next_index)
        self._publish()
        return True

    def _finish_open_train(self) -> None:
        """Record how the train begun on record ended: its settled triggers; untriggered pulses did not go out."""
        open_train = self._open
        if open_train is None:
            return
        self._open = None
        dose = open_train.settle(self.controller.last_delivery)
        self.progress.pulses_delivered += dose.delivered
        self.progress.pulses_uncertain += dose.uncertain
        if dose.complete:
            self.progress.next_index = open_train.train.index + 1
        self.log.finish(open_train.train, dose, open_train.onset, open_train.onset_error_s)

    # -- one train ------------------------------------------------------------------------------------------
    def _deliver(self, train: ScheduledTrain, session_start: float, following: ScheduledTrain | None) -> float:
        """Deliver one train; returns the session start the trains after it keep to (later by however
        long the records were out of reach before it)."""
        c = self.controller
        onset = session_start + train.onset_s
        self.progress.next_onset = onset
        self._wait(onset - PREPARE_LEAD_S)
        self._prepare(train)
        if c.state is not State.ARMED:
            self._wait(onset - ARM_LEAD_S)
            self._check_requests()
            c.arm()
        # A pair is one trigger: the device fires its second pulse itself.
        host_timed = train.n_pulses > 1 and c.train is None and train.kind != "paired_pulse"
        rts = self.trigger_source == "rts"
        # RTS edges closer than an exchange allows go out as one burst the controller times itself.
        bursts = host_bursts(train.pulse_offsets_s) if host_timed and rts else None
        offsets = (
            tuple(burst[0] for burst in bursts) if bursts is not None
            else train.pulse_offsets_s if host_timed else (0.0,)
        )
        # Every driver says how long its trigger takes to reach the unit (a Magstim's 3 bytes at 9600
        # baud: 3.1 ms); an RTS edge reaches it at once.
        lead = 0.0 if rts else c.driver.trigger_lead_s
        open_train = _OpenTrain(train, onset, c.last_delivery)
        for k, offset in enumerate(offsets):
            fire_at = onset + offset - lead
            if k == 0:
                # Intent on disk before the trigger, never after: a crash in between leaves the
                # train on record as begun with its outcome unknown ("uncertain: 0 to all of it").
                self._wait(fire_at - INTENT_LEAD_S, fire_at=fire_at)
                try:
                    self.log.begin(train, onset, self.trigger_source)
                except RecordsUnavailable as exc:
                    # No durable intent, no trigger: wait disarmed for the records, then deliver this
                    # train anew with every later train shifted by the wait.
                    delay = self._wait_for_the_records(exc)
                    return self._deliver(train, session_start + delay, following)
                self._open = open_train
            else:
                self._wait_ready()
            self._wait(fire_at - FRESH_STATUS_LEAD_S, fire_at=fire_at)
            # A status and intensity read-back just before the trigger: if the unit disarmed itself
            # since the last keep-alive (coil, temperature, error), or its output is not the validated
            # one, we learn it here, before the pulse, instead of from a refusal or not at all.
            c.verify_before_trigger()
            self.clock.sleep_until(fire_at)
            open_train.triggering(c.last_delivery)
            burst = (0.0,) if bursts is None else tuple(round(b - offset, 9) for b in bursts[k])
            try:
                delivery = c.fire(trigger_source=self.trigger_source, burst_offsets_s=burst)
            except GuardRejected:
                open_train.not_fired()  # refused before anything was sent: nothing can have gone out
                raise
            error = (delivery.started_at + lead) - (onset + offset)
            if k == 0:
                self.progress.onset_errors_s.append(error)
                open_train.onset_error_s = error
            open_train.settled(c.last_delivery)
            # The device acknowledged the trigger: its first pulse is out. The rest of a device-timed
            # train is known only as the device reports it; until then the record keeps it uncertain.
            # (An RTS edge is acknowledged by nothing: its train's first pulse is known only from a status.)
            self.log.fired(train, open_train.known_so_far + (0 if c.delivery is None or rts else 1))
        if c.delivery is not None:  # a device-timed train
            self._wait_for_train_end()
        open_train.settled(c.last_delivery)
        self._finish_open_train()
        self._publish()
        if self.progress.next_index <= train.index:
            # Ended without a fault, yet the device's reports do not show every pulse out: stop here
            # rather than build a session on a dose nobody can vouch for.
            raise DeviceStateError(
                f"train {train.index + 1}: the device's reports do not show all {train.n_pulses} pulses delivered",
                hint="check the stimulator; `tmsctl session show` gives what is known and what is uncertain",
            )
        long_gap = following is None or following.onset_s - train.onset_s - train.duration_s > STAY_ARMED_GAP_S
        if long_gap and c.state in ENERGISED:
            c.disarm()
        return session_start

    def _deliver_from_trigger_box(self, trains: tuple[ScheduledTrain, ...]) -> None:
        """``trigger: external``: a box outside tmsctl times every pulse. tmsctl sets the unit up, arms
        it, and counts each train's pulses as the device reports them (exact), train after train in
        order; it disarms when the protocol's last pulse is counted, or when the box is late beyond
        the protocol's own timing by ``EXTERNAL_SLACK_S`` (``EXTERNAL_START_TIMEOUT_S`` for the first)."""
        c = self.controller
        carried = 0  # pulses the device reported beyond the train just counted: the next train's
        first_seen_at: float | None = None  # when the box's first pulse was counted
        origin = trains[0].onset_s
        for train in trains:
            self._prepare(train)
            if c.state is not State.ARMED:
                c.arm()
            open_train = _OpenTrain(train, self.clock.now(), c.last_delivery)
            self.log.begin(train, train.onset_s, self.trigger_source)
            self._open = open_train
            open_train.triggering(c.last_delivery)
            c.expect_external(train.pulse_offsets_s, counted_already=carried)
            begun = False
            while c.external_count() < train.n_pulses:
                now = self.clock.now()
                if first_seen_at is None:
                    deadline = open_train.onset + EXTERNAL_START_TIMEOUT_S
                else:
                    deadline = first_seen_at + train.end_s - origin + EXTERNAL_SLACK_S
                if now >= deadline:
                    raise TriggerBoxTimeout(
                        f"train {train.number}: the trigger box fired {c.external_count()} of its {train.n_pulses} "
                        f"pulses by {now - open_train.onset:.1f} s after tmsctl armed for it"
                    )
                self._wait(min(deadline, now + EXTERNAL_POLL_S))
                c.refresh_status()  # an exchange: the device's pulse reports come with its answers
                if not begun and c.external_count() > 0:
                    begun = True
                    first_seen_at = first_seen_at or self.clock.now()
                    self.log.fired(train, min(c.external_count(), train.n_pulses))
            carried = c.external_count() - train.n_pulses
            c.end_external()
            open_train.settled(c.last_delivery)
            self._finish_open_train()
            self._publish()
        if carried:
            c.disarm()
            raise TriggerBoxTimeout(
                f"the trigger box fired {carried} pulse(s) beyond the protocol's {self.schedule.total_pulses} before "
                "tmsctl disarmed the unit",
                hint="check the trigger box's program against the protocol; the extra pulses are on record here",
            )

    def _wait_for_the_records(self, cause: RecordsUnavailable) -> float:
        """Disarm and wait until the records answer again (pause and abort requests still count);
        returns how long it took. Past the limit the cause is raised: the session ends resumable."""
        c = self.controller
        if c.state in ENERGISED:
            c.disarm()
        started = self.clock.now()
        self.progress.last_fault = f"records unreachable, waiting disarmed: {cause.message}"
        self._publish()
        while not self.log.reachable():
            if self.clock.now() - started >= RECORDS_WAIT_LIMIT_S:
                raise cause
            self._wait(self.clock.now() + RECORDS_RETRY_S)
        self.progress.last_fault = None
        return self.clock.now() - started + START_LEAD_S

    def _wait_ready(self) -> None:
        c = self.controller
        if c.status is None or not c.status.ready:
            c.wait_ready()

    def _prepare(self, train: ScheduledTrain) -> None:
        c = self.controller
        intensity = train.intensity_pct_mso
        assert intensity is not None
        self._apply_stimulus()
        wants_train = (
            train.kind == "train" and train.n_pulses > 1 and Capability.INTERNAL_TRAIN in c.capabilities
            and train.frequency_hz is not None
        )
        if self.externally_timed:
            c.configure_single_pulse()  # a device call only when the unit may not be in it
            if c.intensity_pct_mso != intensity:
                c.set_intensity(intensity)
            return
        if train.kind == "theta_burst" and Capability.THETA_BURST in c.capabilities:
            self._prepare_theta_burst(train, intensity)
            return
        if train.kind == "paired_pulse":
            self._prepare_pair(train, intensity)
            return
        if c.pair is not None:
            c.configure_single_pulse()  # a trigger would otherwise fire the device's second output too
        if wants_train:
            assert train.frequency_hz is not None
            # Rapid²: power before frequency (the frequency ceiling depends on power), unless the
            # new power is too high for the current train settings.
            if c.train != (train.frequency_hz, train.n_pulses):
                if c.intensity_pct_mso != intensity and c.train is not None:
                    c.configure_single_pulse()
                if c.intensity_pct_mso != intensity:
                    c.set_intensity(intensity)
                c.configure_train(train.frequency_hz, train.n_pulses)
        else:
            c.configure_single_pulse()
        if c.intensity_pct_mso != intensity:
            c.set_intensity(intensity)


    def _apply_stimulus(self) -> None:
        """The protocol's waveform and current direction, set and read back once, before the first
        arming (the rulebook refused what the unit cannot set, and noted where it is no setting)."""
        stimulus = self.schedule.protocol.stimulus
        c = self.controller
        if self._stimulus_applied or stimulus is None or Capability.STIMULUS_SHAPE not in c.capabilities:
            return
        if c.state in ENERGISED:
            c.disarm()
        # a burst waveform is set with the bursts themselves (configure_theta_burst); its pulses are biphasic
        waveform = "biphasic" if stimulus.waveform == "biphasic_burst" else stimulus.waveform
        c.configure_stimulus(waveform, stimulus.current_direction)
        self._stimulus_applied = True

    def _prepare_pair(self, train: ScheduledTrain, test_pct: int) -> None:
        """Conditioning pulse first (the one the trigger fires), the test pulse one ISI later."""
        c = self.controller
        conditioning = train.conditioning_intensity_pct_mso
        assert conditioning is not None
        isi_ms = round(1000 * (train.pulse_offsets_s[-1] - train.pulse_offsets_s[0]), 6)
        held = c.pair
        if held is None or (held.first_pct_mso, held.second_pct_mso, round(held.isi_ms, 6)) != (
            conditioning, test_pct, isi_ms
        ):
            c.configure_pair(conditioning, test_pct, isi_ms)

    def _prepare_theta_burst(self, train: ScheduledTrain, intensity: int) -> None:
        """A device-timed theta-burst train, read off the schedule's pulse offsets."""
        c = self.controller
        offsets = train.pulse_offsets_s
        gaps = [round(b - a, 9) for a, b in itertools.pairwise(offsets)]
        inner = min(gaps)
        per_burst = next((i + 1 for i, g in enumerate(gaps) if g > inner + 1e-9), len(offsets))
        bursts = len(offsets) // per_burst
        burst_rate = 1.0 / (offsets[per_burst] - offsets[0]) if bursts > 1 else 1.0
        if c.intensity_pct_mso != intensity:
            c.set_intensity(intensity)
        wanted = (burst_rate, len(offsets))
        if c.train != wanted:
            c.configure_theta_burst(
                pulses_per_burst=per_burst, burst_frequency_hz=1.0 / inner, burst_rate_hz=burst_rate, bursts=bursts
            )


class _OpenTrain:
    """One train's triggers while it runs: the doses of those that ended, and the one in flight."""

    def __init__(self, train: ScheduledTrain, onset: float, last_before: Delivery | None) -> None:
        self.train = train
        self.onset = onset
        self.onset_error_s = 0.0
        self._doses: list[DoseCount] = []
        self._seen = last_before  # the controller's latest settled trigger before this one
        self._in_flight = False

    def triggering(self, last: Delivery | None) -> None:
        self._seen = last
        self._in_flight = True

    def not_fired(self) -> None:
        self._in_flight = False

    def settled(self, last: Delivery | None) -> None:
        """Take the dose of the trigger in flight, once the controller has settled it."""
        if self._in_flight and last is not None and last is not self._seen and last.dose is not None:
            self._doses.append(last.dose)
            self._seen = last
            self._in_flight = False

    @property
    def known_so_far(self) -> int:
        return sum(d.delivered for d in self._doses)

    def settle(self, last: Delivery | None) -> DoseCount:
        self.settled(last)
        delivered = sum(d.delivered for d in self._doses)
        uncertain = sum(d.uncertain for d in self._doses)
        if self._in_flight:  # fired, and the controller never settled it: nothing known
            uncertain = self.train.n_pulses - delivered
        evidence = "; ".join(dict.fromkeys(d.evidence for d in self._doses if d.evidence))
        n = self.train.n_pulses
        return DoseCount(n, min(delivered, n), min(uncertain, n - min(delivered, n)), evidence)


class TriggerBoxTimeout(DeviceStateError):
    """The trigger box outside tmsctl did not fire the protocol's pulses in time (or fired more)."""

    hint = "check the trigger box and its cable; the record holds every pulse the device reported"


class _Stop(Exception):
    def __init__(self, outcome: RunOutcome) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome


def onset_error_summary(errors_s: list[float] | tuple[float, ...]) -> dict[str, float]:
    """Mean, p99, max |error| and drift (last − first) of train onsets, in milliseconds."""
    if not errors_s:
        return {"mean_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan, "drift_ms": math.nan}
    ordered = sorted(abs(e) for e in errors_s)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "mean_ms": 1e3 * sum(errors_s) / len(errors_s),
        "p99_ms": 1e3 * p99,
        "max_ms": 1e3 * ordered[-1],
        "drift_ms": 1e3 * (errors_s[-1] - errors_s[0]),
    }
