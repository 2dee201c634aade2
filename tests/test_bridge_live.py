"""``murmur-bridge live``: controls, the source watchdog, and the command end to end.

Keys are fed to the reader as bytes (no TTY needed); ``--control`` is a real FIFO
(``os.mkfifo``) and a real unix socket; the live server is real gRPC on loopback with a
scripted model; the camera is FFmpeg's ``lavfi`` test source. Waits poll for what the
server or the bridge did, with generous deadlines; nothing asserts on how fast.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest
from murmur.v1 import companion_pb2 as pb

from mobile_bridge import cli
from mobile_bridge.client import SessionOptions
from mobile_bridge.clock import Clock
from mobile_bridge.connection import LinkOptions
from mobile_bridge.controls import (
    HINTS,
    Command,
    ControlChannel,
    Controller,
    KeyReader,
    LiveTerminal,
    UnknownCommand,
    command_for_action,
    parse_command,
)
from mobile_bridge.devices import DeviceError
from mobile_bridge.live import (
    LiveOptions,
    LiveStats,
    PlayoutTimer,
    SessionWiring,
    SoundTimes,
    live_summary,
    run_live,
)
from mobile_bridge.media import OpusPacketizer
from mobile_bridge.sinks.console import BridgeStatus, status_line
from mobile_bridge.sinks.outputs import PacedOutput
from mobile_bridge.sinks.playback import PlaybackOptions, PlaybackSink
from mobile_bridge.sources.base import GlassesSource, JpegFrame, SourceCapabilities
from mobile_bridge.watchdog import WatchdogOptions, WatchedSource
from server.config import Settings
from server.runtime.base import Action
from server.runtime.conversation import Turn
from server.runtime.scripted import ScriptedRuntime, ScriptedSession
from tests.fakes import ManualClock, SteppingClock, server_pauses
from tests.harness import jpeg, running_server, scripted

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[1]
TESTSRC = "lavfi:testsrc2=size=320x240:rate=10"
DEADLINE_S = 30.0
RATE = 24000


async def _until(check: Callable[[], object], what: str, deadline_s: float = DEADLINE_S) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not check():
        if loop.time() > end:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


def _kinds(controls: list[pb.Control]) -> list[str]:
    return [c.WhichOneof("action") or "" for c in controls]


class FakeSpeaker:
    """The controller's view of ``PlaybackSink``."""

    def __init__(self) -> None:
        self.gains: list[float] = []
        self.stops = 0

    def set_cue_gain(self, gain: float) -> None:
        self.gains.append(gain)

    def stop_all(self) -> None:
        self.stops += 1


# ---------------------------------------------------------------------- commands


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("mode blind", Command("mode", "blind")),
        ("MODE Navigation", Command("mode", "navigation")),
        ("mode", Command("mode", "next")),
        ("stop", Command("stop")),
        ("ask", Command("ask")),
        ("ask what does the sign say", Command("ask", "what does the sign say")),
        ("pause", Command("pause")),
        ("resume", Command("resume")),
        ("volume +", Command("volume", "+")),
        ("volume down", Command("volume", "-")),
        ("volume 0.4", Command("volume", "0.4")),
        ("  quit  ", Command("quit")),
    ],
)
def test_a_command_line_is_parsed(line, command):
    assert parse_command(line) == command


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("dance", "unknown command 'dance'; try: mode"),
        ("mode sideways", "unknown mode 'sideways'"),
        ("volume 7", "volume takes +, - or 0.1..1"),
        ("stop now", "unknown command 'stop now'"),
        ("", "an empty command"),
    ],
)
def test_a_bad_command_says_what_would_do(line, says):
    with pytest.raises(UnknownCommand, match=re.escape(says)):
        parse_command(line)


