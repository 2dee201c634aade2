"""What one run did, measured from the server events against the scenario's labels.

Server events only (``Cue``, ``Speech``, ``AudioOut``, ``StopSpeaking``,
``StillRequest``, ``TickTrace`` with its ``dropped`` counts), plus what the oracle was
given and said (its inputs are the model boundary: what reached the turn).

- A *warning* is a hazard line the oracle gave as news (its first, or closer, or
  moved). Its *event* is the capture time of the first frame that showed that news
  (the labels, not the oracle, say when). Its utterance is the alert ``Speech`` with
  its words; its cue the last ``Cue`` before that caption.
- event → cue and event → first audio packet, in seconds, for every warning, for
  onsets only (a hazard's first warning: nothing of the same hazard to wait behind),
  and for those that did not wait behind another alert at all (``clear``).
- ``alerts_dropped``: alerts the trace counts as not played out for any reason but
  ``superseded`` and ``repeat`` (no news, held back by the policy); ``alerts_superseded``: those replaced by a newer one about the same
  thing; ``warnings_unplayed``: warnings whose audio never played to its end.
- ``alerts_repeated``: alert utterances that were no news (an unchanged nag that got
  through) or the same warning twice.
- ``cue_order_violations``: alerts whose last cue before the caption was not a hazard
  cue, or had another caption in between, or had audio before the caption.
- ``narration_not_preempted``: at a warning's cue, a narration or answer whose audio
  was still being sent after it and that no ``StopSpeaking`` cut;
  ``narration_tails``: one whose last packets had gone out but whose audio still
  played at the bridge (the speaker's lead), and for how long.
- ``false_alerts``: alert captions in quiet stretches not owed to a warning decided
  before the stretch; ``misclassified``: oracle lines that were no hazard but became
  alerts; ``missed``: warnings not spoken as alerts.
- reading: per sign the user asked about, whether a ``StillRequest`` went out, whether
  the oracle got the question with a still (and its pixel budget), whether it was read.
- products: the barcode texts that reached the oracle's turns.
- falls: fall → "Are you OK?" cue and audio, and whether the contacts were told.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field

from server.events import (
    AudioOut,
    Cue,
    CueKind,
    SessionReady,
    Speech,
    SpeechKind,
    StillRequest,
    StopSpeaking,
    TickTrace,
)
from tests.scenarios.oracle import OracleLine, is_news
from tests.scenarios.suite import ScenarioRun

__all__ = ["Metrics", "Warning", "measure", "percentile"]

_NOT_ALERTS = ("chatter", "answer", "reading", "product", "route")


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0–100), by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[^\W_]+", text.lower()))


@dataclass
class Warning:
    line: OracleLine
    event_s: float
    onset: bool
    utterance: str = ""
    kind: SpeechKind | None = None
    cue_s: float | None = None
    speech_s: float | None = None
    audio_s: float | None = None
    played_out: bool = False
    # Another alert was playing between the event and this one's caption: it waited
    # its turn (alerts never cut alerts), so its latency is the queue's, not the path's.
    queued: bool = False


@dataclass
class Metrics:
    scenario: str
    mode: str
    language: str
    model_s: float  # the oracle's own time per speaking tick
    warnings: list[Warning] = field(default_factory=list)
    alerts_dropped: int = 0
    alerts_superseded: int = 0
    warnings_unplayed: int = 0
    alerts_repeated: int = 0
    cue_order_violations: int = 0
    narration_not_preempted: int = 0
    narration_tails: int = 0  # only its last buffered audio still playing at the cue
    narration_tail_s: list[float] = field(default_factory=list)
    false_alerts: int = 0
    quiet_minutes: float = 0.0
    misclassified: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    reading_needed: int = 0
    stills_requested: int = 0
    stills_seen: int = 0  # the question reached the model with a still
    still_pixels: list[int] = field(default_factory=list)
    signs_read: int = 0
    barcodes_expected: set[str] = field(default_factory=set)
    barcodes_read: set[str] = field(default_factory=set)
    falls: int = 0
    falls_asked: int = 0
    fall_ask_cue_s: list[float] = field(default_factory=list)
    fall_ask_audio_s: list[float] = field(default_factory=list)
    notified: int = 0
    notified_expected: int = 0
    emergency_lines_said: int = 0
    emergency_lines_cut: int = 0  # cut or dropped by a newer emergency line
    dropped_counts: dict[str, int] = field(default_factory=dict)
    frame_age_ms: list[float] = field(default_factory=list)  # at each tick's decision
    coalesced: int = 0  # ticks that fell into a later one while the model ran

    def _picked(self, onsets: bool, clear: bool) -> list[Warning]:
        return [w for w in self.warnings if (w.onset or not onsets) and not (clear and w.queued)]

    def cue_latencies(self, *, onsets: bool = False, clear: bool = False) -> list[float]:
        """event → cue; ``onsets``: first warnings only; ``clear``: none that waited."""
        picked = self._picked(onsets, clear)
        return [w.cue_s - w.event_s for w in picked if w.cue_s is not None]

    def audio_latencies(self, *, onsets: bool = False, clear: bool = False) -> list[float]:
        """event → first audio packet (same selection as ``cue_latencies``)."""
        picked = self._picked(onsets, clear)
        return [w.audio_s - w.event_s for w in picked if w.audio_s is not None]

    @property
    def false_alerts_per_quiet_minute(self) -> float:
        return self.false_alerts / self.quiet_minutes if self.quiet_minutes else 0.0


def _event_time(run: ScenarioRun, line: OracleLine, before: OracleLine | None) -> float:
    """The first frame time at which ``line``'s news was visible (the labels' say)."""
    s = run.scenario
    h = s.hazards[line.event]
    if before is None:
        return s.seen_at(h.onset_s)
    last = (before.clock, before.distance_m)
    scene = line.scene_s if line.scene_s is not None else line.tick_s
    for t in s.frame_times():
        if before.scene_s is not None and t <= before.scene_s:
            continue
        where = h.at(t)
        if where is not None and is_news(last, where):
            return min(t, scene)
    return scene


def measure(run: ScenarioRun) -> Metrics:
    s, oracle = run.scenario, run.oracle
    o = run.options.oracle
    m = Metrics(s.name, s.mode.value, s.language, o.latency_s + o.reply_s)
    events = run.events
    ready = next((e for _, e in events if isinstance(e, SessionReady)), None)
    rate = ready.audio_out.sample_rate_hz if ready is not None else 16000
    said = oracle.said if oracle is not None else []

    # Utterances: first caption, kind, text, audio, cut.
    first: dict[str, tuple[int, float, Speech]] = {}
    audio: dict[str, list[tuple[float, AudioOut]]] = {}
    stops: dict[str, float] = {}
    for i, (t, e) in enumerate(events):
        if isinstance(e, Speech) and e.utterance_id not in first:
            first[e.utterance_id] = (i, t, e)
        elif isinstance(e, AudioOut):
            audio.setdefault(e.utterance_id, []).append((t, e))
        elif isinstance(e, StopSpeaking):
            for u in e.utterance_ids:
                stops.setdefault(u, t)
    texts: dict[str, str] = {}
    for _, e in events:
        if isinstance(e, Speech):
            texts[e.utterance_id] = (texts.get(e.utterance_id, "") + " " + e.text).strip()

    def playback(uid: str) -> tuple[float | None, float | None]:
        packets = audio.get(uid, [])
        if not packets:
            return None, None
        seconds = sum(len(p.data) for _, p in packets) / 2 / rate
        return packets[0][0], packets[0][0] + seconds

    # Oracle hazard lines → utterances, in order.
    hazard_lines = [ln for ln in said if ln.kind == "hazard"]
    mapped: dict[int, str] = {}  # index in hazard_lines → utterance id
    for uid, (_, t, _sp) in sorted(first.items(), key=lambda kv: kv[1][0]):
        words = _norm(texts[uid])
        for k, ln in enumerate(hazard_lines):
            if k not in mapped and ln.tick_s <= t + 1e-6 and _norm(ln.text) == words:
                mapped[k] = uid
                break
    by_uid = {uid: hazard_lines[k] for k, uid in mapped.items()}

    # Warnings.
    last_news: dict[int, OracleLine] = {}
    for k, ln in enumerate(hazard_lines):
        if not ln.news:
            continue
        before = last_news.get(ln.event)
        w = Warning(ln, _event_time(run, ln, before), onset=before is None)
        last_news[ln.event] = ln
        uid = mapped.get(k)
        if uid is not None:
            idx, t, sp = first[uid]
            w.utterance, w.kind, w.speech_s = uid, sp.kind, t
            cues = [(j, ct, c) for j, (ct, c) in enumerate(events[:idx]) if isinstance(c, Cue)]
            if cues:
                w.cue_s = cues[-1][1]
            w.audio_s, _ = playback(uid)
            packets = audio.get(uid, [])
            w.played_out = bool(packets) and packets[-1][1].last and uid not in stops
        m.warnings.append(w)
        if w.kind is not None and w.kind is not SpeechKind.ALERT:
            m.missed.append(ln.text)
    m.warnings_unplayed = sum(1 for w in m.warnings if not w.played_out)
    alert_audio = [
        (u, *playback(u)) for u, (_, _, sp) in first.items() if sp.kind is SpeechKind.ALERT
    ]
    for w in m.warnings:
        if w.speech_s is None:
            continue
        w.queued = any(
            u != w.utterance
            and a is not None
            and b is not None
            and a < w.speech_s
            and b > w.event_s
            for u, a, b in alert_audio
        )

    # Repeats: a nag that was spoken, or one line spoken twice.
    m.alerts_repeated = sum(1 for ln in by_uid.values() if not ln.news)
    spoken = Counter(
        _norm(texts[u]) for u, (_, _, sp) in first.items() if sp.kind is SpeechKind.ALERT
    )
    window = run.profile.repeat_after_s
    for words, n in spoken.items():
        if n > 1:
            times = sorted(t for u, (_, t, _) in first.items() if _norm(texts[u]) == words)
            m.alerts_repeated += sum(1 for a, b in itertools.pairwise(times) if b - a < window)

    # Cue order, for every alert utterance (hazards and the emergency path's lines).
    for uid, (idx, _, sp) in first.items():
        if sp.kind is not SpeechKind.ALERT:
            continue
        before = [e for _, e in events[:idx]]
        if any(isinstance(e, AudioOut) and e.utterance_id == uid for e in before):
            m.cue_order_violations += 1
            continue
        cue_at = max((j for j, e in enumerate(before) if isinstance(e, Cue)), default=None)
        if uid in by_uid:
            ok = cue_at is not None and before[cue_at].kind is CueKind.HAZARD  # type: ignore[union-attr]
            ok = ok and not any(isinstance(e, Speech) for e in before[cue_at + 1 :])
            m.cue_order_violations += 0 if ok else 1

    # Narration still playing when a warning's cue went out: still being sent (the
    # server did not cut it), or only its buffered tail playing (the speaker counts an
    # utterance done at its last packet, sent ``lead_s`` ahead of playback).
    checked: set[str] = set()
    for w in m.warnings:
        if w.cue_s is None:
            continue
        for uid, (_, t, sp) in first.items():
            if sp.kind not in (SpeechKind.NARRATION, SpeechKind.ANSWER) or uid in checked:
                continue
            start, end = playback(uid)
            if start is None or end is None or t > w.cue_s or end <= w.cue_s + 0.02:
                continue
            checked.add(uid)
            if stops.get(uid, float("inf")) <= w.cue_s + 1e-3:
                continue
            if any(pt > w.cue_s + 1e-3 for pt, _ in audio[uid]):
                m.narration_not_preempted += 1
            else:
                m.narration_tails += 1
                m.narration_tail_s.append(end - w.cue_s)

    # False, misclassified, quiet.
    m.quiet_minutes = sum(q.minutes for q in s.quiet)
    for uid, (_, t, sp) in first.items():
        if sp.kind is not SpeechKind.ALERT:
            continue
        q = next((q for q in s.quiet if q.start_s <= t < q.end_s), None)
        owed = uid in by_uid and (by_uid[uid].scene_s or 0.0) < (q.start_s if q else 0.0)
        if q is not None and not owed and not _emergency_line(run, t):
            m.false_alerts += 1
    for ln in said:
        if ln.kind in _NOT_ALERTS:
            uid = next((u for u in first if _norm(texts[u]) == _norm(ln.text)), None)
            if uid is not None and first[uid][2].kind is SpeechKind.ALERT:
                m.misclassified.append(ln.text)

    # Drops, from the traces: each carries the session's counts so far, so the tick at
    # which a count grew says when. The emergency path's lines are alerts too, and each
    # new one supersedes the one before it (server/session/emergency.py), counted as
    # superseded/alert: after a fall, those are the emergency path's. Any other drop
    # of an alert is a lost alert, whenever it happens.
    fell = min((s.seen_at(f.at_s) for f in s.falls), default=float("inf"))
    counts: dict[str, int] = {}
    for t, e in events:
        if not isinstance(e, TickTrace) or e.action == "emergency":
            continue
        if e.frame_age_ms >= 0:
            m.frame_age_ms.append(e.frame_age_ms)
        m.coalesced += e.coalesced
        now = dict(e.dropped)
        for key, n in now.items():
            grew = n - counts.get(key, 0)
            reason, _, kind = key.partition("/")
            if grew <= 0 or kind != SpeechKind.ALERT.value or reason == "repeat":
                continue  # a repeat is no news, held back on purpose: alerts_repeated's
            if reason != "superseded":
                m.alerts_dropped += grew
            elif t >= fell:
                m.emergency_lines_cut += grew
            else:
                m.alerts_superseded += grew
        counts = now
    m.dropped_counts = counts
    m.emergency_lines_said = sum(
        1
        for u, (_, t, sp) in first.items()
        if sp.kind is SpeechKind.ALERT and u not in by_uid and t >= fell
    )

    # Reading.
    requests = [t for t, e in events if isinstance(e, StillRequest)]
    seen = oracle.seen if oracle is not None else []
    for sign in s.signs:
        if sign.asked_s is None:
            continue
        m.reading_needed += 1
        if any(sign.asked_s <= t <= sign.asked_s + 3.0 for t in requests):
            m.stills_requested += 1
        got = [x for x in seen if x.query and sign.ask.lower() in x.query.lower() and x.still]
        if got:
            m.stills_seen += 1
            m.still_pixels.append(got[0].max_pixels or 0)
        if any(sign.text[0].lower() in texts[u].lower() for u in first):
            m.signs_read += 1

    # Products.
    if s.mode.value == "shopping":
        for p in s.products:
            m.barcodes_expected |= {p.ean13, p.qr}
        m.barcodes_read = set(oracle.codes_seen if oracle is not None else []) & m.barcodes_expected

    # Falls.
    cues = [(t, e) for t, e in events if isinstance(e, Cue) and e.kind is CueKind.ATTENTION]
    for f in s.falls:
        m.falls += 1
        at = s.seen_at(f.at_s)
        asked = next((t for t, _ in cues if t >= at), None)
        if asked is not None:
            m.falls_asked += 1
            m.fall_ask_cue_s.append(asked - at)
            after = [
                u for u, (_, t, sp) in first.items() if t >= asked and sp.kind is SpeechKind.ALERT
            ]
            start = playback(after[0])[0] if after else None
            if start is not None:
                m.fall_ask_audio_s.append(start - at)
        m.notified_expected += 1 if f.answer is None else 0
    m.notified = len(run.notifier.alerts)
    return m


def _emergency_line(run: ScenarioRun, t: float) -> bool:
    """An alert at ``t`` that the emergency path said (it follows a fall)."""
    return any(run.scenario.seen_at(f.at_s) <= t for f in run.scenario.falls)
