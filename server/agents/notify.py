"""Telling the wearer's contacts that they may need help: webhooks and a command.

``EmergencyNotifier.notify`` sends one alert to every contact at once. Each contact is
tried, and tried again after a growing wait (``retries``; ``backoff_s``, doubling,
capped), each try within ``timeout_s``; a permanent failure (HTTP 404, a program that
does not exist) is not retried. Every try is reported as it ends (``NotifyAttempt``),
so the user hears about a failure while the retries go on. Logs name the contact (its
kind and host, never a URL's path, which may hold a token) and the outcome, never the
message, the location or the frame.

Webhook: ``POST url`` with JSON::

    {"event": "murmur.emergency", "time": "2025-05-01T12:00:00Z", "message": "...",
     "session_id": "...", "trigger": "user" | "model" | "fall", "confirmed": false,
     "language": "en",
     "location": {"lat": 52.52, "lon": 13.405, "accuracy_m": 8.0, "age_s": 3.2} | null,
     "frame": "<base64 JPEG>"}

``frame`` only when ``[emergency] send_frame`` is on. Any status below 400 counts as
delivered; the reply's body is ignored (HTTP as the agents' webhook does it,
``webhook.post_json``).

Command: an argv template (no shell) whose placeholders ``{message}``, ``{time}``,
``{lat}``, ``{lon}``, ``{accuracy_m}``, ``{session_id}`` and ``{json}`` (the webhook's
body without the frame) are filled per alert, and are in its environment as
``MURMUR_ALERT_MESSAGE`` … ``MURMUR_ALERT_JSON``. Exit status 0 counts as delivered. It
runs as agent commands do (``command.run_in_group``): its own process group, all of it
ended when a try times out.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from server.agents.base import AgentError
from server.agents.command import run_in_group
from server.agents.webhook import post_json

__all__ = [
    "PLACEHOLDERS",
    "CommandContact",
    "Contact",
    "EmergencyNotifier",
    "NotifyAttempt",
    "NotifyOptions",
    "WebhookContact",
    "build_notifier",
    "payload",
]

log = logging.getLogger(__name__)

PLACEHOLDERS = ("message", "time", "lat", "lon", "accuracy_m", "session_id", "json")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


class AlertLocationLike(Protocol):
    @property
    def lat(self) -> float: ...
    @property
    def lon(self) -> float: ...
    @property
    def accuracy_m(self) -> float: ...
    @property
    def age_s(self) -> float: ...


class AlertLike(Protocol):
    """The alert as the engine makes it (``server.engine.emergency.Alert``)."""

    @property
    def time_s(self) -> float: ...
    @property
    def message(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def trigger(self) -> str: ...
    @property
    def confirmed(self) -> bool: ...
    @property
    def language(self) -> str: ...
    @property
    def location(self) -> AlertLocationLike | None: ...
    @property
    def frame(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class NotifyAttempt:
    contact: str  # its kind and host: safe to log and to show
    attempt: int  # 1 for the first try
    ok: bool
    retry_in_s: float | None = None  # failed: the next try starts then; None: no more
    error: str = ""

    @property
    def retrying(self) -> bool:
        return not self.ok and self.retry_in_s is not None


Report = Callable[[NotifyAttempt], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class NotifyOptions:
    retries: int = 3  # further tries per contact after the first
    backoff_s: float = 2.0  # the first wait; it doubles after each failed try
    max_backoff_s: float = 60.0
    timeout_s: float = 10.0  # one try's limit


def payload(alert: AlertLike, *, with_frame: bool = True) -> dict[str, Any]:
    loc = alert.location
    body: dict[str, Any] = {
        "event": "murmur.emergency",
        "time": datetime.fromtimestamp(alert.time_s, UTC).isoformat(timespec="seconds"),
        "message": alert.message,
        "session_id": alert.session_id,
        "trigger": str(alert.trigger),
        "confirmed": alert.confirmed,
        "language": alert.language,
        "location": None
        if loc is None
        else {
            "lat": loc.lat,
            "lon": loc.lon,
            "accuracy_m": loc.accuracy_m,
            "age_s": round(loc.age_s, 1),
        },
    }
    if with_frame and alert.frame:
        body["frame"] = base64.b64encode(alert.frame).decode("ascii")
    return body


class Contact(ABC):
    """One way to reach the wearer's people."""

    def __init__(self, name: str) -> None:
        self.name = name  # kind and host only: it goes into logs and notices

    @abstractmethod
    async def send(self, alert: AlertLike) -> None:
        """Deliver ``alert`` or raise ``AgentError`` (``is_permanent``: do not retry)."""


