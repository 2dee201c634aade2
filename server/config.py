"""Settings: defaults, then a TOML file, then ``MURMUR_*`` environment variables,
then command-line flags (applied by ``cli``), each overriding the one before.

Every field is documented where it is declared. README's example settings file is
written by hand; tests/test_layout.py loads it, so a renamed or removed field fails there.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, cast

from server.runtime.limits import DEFAULT_MODEL

__all__ = [
    "DEFAULT_MODEL",
    "AgentSettings",
    "EmergencySettings",
    "FleetSettings",
    "MetricsSettings",
    "ModelSettings",
    "ServerSettings",
    "Settings",
    "VisionSettings",
    "VoiceSettings",
    "load_settings",
]

DEFAULT_CONFIG = Path("~/.config/murmur/server.toml").expanduser()


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"  # 0.0.0.0 to accept phones on your network
    port: int = 50051
    tick_hz: float = 1.0
    # After a tick is due, wait this long for a fresh frame before ticking with
    # the last one: a frame waits for the model as little as possible.
    frame_wait_ms: float = 150.0
    # A frame that changes the view ticks at once instead of at the period's end
    # (server/session/ticker.py wake).
    early_tick: bool = True
    max_frame_bytes: int = 2 * 1024 * 1024
    max_message_bytes: int = 4 * 1024 * 1024
    max_sessions: int = 32
    # A stream that has sent no session_start this long after opening ends with
    # DEADLINE_EXCEEDED; until session_start it holds no session slot.
    first_message_timeout_s: float = 5.0
    # A session whose call sends nothing at all (no frame, audio, text, control or
    # playback report) this long is closed with DEADLINE_EXCEEDED, a Notice first. 0 = never.
    idle_timeout_s: float = 120.0
    max_text_bytes: int = 4096  # a longer TextInput (or ask_now question) is cut, with a Notice
    outbound_queue: int = 256
    grace_s: float = 5.0  # graceful stop: how long live sessions get to finish
    log_level: str = "info"
    # "text" (one readable line each) or "json" (one object a line, with the session's
    # and device's ids: for a log collector). Neither carries anything seen or said.
    log_format: str = "text"
    # TLS is on by default with a self-signed certificate made at first start (kept
    # in [pairing] state_dir); set both to serve a real certificate instead.
    tls_cert: str = ""
    tls_key: str = ""
    # Development on loopback only: no TLS, no device tokens. Refused on any other host.
    no_auth: bool = False
    resume_window_s: float = 120.0  # a dropped session waits this long for its device
    modes_file: str = ""  # a TOML file of your own modes beside the shipped ones (README "Modes")
    sessions_per_device: int = 1  # a newer connection takes over the oldest


@dataclass(frozen=True)
class ModelSettings:
    # A hub id or local folder (in-process transformers), http(s)://HOST:PORT/v1
    # (an OpenAI-compatible server such as vLLM), or scripted:FILE (replay; tests).
    model: str = DEFAULT_MODEL
    device: str = "auto"  # auto, cuda, cuda:1, cpu
    dtype: str = "auto"  # auto (bf16 on GPU, fp32 on CPU), bfloat16, float16, float32
    quantization: str = ""  # "", 8bit, 4bit
    speak_margin: float = 0.0  # log-prob margin </response> must win by
    chunk_ticks: int = 0  # 0 = sized for the GPU found
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy reply text
    top_p: float = 1.0  # nucleus sampling of the reply text (with temperature > 0)
    # In-process: sessions due together share one forward (README "A family on one card")
    batch_window_ms: float = 5.0  # how long a forward waits for others; 0 = never batch
    batch_sessions: int = 4  # rows in one forward
    kv_budget_bytes: int = 0  # KV memory the live sessions share; 0 = what is free
    kv_share: float = 0.5  # of what is left, the most one new session takes
    # For http(s) models:
    served_model: str = ""  # the name the server serves it under; empty = JoyAI-VL-Interaction
    api_key: str = ""  # or MURMUR_MODEL_API_KEY
    timeout_s: float = 5.0
    retries: int = 1
    frame_refs: bool = True  # send each frame once, then name it by uuid (vLLM)
    # A step still running this long: one model.slow Notice (ticks coalesce behind it
    # until it ends, then the next step takes the newest frame). 0 = never.
    slow_step_s: float = 3.0


@dataclass(frozen=True)
class VoiceSettings:
    tts: tuple[str, ...] = ("edge", "piper", "espeak")  # fallback chain, in order
    piper_voice: str = ""  # path to a .onnx voice; empty = the bundled en_US voice
    rate: float = 0.95  # calm pace for quiet guidance
    volume: float = 0.7  # the session volume at which the style's levels below hold
    # How speech sounds (server/voice/profile.py): "quiet" (whispered guidance: low, even,
    # compressed narration, alerts clearly louder) or "normal". Levels are P.56 active
    # speech levels in dBFS, -44..-12; "louder"/"quieter" move them in 3 dB steps.
    style: str = "quiet"
    quiet_speech_db: float = -32.0  # narration, answers, delegation results
    quiet_alert_db: float = -20.0
    normal_speech_db: float = -20.0
    normal_alert_db: float = -16.0
    whisper: bool = False  # quiet speech in espeak-ng's whisper voice (fewer words understood)
    asr: str = "whisper"  # "whisper" or "none" (text input only)
    asr_model: str = "auto"  # auto = small.en on CUDA, base.en on CPU; or a local path
    asr_device: str = "auto"
    asr_compute_type: str = "auto"
    asr_language: str = ""  # empty = the session's language
    min_speech_ms: int = 300  # speech needed before barge-in: a cough must not cut
    # A transcription (queue wait included) with no text this long is dropped with an
    # asr.failed Notice; the listener goes on with the next utterance. 0 = no limit.
    asr_timeout_s: float = 30.0
    # A TTS backend with no audio this long for a clause: that utterance stays captions
    # only, with a tts.failed Notice (a chain's own first-audio deadline comes first).
    tts_timeout_s: float = 10.0


@dataclass(frozen=True)
class AgentSettings:
    backend: str = ""  # "", openai, command, webhook
    base_url: str = ""  # openai: http://HOST:PORT/v1
    model: str = ""
    api_key: str = ""  # or MURMUR_AGENT_API_KEY; sent as a Bearer token
    command: tuple[str, ...] = ()  # command: argv template, e.g. ["codex", "exec", "{question}"]
    sandbox_flags: tuple[str, ...] = ()
    url: str = ""  # webhook
    timeout_s: float = 60.0
    global_limit: int = 4


@dataclass(frozen=True)
class EmergencySettings:
    # Who is told when the wearer may need help ("help", a fall, the model seeing one).
    # No contact: the emergency path is off and "help" is an ordinary question.
    webhooks: tuple[str, ...] = ()  # URLs that get a JSON POST (README: Emergency)
    command: tuple[str, ...] = ()  # argv template, e.g. ["notify-me", "{message}"]
    ask_timeout_s: float = 20.0  # "Are you OK?" unanswered this long: contacts are told
    send_frame: bool = False  # opt in: the last camera frame goes to the webhooks
    retries: int = 3  # further tries per contact after a failed one
    retry_backoff_s: float = 2.0  # the first wait between tries; doubles each time
    timeout_s: float = 10.0  # one try's limit


@dataclass(frozen=True)
class VisionSettings:
    # What the server reads in pictures by itself, beside the model (README: Reading
    # and products). Printed text in the stills it asks for: "none" (the model alone
    # reads) or "rapidocr" (pip install 'murmur[ocr]'); its text enters the turn.
    ocr: str = "none"
    ocr_max_side: int = 1280  # stills are read downscaled to this long side (cost ∝ pixels)
    # A still the glasses were asked for and did not send this long after: the tick
    # goes on with the normal frame and one Notice (still.timeout) says so.
    still_timeout_s: float = 3.0


@dataclass(frozen=True)
class MetricsSettings:
    # Prometheus metrics at http://HOST:PORT/metrics (README "Watching it"). Plain HTTP
    # and no auth: keep it on loopback, or behind a firewall the scraper is inside.
    host: str = "127.0.0.1"
    port: int = 9464  # 0 = no metrics endpoint


@dataclass(frozen=True)
class PairingSettings:
    state_dir: str = ""  # "" = $XDG_STATE_HOME/murmur (~/.local/state/murmur)
    code_ttl_s: float = 600.0  # a pairing code works once, within this time


@dataclass(frozen=True)
class FleetSettings:
    # N frontends behind one balancer (README "A fleet"). A shared store makes them one
    # server to a bridge: the device registry (pairing) lives there instead of SQLite,
    # and a draining frontend hands its sessions' memory over through it, for a resume
    # on any frontend. "" = one frontend alone (SQLite registry, no hand-over).
    store: str = ""  # redis://HOST:6379/0 (rediss:// for TLS); or MURMUR_FLEET_STORE
    # Where bridges reach the fleet (the balancer's HOST:PORT), for `murmur pair`'s
    # pairing URI; "" = this frontend's own [server] host and port.
    advertise: str = ""


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    pairing: PairingSettings = field(default_factory=PairingSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    emergency: EmergencySettings = field(default_factory=EmergencySettings)
    vision: VisionSettings = field(default_factory=VisionSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    fleet: FleetSettings = field(default_factory=FleetSettings)

    def with_overrides(self, section: str, **values: Any) -> Settings:
        """A copy with some fields of one section replaced (None values are ignored)."""
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return self
        return replace(self, **{section: replace(getattr(self, section), **values)})


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Defaults ← TOML file (``path``, or ~/.config/murmur/server.toml if present) ← env."""
    env = dict(os.environ) if env is None else env
    settings = Settings()
    file = Path(path).expanduser() if path else DEFAULT_CONFIG
    if path and not file.exists():
        raise FileNotFoundError(f"config file {file} does not exist")
    if file.exists():
        with file.open("rb") as f:
            data = tomllib.load(f)
        for section, values in data.items():
            settings = _apply(settings, section, values, source=str(file))
    for section in (f.name for f in fields(Settings)):
        prefix = f"MURMUR_{section.upper()}_"
        values = {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}
        if values:
            settings = _apply(settings, section, values, source="environment")
    return settings


def _apply(settings: Settings, section: str, values: Any, *, source: str) -> Settings:
    current = getattr(settings, section, None)
    if not is_dataclass(current) or not isinstance(values, dict):
        raise ValueError(f"{source}: unknown section [{section}]")
    known = {f.name: f for f in fields(current)}
    converted: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in known:
            raise ValueError(
                f"{source}: unknown setting {section}.{key}; known: {', '.join(sorted(known))}"
            )
        default = getattr(current, key)
        converted[key] = _coerce(raw, default, f"{source}: {section}.{key}")
    updated: Any = replace(cast(Any, current), **converted)
    return replace(settings, **{section: updated})


def _coerce(raw: Any, default: Any, where: str) -> Any:
    try:
        if isinstance(default, bool):
            if isinstance(raw, str):
                return raw.strip().lower() in ("1", "true", "yes", "on")
            return bool(raw)
        if isinstance(default, tuple):
            if isinstance(raw, str):
                return tuple(s.strip() for s in raw.split(",") if s.strip())
            return tuple(str(x) for x in raw)
        return type(default)(raw)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: cannot use {raw!r} ({e})") from e
