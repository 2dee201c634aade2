"""A background agent behind an HTTP webhook (a home-automation flow, a small service).

Request: ``POST url`` with JSON ``{question, language, location, context, barcodes,
frames}``, ``barcodes`` the texts of codes read in recent frames and stills (e.g.
``["4006381333931"]``), ``frames`` base64 JPEGs, oldest first. Reply: JSON ``{"spoken": "...",
"detail": "...", "urgent": false}``; ``{"answer": "..."}`` is accepted too.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import httpx

from server.agents.base import (
    Agent,
    AgentAnswer,
    AgentCapabilities,
    AgentError,
    DelegationRequest,
    answer_from_json,
)

__all__ = ["WebhookAgent", "post_json"]

_PERMANENT_STATUS = {400, 401, 403, 404, 405, 410, 413, 422}


class WebhookAgent(Agent):
    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
        *,
        max_frames: int = 3,
    ) -> None:
        super().__init__(
            AgentCapabilities(name="webhook", vision=max_frames > 0), timeout_s=timeout_s
        )
        self.url = url
        self.max_frames = max_frames
        self._client = httpx.AsyncClient(
            headers=dict(headers or {}), timeout=httpx.Timeout(None, connect=10.0)
        )

    def payload(self, request: DelegationRequest) -> dict[str, Any]:
        frames = request.frames[-self.max_frames :] if self.max_frames else ()
        return {
            "question": request.question,
            "language": request.language,
            "location": request.location,
            "context": request.context,
            "barcodes": list(request.barcodes),
            "frames": [base64.b64encode(f).decode("ascii") for f in frames],
        }

    async def _run(self, request: DelegationRequest) -> AgentAnswer:
        resp = await post_json(
            self._client, self.url, self.payload(request), what=f"the agent webhook {self.url}"
        )
        try:
            data = json.loads(resp.content)
        except ValueError:
            data = None
        answer = answer_from_json(data) if isinstance(data, dict) else None
        if answer is None:
            raise AgentError(
                f"the agent webhook {self.url} must reply with JSON "
                '{"spoken": "..."} (or {"answer": "..."})'
            )
        return answer

    async def aclose(self) -> None:
        await self._client.aclose()


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: Mapping[str, Any],
    *,
    what: str,
    show_body: bool = True,
) -> httpx.Response:
    """POST ``body`` as JSON to ``url``; the response, when its status is below 400.

    Otherwise an ``AgentError`` naming ``what``: unreachable (retryable), or the error
    status, permanent when retrying the same request cannot help. ``show_body``: the
    end of the reply's body goes into the message (off where the reply may echo
    what was sent).
    """
    try:
        resp = await client.post(url, json=body)
    except httpx.HTTPError as e:
        raise AgentError(f"could not reach {what}: {type(e).__name__}") from e
    if resp.status_code >= 400:
        tail = f": {resp.text[-200:]}" if show_body else ""
        raise AgentError(
            f"{what} answered HTTP {resp.status_code}{tail}",
            is_permanent=resp.status_code in _PERMANENT_STATUS,
        )
    return resp