class WebhookContact(Contact):
    def __init__(self, url: str, headers: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(url)
        host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        super().__init__(f"webhook {host}")
        self.url = url
        self.headers = dict(headers or {})

    async def send(self, alert: AlertLike) -> None:
        # A client per try: alerts are rare, and no connection is kept between them
        # (nothing to close). The notifier's per-try timeout bounds the whole request.
        async with httpx.AsyncClient(
            headers=self.headers, timeout=httpx.Timeout(None, connect=10.0)
        ) as client:
            # The reply's body stays out of the error: a receiver may echo the alert back.
            await post_json(
                client, self.url, payload(alert), what=f"the emergency {self.name}", show_body=False
            )


class CommandContact(Contact):
    def __init__(self, argv_template: Sequence[str], *, kill_grace_s: float = 1.0) -> None:
        if not argv_template:
            raise ValueError(
                "the emergency command is empty; set [emergency] command, e.g. "
                '["notify-send", "Murmur", "{message}"]'
            )
        super().__init__(f"command {Path(argv_template[0]).name}")
        self.argv_template = tuple(argv_template)
        self.kill_grace_s = kill_grace_s

    def values(self, alert: AlertLike) -> dict[str, str]:
        loc = alert.location
        return {
            "message": alert.message,
            "time": datetime.fromtimestamp(alert.time_s, UTC).isoformat(timespec="seconds"),
            "lat": f"{loc.lat:.6f}" if loc else "",
            "lon": f"{loc.lon:.6f}" if loc else "",
            "accuracy_m": f"{loc.accuracy_m:.0f}" if loc else "",
            "session_id": alert.session_id,
            "json": json.dumps(payload(alert, with_frame=False)),
        }

    def argv(self, alert: AlertLike) -> list[str]:
        values = self.values(alert)
        out = []
        for arg in self.argv_template:
            value = _PLACEHOLDER.sub(lambda m: values[m.group(1)], arg)
            if value.startswith("-") and value != arg and not arg.startswith("-"):
                value = " " + value  # a filled-in value is never an option of the program
            out.append(value)
        return out

    async def send(self, alert: AlertLike) -> None:
        env = {f"MURMUR_ALERT_{k.upper()}": v for k, v in self.values(alert).items()}
        code, _out, _err = await run_in_group(
            self.argv(alert),
            env=env,
            kill_grace_s=self.kill_grace_s,
            what="the emergency command",
            setting="[emergency] command",
        )
        if code != 0:
            # Its output stays out of the error: it may repeat the message or location.
            raise AgentError(
                f"the emergency {self.name} exited with status {code}",
                is_permanent=code in (126, 127),
            )


class EmergencyNotifier:
    """The process's contacts, shared by every session."""

    def __init__(
        self,
        contacts: Sequence[Contact],
        options: NotifyOptions = NotifyOptions(),
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not contacts:
            raise ValueError("an emergency notifier needs at least one contact")
        self.contacts = tuple(contacts)
        self.options = options
        self._sleep = sleep

    async def notify(self, alert: AlertLike, report: Report) -> bool:
        """Send ``alert`` to every contact, each with its retries; True if any got it.
        ``report`` hears every try as it ends."""
        async with asyncio.TaskGroup() as tg:
            tries = [tg.create_task(self._deliver(c, alert, report)) for c in self.contacts]
        return any(t.result() for t in tries)

    async def _deliver(self, contact: Contact, alert: AlertLike, report: Report) -> bool:
        o = self.options
        tries = 1 + max(0, o.retries)
        for attempt in range(1, tries + 1):
            permanent = False
            try:
                async with asyncio.timeout(o.timeout_s):
                    await contact.send(alert)
            except TimeoutError:
                error = f"no answer within {o.timeout_s:g} s"
            except AgentError as e:
                error, permanent = e.message, e.is_permanent
            except Exception as e:  # a contact's bug must not stop the others
                error = f"failed: {type(e).__name__}"
            else:
                log.info("emergency alert delivered to %s (try %d)", contact.name, attempt)
                await _tell(report, NotifyAttempt(contact.name, attempt, ok=True))
                return True
            wait = None
            if not permanent and attempt < tries:
                wait = min(o.backoff_s * 2 ** (attempt - 1), o.max_backoff_s)
            log.warning(
                "emergency alert to %s failed (try %d of %d): %s",
                contact.name,
                attempt,
                tries,
                error,
            )
            await _tell(report, NotifyAttempt(contact.name, attempt, False, wait, error))
            if wait is None:
                return False
            await self._sleep(wait)
        return False


def build_notifier(
    webhooks: Sequence[str],
    command: Sequence[str],
    retries: int = 3,
    backoff_s: float = 2.0,
    timeout_s: float = 10.0,
) -> EmergencyNotifier | None:
    """The ``[emergency]`` contacts: each webhook URL, and the command if one is set;
    None when there is none (the emergency path is then off)."""
    contacts: list[Contact] = [WebhookContact(url) for url in webhooks]
    if command:
        contacts.append(CommandContact(command))
    if not contacts:
        return None
    options = NotifyOptions(retries=retries, backoff_s=backoff_s, timeout_s=timeout_s)
    return EmergencyNotifier(contacts, options)


async def _tell(report: Report, attempt: NotifyAttempt) -> None:
    try:
        await report(attempt)
    except Exception:  # the caller's bug must not end the deliveries
        log.exception("reporting an emergency alert's try failed")
