"""The composition root: the only place that names concrete backends.

Everything else receives interfaces. Heavy backends are imported lazily so a
scripted-model server starts in a second and a missing optional package fails
with an install hint only when it is actually chosen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.agents.notify import build_notifier
from server.config import DEFAULT_MODEL, AgentSettings, ModelSettings, Settings, VoiceSettings
from server.errors import ModelLoadError
from server.modes import use_modes
from server.runtime.base import InteractionRuntime
from server.session.services import DelegationService, Executors, SessionServices
from server.transport.security import Security, build_handover
from server.voice.profile import NORMAL, QUIET, VoiceStyle, configured
from server.voice.tts.base import TTSBackend

if TYPE_CHECKING:
    from server.agents.base import Agent
    from server.agents.manager import DelegationManager
    from server.events import AudioFormat
    from server.runtime.openai import OpenAIRuntimeOptions
    from server.runtime.transformers import TransformersOptions
    from server.session.services import ListenerFactory
    from server.tasks import Spawn
    from server.telemetry.metrics import MetricsEndpoint
    from server.vision.ocr import OcrBackend
    from server.voice.asr.base import ASRBackend
    from server.voice.listener import Emit

__all__ = [
    "AGENT_BACKENDS",
    "TTS_BACKENDS",
    "App",
    "Overrides",
    "build_app",
    "build_asr",
    "build_listener_factory",
    "build_ocr",
    "build_runtime",
    "build_tts",
]

log = logging.getLogger(__name__)


def build_runtime(settings: Settings, executors: Executors) -> InteractionRuntime:
    """``--model`` picks the backend: scripted:FILE, http(s)://…/v1, or a hub id / folder."""
    m = settings.model
    spec = m.model.strip()
    if spec.startswith("scripted:"):
        from server.runtime.scripted import ScriptedRuntime

        return ScriptedRuntime.from_file(spec.removeprefix("scripted:"), executor=executors.model)
    if spec.startswith(("http://", "https://")):
        from server.runtime.openai import OpenAIRuntime

        return OpenAIRuntime(_openai_options(m), executor=executors.model)
    try:
        from server.runtime.transformers import TransformersRuntime
    except ImportError as e:
        raise ModelLoadError(
            f"the in-process model runtime needs torch and transformers ({e}); pip install "
            "'murmur' with its dependencies, or serve the model elsewhere: --model http://HOST:PORT/v1"
        ) from e
    return TransformersRuntime.load(
        spec,
        device=m.device,
        dtype=m.dtype,
        quantization=m.quantization or None,
        options=_transformers_options(m),
        executor=executors.model,
        summary_executor=executors.summaries,
    )


def _transformers_options(m: ModelSettings) -> TransformersOptions:
    from server.runtime.transformers.options import TransformersOptions

    return TransformersOptions(
        speak_margin=m.speak_margin,
        max_new_tokens=m.max_new_tokens,
        temperature=m.temperature,
        top_p=m.top_p,
        chunk_ticks=m.chunk_ticks,  # 0: sized for the GPU memory left after loading
        batch_window_ms=m.batch_window_ms,
        batch_sessions=m.batch_sessions,
        kv_budget_bytes=m.kv_budget_bytes,
        kv_share=m.kv_share,
    )


def _openai_options(m: ModelSettings) -> OpenAIRuntimeOptions:
    from server.runtime.openai import OpenAIRuntimeOptions

    return OpenAIRuntimeOptions(
        base_url=m.model.strip(),
        model=m.served_model or DEFAULT_MODEL,
        api_key=m.api_key or None,
        timeout_s=m.timeout_s,
        retries=m.retries,
        max_tokens=m.max_new_tokens,
        temperature=m.temperature,
        top_p=m.top_p,
        speak_margin=m.speak_margin,
        chunk_ticks=m.chunk_ticks or 100,  # the reference chunk length
        frame_refs=m.frame_refs,
    )


# ------------------------------------------------------------------ speech out

# [voice] tts names → constructors, given a thread (None: its own); lazy, failing loudly.


def _edge_tts(v: VoiceSettings, executor: Executor | None) -> TTSBackend:
    from server.voice.tts.edge import EdgeTTS

    return EdgeTTS(executor=executor)


def _piper_tts(v: VoiceSettings, executor: Executor | None) -> TTSBackend:
    from server.voice.tts.piper import PiperTTS

    return PiperTTS(v.piper_voice or None, executor=executor)


def _espeak_tts(v: VoiceSettings, executor: Executor | None) -> TTSBackend:
    from server.voice.tts.espeak import EspeakTTS

    return EspeakTTS(executor=executor)


