"""Agent backends against real local servers and real subprocesses (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import textwrap
from pathlib import Path

import pytest

from server.agents.base import AgentError, DelegationRequest
from server.agents.command import CommandAgent
from server.agents.openai_chat import OpenAIChatAgent
from server.agents.webhook import WebhookAgent
from server.app import AGENT_BACKENDS
from server.codes import Code
from server.config import AgentSettings, load_settings
from tests.agent_fixtures import alive, chat_completion, exists, gone, jpeg, read_when_written
from tests.fakes import LocalHTTP
from tests.fakes import LocalHTTPReply as Reply

REQUEST = DelegationRequest(
    question="Is this cereal gluten free?",
    language="en",
    frames=(jpeg((10, 20, 30)), jpeg((40, 50, 60))),
    location="Location: 52.52000, 13.40500 (±5 m)",
    context="Let me check the label.",
)

# ------------------------------------------------------------------ OpenAI-compatible


async def test_openai_request_shape_and_parsed_answer():
    async with LocalHTTP("/v1/chat/completions") as srv:
        srv.replies.append(
            Reply(chat_completion("Yes, it is gluten free. It is made from rice. Contains soy."))
        )
        agent = OpenAIChatAgent(srv.base + "/v1", "helper-vl", api_key="k-123")
        try:
            answer = await agent.answer(REQUEST, 5)
        finally:
            await agent.aclose()
    assert answer.spoken == "Yes, it is gluten free. It is made from rice."
    assert answer.detail == "Contains soy."
    req = srv.requests[0]
    assert req["model"] == "helper-vl"
    assert srv.headers[0]["Authorization"] == "Bearer k-123"
    system, user = req["messages"]
    assert system["role"] == "system"
    assert user["role"] == "user"
    text, *images = user["content"]
    assert text["type"] == "text" and "Is this cereal gluten free?" in text["text"]
    assert "52.52000" in text["text"] and "Let me check the label." in text["text"]
    urls = [part["image_url"]["url"] for part in images]
    assert len(urls) == 2
    prefix = "data:image/jpeg;base64,"
    assert all(u.startswith(prefix) for u in urls)
    assert base64.b64decode(urls[1][len(prefix) :]) == REQUEST.frames[1]


async def test_openai_without_vision_sends_no_images():
    async with LocalHTTP("/v1/chat/completions") as srv:
        srv.replies.append(Reply(chat_completion('{"spoken": "Turn back now.", "urgent": true}')))
        agent = OpenAIChatAgent(srv.base + "/v1", "text-only", vision=False)
        try:
            answer = await agent.answer(REQUEST, 5)
        finally:
            await agent.aclose()
    assert (answer.spoken, answer.urgent) == ("Turn back now.", True)
    assert [p["type"] for p in srv.requests[0]["messages"][1]["content"]] == ["text"]
    assert "Authorization" not in srv.headers[0]


@pytest.mark.parametrize(
    ("reply", "permanent", "words"),
    [
        (Reply({"error": "boom"}, status=500), False, "HTTP 500"),
        (Reply({"error": "no such model"}, status=404), True, "HTTP 404"),
        (Reply("<html>not json</html>"), False, "not a chat completion"),
        (Reply({"choices": []}), False, "not a chat completion"),
        (Reply(chat_completion("   ")), False, "empty"),
    ],
)
async def test_openai_failures_become_agent_errors(reply, permanent, words):
    async with LocalHTTP("/v1/chat/completions") as srv:
        srv.replies.append(reply)
        agent = OpenAIChatAgent(srv.base + "/v1", "m")
        try:
            with pytest.raises(AgentError) as err:
                await agent.answer(REQUEST, 5)
        finally:
            await agent.aclose()
    assert err.value.is_permanent is permanent
    assert err.value.retryable is not permanent
    assert words in err.value.message


async def test_openai_hanging_server_times_out():
    async with LocalHTTP("/v1/chat/completions") as srv:
        srv.replies.append(Reply(hang=True))
        agent = OpenAIChatAgent(srv.base + "/v1", "m")
        try:
            with pytest.raises(AgentError, match=r"within 0\.3 s"):
                await agent.answer(REQUEST, 0.3)
        finally:
            await agent.aclose()


async def test_openai_unreachable_is_an_agent_error(unused_tcp_port):
    agent = OpenAIChatAgent(f"http://127.0.0.1:{unused_tcp_port}/v1", "m")
    try:
        with pytest.raises(AgentError, match="could not reach"):
            await agent.answer(REQUEST, 5)
    finally:
        await agent.aclose()


# ------------------------------------------------------------------ webhook


async def test_webhook_happy_path():
    async with LocalHTTP("/hook") as srv:
        srv.replies.append(Reply({"spoken": "The bus comes in 4 minutes.", "detail": "Line 100."}))
        srv.replies.append(Reply({"answer": "Platform 2."}))
        agent = WebhookAgent(srv.base + "/hook", {"X-Token": "t"}, timeout_s=5)
        try:
            first = await agent.answer(REQUEST, 5)
            second = await agent.answer(REQUEST, 5)
        finally:
            await agent.aclose()
    assert (first.spoken, first.detail) == ("The bus comes in 4 minutes.", "Line 100.")
    assert second.spoken == "Platform 2."
    body = srv.requests[0]
    assert body["question"] == REQUEST.question
    assert body["language"] == "en" and body["location"] == REQUEST.location
    assert body["context"] == REQUEST.context
    assert [base64.b64decode(f) for f in body["frames"]] == list(REQUEST.frames)
    assert srv.headers[0]["X-Token"] == "t"


async def test_webhook_reply_without_answer_fails():
    async with LocalHTTP("/hook") as srv:
        srv.replies.append(Reply({"status": "ok"}))
        agent = WebhookAgent(srv.base + "/hook", timeout_s=5)
        try:
            with pytest.raises(AgentError, match="must reply with JSON"):
                await agent.answer(REQUEST, 5)
        finally:
            await agent.aclose()


# ------------------------------------------------------------------ command

# A stand-in for `codex exec`: records what it saw, optionally starts a grandchild that
# ignores SIGTERM, sleeps, then prints an answer.
AGENT_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time
    out, question, frames_dir, sleep_s, grandchild = sys.argv[1:6]
    info = {"pid": os.getpid(), "question": question, "frames_dir": frames_dir,
            "frames": sorted(os.listdir(frames_dir)) if frames_dir else [],
            "mode": oct(os.stat(frames_dir).st_mode & 0o777) if frames_dir else "",
            "env_question": os.environ.get("MURMUR_QUESTION"),
            "leaked_secret": os.environ.get("MURMUR_MODEL_API_KEY"), "argv": sys.argv[1:]}
    if grandchild == "1":
        code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
        info["grandchild"] = subprocess.Popen([sys.executable, "-c", code]).pid
    with open(out + ".tmp", "w") as f:
        json.dump(info, f)
    os.rename(out + ".tmp", out)
    time.sleep(float(sleep_s))
    if question == "fail":
        print("model quota exceeded", file=sys.stderr)
        sys.exit(3)
    print("The pharmacy is open until 8 pm. It is two blocks north. Take the left exit.")
    """
)


