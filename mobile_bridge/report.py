"""What the server said during a session, and how fast its speech reached the bridge.

``ReportRecorder`` watches the session's traffic (an ``EventObserver``) and builds a
``ReplayReport``: captions, audio per utterance, the tick trace, notices, transcripts,
delegations, barge-ins, counts of what was sent, and per-utterance latency. Tests and
benchmarks use it as their oracle.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.sinks.base import EventObserver, UtteranceAudio

__all__ = ["ReplayReport", "ReportRecorder", "UtteranceLatency", "match_latencies"]


@dataclass
class UtteranceLatency:
    """How fast one utterance reached the bridge's speaker.

    ``speech_to_audio_ms``: its first ``Speech`` caption → its first audio packet
    (TTS and transport, as the bridge sees them). ``decision_to_audio_ms``: the
    arrival of the ``Tick`` that decided it (or the caption, whichever came first)
    → first audio, only when a trace tick matched. ``tick_ms``: the server's own
    per-stage timings of that tick, summed; ``model_ms`` its model stage.
    """

    utterance_id: str
    speech_to_audio_ms: float | None
    decision_to_audio_ms: float | None = None
    tick_s: float | None = None
    tick_ms: float | None = None
    model_ms: float | None = None


@dataclass
class ReplayReport:
    """Everything the server said during a replay."""

    session_ready: pb.SessionReady | None = None
    ticks: list[pb.Tick] = field(default_factory=list)
    speeches: list[tuple[str, str, int]] = field(
        default_factory=list
    )  # (utterance id, text, pb.SpeechKind)
    audio: dict[str, tuple[np.ndarray, int]] = field(default_factory=dict)  # id → (int16 PCM, Hz)
    wavs: dict[str, Path] = field(default_factory=dict)
    notices: list[pb.Notice] = field(default_factory=list)
    transcripts: list[pb.Transcript] = field(default_factory=list)
    delegations: list[pb.DelegationUpdate] = field(default_factory=list)
    stop_speaking: list[str] = field(default_factory=list)
    cues: list[pb.Cue] = field(default_factory=list)
    still_requests: int = 0
    latencies: list[UtteranceLatency] = field(default_factory=list)
    frames_sent: int = 0
    audio_packets_sent: int = 0
    texts_sent: int = 0
    reconnects: int = 0
    wall_s: float = 0.0

    @property
    def utterance_ids(self) -> list[str]:
        """Utterances in the order their first caption arrived."""
        return list(dict.fromkeys(uid for uid, _, _ in self.speeches))

    def latency_summary(self) -> dict[str, float]:
        """p50/max in ms of each latency measure that has samples."""
        out: dict[str, float] = {}
        for name in ("speech_to_audio_ms", "decision_to_audio_ms"):
            xs = [v for lat in self.latencies if (v := getattr(lat, name)) is not None]
            if xs:
                out[f"{name}_p50"] = statistics.median(xs)
                out[f"{name}_max"] = max(xs)
        return out


@dataclass
class Arrivals:
    """Monotonic arrival times, for matching and latency."""

    first_speech: dict[str, float] = field(default_factory=dict)
    first_audio: dict[str, float] = field(default_factory=dict)
    speech_text: dict[str, str] = field(default_factory=dict)
    ticks: list[tuple[float, pb.Tick]] = field(default_factory=list)


class ReportRecorder(EventObserver):
    """Records the traffic into a ``ReplayReport``; ``finish`` adds what only the end knows."""

    def __init__(self) -> None:
        self.report = ReplayReport()
        self.arrivals = Arrivals()
        self._record: dict[str, Callable[[pb.ServerEvent, float], None]] = {
            "session_ready": self._ready,
            "speech": self._speech,
            "audio_out": self._audio,
            "stop_speaking": self._stop,
            "cue": lambda ev, at: self.report.cues.append(ev.cue),
            "transcript": lambda ev, at: self.report.transcripts.append(ev.transcript),
            "delegation_update": lambda ev, at: self.report.delegations.append(
                ev.delegation_update
            ),
            "still_request": self._still,
            "tick": self._tick,
            "notice": lambda ev, at: self.report.notices.append(ev.notice),
        }

    def received(self, event: pb.ServerEvent, at: float) -> None:
        record = self._record.get(event.WhichOneof("event") or "")
        if record is not None:
            record(event, at)

    def sent(self, event: pb.ClientEvent, at: float) -> None:
        r = self.report
        which = event.WhichOneof("event")
        if which == "video_frame" and not event.video_frame.high_res:  # stills are answers
            r.frames_sent += 1
        elif which == "audio_chunk":
            r.audio_packets_sent += 1
        elif which == "text_input":
            r.texts_sent += 1

    def finish(
        self, utterances: Mapping[str, UtteranceAudio], *, reconnects: int, wall_s: float
    ) -> ReplayReport:
        """The report, with the audio the sink kept, the link's reconnects and latency."""
        r = self.report
        for uid, u in utterances.items():
            r.audio[uid] = (u.pcm, u.sample_rate_hz)
            if u.wav_path is not None:
                r.wavs[uid] = u.wav_path
        r.reconnects, r.wall_s = reconnects, wall_s
        r.latencies = match_latencies(self.arrivals)
        return r

    def _ready(self, ev: pb.ServerEvent, at: float) -> None:
        self.report.session_ready = ev.session_ready  # the latest, after a resume

    def _speech(self, ev: pb.ServerEvent, at: float) -> None:
        s = ev.speech
        self.report.speeches.append((s.utterance_id, s.text, s.kind))
        self.arrivals.first_speech.setdefault(s.utterance_id, at)
        self.arrivals.speech_text.setdefault(s.utterance_id, s.text)

    def _audio(self, ev: pb.ServerEvent, at: float) -> None:
        self.arrivals.first_audio.setdefault(ev.audio_out.utterance_id, at)

    def _stop(self, ev: pb.ServerEvent, at: float) -> None:
        self.report.stop_speaking.extend(ev.stop_speaking.utterance_ids)

    def _still(self, ev: pb.ServerEvent, at: float) -> None:
        self.report.still_requests += 1

    def _tick(self, ev: pb.ServerEvent, at: float) -> None:
        self.report.ticks.append(ev.tick)
        self.arrivals.ticks.append((at, ev.tick))


