"""The OpenAI chat-completions wire, as the HTTP runtime speaks it.

Turns are serialised once (``Turn``) and requests assembled from their bytes, so a
chunk's prefix stays byte-identical; replies arrive as server-sent events or one
JSON body (``Delta``).
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from PIL import Image

from server.runtime.openai.frame_refs import Form
from server.runtime.prompt import Message

__all__ = [
    "Delta",
    "ImageOptions",
    "Request",
    "StreamError",
    "Turn",
    "data_url",
    "dump",
    "message_delta",
    "sse_deltas",
    "wire_turn",
]


class ImageOptions(Protocol):
    """How frames are encoded (``OpenAIRuntimeOptions`` has these)."""

    @property
    def image_max_pixels(self) -> int: ...

    @property
    def jpeg_quality(self) -> int: ...


@dataclass(slots=True)
class Turn:
    """One message, serialised once; its bytes are reused in every later request.

    A turn with a frame has three forms: ``plain`` (the frame as a data URL, what any
    OpenAI-compatible server takes), ``full`` (the data and the frame's uuid) and
    ``ref`` (the uuid alone, for a server that already ``held`` the frame).
    """

    plain: str
    full: str | None = None
    ref: str | None = None
    held: bool = False
    _bytes: dict[str, bytes] = field(default_factory=dict, repr=False)  # encoded once

    def fragment(self, form: Form) -> str:
        text: str = getattr(self, self._which(form))
        return text

    def encoded(self, form: Form) -> bytes:
        """``fragment(form)`` as UTF-8, encoded the first time it is sent."""
        which = self._which(form)
        if (out := self._bytes.get(which)) is None:
            out = self._bytes[which] = getattr(self, which).encode()
        return out

    def _which(self, form: Form) -> str:
        if self.full is None or form is Form.PLAIN:
            return "plain"
        if form is Form.REFS and self.held and self.ref is not None:
            return "ref"
        return "full"


@dataclass(frozen=True, slots=True)
class Request:
    """A request's body as its parts (the turns' encoded fragments and the commas
    between them), each encoded once for the turn's life: sent as ~256 KB writes, never
    re-encoded or joined whole — without frame references a chunk's frames are
    megabytes, and one write per part costs the HTTP stack more than the bytes."""

    parts: tuple[bytes, ...]
    stream: bool

    @property
    def body(self) -> bytes:
        return b"".join(self.parts)

    @property
    def size(self) -> int:
        return sum(map(len, self.parts))

    def writes(self, size: int = 1 << 18) -> Iterator[bytes]:
        pending: list[bytes] = []
        held = 0
        for part in self.parts:
            pending.append(part)
            held += len(part)
            if held >= size:
                yield b"".join(pending)
                pending, held = [], 0
        if pending:
            yield b"".join(pending)


@dataclass(frozen=True, slots=True)
class Delta:
    text: str
    # The new tokens' log-prob entries ({"token", "logprob", "top_logprobs"}), or
    # None when the server sent none.
    logprobs: list[dict[str, Any]] | None


class StreamError(Exception):
    """The server reported a failure in the middle of a streamed reply."""


def sse_deltas(resp: httpx.Response) -> Iterator[Delta]:
    for line in resp.iter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        chunk = json.loads(data)
        if "error" in chunk:  # vLLM reports a failure mid-stream as an event
            raise StreamError(f"stream error: {chunk['error']}")
        for choice in chunk.get("choices") or ():
            logprobs = choice.get("logprobs") or {}
            yield Delta(
                text=(choice.get("delta") or {}).get("content") or "",
                logprobs=logprobs.get("content"),
            )


def message_delta(payload: dict[str, Any]) -> Delta:
    choice = payload["choices"][0]
    logprobs = choice.get("logprobs") or {}
    return Delta(text=choice["message"].get("content") or "", logprobs=logprobs.get("content"))


def wire_turn(message: Message, options: ImageOptions, frame_id: str | None = None) -> Turn:
    """prompt.py's message in OpenAI's shape (text-only content as a plain string),
    serialised in each form it can travel in (see ``Turn``)."""
    parts: list[dict[str, Any]] = []
    url: str | None = None
    for part in message["content"]:
        if part["type"] == "image":
            # JPEG-encoded once; a still's part carries its larger budget (conversation.py).
            url = data_url(part["image"], options, part.get("max_pixels"))
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            parts.append({"type": "text", "text": part["text"]})
    if url is None:
        text = "\n".join(p["text"] for p in parts)
        return Turn(dump({"role": message["role"], "content": text}))
    plain = dump({"role": message["role"], "content": parts})
    if frame_id is None:
        return Turn(plain)
    image = next(p for p in parts if p["type"] == "image_url")
    image["uuid"] = frame_id
    full = dump({"role": message["role"], "content": parts})
    image["image_url"] = None
    ref = dump({"role": message["role"], "content": parts})
    return Turn(plain, full, ref)


def data_url(image: Image.Image, options: ImageOptions, max_pixels: int | None = None) -> str:
    """``image`` as a JPEG data URL, downscaled to ``options.image_max_pixels`` or to a
    still's larger ``max_pixels`` (never below the frame cap). The server's own
    processor fits it again to its bounds (Qwen3-VL's default takes up to 16.7 MP)."""
    w, h = image.size
    limit = max(options.image_max_pixels, max_pixels or 0)
    if w * h > limit:
        scale = math.sqrt(limit / (w * h))
        # A frame loses a few percent (bilinear: 2/3 of bicubic's CPU, every tick); a
        # still, read for its small print, keeps bicubic.
        kind = Image.Resampling.BICUBIC if max_pixels else Image.Resampling.BILINEAR
        image = image.resize((max(1, int(w * scale)), max(1, int(h * scale))), kind)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=options.jpeg_quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
