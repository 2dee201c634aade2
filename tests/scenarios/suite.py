"""One scenario through a real session: the session, the policy, the urgency
classifier, the speaker and a TTS stand-in (``InstantTTS`` unless given another),
with the oracle at the model boundary.

Two clocks:

- ``virtual`` (tests): the session harness's ``VirtualTimeLoop`` (tests/session_harness
  .py), extended by ``ModelTimeLoop`` so the oracle's decision latency passes as
  *virtual* time: the model thread parks itself (``model_sleep``) and, while it is
  parked, the loop is free to jump ahead — frames keep arriving, speech keeps playing —
  until the latency is up. Deterministic and fast; latencies measured on it are the
  protocol's (frame cadence, tick schedule, model time), not this machine's.
- ``real``: a plain asyncio loop, wall time, the oracle sleeping in its model thread:
  what the server's own work adds shows up (benchmarks/bench_scenarios.py). Several
  scenarios can share the loop (``run_real``), each with its own model thread, as
  sessions of one server do.

The bridge (``BridgeLink``) plays the scenario's client script at scenario times and
answers every ``StillRequest`` with a full-resolution still of that moment after
``still_delay_s``, as mobile_bridge does. The emergency path is on, with a notifier
that records alerts (``RecordingNotifier``) instead of calling anyone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.agents.notify import NotifyAttempt
from server.config import Settings
from server.engine.emergency import Alert
from server.events import (
    AudioEncoding,
    AudioFormat,
    ClientEvent,
    FrameIn,
    ServerEvent,
    SessionStart,
    StillRequest,
    VideoEncoding,
)
from server.modes import ModeProfile, profile
from server.runtime.base import InteractionRuntime
from server.session.session import Session
from server.voice.tts.base import TTSBackend
from tests.fakes import InstantTTS
from tests.scenarios.clips import Scenario, client_script, still_jpeg
from tests.scenarios.oracle import OracleOptions, OracleRuntime, OracleSession
from tests.session_harness import VirtualTimeLoop, make_services

__all__ = [
    "BridgeLink",
    "ModelTimeLoop",
    "RecordingNotifier",
    "ScenarioRun",
    "SuiteOptions",
    "run_real",
    "run_scenario",
]

PCM_OUT = AudioFormat(AudioEncoding.PCM16, 16000)


class ModelTimeLoop(VirtualTimeLoop):
    """The harness's virtual-time loop, where a worker thread may sleep in virtual time.

    The harness holds the clock still while a thread works (``in_threads``).
    ``model_sleep`` (called in the thread) stops counting the thread for as long as it
    sleeps and wakes it by a timer on the loop, so virtual time moves on meanwhile.
    """

    def model_sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        woken = threading.Event()

        def wake() -> None:
            self.in_threads += 1  # working again: the clock waits for it
            woken.set()

        def park() -> None:
            self.in_threads -= 1
            self.call_later(seconds, wake)

        self.call_soon_threadsafe(park)
        woken.wait()


@dataclass
class RecordingNotifier:
    """The app's emergency contacts, recorded: every alert is 'delivered' at once."""

    alerts: list[tuple[float, Alert]] = field(default_factory=list)

    async def notify(self, alert: Alert, report: Callable[[Any], Any]) -> bool:
        self.alerts.append((asyncio.get_running_loop().time(), alert))
        await report(NotifyAttempt("recorder", 1, ok=True))
        return True


class BridgeLink:
    """The transport's side of the stream (``SessionLink``): the scenario's script at
    scenario times (0 = when the link was made), stills on request, then a half-close."""

    def __init__(
        self,
        scenario: Scenario,
        script: Sequence[tuple[float, ClientEvent]],
        end_at: float,
        *,
        still_delay_s: float = 0.3,
        answer_stills: bool = True,
    ) -> None:
        self.scenario = scenario
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self._n = itertools.count()
        self._heap: list[tuple[float, int, ClientEvent]] = []
        for at, event in script:
            heapq.heappush(self._heap, (at, next(self._n), event))
        self._end_at = end_at
        self._still_delay = still_delay_s
        self._answer_stills = answer_stills
        self._wake = asyncio.Event()
        self.sent: list[tuple[float, ServerEvent]] = []  # (scenario time, event)
        self.stills_sent: list[float] = []

    def now(self) -> float:
        return self._loop.time() - self._t0

    async def recv(self) -> ClientEvent | None:
        while True:
            due = self._heap[0][0] if self._heap else self._end_at
            wait = due - self.now()
            if wait <= 0:
                if not self._heap:
                    return None
                return heapq.heappop(self._heap)[2]
            self._wake.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def send(self, event: ServerEvent) -> None:
        now = self.now()
        self.sent.append((now, event))
        if isinstance(event, StillRequest) and self._answer_stills:
            at = now + self._still_delay
            if at < self._end_at:
                data = still_jpeg(self.scenario, at)
                still = FrameIn(0, int(at * 1000), VideoEncoding.JPEG, data, high_res=True)
                heapq.heappush(self._heap, (at, next(self._n), still))
                self.stills_sent.append(at)
                self._wake.set()


