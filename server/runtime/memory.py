"""What a session remembers across chunks: video summaries and Q&A history.

DESIGN §2: when a chunk of ticks closes it is summarised (mid-term memory); when
the summaries grow, the oldest are compressed again into one long-term summary.
Everything here is bounded in characters, so an hours-long session carries a
fixed-size preamble into each new chunk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["SessionMemory", "clip"]

# Compress(text) -> shorter text, or None when it could not run (e.g. preempted).
Compressor = Callable[[str], "str | None"]


def clip(text: str, max_chars: int, *, keep: str = "end") -> str:
    """Cut ``text`` to ``max_chars`` at a word boundary, keeping its start or end."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    if keep == "end":
        cut = text[-max_chars:]
        space = cut.find(" ")
        return "…" + (cut[space + 1 :] if 0 <= space < len(cut) // 2 else cut)
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return (cut[:space] if space > len(cut) // 2 else cut) + "…"


class SessionMemory:
    """Mid-term summaries (one per closed chunk), a long-term summary, Q&A lines."""

    def __init__(
        self,
        *,
        video_max_chars: int = 1200,
        qa_max_chars: int = 800,
        summary_max_chars: int = 400,
        mid_term_max: int = 3,
    ) -> None:
        self.video_max_chars = video_max_chars
        self.qa_max_chars = qa_max_chars
        self.summary_max_chars = summary_max_chars
        self.mid_term_max = mid_term_max
        self.long_term = ""
        self.mid_term: deque[str] = deque()
        self._qa: deque[str] = deque()
        self._qa_chars = 0

    def add_qa(self, line: str) -> None:
        line = clip(line, self.qa_max_chars // 2, keep="start")
        if not line:
            return
        self._qa.append(line)
        self._qa_chars += len(line) + 1
        while self._qa_chars > self.qa_max_chars and len(self._qa) > 1:
            self._qa_chars -= len(self._qa.popleft()) + 1

    def revise_last_qa(self, revise: Callable[[str], str | None]) -> bool:
        """Rewrite the newest Q&A line ``revise`` answers for ("" deletes it).

        ``revise`` returns None for a line it leaves alone; lines are tried newest
        first and only the first answered one changes.
        """
        for i in range(len(self._qa) - 1, -1, -1):
            old = self._qa[i]
            new = revise(old)
            if new is None:
                continue
            self._qa_chars -= len(old) + 1
            if new:
                self._qa[i] = new
                self._qa_chars += len(new) + 1
            else:
                del self._qa[i]
            return True
        return False

    def add_summary(self, summary: str) -> None:
        summary = clip(summary, self.summary_max_chars, keep="start")
        if summary:
            self.mid_term.append(summary)

    def needs_compression(self) -> bool:
        return (
            len(self.mid_term) > self.mid_term_max or len(self.video_text()) > self.video_max_chars
        )

    def compress(self, compressor: Compressor | None) -> None:
        """Fold the older summaries into the long-term one (by the model when it can)."""
        if not self.needs_compression():
            return
        older = [self.mid_term.popleft() for _ in range(max(1, len(self.mid_term) - 1))]
        text = "\n".join(p for p in (self.long_term, *older) if p)
        merged = compressor(text) if compressor is not None else None
        # Without the model (or if it was cut short) keep the most recent words.
        self.long_term = clip(merged or text, self.summary_max_chars, keep="end")
        # A hard bound whatever the summaries' lengths.
        while len(self.video_text()) > self.video_max_chars and self.mid_term:
            self.mid_term.popleft()

    def video_text(self) -> str:
        parts = [f"Earlier: {self.long_term}"] if self.long_term else []
        parts.extend(self.mid_term)
        return "\n".join(parts)

    def qa_text(self) -> str:
        return "\n".join(self._qa)

    def export(self) -> dict[str, Any]:
        """The memory as plain data (JSON-ready): what a resume elsewhere carries."""
        return {"long_term": self.long_term, "mid_term": list(self.mid_term), "qa": list(self._qa)}

    def restore(self, data: dict[str, Any]) -> None:
        """Take ``export``'s data in place of what is held; the bounds apply again."""
        self.long_term = clip(str(data.get("long_term", "")), self.summary_max_chars, keep="end")
        self.mid_term = deque()
        for summary in data.get("mid_term", ()):
            self.add_summary(str(summary))
        self._qa, self._qa_chars = deque(), 0
        for line in data.get("qa", ()):
            self.add_qa(str(line))
