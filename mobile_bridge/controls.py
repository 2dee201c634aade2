"""The wearer's commands, from wherever they come, as the contract's ``Control`` events.

One small vocabulary (``Command``) from three places:

- single keys in a live terminal (``KeyReader``; ``LiveTerminal`` puts a TTY in
  cbreak mode and shows the hints), or one command a line when stdin is not a TTY;
- one command a line on ``--control PATH`` (``ControlChannel``): an existing FIFO is
  read, any other path becomes a unix socket that answers ``ok …`` or ``error: …``;
- a source with buttons (glasses taps) implementing ``HasControls``.

The ``Controller`` keeps what a toggle needs (mode, paused, volume), turns each command
into a ``Control`` for the server and does at once what the bridge can do itself (cut
local playback, set its gain). A bad command is said, never fatal.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from murmur.v1 import companion_pb2 as pb

from mobile_bridge.client import MODES
from mobile_bridge.sinks.base import EventObserver

__all__ = [
    "DEFAULT_VOLUME",
    "HINTS",
    "KEYS",
    "Command",
    "ControlChannel",
    "Controller",
    "HasControls",
    "KeyReader",
    "LiveTerminal",
    "SessionFollower",
    "UnknownCommand",
    "command_for_action",
    "parse_command",
]

DEFAULT_VOLUME = 0.7  # the server's `[voice] volume`: the level its styles are tuned at
VOLUME_STEP = 0.1
MIN_VOLUME = 0.1  # 0 on the wire means "the server's default", not silence
_MODE_NAMES = {value: name for name, value in MODES.items()}
MODE_ORDER = tuple(MODES)  # general, blind, navigation, shopping: what `mode next` cycles
USAGE = (
    "mode general|blind|navigation|shopping|next, pause, resume, stop, "
    "ask [QUESTION], volume +|-|0.1..1, quit, help"
)
ASK_DEFAULT = "what's in front of me?"  # what the server asks for an empty AskNow
HINTS = "[space] ask  [s] stop  [p] pause  [m] mode  [+/-] volume  [h] keys  [q] quit"


@dataclass(frozen=True, slots=True)
class Command:
    """One thing the wearer asked for. ``action`` is one of ``ACTIONS``; ``arg`` a mode
    name or ``next``, ``+``/``-`` or a volume, or the question to ask."""

    action: str
    arg: str = ""

    def __str__(self) -> str:
        return f"{self.action} {self.arg}".strip()


ACTIONS = frozenset({"mode", "pause", "resume", "toggle", "stop", "volume", "ask", "quit", "help"})

KEYS: dict[str, Command] = {
    " ": Command("ask"),
    "\n": Command("ask"),
    "s": Command("stop"),
    "p": Command("toggle"),
    "m": Command("mode", "next"),
    "+": Command("volume", "+"),
    "=": Command("volume", "+"),  # the unshifted + on most keyboards
    "-": Command("volume", "-"),
    "q": Command("quit"),
    "h": Command("help"),
    "?": Command("help"),
    **{str(i): Command("mode", name) for i, name in enumerate(MODE_ORDER, start=1)},
}


# A source's gesture actions (``sources.brilliant.Action`` values) as commands.
_ACTION_COMMANDS = {
    "ask": Command("ask"),
    "stop_speaking": Command("stop"),
    "next_mode": Command("mode", "next"),
    "pause": Command("toggle"),
}


def command_for_action(action: str) -> Command | None:
    """``"stop_speaking"`` → ``Command("stop")``; None for ``"none"`` or one unknown."""
    return _ACTION_COMMANDS.get(action)


class UnknownCommand(ValueError):
    """A line or key that is not a command; the message says what would be."""


def parse_command(line: str) -> Command:
    """``mode blind``, ``stop``, ``volume +``, ``ask what does the sign say``..."""
    verb, _, rest = line.strip().partition(" ")
    verb, rest = verb.lower(), rest.strip()
    if verb == "mode":
        arg = rest.lower() or "next"
        if arg != "next" and arg not in MODES:
            raise UnknownCommand(f"unknown mode {rest!r}; try mode {'|'.join(MODE_ORDER)}|next")
        return Command("mode", arg)
    if verb == "volume":
        arg = {"up": "+", "down": "-"}.get(rest.lower(), rest)
        if arg not in ("+", "-"):
            try:
                value = float(arg)
            except ValueError:
                value = -1.0
            if not MIN_VOLUME <= value <= 1.0:
                raise UnknownCommand(f"volume takes +, - or {MIN_VOLUME:g}..1, not {rest!r}")
        return Command("volume", arg)
    if verb == "ask":
        return Command("ask", rest)
    if verb in ("pause", "resume", "stop", "quit", "help") and not rest:
        return Command(verb)
    if not verb:
        raise UnknownCommand(f"an empty command; try: {USAGE}")
    raise UnknownCommand(f"unknown command {line.strip()!r}; try: {USAGE}")


@runtime_checkable
class HasControls(Protocol):
    """A source with its own buttons (glasses taps): it calls ``submit`` with a
    ``Command`` (``Command("ask")``, ``Command("stop")``, ``Command("mode", "next")``)
    from the event loop's thread (``loop.call_soon_threadsafe`` from any other)."""

    def bind_controls(self, submit: Callable[[Command], None]) -> None: ...