@dataclass(frozen=True)
class SuiteOptions:
    oracle: OracleOptions = field(default_factory=OracleOptions)
    tail_s: float = 4.0  # after the clip: time for the last speech to play out
    still_delay_s: float = 0.3  # the bridge's time to take and send a still
    ask_timeout_s: float = 6.0  # "Are you OK?" unanswered this long: contacts are told
    settings: Settings | None = None
    # A TTS per run (None: InstantTTS); a factory, since backends hold per-run state.
    tts: Callable[[], TTSBackend] | None = None
    runtime: Callable[[Scenario, OracleOptions], InteractionRuntime] | None = None
    # Each frame reaches the server up to this long after its capture (uniform, seeded
    # by the oracle's seed): 0 is the harness's perfectly periodic camera.
    frame_delay_s: float = 0.0


@dataclass
class ScenarioRun:
    scenario: Scenario
    options: SuiteOptions
    profile: ModeProfile
    events: list[tuple[float, ServerEvent]] = field(default_factory=list)
    runtime: InteractionRuntime | None = None
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    stills_sent: list[float] = field(default_factory=list)
    session: Session | None = None
    clock: str = "virtual"

    @property
    def oracle(self) -> OracleSession | None:
        rt = self.runtime
        return rt.sessions[0] if isinstance(rt, OracleRuntime) and rt.sessions else None

    def of(self, kind: type) -> list[Any]:
        return [e for _, e in self.events if isinstance(e, kind)]


def _settings(options: SuiteOptions) -> Settings:
    base = options.settings or Settings()
    return base.with_overrides("emergency", ask_timeout_s=options.ask_timeout_s)


async def _play(run: ScenarioRun, oracle: OracleOptions) -> None:
    scenario, options = run.scenario, run.options
    make = options.runtime or (lambda s, o: OracleRuntime(s, o))
    runtime = run.runtime = make(scenario, oracle)
    tts = options.tts() if options.tts is not None else InstantTTS()
    services = dataclasses.replace(
        make_services(runtime, tts=tts, settings=_settings(options)), emergency=run.notifier
    )
    start = SessionStart(
        mode=scenario.mode, language=scenario.language, audio_out=PCM_OUT, want_trace=True
    )
    script = client_script(scenario)
    if options.frame_delay_s > 0:
        rng = random.Random(oracle.seed)
        script = [
            (t + rng.uniform(0, options.frame_delay_s), e) if isinstance(e, FrameIn) else (t, e)
            for t, e in script
        ]
    try:
        session = await Session.open(services, start)
        run.session = session
        link = BridgeLink(
            scenario,
            script,
            scenario.duration_s + options.tail_s,
            still_delay_s=options.still_delay_s,
        )
        life = asyncio.create_task(session.run())
        try:
            await session.serve(link)
            await life
        finally:
            run.events = link.sent
            run.stills_sent = link.stills_sent
    finally:
        services.executors.shutdown()
        await asyncio.get_running_loop().run_in_executor(None, runtime.close)


def run_scenario(scenario: Scenario, options: SuiteOptions = SuiteOptions()) -> ScenarioRun:
    """``scenario`` through one session on virtual time (the oracle's latency included)."""
    run = ScenarioRun(scenario, options, profile(scenario.mode))
    loop = ModelTimeLoop()
    oracle = dataclasses.replace(options.oracle, sleep=loop.model_sleep)
    try:
        loop.run_until_complete(_play(run, oracle))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    return run


def run_real(
    scenarios: Sequence[Scenario], options: SuiteOptions = SuiteOptions()
) -> list[ScenarioRun]:
    """Every scenario at once on one real event loop, in wall time, each session with
    its own model thread (the oracle sleeps through its latency there)."""
    runs = [ScenarioRun(s, options, profile(s.mode), clock="real") for s in scenarios]

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            for run in runs:
                tg.create_task(_play(run, options.oracle))

    asyncio.run(main())
    return runs
