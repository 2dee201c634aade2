"""One tick, end to end: snapshot → model step → policy → speech and delegation.

``TickEngine`` is per session and holds no task of its own: the session's ticker
calls ``tick`` on schedule. The model step runs in the runtime's executor; every
other stage is plain, fast code on the loop, timed for the trace. It also owns the
decisions a session acts on between ticks: a mode change, background results,
and trimming the model's memory to what the user actually heard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

from server.codes import Code
from server.engine.delegations import Delegations
from server.engine.handoff import ClauseHandoff
from server.engine.location import LocationContext, asks_where
from server.engine.policy import GuidancePolicy, Utterance
from server.engine.reading import Reading, ReadingOptions
from server.engine.scene import FrameBudget
from server.engine.speech import (
    NoteOrder,
    PlaybackResultLike,
    SpeechHandleLike,
    SpeechSink,
    say_after,
)
from server.engine.streamed import StreamedSpeech
from server.engine.trace_bounds import trace_text
from server.errors import Recoverable
from server.events import (
    Cue,
    CueKind,
    Notice,
    ServerEvent,
    SpeechKind,
    TickTrace,
)
from server.modes import ModeProfile
from server.modes.phrases import apology, filler, nothing_seen
from server.runtime.base import (
    Action,
    ActionKind,
    Frame,
    InteractionRuntime,
    ModelSession,
    TickInput,
)
from server.telemetry.timing import StageTimer

__all__ = ["Delegations", "TickEngine", "TickOptions"]

log = logging.getLogger(__name__)

Emit = Callable[[ServerEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TickOptions:
    language: str = "en"
    want_trace: bool = False
    reading: ReadingOptions = field(default_factory=ReadingOptions)  # stills, barcodes


@dataclass(frozen=True, slots=True)
class _Streamed:
    """What of the model's reply went to speech while it was still being written."""

    text: str = ""  # every clause the runtime handed over
    head: Utterance | None = None  # what they are spoken as; None: the policy let them pass
    handle: SpeechHandleLike | None = None


