"""The background-agent interface: what a delegated question is, and what comes back.

A backend implements one private ``_run``; the public ``answer`` in the base applies
the timeout, turns every failure into an ``AgentError`` (a provider-neutral category
with ``is_permanent``, kept apart from the policy that acts on it) and shapes the
output into something short enough to be spoken on the glasses.
"""

from __future__ import annotations

import asyncio
import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from server.codes import Code
from server.errors import Recoverable

__all__ = [
    "Agent",
    "AgentAnswer",
    "AgentCapabilities",
    "AgentError",
    "DelegationRequest",
    "answer_from_json",
    "answer_from_text",
    "parse_output",
    "prompt_text",
]

MAX_SPOKEN_WORDS = 40
MAX_SPOKEN_SENTENCES = 2
# Scripts written without spaces between words (zh, ja): a character budget instead.
MAX_SPOKEN_CJK_CHARS = 60

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MD_NOISE = re.compile(r"(\*\*|__|`+|^#{1,6}\s*|^\s*(?:[-*•]|\d+[.)])\s+)", re.MULTILINE)
_WORDY = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class AgentCapabilities:
    name: str
    vision: bool = False  # looks at the recent frames
    uses_location: bool = True


@dataclass(frozen=True, slots=True)
class DelegationRequest:
    question: str
    language: str = "en"
    frames: tuple[bytes, ...] = ()  # the most recent JPEG frames, oldest first
    location: str | None = None
    context: str = ""  # what the model said when it delegated (its note)
    # Barcodes the server read in recent frames and stills (shopping), oldest first:
    # their texts, e.g. "4006381333931" (an EAN-13) or a QR code's link.
    barcodes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AgentAnswer:
    spoken: str  # one or two short sentences, ready for TTS
    detail: str = ""  # the rest, for the model's context and the client's display
    urgent: bool = False  # the agent asks for it to be spoken at once


class AgentError(Recoverable):
    """A background agent failed. ``is_permanent``: retrying the same way will not help
    (bad configuration, missing command, refused credentials)."""

    def __init__(
        self, message: str, is_permanent: bool = False, *, code: Code = Code.AGENT_FAILED
    ) -> None:
        super().__init__(code, message, retryable=not is_permanent)
        self.is_permanent = is_permanent


class Agent(ABC):
    """A background solver shared by every session of the process."""

    def __init__(self, capabilities: AgentCapabilities, *, timeout_s: float | None = None) -> None:
        self.capabilities = capabilities
        self.timeout_s = timeout_s  # the backend's own limit; ``answer`` uses the smaller

    @property
    def name(self) -> str:
        return self.capabilities.name

    async def answer(self, request: DelegationRequest, timeout_s: float) -> AgentAnswer:
        """Answer ``request`` within ``timeout_s`` seconds (or the backend's own limit,
        if smaller), or raise ``AgentError``.

        Cancellation is never swallowed: a cancelled call cleans up (the backend's
        ``_run`` kills what it started) and raises ``CancelledError``.
        """
        timeout = timeout_s if self.timeout_s is None else min(timeout_s, self.timeout_s)
        try:
            async with asyncio.timeout(timeout):
                raw = await self._run(request)
        except TimeoutError:
            raise AgentError(
                f"{self.name} gave no answer within {timeout:g} s; raise [agent] timeout_s "
                "if it needs longer"
            ) from None
        except AgentError:
            raise
        except Exception as e:  # a backend bug must not take the session down
            raise AgentError(f"{self.name} failed: {type(e).__name__}: {e}") from e
        shaped = answer_from_text(raw.spoken, raw.detail, urgent=raw.urgent)
        if shaped is None:
            raise AgentError(f"{self.name} returned nothing that can be spoken")
        return shaped

    @abstractmethod
    async def _run(self, request: DelegationRequest) -> AgentAnswer:
        """Ask the backend; the base applies the timeout and shapes the answer."""

    async def aclose(self) -> None:  # noqa: B027
        """Release connections."""


# ------------------------------------------------------------------ prompts and parsing


