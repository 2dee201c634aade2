"""The terminal as the wearer's display: captions and events, printed as they arrive."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from murmur.v1 import companion_pb2 as pb

from mobile_bridge.sinks.base import EventObserver, wire_name

__all__ = ["BridgeStatus", "ConsoleLog", "dropped_text", "kind_name", "status_line"]

STALE_FRAME_S = 2.0  # a frame older than this is called out in the status line ...
STALE_FRAME_PERIODS = 2.5  # ... or than this many frame periods at a slower capture rate


def stale_after_s(capture_fps: float | None) -> float:
    """How old a frame may be before the status line calls it stale: at 0.2 fps a
    frame is 5 s apart by design, not stale at 2 s."""
    if capture_fps is None or capture_fps <= 0:
        return STALE_FRAME_S
    return max(STALE_FRAME_S, STALE_FRAME_PERIODS / capture_fps)


def kind_name(kind: int) -> str:
    """``SPEECH_KIND_ALERT`` → ``alert``."""
    return wire_name(pb.SpeechKind, kind, "SPEECH_KIND_")


def _timings(tick: pb.Tick) -> str:
    parts = [f"{t.stage}={t.ms:.0f}ms" for t in tick.timings]
    if tick.frame_age_ms >= 0:
        parts.append(f"frame_age={tick.frame_age_ms:.0f}ms")
    return " ".join(parts)


def dropped_text(dropped: Mapping[str, int]) -> str:
    """``{"superseded/alert": 1}`` → ``superseded/alert=1``."""
    return " ".join(f"{k}={n}" for k, n in sorted(dropped.items()))


@dataclass(frozen=True, slots=True)
class BridgeStatus:
    """What the live status line shows."""

    elapsed_s: float | None  # since SessionReady; None before
    mode: str
    paused: bool  # watching paused (by the wearer, or while the source is gone)
    frame_age_s: float | None  # since the source's last frame; None before the first
    frames_sent: int
    source_gone: bool = False  # the watchdog is restarting the source
    restarts: int = 0
    reconnects: int = 0
    volume: float | None = None
    capture_fps: float | None = None  # the source's capture rate now; None: not paced


def status_line(s: BridgeStatus) -> str:
    """``[  12.3s] blind · watching · frame 0.4 s old · 12 frames sent · 1 fps · vol 0.7``."""
    stamp = "[  --  ]" if s.elapsed_s is None else f"[{s.elapsed_s:6.1f}s]"
    state = "source restarting" if s.source_gone else "paused" if s.paused else "watching"
    if s.frame_age_s is None:
        age = "no frame yet"
    else:
        age = f"frame {s.frame_age_s:.1f} s old" + (
            " (stale)" if s.frame_age_s > stale_after_s(s.capture_fps) else ""
        )
    parts = [f"{stamp} {s.mode}", state, age, f"{s.frames_sent} frames sent"]
    if s.capture_fps is not None:
        parts.append(f"{s.capture_fps:g} fps")
    if s.restarts:
        parts.append(f"{s.restarts} restart(s)")
    if s.reconnects:
        parts.append(f"{s.reconnects} reconnect(s)")
    if s.volume is not None:
        parts.append(f"vol {s.volume:g}")
    return " · ".join(parts)


class ConsoleLog(EventObserver):
    """One line per event worth reading, stamped with the source's timeline.

    ``echo`` None keeps it silent (tests); ``timeline`` gives the media seconds played
    so far, or None before the session is ready; ``trace`` prints non-silent ticks,
    and any tick whose count of speech that did not play out (``dropped``) grew.
    """

    def __init__(
        self,
        echo: Callable[[str], None] | None,
        timeline: Callable[[], float | None],
        *,
        trace: bool = False,
    ) -> None:
        self._echo = echo
        self._timeline = timeline
        self._trace = trace
        self._ready_seen = False
        self._dropped: dict[str, int] = {}  # the newest trace's counts (they only grow)
        self._lines: dict[str, Callable[[pb.ServerEvent], str | None]] = {
            "session_ready": self._ready,
            "speech": lambda ev: f"{kind_name(ev.speech.kind)}: {ev.speech.text}",
            "stop_speaking": lambda ev: (
                f"(stop speaking: {ev.stop_speaking.reason or 'no reason'})"
            ),
            "transcript": lambda ev: (
                f"heard: {ev.transcript.text}" if ev.transcript.final else None
            ),
            "delegation_update": self._delegation,
            "tick": self._tick,
            "capture_hint": lambda ev: (
                f"(capture: {ev.capture_hint.fps:g} fps, {ev.capture_hint.reason or 'no reason'})"
            ),
            "notice": lambda ev: (
                f"notice [{ev.notice.component}] {ev.notice.code}: {ev.notice.message}"
            ),
        }

    def say(self, line: str) -> None:
        if self._echo is not None:
            self._echo(line)

    def received(self, event: pb.ServerEvent, at: float) -> None:
        which = event.WhichOneof("event")
        render = self._lines.get(which or "")
        line = render(event) if render is not None else None
        if line is None:
            return
        # SessionReady lines are the session's own news, not a moment on the timeline.
        self.say(line if which == "session_ready" else f"{self._stamp()} {line}")

    def sent(self, event: pb.ClientEvent, at: float) -> None:
        if event.HasField("text_input"):
            self.say(f"{self._stamp()} you typed: {event.text_input.text}")

    def _stamp(self) -> str:
        t = self._timeline()
        return "[  --  ]" if t is None else f"[{t:6.1f}s]"

    def _ready(self, ev: pb.ServerEvent) -> str:
        r = ev.session_ready
        if self._ready_seen:
            return f"session resumed as {r.session_id}"
        self._ready_seen = True
        return f"session {r.session_id} ready: model {r.model or '?'}, {r.tick_hz:g} ticks/s"

    def _delegation(self, ev: pb.ServerEvent) -> str:
        d = ev.delegation_update
        state = wire_name(pb.DelegationState, d.state, "DELEGATION_STATE_")
        return f"delegation {d.task_id} {state}: {d.summary or d.question}"

    def _tick(self, ev: pb.ServerEvent) -> str | None:
        dropped = dict(ev.tick.dropped)
        grew = bool(dropped) and dropped != self._dropped  # a trace without counts: no news
        self._dropped = dropped if grew else self._dropped
        if not self._trace or (ev.tick.action == "silence" and not grew):
            return None
        parts = [f"tick {ev.tick.tick_s:g}: {ev.tick.action}", _timings(ev.tick)]
        parts += [f"dropped: {dropped_text(dropped)}"] if grew else []
        return " ".join(p for p in parts if p)
