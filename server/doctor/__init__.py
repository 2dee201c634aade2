"""``murmur doctor``: will ``murmur serve`` start here, with these settings, and if not,
what to do. Each check reuses what serve itself runs (``server.app``'s builders, the
loader's memory arithmetic, ``server.transport.security``'s state directory), without
loading the model or making server state.

Layout: ``report.py`` (a check's line, the exit code), ``model.py`` (model files, disk,
GPU), ``voice.py`` (ASR, TTS), ``host.py`` (Python, port, state dir, certificate, registry).
"""

from __future__ import annotations

from server.config import Settings
from server.doctor.host import (
    check_certificate,
    check_port,
    check_python,
    check_registry,
    check_state_dir,
)
from server.doctor.model import ModelFacts, check_gpu, check_model_files
from server.doctor.report import Check, Status, exit_code, render
from server.doctor.voice import check_asr, check_tts

__all__ = ["Check", "Status", "doctor", "exit_code", "render", "run_checks"]


def run_checks(settings: Settings) -> list[Check]:
    """Every check for ``settings``, in the order a reader fixes them."""
    facts = ModelFacts()
    checks = [check_python()]
    checks += check_model_files(settings, facts)
    checks.append(check_gpu(settings, facts))
    checks.append(check_asr(settings))
    checks += check_tts(settings)
    checks.append(check_port(settings))
    checks.append(check_state_dir(settings))
    checks.append(check_certificate(settings))
    checks.append(check_registry(settings))
    return checks


def doctor(settings: Settings) -> int:
    """Print the checks; 0 when ``murmur serve`` with ``settings`` would start here."""
    checks = run_checks(settings)
    print(f"murmur doctor: {settings.model.model}")
    print(render(checks))
    failed = [c.name for c in checks if c.status is Status.FAIL]
    if failed:
        print(f"\n{len(failed)} problem(s): {', '.join(failed)}. Fix them, then run it again.")
    else:
        print("\nReady: `murmur serve` with these settings should start here.")
    return exit_code(checks)
