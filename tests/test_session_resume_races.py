"""Resume when it races: several calls at once for one session, and what a dropped call
leaves queued. Registry, scripted model and speech that costs no time, on virtual time."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from server.agents.manager import DelegationManager
from server.config import Settings
from server.errors import TakenOverError
from server.events import (
    AudioEncoding,
    AudioFormat,
    DelegationState,
    DelegationUpdate,
    SessionReady,
    SessionStart,
    Speech,
    TickTrace,
)
from server.runtime.scripted import ScriptLine
from server.session.registry import SessionRegistry
from tests.fakes import SleepyAgent
from tests.harness import scripted
from tests.session_harness import FakeLink, make_services, run_virtual

START = SessionStart(audio_out=AudioFormat(AudioEncoding.PCM16, 16000), want_trace=True)
DEVICE = "device-1"


def _settings() -> Settings:
    return Settings().with_overrides("server", resume_window_s=120.0)


def test_three_resumes_at_once_the_newest_serves_and_the_others_end():
    runtime = scripted()

    async def main() -> None:
        services = make_services(runtime, settings=_settings())
        registry = SessionRegistry(services)
        await registry.connect(FakeLink([], end_at=1.0, drop=True), START, DEVICE)
        (session,) = registry.sessions
        again = replace(START, resume_token=session.resume_token)
        links = [FakeLink([], end_at=30.0) for _ in range(3)]
        first = asyncio.create_task(registry.connect(links[0], again, DEVICE))
        await asyncio.sleep(2.0)
        # Two more arrive together while the first is attached.
        second = asyncio.create_task(registry.connect(links[1], again, DEVICE))
        third = asyncio.create_task(registry.connect(links[2], again, DEVICE))
        await asyncio.sleep(4.0)
        for older in (first, second):
            with pytest.raises(TakenOverError):
                await older
        assert not third.done()
        ticks = [t for t, e in links[2].sent if isinstance(e, TickTrace)]
        assert ticks and min(ticks) >= 2.0  # the newest is the one being served
        assert not [t for t, e in links[1].sent if isinstance(e, TickTrace)]
        await registry.aclose()  # and nothing is left attached to hang the close
        await asyncio.wait_for(third, 60)  # its link ends at 30 s
        assert [e.session_id for _, e in links[2].sent if isinstance(e, SessionReady)] == [
            session.id
        ]
        services.executors.shutdown()

    run_virtual(main())


def test_a_delegation_that_ends_during_a_drop_reports_done_after_the_resume():
    manager = DelegationManager(SleepyAgent(3.0, "The shop opens at nine."))
    runtime = scripted()
    runtime.script = [ScriptLine(1.0, "</response> One moment. </delegation> When does it open?")]

    async def main() -> None:
        services = make_services(runtime, delegations=manager, settings=_settings())
        registry = SessionRegistry(services)
        first = FakeLink([], end_at=2.0, drop=True)
        await registry.connect(first, START, DEVICE)
        (session,) = registry.sessions
        await asyncio.sleep(5.0)  # the answer is ready while nobody is connected
        second = FakeLink([], end_at=10.0)
        await registry.connect(second, replace(START, resume_token=session.resume_token), DEVICE)
        await registry.aclose()
        services.executors.shutdown()
        await manager.aclose()

        before = [e.state for _, e in first.sent if isinstance(e, DelegationUpdate)]
        assert DelegationState.DONE not in before
        kinds = [type(e).__name__ for _, e in second.sent]
        assert kinds[0] == "SessionReady"  # the resumed call starts as every call does
        after = [e for _, e in second.sent if isinstance(e, DelegationUpdate)]
        assert [u.state for u in after][-1:] == [DelegationState.DONE]
        spoken = [e.text for _, e in second.sent if isinstance(e, Speech)]
        assert "The shop opens at nine." in spoken

    run_virtual(main())
