"""The tick protocol's text (DESIGN §2), shared by every backend.

Messages use the chat-template shape transformers and OpenAI-compatible servers
both accept: ``{"role": ..., "content": [{"type": "text"|"image", ...}]}``.
The image entry carries the PIL image under ``"image"``; HTTP backends replace it
with a data URL.
"""

from __future__ import annotations

from typing import Any

from server.runtime.base import Action, ActionKind, TickInput

__all__ = [
    "NO_FRAME",
    "QUERY_HEADER",
    "SYSTEM_PROMPT",
    "UNCHANGED",
    "action_text",
    "assistant_message",
    "history_text",
    "system_message",
    "time_marker",
    "user_message",
]

QUERY_HEADER = "[User Query (IMPORTANT — follow this instruction)]"
VIDEO_HISTORY = "[Video History]"
QA_HISTORY = "[Q&A History]"
# Said in place of the image when no new camera frame arrived since the last tick,
# so the model never takes a repeated picture for a still world.
NO_FRAME = "(no new camera frame)"
# Said in place of the image when a new frame showed what the last image did: a
# tick on a still view costs a few tokens instead of a frame's hundreds.
UNCHANGED = "(the view has not changed)"

SYSTEM_PROMPT = (
    "You are a real-time assistant watching a live first-person video stream from "
    "the user's camera glasses, one frame per second. At every second you must "
    "answer with exactly one of three actions:\n"
    "1. </silence> — nothing needs to be said right now.\n"
    "2. </response> <short reply> — speak a short, quiet reply to the user.\n"
    "3. </response> <brief note> </delegation> <question for the background solver> "
    "— the question is too hard to answer now: say a brief note to the user and "
    "hand the question to a background solver, whose answer will come back later.\n"
    "Follow the user's query while it is in force. Stay silent unless speaking "
    "helps the user."
)

Message = dict[str, Any]


def time_marker(tick_s: float) -> str:
    return f"<{tick_s:.1f} seconds>"


def system_message() -> Message:
    return {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]}


def history_text(video_history: str, qa_history: str) -> str:
    """The opening text of a chunk that follows a summarised one."""
    parts = []
    if video_history:
        parts.append(f"{VIDEO_HISTORY}\n{video_history}")
    if qa_history:
        parts.append(f"{QA_HISTORY}\n{qa_history}")
    return "\n".join(parts)


def user_message(tick: TickInput, *, query: str | None = None, preamble: str = "") -> Message:
    """One tick's user turn: [preamble] [query header + query] [context] time marker, image.

    Without a frame the time marker is followed by ``NO_FRAME`` (or ``UNCHANGED``)
    instead of an image.
    ``query`` overrides ``tick.user_query`` (a chunk's first turn restates the
    standing instruction).
    """
    query = tick.user_query if query is None else query
    text_parts: list[str] = []
    if preamble:
        text_parts.append(preamble)
    if query:
        text_parts.append(f"{QUERY_HEADER}\n{query}")
    text_parts.extend(tick.context)
    marker = time_marker(tick.tick_s)
    missing = UNCHANGED if tick.unchanged else NO_FRAME
    text_parts.append(marker if tick.frame is not None else f"{marker} {missing}")
    content: list[dict[str, Any]] = [{"type": "text", "text": "\n".join(text_parts)}]
    if tick.frame is not None:
        content.append({"type": "image", "image": tick.frame.image})
    return {"role": "user", "content": content}


def action_text(action: Action) -> str:
    """The assistant turn that records ``action`` in the conversation."""
    if action.kind is ActionKind.SILENCE:
        return "</silence>"
    if action.kind is ActionKind.DELEGATE:
        return f"</response> {action.text} </delegation> {action.question}"
    return f"</response> {action.text}"


def assistant_message(action: Action) -> Message:
    return {"role": "assistant", "content": [{"type": "text", "text": action_text(action)}]}
