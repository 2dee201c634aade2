"""Prometheus metrics: what the server does, in numbers, on its own registry.

Every metric is process-wide (one server per process); a part that observes one
imports it from here and counts where the thing happens. Labels are a closed
vocabulary the code names (a wire mode, a speech kind, a reason, a backend, a
stage), never a session or device id and never anything seen or said: the
README's privacy promise covers ``/metrics`` as it covers the logs.

``MetricsEndpoint.start(host, port)`` serves ``GET /metrics`` from a thread of its
own (``[metrics]`` in the settings; loopback by default). README: "Watching it".
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "BARGE_INS",
    "DECISION_TO_AUDIO",
    "DELEGATIONS",
    "FRAMES_DROPPED",
    "KV_CACHE_BYTES",
    "REGISTRY",
    "SESSIONS",
    "SPEECH_DROPPED",
    "TICKS",
    "TICKS_COALESCED",
    "TICK_SLIP",
    "TICK_STAGE",
    "TTS_FALLBACKS",
    "MetricsEndpoint",
    "SessionGauge",
]

REGISTRY = CollectorRegistry(auto_describe=True)

# Seconds. A tick at 1 Hz has 1 s; speech that starts later than ~1.5 s feels late.
_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_STEP = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
_SPEECH = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)

TICKS = Counter("murmur_ticks", "Ticks run (every session's model decisions).", registry=REGISTRY)
TICKS_COALESCED = Counter(
    "murmur_ticks_coalesced",
    "Ticks skipped because the one before ran long (a slow or hung model step).",
    registry=REGISTRY,
)
TICK_SLIP = Histogram(
    "murmur_tick_slip_seconds",
    "How late a tick fired after it was eligible (the loop or the model thread was busy).",
    buckets=_FAST,
    registry=REGISTRY,
)
TICK_STAGE = Histogram(
    "murmur_tick_stage_seconds",
    "Time per stage of a tick: decode, snapshot, queue (waiting for the model thread), "
    "model (the model step), model.<part> (the runtime's split of it), policy, dispatch.",
    ["stage"],
    buckets=_STEP,
    registry=REGISTRY,
)
DECISION_TO_AUDIO = Histogram(
    "murmur_decision_to_first_audio_seconds",
    "From an utterance being decided (policy or first streamed clause) to its first "
    "audio packet queued for the glasses.",
    ["kind"],
    buckets=_SPEECH,
    registry=REGISTRY,
)
BARGE_INS = Counter(
    "murmur_barge_ins",
    "Times the wearer's speech cut Murmur's (an alert is never cut).",
    registry=REGISTRY,
)
SPEECH_DROPPED = Counter(
    "murmur_speech_dropped",
    "Utterances that did not play out, by kind (alert, answer, narration, …) and reason "
    "(superseded, expired, preempted, barge_in, client, disconnected, closed).",
    ["kind", "reason"],
    registry=REGISTRY,
)
TTS_FALLBACKS = Counter(
    "murmur_tts_fallbacks",
    "Utterances a TTS backend failed before its first audio, so the next in the chain "
    "spoke them; by the backend that failed.",
    ["backend"],
    registry=REGISTRY,
)
DELEGATIONS = Counter(
    "murmur_delegations",
    "Delegated questions that ended, by outcome (done, failed, cancelled).",
    ["outcome"],
    registry=REGISTRY,
)
FRAMES_DROPPED = Counter(
    "murmur_frames_dropped",
    "Video frames not decided on, by reason: replaced (a newer one came before the "
    "tick), late (out of order), too_large, unsupported, corrupt, too_many_pixels.",
    ["reason"],
    registry=REGISTRY,
)

KV_CACHE_BYTES = Gauge(
    "murmur_kv_cache_bytes",
    "Bytes of KV cache buffers the in-process model holds for live sessions (a closed "
    "session's are freed: this returns to zero when none is open).",
    registry=REGISTRY,
)

# (mode, state) per live session: state is "attached" (a call serves it) or "detached"
# (waiting for a resume, still holding its model memory).
SessionSource = Callable[[], Iterable[tuple[str, str]]]


class SessionGauge(Collector):
    """``murmur_sessions{mode,state}``, counted at scrape time from the session
    registries that ``watch`` was given (a test process may run several servers)."""

    def __init__(self) -> None:
        self._sources: dict[int, SessionSource] = {}
        self._lock = threading.Lock()
        self._next = 0

    def watch(self, source: SessionSource) -> Callable[[], None]:
        """Count ``source``'s sessions from now on; returns the call that stops it.
        ``source`` runs in the scrape's thread: it must only snapshot (``tuple(d.values())``
        is one step under the GIL) and read attributes."""
        with self._lock:
            key = self._next
            self._next += 1
            self._sources[key] = source

        def unwatch() -> None:
            with self._lock:
                self._sources.pop(key, None)

        return unwatch

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            sources = list(self._sources.values())
        counts: Tally[tuple[str, str]] = Tally()
        for source in sources:
            counts.update(source())
        family = GaugeMetricFamily(
            "murmur_sessions", "Live sessions, by mode and state.", labels=["mode", "state"]
        )
        for (mode, state), n in sorted(counts.items()):
            family.add_metric([mode, state], n)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("murmur_sessions", "Live sessions.", labels=["mode", "state"])


SESSIONS = SessionGauge()
REGISTRY.register(SESSIONS)


class MetricsEndpoint:
    """``GET /metrics`` over plain HTTP, in a daemon thread; ``close`` stops it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @classmethod
    def start(cls, host: str, port: int) -> MetricsEndpoint:
        """Listen on ``host:port`` (0: any free port); OSError when it cannot bind."""
        try:
            server, thread = start_http_server(port, addr=host, registry=REGISTRY)
        except OSError as e:
            raise OSError(
                f"cannot serve metrics on {host}:{port} ({e.strerror or e}); set [metrics] "
                "port to a free one (0: no metrics endpoint)"
            ) from e
        return cls(server, thread)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)