def _command_agent(tmp_path: Path, sleep_s: float, grandchild: bool = False, **kw) -> CommandAgent:
    script = tmp_path / "fake_agent.py"
    script.write_text(AGENT_SCRIPT)
    argv = [sys.executable, str(script), str(tmp_path / "info.json"), "{question}",
            "{frames_dir}", str(sleep_s), "1" if grandchild else "0"]  # fmt: skip
    kw.setdefault("timeout_s", 10)
    return CommandAgent(argv, **kw)


async def _info(tmp_path: Path) -> dict:
    return json.loads(await read_when_written(tmp_path / "info.json"))


async def test_command_success_parses_stdout_and_removes_frames(tmp_path, monkeypatch):
    monkeypatch.setenv("MURMUR_MODEL_API_KEY", "secret")
    agent = _command_agent(tmp_path, 0.05)
    answer = await agent.answer(REQUEST, 10)
    assert answer.spoken == "The pharmacy is open until 8 pm. It is two blocks north."
    assert answer.detail == "Take the left exit."
    info = await _info(tmp_path)
    assert info["question"] == REQUEST.question == info["env_question"]
    assert info["frames"] == ["frame-0.jpg", "frame-1.jpg"]
    assert info["mode"] == "0o700"
    assert info["leaked_secret"] is None
    assert not exists(info["frames_dir"])
    assert not alive(info["pid"])


async def test_command_timeout_kills_the_whole_group(tmp_path):
    agent = _command_agent(tmp_path, 30, grandchild=True, timeout_s=0.6, kill_grace_s=0.2)
    with pytest.raises(AgentError, match=r"within 0\.6 s"):
        await agent.answer(REQUEST, 10)  # the command's own limit is the smaller one
    info = await _info(tmp_path)
    assert not alive(info["pid"])  # reaped: no zombie either
    assert await gone(info["grandchild"])  # it ignored SIGTERM; SIGKILL took it
    assert not exists(info["frames_dir"])


async def test_command_cancellation_kills_and_reraises(tmp_path):
    agent = _command_agent(tmp_path, 30, grandchild=True, kill_grace_s=0.2)
    task = asyncio.create_task(agent.answer(REQUEST, 10))
    info = await _info(tmp_path)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not alive(info["pid"])
    assert await gone(info["grandchild"])
    assert not exists(info["frames_dir"])


