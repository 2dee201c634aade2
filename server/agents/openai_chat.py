"""A background agent behind any OpenAI-compatible chat endpoint (vLLM, llama.cpp,
Ollama, a hosted API): ``POST {base_url}/chat/completions``.

With ``vision`` the recent frames travel as JPEG data URLs in the user message, so a
vision-language model can look at what the user is looking at. The API key is
passed in (``server.config`` reads ``[agent] api_key`` / ``MURMUR_AGENT_API_KEY``).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from server.agents.base import (
    Agent,
    AgentAnswer,
    AgentCapabilities,
    AgentError,
    DelegationRequest,
    parse_output,
    prompt_text,
)

__all__ = ["DEFAULT_SYSTEM_PROMPT", "OpenAIChatAgent"]

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful research assistant answering questions for a person who wears "
    "camera glasses. Be accurate and brief: your first one or two sentences are read "
    "aloud. If you do not know, say so plainly."
)

# Client errors that the same request will hit again: configuration, not bad luck.
_PERMANENT_STATUS = {400, 401, 403, 404, 405, 413, 422}


class OpenAIChatAgent(Agent):
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        max_tokens: int = 400,
        vision: bool = True,
        max_frames: int = 3,
        temperature: float = 0.2,
    ) -> None:
        super().__init__(AgentCapabilities(name=f"openai:{model}", vision=vision))
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.system_prompt = system_prompt
        self.max_tokens = max_tokens
        self.vision = vision
        self.max_frames = max_frames
        self.temperature = temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # The base's deadline bounds each call; the client's own read timeout stays off.
        self._client = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(None, connect=10.0))

    def payload(self, request: DelegationRequest) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": prompt_text(request)}]
        if self.vision:
            for jpeg in request.frames[-self.max_frames :] if self.max_frames else ():
                url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
                content.append({"type": "image_url", "image_url": {"url": url}})
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": self.system_prompt},
                {"role": "user", "content": content},
            ],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": False,
        }

    async def _run(self, request: DelegationRequest) -> AgentAnswer:
        try:
            resp = await self._client.post(self.url, json=self.payload(request))
        except httpx.HTTPError as e:
            raise AgentError(
                f"could not reach the agent model at {self.url}: {type(e).__name__} {e}".strip()
            ) from e
        if resp.status_code >= 400:
            raise AgentError(
                f"the agent model at {self.url} answered HTTP {resp.status_code}: "
                f"{resp.text[-200:]}",
                is_permanent=resp.status_code in _PERMANENT_STATUS,
            )
        text = _message_text(resp.content)
        if text is None:
            raise AgentError(
                f"the agent model at {self.url} sent a reply that is not a chat completion"
            )
        answer = parse_output(text)
        if answer is None:
            raise AgentError(f"the agent model at {self.url} sent an empty answer")
        return answer

    async def aclose(self) -> None:
        await self._client.aclose()


def _message_text(body: bytes) -> str | None:
    try:
        data = json.loads(body)
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else None