def test_keys_become_control_events_in_order():
    sent: list[pb.Control] = []
    said: list[str] = []
    speaker = FakeSpeaker()
    quits: list[bool] = []
    controller = Controller(mode="general", say=said.append, on_quit=lambda: quits.append(True))
    controller.connect(sent.append, speaker)
    reader = KeyReader(controller.submit, said.append)

    # space, s, m, p, +, -, an arrow key (skipped), p, 4, x (unknown), q; split mid-sequence.
    for chunk in (b" smp", b"+-\x1b[", b"Ap4x", b"q"):
        reader.feed(chunk)

    assert _kinds(sent) == [
        "ask_now",
        "stop_speaking",
        "set_mode",
        "pause_watching",
        "set_volume",
        "set_volume",
        "pause_watching",
        "set_mode",
    ]
    assert sent[0].ask_now.question == ""  # the server's "what's in front of me?"
    assert [c.pause_watching for c in sent if c.HasField("pause_watching")] == [True, False]
    assert [c.set_mode for c in sent if c.HasField("set_mode")] == [
        pb.MODE_BLIND,  # m: the next after general
        pb.MODE_SHOPPING,  # 4
    ]
    assert [round(c.set_volume, 2) for c in sent if c.HasField("set_volume")] == [0.8, 0.7]
    # The bridge's own share: the cut is local at once, the earcons follow the volume.
    assert speaker.stops == 1
    assert speaker.gains == pytest.approx([0.8 / 0.7, 1.0])
    assert quits == [True]
    assert any("key 'x' does nothing" in line and HINTS in line for line in said)


def test_commands_before_the_session_are_sent_once_it_is_there():
    controller = Controller()
    controller.command("mode blind")
    sent: list[pb.Control] = []
    controller.connect(sent.append)
    controller.command("ask is the door open")
    assert _kinds(sent) == ["set_mode", "ask_now"]
    assert sent[1].ask_now.question == "is the door open"


def test_the_server_is_paused_while_either_the_wearer_or_the_source_wants_it():
    sent: list[pb.Control] = []
    controller = Controller()
    controller.connect(sent.append)
    controller.command("pause")
    controller.source_stalled()  # already paused: nothing new to say
    controller.source_back()  # the wearer still wants the pause
    assert [c.pause_watching for c in sent] == [True]
    controller.source_stalled()
    controller.command("resume")  # not yet: the source is gone
    controller.source_back()
    assert [c.pause_watching for c in sent] == [True, False]


def test_the_servers_mode_is_adopted_and_a_new_session_hears_only_what_differs():
    sent: list[pb.Control] = []
    controller = Controller(mode="general")
    controller.connect(sent.append)
    ready = pb.SessionReady(session_id="s1", mode=pb.MODE_GENERAL)
    controller.session_ready(ready)
    controller.session_ready(pb.SessionReady(session_id="s1", mode=pb.MODE_NAVIGATION))
    assert controller.mode == "navigation" and sent == []  # switched by voice: adopted
    controller.command("volume -")
    sent.clear()
    controller.session_ready(pb.SessionReady(session_id="s2", mode=pb.MODE_NAVIGATION))
    assert _kinds(sent) == ["set_volume"]  # the mode already agrees; watching is on
    controller.command("pause")
    sent.clear()
    controller.session_ready(pb.SessionReady(session_id="s3", mode=pb.MODE_GENERAL))
    assert _kinds(sent) == ["set_mode", "set_volume", "pause_watching"]
    assert sent[0].set_mode == pb.MODE_NAVIGATION and sent[2].pause_watching


async def test_piped_stdin_takes_one_command_a_line_and_survives_a_bad_one():
    read_fd, write_fd = os.pipe()
    sent: list[pb.Control] = []
    lines: list[str] = []
    controller = Controller(say=lines.append)
    controller.connect(sent.append)
    terminal = LiveTerminal(controller, stdin_fd=read_fd, echo=lines.append)
    assert not terminal.tty  # a pipe: no cbreak mode, no hint line, line commands
    terminal.open()
    try:
        os.write(write_fd, b"mode nav")
        os.write(write_fd, b"igation\nfly\nstop\n")
        await _until(lambda: len(sent) == 2, "two commands from the pipe")
        os.close(write_fd)  # end of stdin: the keyboard stops, nothing else does
        await asyncio.sleep(0.1)
    finally:
        terminal.close()
        os.close(read_fd)
    assert _kinds(sent) == ["set_mode", "stop_speaking"]
    assert any(line.startswith("(stdin: unknown command 'fly'") for line in lines)


