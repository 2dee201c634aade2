"""Whether the model server keeps frames by uuid: the frame-reference policy.

Each frame carries a ``uuid`` (vLLM's media UUIDs); once a request carrying its
data has succeeded, later requests may name it by that uuid alone and the server
takes it from its caches. Whether the server really keeps frames is learnt from
the first request that names one: if it fails and the same request with the data
goes through, the server does not (not vLLM, an old one, its cache off) and gets
plain data URLs, every frame every tick, from then on. A server that did keep them
and later drops some (evicted, restarted) gets the tick resent with every frame's
data; ``LOST_LIMIT`` such ticks in a row and it is treated as one that does not.

Pure state, no HTTP: the runtime asks ``form`` before a request, ``retry`` when it
was refused, and reports ``sent`` / ``resent``.
"""

from __future__ import annotations

import enum
import logging

__all__ = ["LOST_LIMIT", "Form", "FrameRefPolicy", "Refusal"]

log = logging.getLogger(__name__)

# A server that drops frames this many requests in a row gets every frame's data.
LOST_LIMIT = 3


class Form(enum.Enum):
    """How a request's frames travel."""

    PLAIN = "plain"  # data URLs only, what any OpenAI-compatible server takes
    REFS = "refs"  # frames the server holds by uuid alone, new ones as data + uuid
    FULL = "full"  # every frame as data + uuid (the server lost some)


class Refusal(enum.Enum):
    """A failure that may be about the frames (anything else never is)."""

    REJECTED = "rejected"  # a 4xx: a uuid it does not hold, or the field itself
    SERVER_ERROR = "server_error"  # vLLM's 500 for a media item it does not hold


class FrameRefPolicy:
    def __init__(self, enabled: bool = True) -> None:
        # Whether the server keeps frames: None until a request naming one tells.
        self.known: bool | None = None if enabled else False
        self._lost_in_a_row = 0

    def form(self, has_frames: bool) -> Form:
        """The form to try first."""
        return Form.PLAIN if self.known is False or not has_frames else Form.REFS

    def retry(self, form: Form, named: bool, refusal: Refusal) -> Form | None:
        """The form to resend a refused request in, or None to give up.

        ``named``: the refused request named at least one held frame by uuid alone.
        """
        if named:  # vLLM answers 4xx, or 5xx, for a uuid it does not hold
            return Form.FULL if self.known else Form.PLAIN
        if refusal is Refusal.REJECTED and self.known is None and form is Form.REFS:
            return Form.PLAIN  # the first frame with a uuid: it may refuse the field itself
        return None

    def sent(self, named: bool) -> None:
        """A request went through at the first try."""
        if named:
            self.known = True
            self._lost_in_a_row = 0

    def resent(self) -> None:
        """Frames named by uuid failed where their data went through."""
        if self.known is None:  # never confirmed: the server does not keep them
            self.known = False
            log.warning(
                "the model server does not keep frames by uuid: every frame is resent every "
                "tick (model.frame_refs = false skips the check)"
            )
            return
        self._lost_in_a_row += 1
        log.info("the model server had dropped frames; their data was resent")
        if self._lost_in_a_row >= LOST_LIMIT:
            self.known = False
            log.warning(
                "the model server dropped frames %d times in a row: every frame is resent "
                "every tick from now on (a larger --mm-processor-cache-gb keeps them)",
                self._lost_in_a_row,
            )