TTS_BACKENDS: dict[str, Callable[[VoiceSettings, Executor | None], TTSBackend]] = {
    "edge": _edge_tts,
    "piper": _piper_tts,
    "espeak": _espeak_tts,
}


def build_tts(settings: Settings, executors: Executors | None = None) -> TTSBackend:
    """The ``[voice] tts`` chain (one backend alone is used as it is), rendered in the
    ``[voice] style``. Each backend runs in its thread of ``executors``, the style's
    rendering in one more; without them (tests) each makes its own."""
    from server.voice.tts.fallback import FallbackTTS
    from server.voice.tts.styled import StyledTTS

    style, styles = voice_styles(settings.voice)  # a wrong setting fails before any load
    backends: list[TTSBackend] = []
    errors: list[str] = []
    for name in settings.voice.tts:
        factory = TTS_BACKENDS.get(name)
        if factory is None:
            raise ValueError(f"unknown TTS backend {name!r}; known: {', '.join(TTS_BACKENDS)}")
        executor = None if executors is None else executors.tts_for(name)
        try:
            backends.append(factory(settings.voice, executor))
        except Exception as e:  # a backend that cannot start is skipped, with a reason
            errors.append(f"{name}: {e}")
            log.warning("TTS backend %s unavailable: %s", name, e)
    if not backends:
        raise ModelLoadError("no TTS backend could start: " + "; ".join(errors))
    chain = backends[0] if len(backends) == 1 else FallbackTTS(backends)
    return StyledTTS(
        chain,
        style,
        styles=styles,
        reference_volume=settings.voice.volume,
        executor=None if executors is None else executors.tts_for("style"),
    )


def voice_styles(v: VoiceSettings) -> tuple[VoiceStyle, dict[str, VoiceStyle]]:
    """The ``[voice] style`` and every style a session may name, at the configured levels."""
    styles = {
        "quiet": configured(QUIET, v.quiet_speech_db, v.quiet_alert_db, v.whisper),
        "normal": configured(NORMAL, v.normal_speech_db, v.normal_alert_db, False),
    }
    if v.style not in styles:
        raise ValueError(f"unknown [voice] style {v.style!r}; known: {', '.join(styles)}")
    return styles[v.style], styles


# ------------------------------------------------------------------ speech in


def build_asr(settings: Settings, executor: Executor | None = None) -> ASRBackend | None:
    """The one Whisper all sessions share, warmed up; None when ``[voice] asr = "none"``."""
    v = settings.voice
    if v.asr == "none":
        return None
    from server.voice.asr.whisper import WhisperASR, WhisperOptions

    asr = WhisperASR(
        WhisperOptions(
            model=v.asr_model or "auto",
            device=v.asr_device or "auto",
            compute_type=v.asr_compute_type or "auto",
            language=v.asr_language or None,
        ),
        executor=executor,
    )
    asr.warmup()  # the first utterance should not pay for loading
    return asr


def build_listener_factory(
    settings: Settings, asr: ASRBackend | None = None
) -> ListenerFactory | None:
    """Each session's listener, all on one ASR: ``asr`` (the app's), or else (tests,
    benchmarks) a ``build_asr`` of its own, whose pool lives as long as the process."""
    asr = asr if asr is not None else build_asr(settings)
    if asr is None:
        return None
    from server.voice.listener import AudioListener, ListenerOptions

    v = settings.voice

    def factory(
        fmt: AudioFormat,
        emit: Emit,
        *,
        language: str,
        hotwords: str = "",
        spawn: Spawn,
        dsp: Executor,
    ) -> AudioListener:
        options = ListenerOptions(
            min_speech_ms=v.min_speech_ms,
            language=v.asr_language or language.split("-")[0],
            hotwords=hotwords,
            asr_timeout_s=v.asr_timeout_s,
        )
        return AudioListener(fmt, asr, emit, options, spawn=spawn, dsp=dsp)

    return factory


# ------------------------------------------------------------------ vision


def build_ocr(settings: Settings) -> OcrBackend | None:
    """``[vision] ocr``: "none" (stills go to the model unread) or "rapidocr", loaded
    now, so a missing package stops the start with its install line."""
    from server.vision.ocr import load_ocr

    return load_ocr(settings.vision.ocr, max_side=settings.vision.ocr_max_side)


# ------------------------------------------------------------------ delegation

# Config names ([agent] backend) → constructors; a missing setting is named.


def _need(value: object, name: str, example: str) -> None:
    if not value:
        raise ValueError(f"[agent] {name} is not set; e.g. {name} = {example}")


def _openai_agent(a: AgentSettings) -> Agent:
    from server.agents.openai_chat import OpenAIChatAgent

    _need(a.base_url, "base_url", '"http://127.0.0.1:8000/v1"')
    _need(a.model, "model", '"Qwen/Qwen3-VL-8B-Instruct"')
    return OpenAIChatAgent(a.base_url, a.model, a.api_key or None)


