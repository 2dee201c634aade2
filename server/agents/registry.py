"""Agent backends by config name: ``[agent] backend = "openai" | "command" | "webhook"``.

Each entry builds a backend from ``AgentSettings`` (``server.app`` calls
``AGENT_BACKENDS[settings.agent.backend](settings.agent)``). A missing required
setting is reported with the setting's name.
"""

from __future__ import annotations

from collections.abc import Callable

from server.agents.base import Agent
from server.agents.command import CommandAgent
from server.agents.openai_chat import OpenAIChatAgent
from server.agents.webhook import WebhookAgent
from server.config import AgentSettings

__all__ = ["AGENT_BACKENDS", "command_agent", "openai_agent", "webhook_agent"]


def _need(value: object, name: str, example: str) -> None:
    if not value:
        raise ValueError(f"[agent] {name} is not set; e.g. {name} = {example}")


def openai_agent(s: AgentSettings) -> Agent:
    _need(s.base_url, "base_url", '"http://127.0.0.1:8000/v1"')
    _need(s.model, "model", '"Qwen/Qwen3-VL-8B-Instruct"')
    return OpenAIChatAgent(s.base_url, s.model, s.api_key or None)


def command_agent(s: AgentSettings) -> Agent:
    _need(s.command, "command", '["codex", "exec", "{question}"]')
    return CommandAgent(list(s.command), timeout_s=s.timeout_s, sandbox_flags=list(s.sandbox_flags))


def webhook_agent(s: AgentSettings) -> Agent:
    _need(s.url, "url", '"http://127.0.0.1:8123/murmur"')
    headers = {"Authorization": f"Bearer {s.api_key}"} if s.api_key else {}
    return WebhookAgent(s.url, headers, s.timeout_s)


AGENT_BACKENDS: dict[str, Callable[[AgentSettings], Agent]] = {
    "openai": openai_agent,
    "command": command_agent,
    "webhook": webhook_agent,
}