class LocalPlayback(Protocol):
    """What the controller does on the bridge's own speaker (``PlaybackSink``)."""

    def set_cue_gain(self, gain: float) -> None: ...

    def stop_all(self) -> None: ...


class Controller:
    """Commands → ``Control`` events for the server, and the bridge's local share of them.

    Watching is paused while the wearer asked for it *or* the source is gone
    (``source_stalled``/``source_back``, from the watchdog): the server hears a change
    only when the two together change, so a source coming back never resumes what the
    wearer paused.
    """

    def __init__(
        self,
        *,
        mode: str = "general",
        say: Callable[[str], None] | None = None,
        player: LocalPlayback | None = None,
        on_quit: Callable[[], None] | None = None,
    ) -> None:
        self.mode = mode
        self.volume = DEFAULT_VOLUME
        self.user_paused = False
        self.source_gone = False
        self.sent: list[pb.Control] = []  # every Control handed to the session, in order
        self._send: Callable[[pb.Control], None] | None = None
        self._pending: list[pb.Control] = []  # before connect: sent once connected
        self._server_paused = False
        self._session_id: str | None = None  # the server session the state was sent to
        self._say = say or (lambda line: None)
        self._player = player
        self._on_quit = on_quit

    @property
    def paused(self) -> bool:
        return self.user_paused or self.source_gone

    def connect(
        self, send: Callable[[pb.Control], None], player: LocalPlayback | None = None
    ) -> None:
        """Where ``Control`` events go (``BridgeSession.send_control``), and the speaker."""
        self._send = send
        if player is not None:
            self._player = player
        pending, self._pending = self._pending, []
        for control in pending:
            send(control)

    def command(self, line: str) -> str:
        """A text command, done; what was done. Raises ``UnknownCommand``."""
        return self.submit(parse_command(line))

    def submit(self, cmd: Command) -> str:
        """Do ``cmd``; a line saying what was done (also said on the console)."""
        match cmd.action:
            case "mode":
                done = self._mode(cmd.arg or "next")
            case "pause" | "resume" | "toggle":
                self.user_paused = {"pause": True, "resume": False}.get(
                    cmd.action, not self.user_paused
                )
                self._sync_pause()
                done = "watching paused" if self.user_paused else "watching resumed"
                if not self.user_paused and self.source_gone:
                    done += " (once the source is back)"
            case "stop":
                if self._player is not None:
                    self._player.stop_all()  # at once; the server's StopSpeaking follows
                self._control(pb.Control(stop_speaking=pb.StopSpeakingNow()))
                done = "stop speaking"
            case "volume":
                done = self._volume(cmd.arg)
            case "ask":
                self._control(pb.Control(ask_now=pb.AskNow(question=cmd.arg)))
                done = f"asked: {cmd.arg or ASK_DEFAULT}"
            case "quit":
                done = "quitting"
                if self._on_quit is not None:
                    self._on_quit()
            case "help":
                done = f"keys: {HINTS}; commands: {USAGE}"
            case _:
                raise UnknownCommand(f"unknown command {str(cmd)!r}; try: {USAGE}")
        self._say(f"({done})")
        return done

    def source_stalled(self) -> None:
        self.source_gone = True
        self._sync_pause()

    def source_back(self) -> None:
        self.source_gone = False
        self._sync_pause()

    def session_ready(self, ready: pb.SessionReady) -> None:
        """Each ``SessionReady`` (the first, and one per resume). Its mode is the
        server's: adopted (a mode switched by voice shows here). A *new* session (the
        server restarted, or refused the resume) began from the first ``SessionStart``
        (first mode, default volume, watching): what the wearer changed since is sent
        again, so bridge and server agree."""
        new = self._session_id is not None and ready.session_id != self._session_id
        self._session_id = ready.session_id
        server_mode = _MODE_NAMES.get(ready.mode)
        if not new:
            if server_mode is not None and server_mode != self.mode:
                self.mode = server_mode
                self._say(f"(mode {server_mode}, as the server has it)")
            return
        again = []
        if server_mode != self.mode:
            self._control(pb.Control(set_mode=MODES[self.mode]))
            again.append(f"mode {self.mode}")
        if self.volume != DEFAULT_VOLUME:
            self._control(pb.Control(set_volume=self.volume))
            again.append(f"volume {self.volume:g}")
        self._server_paused = False  # a new session watches
        if self.paused:
            self._sync_pause()
            again.append("watching paused")
        if again:
            self._say(f"(a new server session: sent again {', '.join(again)})")

    def _mode(self, arg: str) -> str:
        if arg == "next":
            at = MODE_ORDER.index(self.mode) if self.mode in MODE_ORDER else -1
            arg = MODE_ORDER[(at + 1) % len(MODE_ORDER)]
        self.mode = arg
        self._control(pb.Control(set_mode=MODES[arg]))
        return f"mode {arg}"

    def _volume(self, arg: str) -> str:
        step = {"+": VOLUME_STEP, "-": -VOLUME_STEP}.get(arg)
        wanted = self.volume + step if step is not None else float(arg)
        self.volume = round(min(1.0, max(MIN_VOLUME, wanted)), 2)
        self._control(pb.Control(set_volume=self.volume))
        if self._player is not None:
            # The server applies the volume to its speech; the earcons are made here,
            # so only a gain of their own reaches them (speech is not scaled twice).
            self._player.set_cue_gain(self.volume / DEFAULT_VOLUME)
        return f"volume {self.volume:g}"

    def _sync_pause(self) -> None:
        if self.paused != self._server_paused:
            self._server_paused = self.paused
            self._control(pb.Control(pause_watching=self.paused))

    def _control(self, control: pb.Control) -> None:
        self.sent.append(control)
        if self._send is None:
            self._pending.append(control)
            return
        self._send(control)


