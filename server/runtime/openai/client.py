"""HTTP to an OpenAI-compatible model server: endpoint discovery, retries, typed errors.

Connection failures, timeouts, a stream cut mid-reply and 5xx/408/429 answers are
retried (``retries`` times, backoff doubling); what is left becomes
``ModelUnavailable(status)``. Other 4xx answers are ``ModelRejected(status)`` and
never retried. A reply that cannot be read is ``ModelBadReply``. All three are
``Recoverable``: the tick is silent and the session goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import httpx

from server.codes import Code
from server.errors import ModelLoadError, Recoverable
from server.runtime.openai.wire import (
    Delta,
    Request,
    StreamError,
    message_delta,
    sse_deltas,
)

__all__ = [
    "ModelBadReply",
    "ModelClient",
    "ModelRejected",
    "ModelUnavailable",
    "ReplySink",
]

log = logging.getLogger(__name__)


class ModelRejected(Recoverable):
    """The server refused the request (a 4xx other than 408/429); not retried."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(
            Code.MODEL_REJECTED,
            f"the model server rejected the request (HTTP {status}: {detail})",
        )
        self.status = status


class ModelUnavailable(Recoverable):
    """No answer after the retries: ``status`` is the last HTTP status, or None when
    the server did not answer at all (refused, timed out, cut mid-stream)."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(Code.MODEL_UNAVAILABLE, message)
        self.status = status


class ModelBadReply(Recoverable):
    def __init__(self, problem: Exception) -> None:
        super().__init__(
            Code.MODEL_BAD_REPLY,
            "the model server sent a reply Murmur cannot read "
            f"({type(problem).__name__}: {problem})",
        )


class ReplySink(Protocol):
    emitted: bool  # a clause already went to speech: the reply is never asked twice

    def feed(self, delta: Delta) -> bool:
        """Take the next piece; False when the rest of the reply is not needed."""


Sink = TypeVar("Sink", bound=ReplySink)


class _Transient(Exception):
    """Worth another try; ``status`` None when the server did not answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ModelClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        timeout_s: float,
        retries: int,
        backoff_s: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s))

    def served_id(self, wanted: str) -> str:
        """GET /models; the served id of ``wanted`` or raise ``ModelLoadError``."""
        url = f"{self.base_url}/models"
        try:
            resp = self._http.get(url)
        except httpx.HTTPError as e:
            raise ModelLoadError(
                f"cannot reach the model server at {self.base_url} ({type(e).__name__}: {e}). "
                f"Start it (vllm serve {wanted} --enable-prefix-caching) or fix "
                "--model http://HOST:PORT/v1"
            ) from e
        if resp.status_code in (401, 403):
            raise ModelLoadError(
                f"the model server at {self.base_url} refused the API key "
                f"(HTTP {resp.status_code}); set MURMUR_MODEL_API_KEY or model.api_key"
            )
        if resp.status_code != 200:
            hint = "" if self.base_url.endswith("/v1") else f"; did you mean {self.base_url}/v1?"
            raise ModelLoadError(
                f"GET {url} answered HTTP {resp.status_code}: the address is not an "
                f"OpenAI-compatible API{hint}"
            )
        try:
            entries = [e for e in resp.json()["data"] if isinstance(e, dict) and "id" in e]
        except (ValueError, KeyError, TypeError) as e:
            raise ModelLoadError(f"GET {url} did not return an OpenAI model list ({e})") from e
        return _pick_served(entries, wanted, self.base_url)

    def complete(self, request: Request, new_sink: Callable[[], Sink]) -> Sink:
        """POST one chat completion with retries; each try feeds a fresh sink."""
        attempt = 0
        while True:
            sink = new_sink()
            try:
                self._send(request, sink)
                return sink
            except _Transient as e:
                if sink.emitted:  # speech has started: keep what came, never say it twice
                    log.warning("model reply cut short: %s", e)
                    return sink
                if attempt >= self.retries:
                    raise ModelUnavailable(
                        f"the model server at {self.base_url} did not answer ({e}); this tick "
                        "is silent and the next one tries again",
                        e.status,
                    ) from e
            time.sleep(self.backoff_s * 2**attempt)
            attempt += 1

    def close(self) -> None:
        self._http.close()

    def _send(self, request: Request, sink: ReplySink) -> None:
        url = f"{self.base_url}/chat/completions"
        try:
            # The parts as they are, with their length: no chunked encoding, no join.
            length = {"Content-Length": str(request.size)}
            with self._http.stream("POST", url, content=request.writes(), headers=length) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    _raise_for_status(resp)
                if request.stream:
                    for delta in sse_deltas(resp):
                        if not sink.feed(delta):
                            break  # closing the stream aborts the request server-side
                else:
                    resp.read()
                    sink.feed(message_delta(resp.json()))
        except httpx.TransportError as e:
            raise _Transient(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from e
        except StreamError as e:
            raise _Transient(str(e)) from e
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise ModelBadReply(e) from e


def _raise_for_status(resp: httpx.Response) -> None:
    detail = resp.text[:300].strip()
    if resp.status_code >= 500 or resp.status_code in (408, 429):
        raise _Transient(f"HTTP {resp.status_code}: {detail}", resp.status_code)
    raise ModelRejected(resp.status_code, detail)


def _pick_served(entries: list[dict[str, Any]], wanted: str, base_url: str) -> str:
    for entry in entries:
        if wanted in (entry["id"], entry.get("root")):
            return str(entry["id"])
    # A checkpoint served from a local folder keeps the hub name's last part.
    tail = wanted.rsplit("/", 1)[-1].lower()
    for entry in entries:
        names = (str(entry["id"]), str(entry.get("root") or ""))
        if any(n.rstrip("/").rsplit("/", 1)[-1].lower() == tail for n in names):
            return str(entry["id"])
    served = ", ".join(str(e["id"]) for e in entries) or "none"
    raise ModelLoadError(
        f"the model server at {base_url} does not serve {wanted!r} (it serves: "
        f"{served}); serve {wanted} there or point --model at a server that does"
    )
