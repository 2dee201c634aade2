"""The delegation manager: update sequences, newest-wins, results exactly once,
limits, cancellation — with a scripted agent and with the real backends."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.agents.base import AgentAnswer, AgentError
from server.agents.command import CommandAgent
from server.agents.manager import DelegationManager, DelegationResult
from server.agents.openai_chat import OpenAIChatAgent
from server.events import DelegationState as S
from server.events import DelegationUpdate
from tests.agent_fixtures import alive, chat_completion, exists, gone, jpeg, read_when_written
from tests.fakes import DelegationRecorder as Recorder
from tests.fakes import LocalHTTP, ScriptedAgent, Spawner
from tests.fakes import LocalHTTPReply as Reply


@pytest.fixture
def spawn() -> Iterator[Spawner]:
    """The session's spawn; after the test no delegation task of it may still run."""
    spawner = Spawner()
    yield spawner
    assert spawner.running == []


async def _settle(s) -> None:
    """Let queued updates reach the recorder."""
    for _ in range(5):
        await asyncio.sleep(0)


async def _result(s) -> list[DelegationResult]:
    async with asyncio.timeout(5):
        await s.wait_result()
    return s.take_results()


async def test_done_sequence_and_result_once(spawn):
    rec = Recorder()
    manager = DelegationManager(ScriptedAgent(), timeout_s=5)
    s = manager.session(rec.emit, "en", spawn=spawn)
    tid = s.start("What time is it in Tokyo?", frames=(jpeg(),), context="Checking.")
    results = await _result(s)
    assert results == [
        DelegationResult(
            tid,
            "What time is it in Tokyo?",
            "Answer to What time is it in Tokyo?.",
            "",
            True,
            False,
        )
    ]
    assert s.take_results() == []  # handed out once
    await s.close()
    assert rec.states(tid) == [S.STARTED, S.RUNNING, S.DONE]
    assert rec.last(tid).summary == "Answer to What time is it in Tokyo?."
    assert all(u.question == "What time is it in Tokyo?" for u in rec.updates)


async def test_newest_question_cancels_the_running_one(spawn):
    rec = Recorder()
    agent = ScriptedAgent()
    agent.gate.clear()
    s = DelegationManager(agent, timeout_s=5).session(rec.emit, "en", spawn=spawn)
    first = s.start("Which bus goes downtown?")
    await _settle(s)
    second = s.start("Actually, where is the nearest taxi?")
    assert s.active == (second,)
    await _settle(s)
    agent.gate.set()
    results = await _result(s)
    await s.close()
    assert [r.task_id for r in results] == [second]
    assert agent.cancelled == ["Which bus goes downtown?"]
    assert rec.states(first) == [S.STARTED, S.RUNNING, S.CANCELLED]
    assert rec.last(first).summary == "replaced by a newer question"
    assert rec.states(second) == [S.STARTED, S.RUNNING, S.DONE]


async def test_per_session_limit_two_keeps_both(spawn):
    agent = ScriptedAgent()
    agent.gate.clear()
    rec = Recorder()
    s = DelegationManager(agent, per_session_limit=2).session(rec.emit, "en", spawn=spawn)
    a, b = s.start("a?"), s.start("b?")
    c = s.start("c?")  # the oldest goes
    assert s.active == (b, c)
    agent.gate.set()
    await s.join()
    assert [r.task_id for r in s.take_results()] == [b, c]
    await s.close()
    assert rec.states(a)[-1] is S.CANCELLED
    assert rec.states(b)[-1] is rec.states(c)[-1] is S.DONE


async def test_failure_gives_an_apology_in_the_session_language(spawn):
    agent = ScriptedAgent({"kaputt?": AgentError("backend exploded")})
    rec = Recorder()
    s = DelegationManager(agent).session(rec.emit, "de-DE", spawn=spawn)
    tid = s.start("kaputt?")
    [result] = await _result(s)
    await s.close()
    assert not result.ok
    assert result.spoken == "Tut mir leid, das konnte ich nicht herausfinden."
    assert rec.states(tid) == [S.STARTED, S.RUNNING, S.FAILED]
    assert rec.last(tid).summary == "backend exploded"


async def test_identical_answers_are_spoken_once_per_session(spawn):
    same = AgentAnswer("The exit is behind you.")
    agent = ScriptedAgent({"exit?": same, "way out?": same})
    rec = Recorder()
    s = DelegationManager(agent, per_session_limit=2).session(rec.emit, "en", spawn=spawn)
    first = s.start("exit?")
    assert [r.task_id for r in await _result(s)] == [first]
    second = s.start("way out?")
    await s.join()
    assert s.take_results() == []
    await s.close()
    assert rec.states(second)[-1] is S.DONE  # the client still learns it finished


async def test_urgent_answers_are_marked(spawn):
    agent = ScriptedAgent({"safe?": AgentAnswer("No, the ice is thin.", urgent=True)})
    s = DelegationManager(agent).session(Recorder().emit, "en", spawn=spawn)
    s.start("safe?")
    [result] = await _result(s)
    await s.close()
    assert result.urgent