class TickEngine:
    def __init__(
        self,
        runtime: InteractionRuntime,
        model: ModelSession,
        profile: ModeProfile,
        speaker: SpeechSink,
        emit: Emit,
        *,
        delegations: Delegations | None = None,
        options: TickOptions = TickOptions(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime, self.model = runtime, model
        self.policy = GuidancePolicy(profile, options.language)
        self._profile = profile
        self._speaker = speaker
        self._emit = emit
        self.delegations = delegations
        self._options = options
        self._clock = clock
        self._queries: deque[str] = deque(maxlen=8)
        self.location = LocationContext(clock)  # what of it the model was told, and when
        self._recent_jpegs: deque[bytes] = deque(maxlen=3)  # for agents that look
        self.reading = Reading(options.language, options.reading, clock)  # stills and codes
        self.budget = FrameBudget(clock)  # a still view said in text, a changed one now
        self._unconfigured_noted = False
        self._answers = NoteOrder(self.say)
        self._must_answer = False  # this tick's query is answered even if the model is silent
        self._on_reply: Callable[[str], bool] | None = None
        self._streamed = StreamedSpeech(
            self.policy, lambda u, more: self.say(u, more, from_model=True), clock
        )

    # ------------------------------------------------------------------ inputs

    @property
    def profile(self) -> ModeProfile:
        return self._profile

    def hear_replies(self, listener: Callable[[str], bool]) -> None:
        """The model's words go to ``listener`` (the emergency path) first; True: it spoke."""
        self._on_reply = listener

    def add_query(self, text: str, *, must_answer: bool = False) -> None:
        if text.strip():
            self._queries.append(text.strip())
            self._must_answer |= must_answer

    def add_frame_data(self, jpeg: bytes) -> None:
        """An accepted frame's encoded bytes, kept (three deep) for background agents."""
        self._recent_jpegs.append(jpeg)

    def set_mode(self, profile: ModeProfile) -> None:
        """A new mode: its rules apply from now, its instruction from the next turn."""
        if profile is self._profile:
            return
        self._profile = profile
        self.policy.set_profile(profile)
        # Not a user query: that tick must not be treated as answering the user.
        self.model.add_context(f"[Mode changed] {profile.instruction}")
        if said := profile.announcement_for(self._options.language):
            self.say(self.policy.announce(said, SpeechKind.SYSTEM, self._clock()))

    def say(
        self, utt: Utterance, more: AsyncIterator[str] | None = None, *, from_model: bool = False
    ) -> SpeechHandleLike:
        """Hand ``utt`` to the speaker. The model's own words (``from_model``: a reply or
        its delegation note) are trimmed in its memory to what was heard if cut;
        announcements, fillers and background results are not in its turns to trim."""
        handle = self._speaker.say(utt, more)
        if from_model:
            handle.add_done_callback(self._heard)
        return handle

    def _heard(self, result: PlaybackResultLike) -> None:
        if result.interrupted and result.reason != "closed" and result.heard != result.text:
            self.model.heard(result.text, result.heard)  # thread-safe: applied next step

    # ------------------------------------------------------------------ the tick

    async def tick(
        self,
        tick_s: float,
        frame: Frame | None,
        *,
        fresh: bool = True,
        slip_ms: float = 0.0,
        coalesced: int = 0,
    ) -> Action:
        """One tick. ``frame`` is the newest frame; ``fresh`` says whether it arrived
        since the last tick (a stale one is not shown to the model again)."""
        timer = StageTimer()
        if frame is not None and fresh:
            timer.add("decode", frame.decode_ms)  # done in the reader, off the loop
        with timer.stage("snapshot"):
            seen = self.reading.seen(frame if fresh else None)  # a still in the frame's place
            # A question that asked for a still waits for it (engine/reading.py).
            query = " ".join(self._queries) if self._queries and not seen.hold else None
            must_answer = query is not None and self._must_answer
            if query is not None:
                self._queries.clear()
                self._must_answer = False
            asked = asks_where(query, self._options.language)
            rules, still = self._profile.capture, seen.max_pixels is not None  # a still: shown
            unchanged = not (seen.frame is None or still) and not self.budget.show(
                seen.frame.thumb, unchanged_s=rules.unchanged_s, asked=bool(query)
            )
            tick = TickInput(
                tick_s=tick_s,
                frame=None if unchanged else seen.frame,
                unchanged=unchanged,
                user_query=query,
                context=(*self.location.lines(self._profile, asked=asked), *seen.context),
                frame_max_pixels=seen.max_pixels,
                # The mode's margin is for speaking unasked; a question wants an answer.
                speak_margin=self._profile.speak_margin if query is None else None,
            )
        frame_age_ms = (self._clock() - frame.received_at) * 1000 if frame is not None else -1.0

        action, streamed = await self._step(tick, timer, answering=query is not None)
        if self.model.conversation.state().rollover_due:  # the next chunk forgets this one
            self.location.forget()
        if self.delegations is not None:  # shopping: a comparison goes to an agent
            action = self.reading.route(action, query, self._profile)

        spoken_for = (
            bool(action.text) and self._on_reply is not None and self._on_reply(action.text)
        )
        with timer.stage("policy"):
            utterances = (
                []
                if spoken_for
                else self._decide(action, answering=query is not None, streamed=streamed)
            )
            if must_answer and not (utterances or streamed.text):  # "what's around me?"
                said = nothing_seen(self._options.language)
                utterances = [self.policy.announce(said, SpeechKind.ANSWER, self._clock())]
        with timer.stage("dispatch"):
            note = streamed.handle if action.kind is ActionKind.DELEGATE else None
            for u in utterances:
                is_note = u.kind is SpeechKind.DELEGATION_NOTE
                if is_note and note is not None:  # the rest of a note whose start streamed
                    note = say_after(self._speaker, note, u, self._heard)
                    continue
                handle = self.say(
                    u, from_model=bool(action.text) and u.kind is not SpeechKind.SYSTEM
                )
                note = handle if is_note else note
            if action.kind is ActionKind.DELEGATE:
                if note is not None and not utterances and self.delegations is not None:
                    # The whole note streamed (no clause was held back for a note's
                    # own utterance): the cue still says "thinking" while the agent works.
                    await self._emit(Cue(CueKind.THINKING, intensity=0.5))
                if note is not None and self.delegations is not None:
                    self._answers.note(note)
                await self._delegate(action)
        for event in self.reading.after(action.text):  # a still that did not come, or is wanted
            await self._emit(event)
        if self._options.want_trace:
            await self._emit(
                TickTrace(
                    tick_s=tick_s,
                    action=action.kind.value,
                    text=trace_text(action.text),
                    user_query=trace_text(query or ""),
                    frame_age_ms=frame_age_ms,
                    timings=tuple(timer.stages),
                    coalesced=coalesced,
                    slip_ms=slip_ms,
                    dropped=self._dropped(),  # the session's so far
                    batch_size=action.batch_size,
                    model_wait_ms=action.model_wait_ms,
                )
            )
        return action

    async def _step(
        self, tick: TickInput, timer: StageTimer, *, answering: bool
    ) -> tuple[Action, _Streamed]:
        """Run the model; also what of its reply was already handed to speech as it streamed.

        The trace shows the wait for the model thread (behind other sessions' steps)
        as ``queue``, the step itself as ``model``, and the runtime's own split of the
        step as parts of it, ``model.decide`` and ``model.reply`` (``Action.stages``
        prefixed): a part is inside ``model``, so whoever sums stages skips dotted names.
        """
        loop = asyncio.get_running_loop()
        handoff = ClauseHandoff(loop) if self.runtime.capabilities.streams_text else None
        submitted = time.perf_counter()
        started: list[float] = []

        def run() -> Action:
            started.append(time.perf_counter())
            return self.model.step(tick, handoff.put_threadsafe if handoff is not None else None)

        action = Action(ActionKind.SILENCE)
        streamed = _Streamed()
        try:
            fut = loop.run_in_executor(self.runtime.executor, run)
            if handoff is None:
                action = await fut
            else:
                try:
                    first = await handoff.first(fut)
                    head: Utterance | None = None
                    handle: SpeechHandleLike | None = None
                    if first is not None:  # spoken while the model writes the rest
                        head, handle = await self._streamed.start(
                            handoff, first, fut, answering=answering
                        )
                    action = await fut
                    streamed = _Streamed(" ".join(handoff.streamed), head, handle)
                finally:
                    # The streamed utterance ends with what streamed. Of a delegation
                    # the runtime holds back the note's last clause (before the
                    # marker): ``_decide`` makes it a note of its own.
                    handoff.close()
        except Recoverable as e:
            await self._emit(Notice(e.code, e.message, e.component, e.retryable))
        except Exception as e:  # the session survives a bad step; the tick is silent
            log.exception("model step failed")
            await self._emit(
                Notice.of(
                    Code.MODEL_ERROR,
                    f"the model failed on this tick ({type(e).__name__}); it stays silent "
                    "and tries again next tick",
                )
            )
        finished = time.perf_counter()
        began = started[0] if started else finished
        queued = (began - submitted) * 1000  # + the runtime's own wait: the model wait traced
        timer.add("queue", queued)
        timer.add("model", (finished - began) * 1000)
        for stage, ms in action.stages:  # parts of "model", not added to it
            timer.add(f"model.{stage}", ms)
        return replace(action, model_wait_ms=queued + action.model_wait_ms), streamed

    def _dropped(self) -> tuple[tuple[str, int], ...]:
        """What was not said, by "reason/kind": the speaker's drops and cuts, and the
        policy's repeats (no news within the mode's window)."""
        repeats = {f"repeat/{kind}": n for kind, n in self.policy.repeats.items()}
        return tuple(sorted((Counter(self._speaker.dropped) + Counter(repeats)).items()))

    def _decide(self, action: Action, *, answering: bool, streamed: _Streamed) -> list[Utterance]:
        now = self._clock()
        language = self._options.language
        if action.kind is not ActionKind.DELEGATE:
            if streamed.text or action.kind is not ActionKind.RESPONSE:
                return []  # silence, or already being spoken as it was generated
            u = self.policy.reply(action.text, now, answering=answering)
            return [u] if u is not None else []
        if self.delegations is None:
            # Nobody to ask: say so rather than promise an answer that never comes
            # (the model's note, or what of it had not streamed, is not said).
            return [self.policy.announce(apology(language), SpeechKind.SYSTEM, now)]
        if streamed.head is None:
            return [self.policy.note(action.text or filler(language), now)]
        # Its start was spoken as a reply before the marker showed it was a note; the
        # rest is a note (kind, cue) that follows it (``say_after``).
        rest = _after(action.text, streamed.text)
        return [self.policy.note(rest, now, after=streamed.head)] if rest else []

    def deliver_results(self) -> int:
        """Finished delegations: spoken now (behind any warning and the note that
        promised them, unless urgent) and folded into the next tick's turn and the
        Q&A history. Returns how many."""
        if self.delegations is None:
            return 0
        results = self.delegations.take_results()
        now = self._clock()
        for r in results:
            self.model.add_context(f"[Background answer] {r.question} → {r.spoken}")
            utt = self.policy.result(r.spoken, now, urgent=r.urgent)
            self._answers.answer(utt, urgent=r.urgent)
        return len(results)

    async def _delegate(self, action: Action) -> None:
        if self.delegations is None:
            if not self._unconfigured_noted:
                self._unconfigured_noted = True
                await self._emit(
                    Notice.of(
                        Code.AGENT_UNCONFIGURED,
                        "the model asked a background agent, but none is configured; set "
                        "[agent] backend in the server config (openai, command or webhook)",
                    )
                )
            return
        self.delegations.start(
            action.question,
            frames=self.reading.frames(self._recent_jpegs),  # the last still among them
            location=self.location.text(),
            context=action.text,
            barcodes=self.reading.codes(),
        )


def _after(text: str, prefix: str) -> str:
    """``text`` without its first words that ``prefix`` already said."""
    words = text.split()
    return " ".join(words[len(prefix.split()) :])
