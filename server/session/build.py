"""The one place a session's parts are made and wired to each other.

``Session`` keeps lifecycle; what it is made of — outbox, frame slot, speaker,
engine, ticker, listener, delegations, the inbound table — is built here from the
process's shared ``SessionServices`` and the client's ``SessionStart``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from server.codes import Code
from server.engine.commands import command_hotwords
from server.engine.reading import ReadingOptions
from server.engine.scene import CapturePace
from server.engine.tick import Delegations, TickEngine, TickOptions
from server.events import DelegationState, DelegationUpdate, SessionStart
from server.modes import profile
from server.runtime.base import ModelSession
from server.session.capture_rate import CaptureHints
from server.session.emergency import CallerOptions, EmergencyCaller
from server.session.frames import FrameSlot
from server.session.inbound import Inbound
from server.session.notices import Notices, public_text
from server.session.outbox import Outbox
from server.session.services import Listener, SessionServices
from server.session.speaker import Speaker, SpeakerOptions
from server.session.ticker import Ticker
from server.session.vision import FrameVision
from server.tasks import Spawn
from server.voice.codec import PacketDecoder
from server.voice.tts.base import VoiceOptions

__all__ = ["SessionParts", "build_parts"]


@dataclass
class SessionParts:
    outbox: Outbox
    notices: Notices
    slot: FrameSlot
    speaker: Speaker
    engine: TickEngine
    ticker: Ticker
    inbound: Inbound
    delegations: Delegations | None
    listener: Listener | None
    unsubscribe_tts: Callable[[], None]
    emergency: EmergencyCaller | None = None  # None: no [emergency] contact configured


def build_parts(
    services: SessionServices,
    start: SessionStart,
    model: ModelSession,
    spawn: Spawn,
    *,
    session_id: str = "",
) -> SessionParts:
    settings = services.settings
    language = start.language or "en"
    outbox = Outbox(settings.server.outbound_queue)
    notices = Notices(outbox)
    slot = FrameSlot(services.clock)

    async def tts_failed(error: Exception) -> None:
        await notices.send(
            Code.TTS_FAILED, f"speech synthesis failed ({error}); that utterance is captions only"
        )

    speaker = Speaker(
        services.tts,
        VoiceOptions(
            language=language,
            voice=start.voice,
            rate=settings.voice.rate,
            volume=start.volume or settings.voice.volume,
        ),
        start.audio_out,
        outbox,
        opus=services.executors.opus,
        # Glasses without a speaker get captions only; cues need a speaker or haptics.
        options=SpeakerOptions(
            audio=start.speaker,
            cues=start.speaker or start.haptics,
            tts_timeout_s=settings.voice.tts_timeout_s,
        ),
        on_error=tts_failed,
        clock=services.clock,
        sleep=services.sleep,
    )
    mode = profile(start.mode)
    speaker.voice.use_mode(mode.voice_style, mode.voice_rate)  # the mode's voice from the start

    async def delegation_update(update: DelegationUpdate) -> None:
        if update.state is not DelegationState.FAILED:
            await outbox.put(update)
            return
        # Why an agent failed may carry its internals (a repr, a traceback): not sent.
        reason = public_text(update.summary)
        await outbox.put(dataclasses.replace(update, summary=reason))
        await notices.send(
            Code.AGENT_FAILED,
            f"the background agent gave no answer ({reason}); an apology was said instead",
        )

    delegations = (
        services.delegations.session(delegation_update, language, spawn=spawn)
        if services.delegations is not None
        else None
    )
    engine = TickEngine(
        services.runtime,
        model,
        mode,
        speaker,
        outbox.put,
        delegations=delegations,
        options=TickOptions(
            language=language,
            want_trace=start.want_trace,
            reading=ReadingOptions(timeout_s=settings.vision.still_timeout_s),
        ),
        clock=services.clock,
    )
    emergency: EmergencyCaller | None = None
    if services.emergency is not None:
        e = settings.emergency
        emergency = EmergencyCaller(
            services.emergency,
            engine,
            outbox,
            notices,
            spawn,
            CallerOptions(
                session_id=session_id,
                language=language,
                ask_timeout_s=e.ask_timeout_s,
                send_frame=e.send_frame,
                want_trace=start.want_trace,
            ),
            clock=services.clock,
            sleep=services.sleep,
        )
        engine.hear_replies(emergency.heard_model)

    def model_slow(after_s: float) -> None:
        # A tick also waits for room in a full outbox (a client that stopped reading):
        # that is not the model's doing, and no Notice could reach the client anyway.
        if len(outbox) < settings.server.outbound_queue:
            notices.send_nowait(
                Code.MODEL_SLOW,
                f"the model has not decided for {after_s:g} s; ticks are skipped until it "
                "does, and then it looks at the newest frame",
            )

    ticker = Ticker(
        slot,
        engine.tick,
        period_s=1.0 / settings.server.tick_hz,
        frame_wait_s=settings.server.frame_wait_ms / 1000,
        clock=services.clock,
        sleep=services.sleep,
        slow_step_s=settings.model.slow_step_s,
        on_slow=model_slow,
        early=settings.server.early_tick,
    )
    inbound = Inbound(
        services,
        slot=slot,
        speaker=speaker,
        engine=engine,
        ticker=ticker,
        notices=notices,
        delegations=delegations,
        outbox=outbox,
        emergency=emergency,
    )
    listener: Listener | None = None
    if services.listener_factory is not None:
        listener = services.listener_factory(
            start.audio_in,
            inbound.on_listener_event,
            language=language,
            hotwords=command_hotwords(language),
            spawn=spawn,
            dsp=services.executors.dsp,
        )
        speaker.subscribe(listener)  # its echo guard hears what Murmur says and plays
        inbound.attach_listener(listener)
    else:
        inbound.attach_decoder(PacketDecoder(start.audio_in))
    inbound.attach_vision(
        FrameVision(
            services, engine.reading, spawn, notices, wants_barcodes=lambda: engine.profile.barcodes
        )
    )

    capture = CaptureHints(
        CapturePace(settings.server.tick_hz, services.clock),
        outbox,
        rules=lambda: engine.profile.capture,
        speaking=lambda: speaker.speaking.kind if speaker.speaking is not None else None,
        want_trace=start.want_trace,
        clock=services.clock,
    )
    speaker.subscribe(capture)  # Murmur's own words end a quiet spell
    inbound.attach_capture(capture)

    def tts_switched(old: str, new: str, reason: str) -> None:
        # Called on the loop from inside synthesis: never block it on the outbound queue.
        recovered = reason == "recovered"
        message = (
            f"speech output: {new} {'is back' if recovered else 'took over'} from {old} ({reason})"
        )
        if not recovered:
            message += "; the voice may sound different"
        notices.send_nowait(Code.TTS_RECOVERED if recovered else Code.TTS_FALLBACK, message)

    unsubscribe_tts = services.tts.subscribe(tts_switched)
    return SessionParts(
        outbox=outbox,
        notices=notices,
        slot=slot,
        speaker=speaker,
        engine=engine,
        ticker=ticker,
        inbound=inbound,
        delegations=delegations,
        listener=listener,
        unsubscribe_tts=unsubscribe_tts,
        emergency=emergency,
    )