async def test_the_control_socket_answers_each_line(tmp_path):
    sent: list[pb.Control] = []
    lines: list[str] = []
    controller = Controller(say=lines.append)
    controller.connect(sent.append)
    path = tmp_path / "murmur.sock"
    channel = ControlChannel(path, controller, lines.append)
    await channel.open()
    try:
        assert channel.kind == "socket"
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"mode shopping\nwhistle\nvolume -\n")
        answers = [(await reader.readline()).decode().strip() for _ in range(3)]
        writer.close()
        await writer.wait_closed()
    finally:
        await channel.aclose()
    assert answers[0] == "ok mode shopping"
    assert answers[1].startswith("error: unknown command 'whistle'")
    assert answers[2] == "ok volume 0.6"
    assert _kinds(sent) == ["set_mode", "set_volume"]
    assert not path.exists()  # removed at the end


async def test_a_control_path_that_is_a_plain_file_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(OSError, match="neither a FIFO nor a socket"):
        await ControlChannel(path, Controller(), print).open()


def test_the_status_line_shows_the_frame_age():
    line = status_line(
        BridgeStatus(
            elapsed_s=12.3,
            mode="blind",
            paused=False,
            frame_age_s=0.42,
            frames_sent=12,
            volume=0.7,
        )
    )
    assert line == "[  12.3s] blind · watching · frame 0.4 s old · 12 frames sent · vol 0.7"
    gone = status_line(
        BridgeStatus(None, "general", True, 6.0, 3, source_gone=True, restarts=1, reconnects=2)
    )
    assert "source restarting" in gone and "frame 6.0 s old (stale)" in gone
    assert "1 restart(s)" in gone and "2 reconnect(s)" in gone


# ---------------------------------------------------------------------- the watchdog


class StallingSource(GlassesSource):
    """``good`` frames of ``shade``, then (``stall``) nothing ever again, or
    (``fail``) a camera unplugged; or frames forever when ``good`` is None."""

    def __init__(
        self, shade: int, good: int | None, *, fail: bool = False, clock: Clock | None = None
    ) -> None:
        self.shade = shade
        self.good = good
        self.fail = fail
        self._sleep = clock.sleep if clock is not None else asyncio.sleep
        self.started = False
        self.closed = False
        self._jpeg = jpeg(64, 48, shade)

    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(camera=True, speaker=True)

    def start(self) -> None:
        self.started = True

    async def frames(self) -> AsyncIterator[JpegFrame]:
        n = 0
        while self.good is None or n < self.good:
            await self._sleep(0.05)
            n += 1
            yield JpegFrame(self._jpeg, n)
        if self.fail:
            raise DeviceError("the camera 'test' stopped delivering frames", "test")
        await asyncio.Event().wait()  # hangs, as a wedged USB camera does

    async def aclose(self) -> None:
        self.closed = True


class Events:
    def __init__(self) -> None:
        self.log: list[str] = []

    def source_stalled(self) -> None:
        self.log.append("stalled")

    def source_back(self) -> None:
        self.log.append("back")


@pytest.mark.parametrize("fail", [False, True], ids=["stalls", "fails"])
async def test_a_stalled_source_is_paused_restarted_and_resumed(fail):
    clock = ManualClock()
    first = StallingSource(90, good=3, fail=fail, clock=clock)
    opened: list[StallingSource] = []

    async def reopen() -> GlassesSource:
        source = StallingSource(200, good=None, clock=clock)
        opened.append(source)
        return source

    said: list[str] = []
    sent: list[pb.Control] = []
    controller = Controller(say=said.append)
    controller.connect(sent.append)
    events = Events()
    watched = WatchedSource(
        first, reopen, WatchdogOptions(stall_s=0.3), say=said.append, clock=clock
    )
    watched.listener = _Both(controller, events)
    watched.start()
    shades: list[bytes] = []
    at: list[float] = []

    async def watch() -> None:
        async for frame in watched.frames():
            shades.append(frame.jpeg)
            at.append(clock.now)
            if len(shades) == 6:
                watched.stop()
        await watched.aclose()

    await clock.run(watch())

    assert shades[:3] == [first._jpeg] * 3
    assert set(shades[3:]) == {opened[0]._jpeg}
    assert events.log == ["stalled", "back"]
    assert [c.pause_watching for c in sent] == [True, False]  # told to pause, then resume
    assert watched.restarts == 1 and len(opened) == 1
    assert first.closed and opened[0].started and opened[0].closed
    why = "stopped delivering frames" if fail else "no frame from the source for 0.3 s"
    assert any(why in line and "restart 1" in line for line in said), said
    gap = at[3] - at[2]  # on the virtual clock: the stall timeout, then a frame period
    assert gap == pytest.approx(0.05 if fail else 0.3 + 0.05)
    assert any("frames again after restart 1" in line for line in said)