async def test_command_nonzero_exit_reports_stderr(tmp_path):
    agent = _command_agent(tmp_path, 0)
    with pytest.raises(AgentError, match="status 3: model quota exceeded") as err:
        await agent.answer(DelegationRequest("fail"), 10)
    assert not err.value.is_permanent


async def test_command_missing_program_is_permanent():
    agent = CommandAgent(["/nonexistent/murmur-agent", "{question}"])
    with pytest.raises(AgentError, match="check \\[agent\\] command") as err:
        await agent.answer(REQUEST, 5)
    assert err.value.is_permanent


async def test_command_json_stdout(tmp_path):
    script = tmp_path / "json_agent.py"
    script.write_text(
        "import json\nprint('thinking...')\n"
        "print(json.dumps({'spoken': 'Watch out, wet floor.', 'detail': 'Sign at 12 o\\'clock.', 'urgent': True}))\n"
    )
    answer = await CommandAgent([sys.executable, str(script)]).answer(REQUEST, 5)
    assert (answer.spoken, answer.detail, answer.urgent) == (
        "Watch out, wet floor.", "Sign at 12 o'clock.", True,
    )  # fmt: skip


def test_command_argv_placeholders_and_sandbox_flags():
    agent = CommandAgent(
        ["codex", "exec", "--json", "{question}", "--where={location}"],
        sandbox_flags=["--sandbox", "read-only"],
    )
    req = DelegationRequest("--rm -rf what is this?", location="Main St")
    assert agent.argv(req, "/tmp/x") == [
        "codex", "exec", "--json", "--sandbox", "read-only", " --rm -rf what is this?",
        "--where=Main St",
    ]  # fmt: skip
    explicit = CommandAgent(["claude", "-p", "{prompt}", "{sandbox}"], sandbox_flags=["--x"])
    argv = explicit.argv(DelegationRequest("q?", language="de"), "/tmp/x")
    assert argv[:2] == ["claude", "-p"] and argv[-1] == "--x"
    assert "Question: q?" in argv[2] and "'de'" in argv[2]
    # Literal braces that are not placeholders stay as they are.
    assert CommandAgent(["tool", '{"a": 1}']).argv(req, "/f") == ["tool", '{"a": 1}']


# ------------------------------------------------------------------ registry (server.app)


def test_registry_builds_each_backend():
    openai = AGENT_BACKENDS["openai"](
        AgentSettings(backend="openai", base_url="http://127.0.0.1:1/v1", model="m")
    )
    command = AGENT_BACKENDS["command"](
        AgentSettings(command=("codex", "exec", "{question}"), timeout_s=7)
    )
    webhook = AGENT_BACKENDS["webhook"](AgentSettings(url="http://127.0.0.1:1/hook"))
    assert isinstance(openai, OpenAIChatAgent)
    assert isinstance(command, CommandAgent) and command.timeout_s == 7
    assert isinstance(webhook, WebhookAgent)
    with pytest.raises(ValueError, match=r"\[agent\] base_url"):
        AGENT_BACKENDS["openai"](AgentSettings())
    with pytest.raises(ValueError, match=r"\[agent\] command"):
        AGENT_BACKENDS["command"](AgentSettings())


async def test_the_agent_key_comes_from_the_config_loader_only(monkeypatch):
    """MURMUR_AGENT_API_KEY is read by server.config; the agent itself reads no environment."""
    monkeypatch.setenv("MURMUR_AGENT_API_KEY", "k-env")
    async with LocalHTTP("/v1/chat/completions") as srv:
        srv.replies.extend([Reply(chat_completion("Yes.")), Reply(chat_completion("Yes."))])
        env = {"MURMUR_AGENT_BASE_URL": srv.base + "/v1", "MURMUR_AGENT_MODEL": "m"}
        settings = load_settings(env={**env, "MURMUR_AGENT_API_KEY": "k-env"})
        configured = AGENT_BACKENDS["openai"](settings.agent)
        direct = OpenAIChatAgent(srv.base + "/v1", "m")
        try:
            await configured.answer(REQUEST, 5)
            await direct.answer(REQUEST, 5)
        finally:
            await configured.aclose()
            await direct.aclose()
    assert srv.headers[0]["Authorization"] == "Bearer k-env"
    assert "Authorization" not in srv.headers[1]


def test_agent_errors_carry_a_code_from_the_table():
    err = AgentError("no such command", is_permanent=True)
    assert (err.code, err.component, err.retryable) == (Code.AGENT_FAILED, "agent", False)
    assert AgentError("try later").retryable