def match_latencies(a: Arrivals) -> list[UtteranceLatency]:
    """Each utterance's latency, matched to the non-silent trace tick that decided it."""
    decisive = [(at, t) for at, t in a.ticks if t.action and t.action != "silence"]
    claimed: set[int] = set()
    out = []
    for uid, spoke_at in sorted(a.first_speech.items(), key=lambda kv: kv[1]):
        audio_at = a.first_audio.get(uid)
        lat = UtteranceLatency(uid, (audio_at - spoke_at) * 1000 if audio_at is not None else None)
        # The deciding tick's trace is sent after dispatch, so it may arrive just
        # before or just after the caption; prefer one whose text matches.
        best: int | None = None
        for i, (at, tick) in enumerate(decisive):
            if i in claimed or abs(at - spoke_at) > 1.0:
                continue
            text = a.speech_text.get(uid, "")
            if best is None or (
                tick.text and text and (tick.text.startswith(text) or text.startswith(tick.text))
            ):
                best = i
        if best is not None:
            claimed.add(best)
            at, tick = decisive[best]
            # A dotted stage ("model.decide") is part of the stage before the dot.
            whole = (t.ms for t in tick.timings if "." not in t.stage)
            lat.tick_s, lat.tick_ms = tick.tick_s, sum(whole)
            lat.model_ms = next((t.ms for t in tick.timings if t.stage == "model"), None)
            if audio_at is not None:
                lat.decision_to_audio_ms = (audio_at - min(at, spoke_at)) * 1000
        out.append(lat)
    return out