async def test_cancel_all_drops_running_and_undelivered(spawn):
    agent = ScriptedAgent()
    rec = Recorder()
    s = DelegationManager(agent, per_session_limit=2).session(rec.emit, "en", spawn=spawn)
    done = s.start("quick?")
    await s.join()  # its answer waits, not yet taken
    agent.gate.clear()
    running = s.start("slow?")
    await _settle(s)
    s.cancel_all("never mind")
    await s.join()
    assert s.take_results() == []
    await s.close()
    assert rec.states(done) == [S.STARTED, S.RUNNING, S.DONE]
    assert rec.states(running) == [S.STARTED, S.RUNNING, S.CANCELLED]
    assert rec.last(running).summary == "never mind"


async def test_cancel_before_the_task_ran_still_reports(spawn):
    rec = Recorder()
    s = DelegationManager(ScriptedAgent()).session(rec.emit, "en", spawn=spawn)
    tid = s.start("q?")
    s.cancel_all("mode change")  # same loop iteration: the coroutine never started
    await s.close()
    assert rec.states(tid) == [S.STARTED, S.CANCELLED]


async def test_global_limit_queues_then_fails_fast(spawn):
    agent = ScriptedAgent()
    agent.gate.clear()
    manager = DelegationManager(agent, global_limit=1, queue_limit=1, timeout_s=5)
    recs = [Recorder() for _ in range(3)]
    sessions = [manager.session(r.emit, "en", spawn=spawn) for r in recs]
    running = sessions[0].start("one?")
    await _settle(sessions[0])
    queued = sessions[1].start("two?")
    await _settle(sessions[1])
    refused = sessions[2].start("three?")
    [busy] = await _result(sessions[2])
    assert not busy.ok and "busy" in busy.spoken
    assert recs[2].states(refused) == [S.STARTED, S.FAILED]
    assert "busy" in recs[2].last(refused).summary
    assert recs[1].states(queued) == [S.STARTED]  # waiting for the one agent
    assert (manager.running, manager.waiting) == (1, 1)
    agent.gate.set()
    assert [r.task_id for r in await _result(sessions[0])] == [running]
    assert [r.task_id for r in await _result(sessions[1])] == [queued]
    await manager.aclose()
    assert recs[1].states(queued) == [S.STARTED, S.RUNNING, S.DONE]
    assert (manager.running, manager.waiting) == (0, 0)


async def test_queued_question_cancelled_while_waiting(spawn):
    agent = ScriptedAgent()
    agent.gate.clear()
    manager = DelegationManager(agent, global_limit=1)
    rec = Recorder()
    a = manager.session(Recorder().emit, "en", spawn=spawn)
    b = manager.session(rec.emit, "en", spawn=spawn)
    a.start("first?")
    await _settle(a)
    tid = b.start("second?")
    await _settle(b)
    b.cancel_all("session end")
    await b.join()
    await b.close()
    assert rec.states(tid) == [S.STARTED, S.CANCELLED]
    assert manager.waiting == 0
    await manager.aclose()
    assert manager.running == 0


async def test_a_slot_is_given_back_however_its_block_ends():
    manager = DelegationManager(ScriptedAgent(), global_limit=1, queue_limit=0)
    with pytest.raises(ValueError):
        async with manager.slot() as granted:
            assert granted and manager.running == 1
            async with manager.slot() as second:  # no agent free and no queue
                assert not second and manager.running == 1
            raise ValueError("the block failed")
    assert (manager.running, manager.waiting) == (0, 0)
    async with manager.slot() as again:
        assert again


async def test_start_after_close_is_refused(spawn):
    s = DelegationManager(ScriptedAgent()).session(Recorder().emit, "en", spawn=spawn)
    await s.close()
    with pytest.raises(RuntimeError):
        s.start("q?")


# ------------------------------------------------------------------ real backends


async def test_http_500_becomes_failed_with_apology(spawn):
    async with LocalHTTP("/v1/chat/completions") as srv:
        srv.replies.append(Reply({"error": "overloaded"}, status=500))
        manager = DelegationManager(OpenAIChatAgent(srv.base + "/v1", "m"), timeout_s=5)
        rec = Recorder()
        s = manager.session(rec.emit, "fr", spawn=spawn)
        tid = s.start("Où est la gare ?")
        [result] = await _result(s)
        await manager.aclose()
    assert (result.ok, result.spoken) == (False, "Désolé, je n'ai pas pu le trouver.")
    assert rec.states(tid) == [S.STARTED, S.RUNNING, S.FAILED]
    assert "HTTP 500" in rec.last(tid).summary