async def test_a_source_that_cannot_reopen_is_tried_again():
    clock = ManualClock()
    tries: list[float] = []

    async def reopen() -> GlassesSource:
        tries.append(clock.now)
        if len(tries) < 4:
            raise DeviceError("cannot open the camera '/dev/video0'", "/dev/video0")
        return StallingSource(200, good=None, clock=clock)

    said: list[str] = []
    watched = WatchedSource(
        StallingSource(90, good=1, clock=clock),
        reopen,
        WatchdogOptions(stall_s=0.2, retry_s=0.05, retry_max_s=0.1),
        say=said.append,
        clock=clock,
    )
    watched.start()

    async def watch() -> None:
        got = 0
        async for _ in watched.frames():
            got += 1
            if got == 3:
                break
        await watched.aclose()

    await clock.run(watch())
    assert len(tries) == 4 and watched.restarts == 1
    # Backoff on the virtual clock: 0.05 s, then doubled, then capped at 0.1 s.
    assert np.diff(tries) == pytest.approx([0.05, 0.1, 0.1])
    assert sum("could not reopen the source" in line for line in said) == 3


class _Both:
    def __init__(self, *listeners) -> None:
        self._listeners = listeners

    def source_stalled(self) -> None:
        for listener in self._listeners:
            listener.source_stalled()

    def source_back(self) -> None:
        for listener in self._listeners:
            listener.source_back()


# ---------------------------------------------------------------------- a live server


