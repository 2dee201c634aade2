"""The composition root: the only place that names concrete backends.

Everything else receives interfaces. Heavy backends are imported lazily so a
scripted-model server starts in a second and a missing optional package fails
with an install hint only when it is actually chosen.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from server.config import DEFAULT_MODEL, Settings
from server.errors import ModelLoadError
from server.runtime.base import InteractionRuntime
from server.session.session import SessionServices
from server.voice.tts.base import TTSBackend

__all__ = ["App", "build_app", "build_runtime", "build_tts"]

log = logging.getLogger(__name__)


def build_runtime(settings: Settings) -> InteractionRuntime:
    """``--model`` picks the backend: scripted:FILE, http(s)://…/v1, or a hub id / folder."""
    m = settings.model
    spec = m.model.strip()
    if spec.startswith("scripted:"):
        from server.runtime.scripted import ScriptedRuntime

        return ScriptedRuntime.from_file(spec.removeprefix("scripted:"))
    if spec.startswith(("http://", "https://")):
        from server.runtime.openai_http import OpenAIRuntime, OpenAIRuntimeOptions

        return OpenAIRuntime(
            OpenAIRuntimeOptions(
                base_url=spec,
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
        )
    try:
        from server.runtime.transformers_runtime import TransformersRuntime
    except ImportError as e:
        raise ModelLoadError(
            f"the in-process model runtime needs torch and transformers ({e}); "
            "pip install 'murmur' with its dependencies, or serve the model elsewhere and "
            "use --model http://HOST:PORT/v1"
        ) from e
    return TransformersRuntime.from_settings(m)


def build_tts(settings: Settings) -> TTSBackend:
    v = settings.voice
    try:
        from server.voice.tts.fallback import FallbackTTS
        from server.voice.tts.registry import TTS_BACKENDS
    except ImportError:  # pragma: no cover - until the chain lands
        from server.voice.tts.piper import PiperTTS

        return PiperTTS(v.piper_voice or None)
    backends: list[TTSBackend] = []
    errors: list[str] = []
    for name in v.tts:
        factory = TTS_BACKENDS.get(name)
        if factory is None:
            raise ValueError(f"unknown TTS backend {name!r}; known: {', '.join(TTS_BACKENDS)}")
        try:
            backends.append(factory(settings))
        except Exception as e:  # a backend that cannot start is skipped, with a reason
            errors.append(f"{name}: {e}")
            log.warning("TTS backend %s unavailable: %s", name, e)
    if not backends:
        raise ModelLoadError("no TTS backend could start: " + "; ".join(errors))
    return backends[0] if len(backends) == 1 else FallbackTTS(backends)


def build_listener_factory(settings: Settings) -> Any:
    v = settings.voice
    if v.asr == "none":
        return None
    from server.voice.asr.whisper import WhisperASR
    from server.voice.listener import AudioListener, ListenerOptions

    asr = WhisperASR.from_settings(v)
    asr.warmup()  # the first utterance should not pay for loading

    def factory(fmt, emit, *, language="en"):  # type: ignore[no-untyped-def]
        options = ListenerOptions(
            min_speech_ms=v.min_speech_ms, language=v.asr_language or language.split("-")[0]
        )
        return AudioListener(fmt, asr, emit, options)

    return factory


def build_delegations(settings: Settings) -> Any:
    a = settings.agent
    if not a.backend:
        return None
    from server.agents.manager import DelegationManager
    from server.agents.registry import AGENT_BACKENDS

    factory = AGENT_BACKENDS.get(a.backend)
    if factory is None:
        raise ValueError(f"unknown agent backend {a.backend!r}; known: {', '.join(AGENT_BACKENDS)}")
    return DelegationManager(factory(a), global_limit=a.global_limit, timeout_s=a.timeout_s)


@dataclass
class App:
    settings: Settings
    services: SessionServices

    def close(self) -> None:
        self.services.runtime.close()
        self.services.tts.close()
        self.services.media.shutdown(wait=False, cancel_futures=True)


def build_app(
    settings: Settings,
    *,
    runtime: InteractionRuntime | None = None,
    tts: TTSBackend | None = None,
    listener_factory: Any = "auto",
    delegations: Any = "auto",
) -> App:
    """Wire the process's shared services. Tests inject any of them."""
    runtime = runtime or build_runtime(settings)
    tts = tts or build_tts(settings)
    if listener_factory == "auto":
        listener_factory = build_listener_factory(settings)
    if delegations == "auto":
        delegations = build_delegations(settings)
    services = SessionServices(
        settings=settings,
        runtime=runtime,
        tts=tts,
        media=ThreadPoolExecutor(2, thread_name_prefix="media"),
        listener_factory=listener_factory,
        delegations=delegations,
    )
    return App(settings, services)
