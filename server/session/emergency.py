"""The emergency path carried out for one session (``engine/emergency.py`` decides).

``EmergencyCaller`` feeds the machine what the user and the model said, the latest
location and frame, and does what each ``Step`` says: it speaks the machine's lines at
alert priority (a newer emergency line cuts the one before it, so the latest news is
heard at once), tells the model what happened, runs the answer timer as a session
task, and sends the alert on another, through the app's notifier
(``agents/notify.py``), feeding every try's outcome back to the machine.

It also runs the fall detectors (``engine/fall.py``): the bridge's device motion when
it sends any, else — in a mode whose data say ``fall_from_frames``, and only until the
first motion batch arrives — the frame heuristic over each decoded frame's thumbnail.
A motion batch it cannot use is dropped with one Notice a session.

The timer is a task of its own, not a check at each tick: ticks stop while watching is
paused and while the phone is away (a detached session), and a fall is exactly when the
phone may drop its stream. Trace lines go to the log (states and reasons only, never
what was said or where) and, when the client asked for traces, out as a ``TickTrace``
with action "emergency".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from server.codes import Code
from server.engine.emergency import (
    Alert,
    AlertLocation,
    EmergencyMachine,
    EmergencyOptions,
    Line,
    Notify,
    Remember,
    Say,
    State,
    Step,
    StopWaiting,
    alert_message,
)
from server.engine.fall import FrameFallDetector, MotionFallDetector, bad_motion
from server.engine.speech import SpeechHandleLike
from server.engine.tick import TickEngine
from server.events import CueKind, LocationIn, MotionIn, SpeechKind, TickTrace
from server.session.notices import Notices
from server.session.outbox import Outbox
from server.tasks import Spawn

__all__ = ["CallerOptions", "EmergencyCaller", "Notifier", "NotifyAttemptLike"]

log = logging.getLogger(__name__)

_CUES = {Line.ASK: CueKind.ATTENTION, Line.CALLED: CueKind.DONE}


class NotifyAttemptLike(Protocol):
    """One try to reach one contact (``agents.notify.NotifyAttempt``)."""

    @property
    def contact(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def retry_in_s(self) -> float | None: ...
    @property
    def error(self) -> str: ...
    @property
    def retrying(self) -> bool: ...


class Notifier(Protocol):
    """The app's emergency contacts (``agents.notify.EmergencyNotifier``)."""

    async def notify(
        self, alert: Alert, report: Callable[[NotifyAttemptLike], Awaitable[None]]
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class CallerOptions:
    session_id: str = ""
    language: str = "en"
    ask_timeout_s: float = 20.0
    send_frame: bool = False  # the user opted in: the last frame goes with the alert
    want_trace: bool = False


class EmergencyCaller:
    def __init__(
        self,
        notifier: Notifier,
        engine: TickEngine,
        outbox: Outbox,
        notices: Notices,
        spawn: Spawn,
        options: CallerOptions = CallerOptions(),
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._notifier = notifier
        self._engine = engine
        self._out = outbox
        self._notices = notices
        self._spawn = spawn
        self.options = options
        self._clock = clock
        self._sleep = sleep
        self.machine = EmergencyMachine(EmergencyOptions(options.ask_timeout_s, options.language))
        self._started = clock()
        self._location: tuple[LocationIn, float] | None = None  # and when it arrived
        self._frame: bytes | None = None
        self._timer: asyncio.Task[None] | None = None
        self._line: SpeechHandleLike | None = None  # the emergency line said last
        self._incident = 0  # a try's report from an earlier incident is only traced
        self._motion = MotionFallDetector()
        self._motion_seen = False  # once the bridge sends motion, frames are not guessed from
        self._bad_motion_said = False
        self._frames = FrameFallDetector()

    @property
    def state(self) -> State:
        return self.machine.state

    # ------------------------------------------------------------------ inputs

    def heard_user(self, text: str) -> bool:
        """The user's final words; True when they were for the emergency path (a call
        for help, an answer to "Are you OK?") and must not become a query."""
        step = self.machine.user_said(text, self._clock())
        self._apply(step)
        return step.handled

    def heard_model(self, text: str) -> bool:
        """The model's reply of a tick; True when it reports an emergency, which this
        path then speaks for ("Are you OK?", or nothing while one is under way): the
        model's own line is not said as well."""
        taken = self.machine.reports_emergency(text)
        self._apply(self.machine.model_said(text, self._clock()))
        return taken

    def fall_detected(self, how: str = "") -> None:
        """A fall signal; ``how``: its evidence, for the trace and the model's turn."""
        self._apply(self.machine.fall_detected(self._clock(), how))

    async def moved(self, motion: MotionIn) -> None:
        """A batch of the bridge's accelerometer samples."""
        why = bad_motion(motion)
        if why is not None:
            if not self._bad_motion_said:  # a broken sensor feed says so once, not 50×/s
                self._bad_motion_said = True
                await self._notices.send(
                    Code.PROTOCOL_BAD_MESSAGE,
                    f"a DeviceMotion batch with {why} was dropped, and later bad ones will be "
                    "too, silently; fall detection needs m/s² at 20..1000 Hz "
                    "(see companion.proto)",
                )
            return
        if not self._motion_seen:
            self._motion_seen = True
            self._frames.reset()
            self._trace("emergency: device motion arrives; falls are detected from it")
        if (fall := self._motion.feed(motion)) is not None:
            self.fall_detected(fall.how)

    def located(self, location: LocationIn) -> None:
        self._location = (location, self._clock())

    def saw(self, jpeg: bytes, thumb: np.ndarray | None = None) -> None:
        """A frame the slot took (``thumb``: its ``fall.grey_thumbnail``), for the alert
        and the frame heuristic."""
        if self.options.send_frame:  # not kept at all unless the user opted in
            self._frame = jpeg
        if thumb is None or self._motion_seen:
            return
        if not self._engine.profile.fall_from_frames:
            self._frames.reset()  # a mode without it: nothing carries over into one with it
            return
        if (fall := self._frames.feed(thumb, self._clock())) is not None:
            self.fall_detected(fall.how)

    # ------------------------------------------------------------------ effects

    def _apply(self, step: Step) -> None:
        for line in step.trace:
            self._trace(line)
        for effect in step.effects:
            match effect:
                case Say():
                    self._say(effect)
                case Remember():
                    self._engine.model.add_context(effect.text)
                case StopWaiting():
                    if self._timer is not None:
                        self._timer.cancel()
                        self._timer = None
                case Notify():
                    self._incident += 1
                    alert = self._alert(effect)
                    self._spawn(self._notify(alert, self._incident), "emergency-notify")
        if step.deadline is not None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._spawn(self._wait(step.deadline), "emergency-timer")

    def _say(self, say: Say) -> None:
        kind = SpeechKind.ALERT if say.urgent else SpeechKind.SYSTEM
        utt = self._engine.policy.announce(say.text, kind, self._clock(), cue=_CUES.get(say.line))
        if say.urgent:
            utt = replace(utt, preempt=True)  # cuts narration and answers; kept by "quiet"
        if self._line is not None:
            # The newer line is about the same thing: the one before is superseded, as
            # a hazard's alert is by a newer one (a finished line ignores it).
            self._line.interrupt("superseded")
        self._line = self._engine.say(utt)

    def _alert(self, notify: Notify) -> Alert:
        where = None
        if self._location is not None:
            loc, at = self._location
            age = max(0.0, self._clock() - at)
            where = AlertLocation(loc.lat, loc.lon, loc.accuracy_m, age)
        o = self.options
        return Alert(
            time_s=time.time(),
            message=alert_message(notify, where, o.language),
            session_id=o.session_id,
            trigger=notify.trigger,
            confirmed=notify.confirmed,
            language=o.language,
            location=where,
            frame=self._frame if o.send_frame else None,
        )

    def _trace(self, line: str) -> None:
        log.info("session %s: %s", self.options.session_id, line)
        if self.options.want_trace:
            at = round(self._clock() - self._started, 1)
            self._out.put_nowait(TickTrace(tick_s=at, action="emergency", text=line))

    # ------------------------------------------------------------------ tasks

    async def _wait(self, deadline: float) -> None:
        await self._sleep(max(0.0, deadline - self._clock()))
        self._timer = None  # done: the step below must not cancel this very task
        # Woken for the deadline, it is the deadline: a clock a hair early (float sums,
        # 14.199999999999996 for 14.199999999999998) would have the machine do nothing
        # and leave no timer, so help would never be called.
        self._apply(self.machine.check(max(self._clock(), deadline)))

    async def _notify(self, alert: Alert, incident: int) -> None:
        async def report(attempt: NotifyAttemptLike) -> None:
            if not attempt.ok:
                then = (
                    f"trying again in {attempt.retry_in_s:g} s"
                    if attempt.retry_in_s is not None
                    else "no more tries"
                )
                await self._notices.send(
                    Code.AGENT_FAILED,
                    f"the emergency alert did not reach {attempt.contact} ({attempt.error}); "
                    f"{then}. Check [emergency] in the server config",
                )
            if incident != self._incident:
                self._trace("emergency: a try of an earlier incident ended")
                return
            now = self._clock()
            if attempt.ok:
                self._apply(self.machine.delivered(now))
            else:
                self._apply(self.machine.attempt_failed(now, retrying=attempt.retrying))

        try:
            delivered = await self._notifier.notify(alert, report)
        except Exception:  # a notifier bug: the user must still be told
            log.exception("session %s: the emergency notifier failed", self.options.session_id)
            delivered = False
        if not delivered and incident == self._incident:
            self._apply(self.machine.gave_up(self._clock()))