class SessionFollower(EventObserver):
    """Hands each ``SessionReady`` to the ``Controller`` (``session_ready``)."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def received(self, event: pb.ServerEvent, at: float) -> None:
        if event.WhichOneof("event") == "session_ready":
            self.controller.session_ready(event.session_ready)


class KeyReader:
    """Raw key bytes → commands. Escape sequences (arrows, function keys) are skipped;
    any other key says the hints once per key."""

    def __init__(self, submit: Callable[[Command], object], say: Callable[[str], None]) -> None:
        self._submit = submit
        self._say = say
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._escape = 0  # 1: after ESC; 2: inside ESC [ ... (until its final byte)

    def feed(self, data: bytes) -> None:
        for ch in self._decoder.decode(data):
            # ESC [ or ESC O, parameters, then a final byte in @..~ ; or ESC + one key.
            if self._escape == 1:
                self._escape = 2 if ch in "[O" else 0
                continue
            if self._escape == 2:
                self._escape = 0 if "@" <= ch <= "~" else 2
                continue
            if ch == "\x1b":
                self._escape = 1
                continue
            cmd = KEYS.get(ch) or KEYS.get(ch.lower())
            if cmd is None:
                self._say(f"(key {ch!r} does nothing; {HINTS})")
                continue
            self._submit(cmd)


class LineBuffer:
    """Bytes as they come → whole non-empty lines, stripped."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        lines = []
        while (nl := self._buf.find(b"\n")) >= 0:
            raw, self._buf = bytes(self._buf[:nl]), self._buf[nl + 1 :]
            if text := raw.decode("utf-8", "replace").strip():
                lines.append(text)
        return lines


def _read_ready(fd: int) -> bytes | None:
    """What a readable descriptor has; b"" at its end (or when it failed); None: nothing yet."""
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return None
    except OSError:
        return b""


