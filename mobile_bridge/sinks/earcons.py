"""``Cue`` events as sound and touch: short synthesized earcons, panned by clock direction.

Pure numpy and cheap (a few ms of work per cue), so the sink renders them on the event
loop. Each kind has its own shape, so the wearer tells them apart without words:

- hazard: two quick high beeps, loud enough to cut through speech;
- attention: a soft two-partial chime that rings out;
- thinking: one low, soft tick;
- done: a rising two-note.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.sinks.base import wire_name

__all__ = ["HapticPulse", "cue_name", "earcon", "haptic_pattern", "pan_gains"]


@dataclass(frozen=True, slots=True)
class HapticPulse:
    """One haptic cue for a source that has a motor: on/off times in ms, and strength."""

    kind: int  # pb.CueKind
    pattern_ms: tuple[int, ...]  # on, off, on, ... starting with on
    intensity: float  # 0..1


def cue_name(kind: int) -> str:
    """``CUE_KIND_HAZARD`` → ``hazard``."""
    return wire_name(pb.CueKind, kind, "CUE_KIND_")


def pan_gains(clock_direction: int) -> tuple[float, float]:
    """Left and right gains for a sound at ``clock_direction`` (1..12; 0 = none).

    Constant power (L² + R² = 1): 12 and 6 o'clock are centred, 3 is fully right and
    9 fully left; stereo cannot tell front from back, so 4 sounds like 2.
    """
    if clock_direction <= 0:
        position = 0.0
    else:
        position = math.sin(math.radians((clock_direction % 12) * 30.0))  # -1 left .. +1 right
    angle = (position + 1.0) * math.pi / 4.0
    return math.cos(angle), math.sin(angle)


def _tone(freq_hz: float, ms: float, rate_hz: int, *, decay_ms: float = 0.0) -> np.ndarray:
    n = max(1, int(rate_hz * ms / 1000))
    t = np.arange(n, dtype=np.float32) / rate_hz
    wave = np.sin(2 * np.pi * freq_hz * t)
    # A 5 ms raised-cosine edge on both ends: a hard edge is heard as a click.
    edge = min(n // 2, max(1, int(rate_hz * 0.005)))
    env = np.ones(n, dtype=np.float32)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, edge, dtype=np.float32))
    env[:edge] = ramp
    env[n - edge :] = ramp[::-1]
    if decay_ms > 0:
        env *= np.exp(-t * 1000 / decay_ms).astype(np.float32)
    return (wave * env).astype(np.float32)


def _silence(ms: float, rate_hz: int) -> np.ndarray:
    return np.zeros(int(rate_hz * ms / 1000), dtype=np.float32)


def _mono(kind: int, rate_hz: int) -> np.ndarray:
    """The earcon's shape at full intensity, peak ≤ 1."""
    if kind == pb.CUE_KIND_HAZARD:
        beep = 0.8 * _tone(1760, 70, rate_hz) + 0.15 * _tone(3520, 70, rate_hz)
        return np.concatenate([beep, _silence(50, rate_hz), beep])
    if kind == pb.CUE_KIND_ATTENTION:
        return 0.3 * _tone(880, 300, rate_hz, decay_ms=120) + 0.15 * _tone(
            1320, 300, rate_hz, decay_ms=80
        )
    if kind == pb.CUE_KIND_THINKING:
        return 0.2 * _tone(220, 40, rate_hz, decay_ms=15)
    if kind == pb.CUE_KIND_DONE:
        return np.concatenate(
            [0.3 * _tone(660, 90, rate_hz), _silence(20, rate_hz), 0.3 * _tone(990, 130, rate_hz)]
        )
    return 0.2 * _tone(660, 60, rate_hz)  # a kind this bridge does not know yet: a plain blip


def earcon(
    kind: int, rate_hz: int, *, channels: int = 2, intensity: float = 0.0, clock_direction: int = 0
) -> np.ndarray:
    """A cue's earcon: float32 samples of shape (n, channels), panned on stereo.

    ``intensity`` 0 means "unspecified" and plays at full strength; lower ones are
    quieter but never inaudible (a hazard at 0.1 must still be heard).
    """
    level = 1.0 if intensity <= 0 else 0.4 + 0.6 * min(1.0, intensity)
    mono = _mono(kind, rate_hz) * level
    if channels == 1:
        return mono[:, None]
    left, right = pan_gains(clock_direction)
    out = np.zeros((mono.size, channels), dtype=np.float32)
    out[:, 0] = mono * left
    out[:, 1] = mono * right
    return out


_PATTERNS = {
    pb.CUE_KIND_HAZARD: (80, 60, 80),
    pb.CUE_KIND_ATTENTION: (60,),
    pb.CUE_KIND_THINKING: (15,),
    pb.CUE_KIND_DONE: (30, 60, 60),
}


def haptic_pattern(cue: pb.Cue) -> HapticPulse:
    """The pulse a haptic source plays for ``cue``."""
    return HapticPulse(cue.kind, _PATTERNS.get(cue.kind, (40,)), cue.intensity or 1.0)