async def test_junk_json_and_hang_become_failed(spawn):
    async with LocalHTTP("/v1/chat/completions") as srv:
        srv.replies.extend([Reply("{oops"), Reply(hang=True), Reply(chat_completion("Fine now."))])
        manager = DelegationManager(
            OpenAIChatAgent(srv.base + "/v1", "m"), per_session_limit=1, timeout_s=0.3
        )
        rec = Recorder()
        s = manager.session(rec.emit, "en", spawn=spawn)
        junk = s.start("junk?")
        [r1] = await _result(s)
        hang = s.start("hang?")
        [r2] = await _result(s)
        ok = s.start("ok?")
        [r3] = await _result(s)
        await manager.aclose()
    assert [r.ok for r in (r1, r2, r3)] == [False, False, True]
    assert r3.spoken == "Fine now."
    assert rec.states(junk)[-1] is rec.states(hang)[-1] is S.FAILED
    assert "within 0.3 s" in rec.last(hang).summary
    assert rec.states(ok) == [S.STARTED, S.RUNNING, S.DONE]


SLOW_AGENT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {child.pid} {sys.argv[2]}")
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(60)
    """
)


async def _slow_agent(tmp_path: Path, **kw) -> tuple[CommandAgent, Path]:
    script = tmp_path / "slow.py"
    script.write_text(SLOW_AGENT)
    pids = tmp_path / "pids"
    return CommandAgent(
        [sys.executable, str(script), str(pids), "{frames_dir}"], kill_grace_s=0.2, **kw
    ), pids


async def _pids(path: Path) -> tuple[int, int, str]:
    pid, child, frames_dir = (await read_when_written(path)).split()
    return int(pid), int(child), frames_dir


async def test_cancel_all_kills_the_command_agent(spawn, tmp_path):
    agent, pids = await _slow_agent(tmp_path)
    rec = Recorder()
    alive_when_cancelled: list[bool] = []

    async def emit(update: DelegationUpdate) -> None:
        if update.state is S.CANCELLED:
            alive_when_cancelled.append(alive(pid))
        await rec.emit(update)

    s = DelegationManager(agent, timeout_s=30).session(emit, "en", spawn=spawn)
    tid = s.start("how far is the lake?", frames=(jpeg(),))
    pid, child, frames_dir = await _pids(pids)
    assert alive(pid) and exists(Path(frames_dir, "frame-0.jpg"))
    s.cancel_all("never mind")
    await s.join()
    assert not alive(pid)
    assert await gone(child)
    assert not exists(frames_dir)
    await s.close()
    assert rec.states(tid) == [S.STARTED, S.RUNNING, S.CANCELLED]
    assert alive_when_cancelled == [False]  # CANCELLED is posted after the cleanup
    assert s.take_results() == []


async def test_command_agent_timeout_fails_and_kills(spawn, tmp_path):
    agent, pids = await _slow_agent(tmp_path)
    rec = Recorder()
    s = DelegationManager(agent, timeout_s=0.5).session(rec.emit, "es", spawn=spawn)
    tid = s.start("¿dónde está el museo?")
    pid, child, _ = await _pids(pids)
    [result] = await _result(s)
    await s.close()
    assert (result.ok, result.spoken) == (False, "Lo siento, no pude averiguarlo.")
    assert rec.states(tid) == [S.STARTED, S.RUNNING, S.FAILED]
    assert not alive(pid)
    assert await gone(child)


async def test_session_close_cancels_and_emits_the_last_updates(spawn, tmp_path):
    agent, pids = await _slow_agent(tmp_path)
    rec = Recorder()
    manager = DelegationManager(agent)
    s = manager.session(rec.emit, "zh-CN", spawn=spawn)
    tid = s.start("这是什么？")
    pid, _, _ = await _pids(pids)
    await s.close()
    assert not alive(pid)
    assert rec.states(tid) == [S.STARTED, S.RUNNING, S.CANCELLED]
    assert rec.last(tid).summary == "session end"
    assert rec.last(tid).question == "这是什么？"


async def test_every_task_is_spawned_by_the_owner_and_none_outlives_close(spawn):
    agent = ScriptedAgent()
    agent.gate.clear()
    s = DelegationManager(agent).session(Recorder().emit, "en", spawn=spawn)
    tid = s.start("slow?")
    await _settle(s)
    assert set(spawn.names) == {f"delegation-{tid}", "delegation-updates"}
    assert spawn.running == [f"delegation-{tid}"]  # the emitter ends when nothing waits
    agent.gate.set()
    await _result(s)
    await _settle(s)
    assert spawn.running == []  # nothing idles in the owner's task group
    await s.close()


async def test_a_task_group_owner_kills_the_agent_process_on_close(tmp_path):
    agent, pids = await _slow_agent(tmp_path)
    rec = Recorder()
    async with asyncio.timeout(10), asyncio.TaskGroup() as tg:

        def spawn(coro, name):  # type: ignore[no-untyped-def]
            return tg.create_task(coro, name=name)

        s = DelegationManager(agent).session(rec.emit, "en", spawn=spawn)
        tid = s.start("how far is the lake?")
        pid, child, _ = await _pids(pids)
        await s.close()  # the group then has nothing left to wait for
    assert not alive(pid)
    assert await gone(child)
    assert rec.states(tid) == [S.STARTED, S.RUNNING, S.CANCELLED]