def _command_agent(a: AgentSettings) -> Agent:
    from server.agents.command import CommandAgent

    _need(a.command, "command", '["codex", "exec", "{question}"]')
    return CommandAgent(list(a.command), timeout_s=a.timeout_s, sandbox_flags=list(a.sandbox_flags))


def _webhook_agent(a: AgentSettings) -> Agent:
    from server.agents.webhook import WebhookAgent

    _need(a.url, "url", '"http://127.0.0.1:8123/murmur"')
    headers = {"Authorization": f"Bearer {a.api_key}"} if a.api_key else {}
    return WebhookAgent(a.url, headers, a.timeout_s)


AGENT_BACKENDS: dict[str, Callable[[AgentSettings], Agent]] = {
    "openai": _openai_agent,
    "command": _command_agent,
    "webhook": _webhook_agent,
}


def build_delegations(settings: Settings) -> DelegationManager | None:
    a = settings.agent
    if not a.backend:
        return None
    from server.agents.manager import DelegationManager

    factory = AGENT_BACKENDS.get(a.backend)
    if factory is None:
        raise ValueError(f"unknown agent backend {a.backend!r}; known: {', '.join(AGENT_BACKENDS)}")
    return DelegationManager(factory(a), global_limit=a.global_limit, timeout_s=a.timeout_s)


@dataclass
class App:
    """The process's shared services. ``aclose``, once every session has ended, closes the
    agents, the registry, the backends (``Overrides`` too) and last the pools they ran in."""

    settings: Settings
    services: SessionServices
    asr: ASRBackend | None = None  # the listener factory's, when built here
    security: Security | None = None  # the registry, when given to build_app
    metrics: MetricsEndpoint | None = None  # /metrics, once serve_metrics started it

    def serve_metrics(self) -> None:
        """Start ``/metrics`` where ``[metrics]`` says (port 0: not at all); ``aclose``
        stops it. A port it cannot bind is a warning: the wearer's guidance does not
        wait for a dashboard."""
        from server.telemetry.metrics import MetricsEndpoint

        m = self.settings.metrics
        if not m.port or self.metrics is not None:
            return
        try:
            self.metrics = MetricsEndpoint.start(m.host, m.port)
        except OSError as e:
            log.warning("%s; serving without metrics", e)
            return
        log.info("metrics on http://%s:%d/metrics", m.host, self.metrics.port)

    async def aclose(self) -> None:
        if self.services.delegations is not None:
            await self.services.delegations.aclose()
        await self.services.tts.aclose()  # its close, after its recovery probe stopped
        await asyncio.to_thread(self._close_rest)  # it blocks: the registry, the pools

    def _close_rest(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
        if self.security is not None:
            self.security.close()
        if self.services.handover is not None:
            self.services.handover.close()
        self.services.runtime.close()
        if self.asr is not None:
            self.asr.close()
        # Last: nothing is left to queue work, so only what is running is waited for.
        self.services.executors.shutdown()


@dataclass(frozen=True)
class Overrides:
    """Backends supplied instead of building them from settings (tests, embedding).

    To have *no* speech input or agent, say so in the settings
    (``[voice] asr = "none"``, no ``[agent] backend``).
    """

    runtime: InteractionRuntime | None = None
    tts: TTSBackend | None = None
    listener_factory: ListenerFactory | None = None
    delegations: DelegationService | None = None


def build_app(
    settings: Settings,
    overrides: Overrides = Overrides(),
    *,
    executors: Executors | None = None,
    security: Security | None = None,
) -> App:
    """Wire the process's shared services, each backend in its pool of ``executors``
    (made here when not given). The App owns the pools and ``security`` from then on."""
    o = overrides
    use_modes(settings.server.modes_file or None)  # a bad file stops the start, saying where
    pools = Executors() if executors is None else executors
    handover = build_handover(settings)  # before the model: an unreachable store fails fast
    runtime = o.runtime or build_runtime(settings, pools)
    tts = o.tts or build_tts(settings, pools)
    asr = None if o.listener_factory else build_asr(settings, pools.asr)
    e = settings.emergency
    services = SessionServices(
        settings=settings,
        runtime=runtime,
        tts=tts,
        executors=pools,
        listener_factory=o.listener_factory or build_listener_factory(settings, asr),
        delegations=o.delegations or build_delegations(settings),
        emergency=build_notifier(e.webhooks, e.command, e.retries, e.retry_backoff_s, e.timeout_s),
        ocr=build_ocr(settings),
        handover=handover,
    )
    return App(settings, services, asr=asr, security=security)