def _open_writer(path: Path, into: list[int]) -> bool:
    try:  # non-blocking: fails (ENXIO) until the bridge has the FIFO open
        into.append(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        return False
    return True


async def test_fifo_commands_reach_the_server_and_a_bad_one_is_only_said(tts, tmp_path):
    fifo = tmp_path / "controls"
    os.mkfifo(fifo)
    runtime = scripted()
    lines: list[str] = []

    async def open_source() -> GlassesSource:
        return StallingSource(120, good=None)

    settings = Settings().with_overrides("server", tick_hz=5.0, frame_wait_ms=20)
    async with running_server(runtime, tts, settings) as srv:
        opts = LiveOptions(
            wiring=SessionWiring(
                link=LinkOptions(target=srv.address),
                session=SessionOptions(linger_s=0.3, want_trace=True),
            ),
            control_path=fifo,
            keyboard=False,
            status_every_s=0.5,
            handle_sigint=False,
            echo=lines.append,
        )
        live = asyncio.create_task(run_live(open_source, opts))
        fd: int | None = None
        try:
            await _until(lambda: runtime.sessions and runtime.sessions[0].ticks, "ticks")
            model = runtime.sessions[0]
            writers: list[int] = []
            await _until(lambda: writers or _open_writer(fifo, writers), "the FIFO opened")
            fd = writers[0]

            def command(line: str) -> None:
                assert fd is not None
                os.write(fd, f"{line}\n".encode())

            command("mode blind")
            await _until(lambda: any("[Mode changed]" in n for n in model.notes), "mode change")
            command("bogus")
            await _until(lambda: any("unknown command 'bogus'" in x for x in lines), "an error")
            # Paused: an "ask" waits, unanswered by any tick, until watching resumes.
            command("pause")
            command("ask")
            await asyncio.sleep(1.5)  # seven ticks' worth, were the server watching
            asked = "what's in front of me"
            assert not any(asked in (t.user_query or "").lower() for t in model.ticks)
            command("resume")
            await _until(
                lambda: any(asked in (t.user_query or "").lower() for t in model.ticks),
                "the question asked while paused",
            )
            command("quit")
            result = await asyncio.wait_for(live, DEADLINE_S)
        finally:
            if fd is not None:
                os.close(fd)
            if not live.done():
                live.cancel()
    report, stats = result.report, result.stats
    assert "Blind mode." in [text for _, text, _ in report.speeches]  # the server's own word
    assert stats.controls_sent == 4  # mode, pause, ask, resume (quit is the bridge's)
    assert report.frames_sent > 0 and report.notices == []
    assert any("frame 0." in line and "frames sent" in line for line in lines), lines
    assert any("(controls: one command a line on the FIFO" in line for line in lines)


class _Seen(ScriptedRuntime):
    """The scripted model, noting each tick's frame: its red level (the test source's
    shade), or None for a tick without a new frame."""

    def __init__(self) -> None:
        super().__init__([])
        self.seen: list[int | None] = []

    def open_session(self, instruction: str, *, language: str = "en") -> ScriptedSession:
        runtime = self

        class Session(ScriptedSession):
            def _run_turn(self, turn: Turn, on_clause) -> Action:
                f = turn.tick.frame
                runtime.seen.append(None if f is None else f.image.getpixel((0, 0))[0])
                return super()._run_turn(turn, on_clause)

        session = Session(self.script, instruction, language)
        self.sessions.append(session)
        return session


async def test_a_source_pulled_mid_walk_pauses_the_server_until_it_returns(tts, monkeypatch):
    runtime = _Seen()
    lines: list[str] = []
    back = asyncio.Event()
    opened: list[StallingSource] = []

    async def open_source() -> GlassesSource:
        if opened:
            await back.wait()  # unplugged: the reopen waits until the test plugs it back
        source = StallingSource(40 if not opened else 220, good=8 if not opened else None)
        opened.append(source)
        return source

    pauses = server_pauses(monkeypatch)
    settings = Settings().with_overrides("server", tick_hz=5.0, frame_wait_ms=20)
    async with running_server(runtime, tts, settings) as srv:
        opts = LiveOptions(
            wiring=SessionWiring(
                link=LinkOptions(target=srv.address), session=SessionOptions(linger_s=0.3)
            ),
            watchdog=WatchdogOptions(stall_s=0.5),
            keyboard=False,
            status_every_s=0,
            handle_sigint=False,
            echo=lines.append,
        )
        live = asyncio.create_task(run_live(open_source, opts))
        try:
            await _until(lambda: any("restart 1" in x for x in lines), "the stall")
            await asyncio.sleep(0.5)  # the pause is on the wire
            gone_from = len(runtime.seen)
            await asyncio.sleep(1.5)  # seven ticks' worth of the same old frame, unpaused
            gone = runtime.seen[gone_from:]
            back.set()
            await _until(lambda: 220 - 8 <= (runtime.seen[-1] or 0) <= 220 + 8, "new frames")
        finally:  # cancelled: run_live closes the source, the terminal and the link
            if not live.done():
                live.cancel()
                await asyncio.wait([live])
    # Paused while the source was gone: at most the tick in flight, never a run of
    # ticks re-reading the last frame; then watching went on with the new source.
    assert len(gone) <= 1, gone
    assert pauses == [True, False], lines  # what the server itself was told
    assert any("frames again after restart 1; watching" in x for x in lines), lines
    first_shades = [x for x in runtime.seen if x is not None and x < 100]
    assert first_shades, runtime.seen


def test_frame_without_the_sdk_says_how_to_install_it(monkeypatch, capsys):
    import mobile_bridge.sources as sources

    for name in ("brilliant_sdk", "brilliant_ble", "brilliant_msg", "frame_sdk", "frame_ble"):
        monkeypatch.setitem(sys.modules, name, None)  # import → ImportError, as if absent
    monkeypatch.delitem(sys.modules, "mobile_bridge.sources.brilliant", raising=False)
    monkeypatch.delattr(sources, "brilliant", raising=False)
    rc = cli.main(["live", "--source", "frame", "--insecure", "--no-keys"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "murmur[frame]" in err and "SDK" in err


def test_every_glasses_gesture_action_is_a_command():
    from mobile_bridge.sources.brilliant import Action

    commands = {a.value: command_for_action(a.value) for a in Action}
    assert commands == {
        "ask": Command("ask"),
        "stop_speaking": Command("stop"),
        "next_mode": Command("mode", "next"),
        "pause": Command("toggle"),
        "none": None,
    }


def test_first_audio_to_first_sample_is_timed_at_the_output():
    clock = SteppingClock()
    output = PacedOutput(RATE, 2)  # pulled by step(), block by block
    times = SoundTimes(output, clock)
    player = PlaybackSink(times, PlaybackOptions(rate_hz=RATE, jitter_ms=60))
    timer = PlayoutTimer()
    t = np.arange(RATE // 5) / RATE  # 200 ms of tone: ten packets
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    packets = list(OpusPacketizer(RATE).packets(tone))

    def utterance(uid: str, *, cue: bool) -> None:
        if cue:  # a cue just before: its earcon would be the first sound, so not timed
            ev = pb.ServerEvent(cue=pb.Cue(kind=pb.CUE_KIND_ATTENTION))
            timer.received(ev, clock.now)
            player.cue(ev.cue)
        for i, packet in enumerate(packets):
            ev = pb.ServerEvent(audio_out=pb.AudioOut(utterance_id=uid, seq=i, data=packet))
            timer.received(ev, clock.now)
            player.feed(uid, packet)
            clock.now += 0.02
            output.step()
        player.finish(uid)
        for _ in range(30):  # play out, then a second of quiet
            clock.now += 0.02
            output.step()
        for _ in range(20):
            clock.now += 0.02
            output.step()

    utterance("u1", cue=False)
    utterance("u2", cue=True)
    [ms] = timer.playout_ms(times.runs)
    # Three 20 ms packets fill the 60 ms jitter buffer; the block after them sounds.
    assert 40 <= ms <= 100, ms


class _WithSpeaker(StallingSource):
    """A source with a speaker of its own, as a Halo has."""

    name = "Halo 08"

    async def speaker_write(self, pcm16: bytes) -> bool:
        return True


@pytest.mark.parametrize(
    ("output", "play_to", "on_glasses"),
    [("auto", None, True), ("auto", "heard.wav", False), ("local", None, False)],
)
def test_speech_goes_to_the_glasses_own_speaker_unless_told_otherwise(output, play_to, on_glasses):
    from mobile_bridge.live import PlaybackChoice, _speech_output

    said: list[str] = []
    watched = WatchedSource(_WithSpeaker(90, None), _never_reopened, say=said.append)
    choice = _speech_output(PlaybackChoice(play_to=play_to, output=output), watched, said.append)
    assert (choice.speaker is not None) == on_glasses
    assert any("plays on Halo 08's speaker" in line for line in said) == on_glasses
    # A source without one (a camera, a Frame) plays where --play says, or nowhere.
    plain = WatchedSource(StallingSource(90, None), _never_reopened)
    assert _speech_output(PlaybackChoice(output=output), plain, said.append).speaker is None


async def _never_reopened() -> GlassesSource:
    raise AssertionError("not restarted here")


def test_the_summary_names_every_kind_of_drop():
    lines = live_summary(LiveStats(restarts=2, outbox_drops=1, playout_ms=[40.0, 60.0, 55.0]))
    assert lines[0] == "drops: outbox 1"
    assert "watchdog restarts 2" in lines[1]
    assert "first AudioOut→first sample played: p50 55 ms, max 60 ms" in lines[2]


async def test_live_camera_from_the_command_line_ends_with_a_summary(tts, tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / ".config"))
    env.pop("MURMUR_TOKEN", None)
    async with running_server(scripted(), tts, Settings()) as srv:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mobile_bridge",
            "live",
            "--source",
            "camera",
            TESTSRC,
            "--server",
            srv.address,
            "--insecure",
            "--fps",
            "2",
            "--seconds",
            "3",
            "--linger",
            "0.5",
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,  # not a TTY, nothing to read: keys off
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out_b, err_b = await asyncio.wait_for(proc.communicate(), 60)
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode == 0, err + out
    assert "--- summary ---" in out
    sent = next(line for line in out.splitlines() if line.startswith("frames sent "))
    assert int(sent.split()[2].rstrip(",")) > 0, sent
    assert "drops: outbox 0" in out and "watchdog restarts 0" in out