def prompt_text(request: DelegationRequest) -> str:
    """The question with what the agent needs to know to answer it for someone walking."""
    lines = [
        "You are helping someone who wears camera glasses and hears your answer spoken.",
        f"Answer in the language with code '{request.language}'. Start with one or two "
        "short plain sentences that answer the question directly (no markdown); put any "
        "further detail after a blank line.",
        'Alternatively reply with JSON: {"spoken": "...", "detail": "...", "urgent": false}.',
    ]
    if request.context:
        lines.append(f"What the assistant told the user: {request.context}")
    if request.location:
        lines.append(f"The user's location: {request.location}")
    if request.barcodes:
        codes = ", ".join(request.barcodes)
        lines.append(f"Barcodes read on what the user is looking at (newest last): {codes}")
    if request.frames:
        lines.append(f"{len(request.frames)} recent camera frame(s) from the glasses are attached.")
    lines.append(f"Question: {request.question}")
    return "\n".join(lines)


def parse_output(text: str) -> AgentAnswer | None:
    """An agent's raw output: JSON with ``spoken``/``answer`` (or ``result``) keys — the
    whole text or its last line — else plain text, first sentences spoken. None: junk."""
    stripped = text.strip()
    if not stripped:
        return None
    for candidate in (stripped, stripped.splitlines()[-1].strip()):
        if candidate.startswith("{"):
            try:
                data = json.loads(candidate)
            except ValueError:
                continue
            if isinstance(data, dict):
                return answer_from_json(data)
    return answer_from_text(stripped)


def answer_from_json(data: dict[str, Any]) -> AgentAnswer | None:
    spoken = data.get("spoken") or data.get("answer") or data.get("result")
    if not isinstance(spoken, str):
        return None
    detail = data.get("detail")
    return answer_from_text(
        spoken, detail if isinstance(detail, str) else "", urgent=data.get("urgent") is True
    )


def answer_from_text(text: str, detail: str = "", *, urgent: bool = False) -> AgentAnswer | None:
    """Keep the first one or two sentences (at most ~40 words) for speech; the rest
    moves to ``detail``. None when nothing speakable is left."""
    clean = _speakable(text)
    if not _WORDY.search(clean):
        return None
    spoken, rest = _split_spoken(clean)
    detail = "\n".join(part for part in (rest, detail.strip()) if part)
    return AgentAnswer(spoken, detail, urgent)


def _speakable(text: str) -> str:
    text = _MD_LINK.sub(r"\1", text)
    text = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)
    text = _MD_NOISE.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


def _split_spoken(text: str) -> tuple[str, str]:
    cjk = bool(_CJK.search(text))
    # Ends of the first sentences, as offsets into ``text`` so the rest is exact.
    ends = [m.start() for m in _SENTENCE_END.finditer(text)][:MAX_SPOKEN_SENTENCES]
    ends = [e for e in ends if 0 < e < len(text)] + [len(text)]
    end = ends[0]
    if len(ends) > 1 and not _too_long(text[: ends[1]], cjk):
        end = ends[1]
    spoken = text[:end].strip()
    if not _too_long(spoken, cjk):
        return spoken, text[len(spoken) :].strip()
    cut = _cut(spoken, cjk)
    # A cut sentence must still sound finished.
    spoken = cut.rstrip(",;:，、； ") + ("。" if cjk else ".")
    return spoken, text[len(cut) :].strip()


def _too_long(text: str, cjk: bool) -> bool:
    if cjk:
        return len(text) > MAX_SPOKEN_CJK_CHARS
    return len(text.split()) > MAX_SPOKEN_WORDS


def _cut(text: str, cjk: bool) -> str:
    """Shorten one over-long sentence, at a clause boundary when one is far enough in."""
    if cjk:
        head = text[:MAX_SPOKEN_CJK_CHARS]
        comma = max(head.rfind("，"), head.rfind("、"), head.rfind("；"), head.rfind(","))
        return head[: comma + 1] if comma >= MAX_SPOKEN_CJK_CHARS // 2 else head
    # ``text`` has single spaces (see _speakable), so a prefix of words is a prefix of it.
    words = text.split(" ")[:MAX_SPOKEN_WORDS]
    for i in range(len(words) - 1, MAX_SPOKEN_WORDS // 2 - 1, -1):
        if words[i].endswith((",", ";", ":")):
            return " ".join(words[: i + 1])
    return " ".join(words)
