"""Resume: a dropped stream comes back to the same session, on virtual time.

The registry owns each session's life (several calls may race for one session;
the newest wins); a call that vanishes leaves the session
detached (nothing plays, nothing ticks) for the resume window. These tests drive
the registry with scripted links, the scripted model and speech that costs no time.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from server.agents.manager import DelegationManager
from server.config import Settings
from server.errors import (
    CapacityError,
    ResumeRefusedError,
    TakenOverError,
    UnauthenticatedError,
)
from server.events import (
    AudioEncoding,
    AudioFormat,
    DelegationState,
    DelegationUpdate,
    Mode,
    SessionReady,
    SessionStart,
    SetMode,
    Speech,
    SpeechKind,
    TextIn,
    TickTrace,
)
from server.runtime.scripted import ScriptLine
from server.session.registry import SessionRegistry
from tests.fakes import ScriptedLink, SleepyAgent
from tests.harness import scripted
from tests.session_harness import make_services, run_virtual

START = SessionStart(audio_out=AudioFormat(AudioEncoding.PCM16, 16000), want_trace=True)
DEVICE = "device-1"


def _settings(window_s: float = 120.0) -> Settings:
    return Settings().with_overrides("server", resume_window_s=window_s)


def test_a_dropped_session_resumes_with_its_memory_mode_clock_and_delegation():
    agent = SleepyAgent(4.0, "The shop opens at nine.")
    manager = DelegationManager(agent)
    runtime = scripted()
    runtime.script = [
        ScriptLine(0, "</response> It is a bakery.", query="what is this"),
        ScriptLine(2.0, "</response> One moment. </delegation> When does it open?"),
    ]

    async def main() -> None:
        services = make_services(runtime, delegations=manager, settings=_settings())
        registry = SessionRegistry(services)
        first = ScriptedLink(
            [(0.5, TextIn("what is this?")), (1.5, SetMode(Mode.BLIND))], end_at=3.2, drop=True
        )
        await registry.connect(first, START, DEVICE)
        (session,) = registry.sessions
        assert not session.attached  # detached, not closed
        ticks_before = [e.tick_s for _, e in first.sent if isinstance(e, TickTrace)]
        await asyncio.sleep(5.0)  # the phone is away; the delegation finishes meanwhile
        second = ScriptedLink([], end_at=13.0)
        await registry.connect(second, replace(START, resume_token=session.resume_token), DEVICE)
        await registry.aclose()
        services.executors.shutdown()
        await manager.aclose()

        ready = [e for _, e in second.sent if isinstance(e, SessionReady)]
        assert ready[0].session_id == session.id and ready[0].mode is Mode.BLIND
        assert "Notice" not in second.types()  # a resume, not a new session
        # The answer that arrived during the drop is spoken after the resume.
        spoken = [e for _, e in second.sent if isinstance(e, Speech)]
        assert [(s.text, s.kind) for s in spoken][:1] == [
            ("The shop opens at nine.", SpeechKind.DELEGATION_RESULT)
        ]
        # The tick time line goes on where it was: real elapsed seconds.
        ticks_after = [e.tick_s for _, e in second.sent if isinstance(e, TickTrace)]
        assert ticks_before[-1] <= 3.0 and ticks_after[0] >= 8.0
        # No tick ran while nobody was connected.
        seen = [t.tick_s for t in runtime.sessions[0].ticks]
        assert not [t for t in seen if 3.3 < t < 8.0]
        # The model's conversation is the same one: the earlier query and answer are in it.
        qa = runtime.sessions[0].debug_state().qa_history
        assert "what is this" in qa.lower() and "bakery" in qa.lower()
        assert len(runtime.sessions) == 1

    run_virtual(main())


def test_a_session_nobody_resumes_is_closed_when_its_window_ends():
    runtime = scripted()

    async def main() -> None:
        services = make_services(runtime, settings=_settings(window_s=10.0))
        registry = SessionRegistry(services)
        await registry.connect(ScriptedLink([], end_at=2.0, drop=True), START, DEVICE)
        assert len(registry) == 1
        await asyncio.sleep(9.0)
        assert len(registry) == 1  # still resumable
        await asyncio.sleep(2.0)
        assert len(registry) == 0 and registry.expired == 1
        late = ScriptedLink([], end_at=14.0)
        await registry.connect(late, replace(START, resume_token="gone"), DEVICE)
        assert "Notice" in late.types()  # session.resume_unknown: a fresh session
        services.executors.shutdown()

    run_virtual(main())


def test_a_resume_from_another_device_is_refused():
    runtime = scripted()

    async def main() -> None:
        services = make_services(runtime, settings=_settings())
        registry = SessionRegistry(services)
        await registry.connect(ScriptedLink([], end_at=1.0, drop=True), START, DEVICE)
        (session,) = registry.sessions
        with pytest.raises(ResumeRefusedError):
            await registry.connect(
                ScriptedLink([], end_at=3.0),
                replace(START, resume_token=session.resume_token),
                "other",
            )
        await registry.aclose()
        services.executors.shutdown()

    run_virtual(main())


def test_two_resumes_of_one_session_the_newer_takes_over():
    runtime = scripted()

    async def main() -> None:
        services = make_services(runtime, settings=_settings())
        registry = SessionRegistry(services)
        await registry.connect(ScriptedLink([], end_at=1.0, drop=True), START, DEVICE)
        (session,) = registry.sessions
        again = replace(START, resume_token=session.resume_token)
        older = asyncio.create_task(registry.connect(ScriptedLink([], end_at=30.0), again, DEVICE))
        await asyncio.sleep(2.0)
        newer = ScriptedLink([], end_at=6.0)
        await registry.connect(newer, again, DEVICE)
        with pytest.raises(TakenOverError):
            await older
        assert [e.session_id for _, e in newer.sent if isinstance(e, SessionReady)] == [session.id]
        services.executors.shutdown()

    run_virtual(main())


def test_a_second_connection_of_a_device_takes_over_its_first_session():
    runtime = scripted()

    async def main() -> None:
        services = make_services(runtime, settings=_settings())
        registry = SessionRegistry(services)
        first = asyncio.create_task(registry.connect(ScriptedLink([], end_at=30.0), START, DEVICE))
        await asyncio.sleep(1.0)
        await registry.connect(ScriptedLink([], end_at=3.0), START, DEVICE)
        with pytest.raises(TakenOverError):
            await first
        assert len(runtime.sessions) == 2
        services.executors.shutdown()

    run_virtual(main())


def test_at_max_sessions_a_device_takes_over_its_own_session_and_others_are_refused():
    runtime = scripted()

    async def main() -> None:
        settings = _settings().with_overrides("server", max_sessions=1)
        services = make_services(runtime, settings=settings)
        registry = SessionRegistry(services)
        # The first call still looks attached: the server has not noticed it went silent.
        first = asyncio.create_task(registry.connect(ScriptedLink([], end_at=30.0), START, DEVICE))
        await asyncio.sleep(1.0)
        with pytest.raises(CapacityError, match="max_sessions"):
            await registry.connect(ScriptedLink([], end_at=3.0), START, "other")
        (session,) = registry.sessions
        resumed = asyncio.create_task(
            registry.connect(
                ScriptedLink([], end_at=30.0),
                replace(START, resume_token=session.resume_token),
                DEVICE,
            )
        )
        with pytest.raises(TakenOverError, match="resumed"):
            await first
        # A new session from the same device takes over the one it has.
        newest = asyncio.create_task(registry.connect(ScriptedLink([], end_at=30.0), START, DEVICE))
        with pytest.raises(TakenOverError, match="took over"):
            await resumed
        assert len(runtime.sessions) == 2 and len(registry) == 1
        with pytest.raises(CapacityError):
            await registry.connect(ScriptedLink([], end_at=6.0), START, "other")
        await newest  # half-closes at 30 s
        services.executors.shutdown()

    run_virtual(main())


def test_end_devices_ends_every_live_session_of_a_revoked_device_once():
    runtime = scripted()

    async def main() -> None:
        services = make_services(runtime, settings=_settings())
        registry = SessionRegistry(services)
        doomed = asyncio.create_task(registry.connect(ScriptedLink([], end_at=30.0), START, DEVICE))
        kept = asyncio.create_task(registry.connect(ScriptedLink([], end_at=30.0), START, "other"))
        await asyncio.sleep(1.0)
        revoked = frozenset({DEVICE, "long-gone"})
        gone = UnauthenticatedError("revoked")
        assert registry.end_devices(revoked, gone) == {DEVICE: 1}
        assert registry.end_devices(revoked, gone) == {}  # ending already: not counted again
        with pytest.raises(UnauthenticatedError):
            await doomed
        assert registry.end_devices(revoked, gone) == {}
        assert not kept.done()
        await registry.aclose()
        await kept
        services.executors.shutdown()

    run_virtual(main())


def test_resume_tokens_never_show_in_a_repr():
    start = replace(START, resume_token="resume-secret")
    ready = SessionReady(
        "s1", "resume-secret", START.audio_in, START.audio_out, "m", 1.0, Mode.GENERAL
    )
    assert "resume-secret" not in repr(start) and "resume-secret" not in repr(ready)


def test_three_resumes_at_once_the_newest_serves_and_the_others_end():
    runtime = scripted()

    async def main() -> None:
        services = make_services(runtime, settings=_settings())
        registry = SessionRegistry(services)
        await registry.connect(ScriptedLink([], end_at=1.0, drop=True), START, DEVICE)
        (session,) = registry.sessions
        again = replace(START, resume_token=session.resume_token)
        links = [ScriptedLink([], end_at=30.0) for _ in range(3)]
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
        first = ScriptedLink([], end_at=2.0, drop=True)
        await registry.connect(first, START, DEVICE)
        (session,) = registry.sessions
        await asyncio.sleep(5.0)  # the answer is ready while nobody is connected
        second = ScriptedLink([], end_at=10.0)
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