class LiveTerminal:
    """The terminal as a live display: captions scroll, a status line stays at the bottom
    and keys act at once (cbreak mode, so Ctrl-C still interrupts) on a TTY. Anywhere
    else (a pipe, a service) lines are printed as they come, the status line now and
    then, and stdin, if it is a pipe, takes one command a line."""

    def __init__(
        self,
        controller: Controller,
        *,
        keyboard: bool = True,
        stdin_fd: int | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self._controller = controller
        self._echo = echo  # None: sys.stdout, redrawn in place when both ends are a TTY
        self._fd = stdin_fd
        if self._fd is None and keyboard:
            with contextlib.suppress(AttributeError, OSError, ValueError):
                self._fd = sys.stdin.fileno()
        self._keyboard = keyboard and self._fd is not None
        self.tty = self._keyboard and self._fd is not None and os.isatty(self._fd)
        self._redraw = self.tty and echo is None and sys.stdout.isatty()
        self._saved: Any = None  # the terminal's attributes before cbreak mode
        self._status = ""
        self.status_text: Callable[[], str] | None = None  # the status line, made fresh
        self._reader = KeyReader(self._submit, self.say)
        self._lines = LineBuffer()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def redraws(self) -> bool:
        """The status line stays at the bottom, redrawn in place (a TTY both ways)."""
        return self._redraw

    def say(self, line: str) -> None:
        """A caption or message: above the status line on a TTY (redrawn, so a
        command's effect shows at once)."""
        if self._redraw:
            if self._status and self.status_text is not None:
                self._status = self.status_text()
            self._write(f"\r\x1b[K{line}\n{self._status}")
        else:
            self._line_out(line)

    def status(self) -> None:
        """The status line (``status_text``): redrawn in place on a TTY, printed as a
        line otherwise."""
        if self.status_text is None:
            return
        line = self.status_text()
        if self._redraw:
            self._status = line
            self._write(f"\r\x1b[K{line}")
        else:
            self._line_out(line)

    def open(self) -> None:
        """Start reading keys (or lines); on a TTY, cbreak mode and the hints."""
        if not self._keyboard or self._fd is None:
            return
        loop = asyncio.get_running_loop()
        fd = self._fd
        if self.tty:
            import termios
            import tty

            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)  # keys one at a time, no echo; ISIG kept for Ctrl-C
            self.say(HINTS)
        try:
            # Left blocking (the flag is shared with the shell): it is read only when ready.
            loop.add_reader(fd, self._readable)
        except (OSError, ValueError):  # a regular file or /dev/null cannot be watched
            self._keyboard = False
            return
        self._loop = loop

    def close(self) -> None:
        """Stop reading; the terminal as it was, the status line left in the scrollback."""
        if self._loop is not None and self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None
        if self._saved is not None and self._fd is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None
        if self._redraw and self._status:
            self._write("\n")
            self._status = ""

    def _readable(self) -> None:
        assert self._fd is not None
        data = _read_ready(self._fd)
        if data is None:
            return
        if not data:  # stdin closed: the keyboard is done, the session is not
            self.close()
        elif self.tty:
            self._reader.feed(data)
        else:
            for text in self._lines.feed(data):
                self._command(text)

    def _submit(self, cmd: Command) -> None:
        self._controller.submit(cmd)

    def _command(self, text: str) -> None:
        try:
            self._controller.command(text)
        except UnknownCommand as e:
            self.say(f"(stdin: {e})")

    def _line_out(self, line: str) -> None:
        if self._echo is not None:
            self._echo(line)
        else:
            print(line, flush=True)

    def _write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()


class ControlChannel:
    """``--control PATH``: one command a line from other apps.

    An existing FIFO is read (opened read-write, so writers may come and go without an
    end of file); any other path is a unix socket served here (created, and removed at
    the end), and each line gets an answer: ``ok <what was done>`` or ``error: <why>``.
    """

    def __init__(self, path: str | Path, controller: Controller, say: Callable[[str], None]):
        self.path = Path(path)
        self._controller = controller
        self._say = say
        self._fd: int | None = None
        self._server: asyncio.AbstractServer | None = None
        self._lines = LineBuffer()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.kind = ""

    async def open(self) -> None:
        """Raises ``OSError`` (said as it is) for a path that can be neither."""
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and stat.S_ISFIFO(mode):
            self._loop = asyncio.get_running_loop()
            self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
            self._loop.add_reader(self._fd, self._readable)
            self.kind = "FIFO"
            return
        if mode is not None and not stat.S_ISSOCK(mode):
            raise OSError(f"--control {self.path}: exists and is neither a FIFO nor a socket")
        if mode is not None:
            self.path.unlink()  # a socket left behind by an earlier bridge
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        self.kind = "socket"

    async def aclose(self) -> None:
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(OSError):
                self.path.unlink()

    def handle(self, line: str) -> str:
        """One line: what to answer. Never raises for a bad command."""
        try:
            return f"ok {self._controller.command(line)}"
        except UnknownCommand as e:
            self._say(f"(--control: {e})")
            return f"error: {e}"

    def _readable(self) -> None:
        assert self._fd is not None
        for text in self._lines.feed(_read_ready(self._fd) or b""):
            self.handle(text)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if text := line.decode("utf-8", "replace").strip():
                    writer.write((self.handle(text) + "\n").encode())
                    await writer.drain()
        except (ConnectionError, OSError):
            pass  # the other app went away; the bridge goes on
        finally:
            writer.close()
