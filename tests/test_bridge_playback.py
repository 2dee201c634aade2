"""The bridge's speaker: speech that plays as it arrives, cut within a block, reported
truthfully, and cues as panned earcons that never come after their alert's speech.

Real Opus packets through the real decoder into a ``RecordingOutput`` stepped block by
block (20 ms each): every assertion is on the samples that came out and their order,
none on wall time.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import types
import wave

import numpy as np
import pytest
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.client import ServerEventRouter
from mobile_bridge.connection import LinkOptions
from mobile_bridge.media import OpusPacketizer
from mobile_bridge.replay import ReplayOptions, run_replay
from mobile_bridge.sinks.audio import AudioSink
from mobile_bridge.sinks.earcons import HapticPulse, earcon, pan_gains
from mobile_bridge.sinks.outputs import AudioOutputError, RecordingOutput, Render, WavFileOutput
from mobile_bridge.sinks.playback import PlaybackOptions, PlaybackSink, open_playback
from mobile_bridge.synth import write_synthetic_clip
from server.session.speaker import Speaker
from tests.fakes import FakeSource, FakeTTS, ManualClock
from tests.harness import running_server, scripted

RATE = 24000
BLOCK = RATE // 50  # 20 ms
SILENT = 1e-4


def tone_packets(n: int, freq: float = 300.0) -> list[bytes]:
    """``n`` real 20 ms Opus packets of a steady tone."""
    t = np.arange(n * BLOCK) / RATE
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return list(OpusPacketizer(RATE).packets(pcm))


class Bench:
    """A sink on a recording output, with the reports it sent."""

    def __init__(self, jitter_ms: int = 60, **kw: object) -> None:
        self.out = RecordingOutput(RATE, 2)
        self.sink = PlaybackSink(self.out, PlaybackOptions(rate_hz=RATE, jitter_ms=jitter_ms), **kw)  # type: ignore[arg-type]
        self.reports: list[pb.PlaybackReport] = []
        self.sink.take_reports(self.reports.append)

    def step(self, blocks: int = 1) -> np.ndarray:
        start = len(self.out.blocks)
        self.out.step(blocks)
        return np.concatenate(self.out.blocks[start:])

    def heard(self) -> np.ndarray:
        """Indices of output frames with sound in them."""
        return np.flatnonzero(np.abs(self.out.samples()).max(axis=1) > SILENT)


def audio(uid: str, seq: int, data: bytes, last: bool = False) -> pb.ServerEvent:
    return pb.ServerEvent(audio_out=pb.AudioOut(utterance_id=uid, seq=seq, data=data, last=last))


def routed(bench: Bench) -> tuple[ServerEventRouter, list[pb.ClientEvent]]:
    sent: list[pb.ClientEvent] = []
    return ServerEventRouter(FakeSource(), bench.sink, sent.append), sent


def test_speech_starts_once_the_jitter_buffer_fills_not_when_the_whole_utterance_came():
    bench = Bench(jitter_ms=60)
    packets = tone_packets(50)  # a 1 s utterance
    first_heard_after = None
    for i, p in enumerate(packets, start=1):
        bench.sink.feed("u1", p)  # one packet arrives per block played: real time
        block = bench.step()
        if first_heard_after is None and np.abs(block).max() > SILENT:
            first_heard_after = i
    assert first_heard_after is not None and first_heard_after <= 3  # 60 ms = 3 packets
    assert bench.reports == []  # its last packet has not come: it is not over
    assert bench.sink.stats.underrun_blocks == 0


def test_stop_speaking_mid_utterance_cuts_within_a_block_and_reports_what_was_heard():
    bench = Bench()
    router, sent = routed(bench)
    router.handle(pb.ServerEvent(speech=pb.Speech(utterance_id="u1", text="a long one")))
    for seq, p in enumerate(tone_packets(40)):
        router.handle(audio("u1", seq, p))
    bench.step(10)
    cut_at = len(bench.out.samples())
    router.handle(pb.ServerEvent(stop_speaking=pb.StopSpeaking(utterance_ids=["u1"])))
    after = bench.step(10)
    assert np.abs(after[BLOCK:]).max() <= SILENT  # at most one more block of it
    heard = bench.heard()
    assert heard[-1] < cut_at + BLOCK
    [report] = [e.playback_report for e in sent if e.HasField("playback_report")]
    assert report.utterance_id == "u1" and report.interrupted and not report.finished
    heard_ms = (heard[-1] - heard[0] + 1) * 1000 / RATE
    assert abs(report.played_ms - heard_ms) <= 20, (report.played_ms, heard_ms)
    # Packets still in flight for the cut utterance are dropped, not played.
    router.handle(audio("u1", 40, tone_packets(1)[0]))
    assert np.abs(bench.step(5)).max() <= SILENT
    assert bench.sink.stats.late_packets == 1


def test_a_finished_utterance_reports_its_full_length_once_it_has_played_out():
    bench = Bench()
    router, sent = routed(bench)
    packets = tone_packets(25)
    for seq, p in enumerate(packets):
        router.handle(audio("u1", seq, p, last=seq == len(packets) - 1))
    # The last packet came, but nothing was heard yet: no report (the router sends none).
    assert [e for e in sent if e.HasField("playback_report")] == []
    assert router.speaking
    bench.step(30)
    [report] = [e.playback_report for e in sent if e.HasField("playback_report")]
    assert report.finished and not report.interrupted
    assert report.played_ms == 500
    assert not router.speaking
    # A StopSpeaking for it after it played out changes nothing.
    router.handle(pb.ServerEvent(stop_speaking=pb.StopSpeaking(utterance_ids=["u1"])))
    assert len([e for e in sent if e.HasField("playback_report")]) == 1


def test_a_cut_before_any_audio_came_is_reported_as_nothing_heard():
    bench = Bench()
    bench.sink.finish("u9", interrupted=True)
    assert [(r.utterance_id, r.played_ms, r.interrupted) for r in bench.reports] == [
        ("u9", 0, True)
    ]


@pytest.mark.parametrize("direction", [12, 3, 9])
@pytest.mark.parametrize("speech_first", [False, True])
def test_the_hazard_earcon_plays_before_its_alerts_speech(speech_first: bool, direction: int):
    bench = Bench()
    hazard = pb.Cue(kind=pb.CUE_KIND_HAZARD, intensity=0.8, clock_direction=direction)
    packets = tone_packets(10)
    if speech_first:  # the alert's speech is already queued when its cue comes
        for p in packets:
            bench.sink.feed("alert", p)
        bench.sink.cue(hazard)
    else:
        bench.sink.cue(hazard)
        for p in packets:
            bench.sink.feed("alert", p)
    bench.sink.finish("alert")
    bench.step(40)
    out = bench.out.samples()
    sound = earcon(pb.CUE_KIND_HAZARD, RATE, intensity=0.8, clock_direction=direction)
    n = sound.shape[0]
    assert np.allclose(out[:n], sound, atol=1e-6)  # the earcon, untouched by speech
    left, right = (float(np.sum(out[:n, ch] ** 2)) for ch in (0, 1))
    if direction == 3:  # the hazard is heard on its side, before a word of the alert
        assert right > 10 * left
    elif direction == 9:
        assert left > 10 * right
    else:
        assert left == pytest.approx(right, rel=1e-3)
    speech = bench.heard()
    speech = speech[speech >= n]
    assert speech.size and speech[0] >= n  # speech only after the earcon's end
    assert bench.reports[0].finished and bench.reports[0].played_ms == 200


def test_a_hazard_earcon_pauses_the_speech_playing_and_goes_ahead_of_the_queue():
    bench = Bench(jitter_ms=0)
    first = tone_packets(5)
    for p in first:
        bench.sink.feed("first", p)
    bench.sink.finish("first")
    bench.step(2)  # "first" is playing: 40 of its 100 ms are out
    for p in tone_packets(5, freq=500.0):
        bench.sink.feed("second", p)
    bench.sink.finish("second")
    bench.sink.cue(pb.Cue(kind=pb.CUE_KIND_HAZARD))
    bench.step(30)
    out = bench.out.samples()
    sound = earcon(pb.CUE_KIND_HAZARD, RATE)
    n = sound.shape[0]
    assert np.allclose(out[2 * BLOCK : 2 * BLOCK + n], sound, atol=1e-6)
    # Then the rest of "first" (60 ms), then "second" (100 ms): nothing of them lost.
    assert [(r.utterance_id, r.played_ms) for r in bench.reports] == [
        ("first", 100),
        ("second", 100),
    ]
    heard_after = bench.heard()
    heard_after = heard_after[heard_after >= 2 * BLOCK + n]
    assert heard_after.size >= 0.95 * 8 * BLOCK


def test_a_stalled_utterance_cannot_hold_up_a_hazard():
    bench = Bench(jitter_ms=0)
    for p in tone_packets(2):
        bench.sink.feed("stalled", p)  # its next packets never come
    bench.step(5)
    bench.sink.cue(pb.Cue(kind=pb.CUE_KIND_HAZARD))
    sound = earcon(pb.CUE_KIND_HAZARD, RATE)
    assert np.allclose(bench.step(10)[: sound.shape[0]], sound, atol=1e-6)
    # The server moved on to another utterance: the stalled one's end is never coming.
    for p in tone_packets(3):
        bench.sink.feed("next", p)
    bench.sink.finish("next")
    bench.step(10)
    assert [(r.utterance_id, r.played_ms) for r in bench.reports] == [
        ("stalled", 40),
        ("next", 60),
    ]


def test_a_cue_is_panned_by_its_clock_direction():
    def energy(direction: int) -> tuple[float, float]:
        bench = Bench()
        bench.sink.cue(pb.Cue(kind=pb.CUE_KIND_ATTENTION, clock_direction=direction))
        out = bench.step(20)
        return float(np.sum(out[:, 0] ** 2)), float(np.sum(out[:, 1] ** 2))

    left, right = energy(3)
    assert right > 10 * max(left, 1e-9)
    left, right = energy(9)
    assert left > 10 * max(right, 1e-9)
    left, right = energy(12)
    assert left == pytest.approx(right, rel=1e-3)
    # Constant power: the same loudness wherever it comes from.
    for d in range(13):
        gl, gr = pan_gains(d)
        assert gl**2 + gr**2 == pytest.approx(1.0)
    assert pan_gains(2)[1] > pan_gains(1)[1] > pan_gains(12)[1]


def test_each_cue_kind_has_its_own_earcon_and_a_haptic_pulse():
    kinds = [pb.CUE_KIND_HAZARD, pb.CUE_KIND_ATTENTION, pb.CUE_KIND_THINKING, pb.CUE_KIND_DONE]
    sounds = [earcon(k, RATE, channels=1)[:, 0] for k in kinds]
    for i, a in enumerate(sounds):
        assert 0 < a.size <= RATE // 2 and np.abs(a).max() <= 1.0  # short, never clipping
        for b in sounds[i + 1 :]:
            assert a.size != b.size or not np.allclose(a, b)
    # The hazard is the loudest; thinking the softest.
    peaks = [float(np.abs(s).max()) for s in sounds]
    assert peaks[0] == max(peaks) and peaks[2] == min(peaks)
    pulses: list[HapticPulse] = []
    bench = Bench(on_haptic=pulses.append)
    for k in kinds:
        bench.sink.cue(pb.Cue(kind=k, intensity=0.5))
    assert [p.kind for p in pulses] == kinds
    assert len(pulses[0].pattern_ms) == 3  # the hazard buzzes twice


def test_an_earcon_over_speech_ducks_it_and_the_wearers_gain_scales_everything():
    bench = Bench(jitter_ms=0)
    for p in tone_packets(20):
        bench.sink.feed("u1", p)
    loud = float(np.abs(bench.step(5)[BLOCK:]).max())
    bench.sink.set_gain(0.5)
    quiet = float(np.abs(bench.step(5)).max())
    assert quiet == pytest.approx(loud / 2, rel=0.1)
    bench.sink.set_gain(1.0)
    bench.sink.cue(pb.Cue(kind=pb.CUE_KIND_ATTENTION))
    mixed = bench.step(1)
    chime = earcon(pb.CUE_KIND_ATTENTION, RATE)[:BLOCK]
    speech_under = mixed - chime  # the mix is a plain sum: take the chime back out
    assert float(np.abs(speech_under).max()) == pytest.approx(loud * 0.5, rel=0.1)
    # Turned right down, speech goes quiet but a hazard is still heard.
    bench.sink.set_gain(0.0)
    assert np.abs(bench.step(20)).max() <= SILENT
    bench.sink.cue(pb.Cue(kind=pb.CUE_KIND_HAZARD))
    assert np.abs(bench.step(5)).max() > 0.2


def test_a_garbage_packet_is_skipped_and_counted_and_playback_goes_on():
    bench = Bench()
    packets = tone_packets(10)
    for p in packets[:4]:
        bench.sink.feed("u1", p)
    bench.sink.feed("u1", b"\xff\xff\xff garbage, not opus")
    for p in packets[4:]:
        bench.sink.feed("u1", p)
    bench.sink.finish("u1")
    bench.step(15)
    assert bench.sink.stats.bad_packets == 1
    [report] = bench.reports
    assert report.finished and report.played_ms == 200


def test_late_packets_underrun_into_silence_and_the_utterance_goes_on():
    bench = Bench()
    packets = tone_packets(8)
    for p in packets[:3]:
        bench.sink.feed("u1", p)
    bench.step(6)  # 3 packets played, then 3 blocks with nothing to play
    assert bench.sink.stats.underrun_blocks >= 2
    for p in packets[3:]:
        bench.sink.feed("u1", p)
    bench.sink.finish("u1")
    bench.step(8)
    [report] = bench.reports
    assert report.finished and report.played_ms == 160
    heard = bench.heard()
    gap = np.diff(heard).max()
    assert gap >= 2 * BLOCK  # the silence where packets were late


async def test_a_wav_output_is_paced_on_the_clock_and_keeps_the_silences(tmp_path):
    clock = ManualClock()
    path = tmp_path / "heard.wav"
    sink = PlaybackSink(WavFileOutput(path, RATE, clock=clock), PlaybackOptions(rate_hz=RATE))
    reports: list[pb.PlaybackReport] = []
    sink.take_reports(reports.append)

    async def walk() -> None:
        sink.cue(pb.Cue(kind=pb.CUE_KIND_DONE, clock_direction=3))
        await clock.sleep(0.5)
        for p in tone_packets(10):
            sink.feed("u1", p)
        sink.finish("u1")
        await clock.sleep(0.5)
        sink.finish_all()

    await clock.run(walk())
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getframerate()) == (2, RATE)
        frames = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    assert abs(frames.shape[0] - RATE) <= 2 * BLOCK  # one second of virtual time
    assert [(r.utterance_id, r.finished, r.played_ms) for r in reports] == [("u1", True, 200)]
    speech = frames[RATE // 2 :]
    assert np.abs(speech[:, 0]).max() > 1000 and np.abs(speech[:, 1]).max() > 1000
    done = frames[: RATE // 4]
    assert np.abs(done[:, 1]).max() > 10 * max(1, np.abs(done[:, 0]).max())  # 3 o'clock


def test_the_recording_sink_hands_cues_reports_and_playing_to_its_player(tmp_path):
    bench = Bench()
    sink = AudioSink(RATE, out_dir=tmp_path, player=bench.sink)
    router, sent = routed(bench)
    router = ServerEventRouter(FakeSource(), sink, sent.append)
    router.handle(pb.ServerEvent(cue=pb.Cue(kind=pb.CUE_KIND_THINKING)))
    packets = tone_packets(5)
    for seq, p in enumerate(packets):
        router.handle(audio("u1", seq, p, last=seq == 4))
    assert sink.utterances["u1"].duration_ms == 100  # the WAV side has all of it at once
    assert sink.playing and sent == []
    bench.step(10)
    assert not sink.playing
    assert [e.playback_report.played_ms for e in sent] == [100]
    assert bench.sink.stats.cues == 1
    sink.finish_all()
    assert bench.out.closed


async def test_reports_from_a_sound_cards_own_thread_reach_the_loop():
    bench = Bench()
    on_thread: list[int] = []
    bench.sink.take_reports(lambda r: on_thread.append(threading.get_ident()))
    for p in tone_packets(3):
        bench.sink.feed("u1", p)  # on the loop: the sink learns which loop is its
    bench.sink.finish("u1")
    await asyncio.to_thread(bench.out.step, 5)  # as PortAudio's callback would
    for _ in range(3):
        await asyncio.sleep(0)
    assert on_thread == [threading.get_ident()]


class NoSuchCard(types.ModuleType):
    """``sounddevice`` at the boundary, with a machine whose card is not there."""

    class PortAudioError(Exception):
        pass

    def __init__(self) -> None:
        super().__init__("sounddevice")
        self.checked: list[dict[str, object]] = []

    def check_output_settings(self, **settings: object) -> None:
        self.checked.append(settings)
        raise ValueError(f"No output device matching {settings['device']!r}")

    def query_devices(self) -> list[dict[str, object]]:
        return [{"name": "HDA Intel PCH", "max_output_channels": 2}]


def test_a_missing_sound_card_is_a_clear_error_before_the_session(monkeypatch):
    fake = NoSuchCard()
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    with pytest.raises(AudioOutputError) as e:
        open_playback(PlaybackOptions(rate_hz=RATE), device="no such speaker 4711")
    text = str(e.value)
    assert "No output device matching 'no such speaker 4711'" in text  # PortAudio's why
    assert "--play-to" in text and "python -m sounddevice" in text
    assert [c["channels"] for c in fake.checked] == [2, 1]  # stereo, then a mono earpiece


def test_a_machine_without_any_sound_card_says_so(monkeypatch):
    fake = NoSuchCard()
    monkeypatch.setattr(fake, "query_devices", lambda: [])
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    with pytest.raises(AudioOutputError, match="PortAudio sees no sound card that can play"):
        open_playback(PlaybackOptions(rate_hz=RATE))


def test_playing_without_sounddevice_installed_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    with pytest.raises(AudioOutputError, match=r"murmur\[audio\]"):
        open_playback(PlaybackOptions(rate_hz=RATE))


class VanishedOutput(RecordingOutput):
    def start(self, render: Render) -> None:
        raise AudioOutputError("the headset went away")


def test_an_output_that_fails_mid_session_reports_nothing_heard_and_keeps_going():
    sink = PlaybackSink(VanishedOutput(RATE), PlaybackOptions(rate_hz=RATE))
    reports: list[pb.PlaybackReport] = []
    sink.take_reports(reports.append)
    sink.cue(pb.Cue(kind=pb.CUE_KIND_HAZARD))
    for p in tone_packets(5):
        sink.feed("u1", p)
    sink.finish("u1")
    assert [(r.utterance_id, r.played_ms, r.interrupted) for r in reports] == [("u1", 0, True)]
    assert not sink.playing


async def test_a_replay_played_to_a_wav_reports_what_was_heard_to_a_live_server(
    tmp_path, monkeypatch
):
    # The server's own record of the report: what its speaker was told was heard.
    told: list[tuple[str, int]] = []
    real = Speaker.playback_report

    def spy(self: Speaker, utterance_id: str, played_ms: int) -> None:
        told.append((utterance_id, played_ms))
        real(self, utterance_id, played_ms)

    monkeypatch.setattr(Speaker, "playback_report", spy)
    clip = write_synthetic_clip(tmp_path / "walk.mp4", seconds=3, fps=5)
    heard = tmp_path / "heard.wav"
    runtime = scripted((1, "</response> Door on your left."))
    async with running_server(runtime, FakeTTS("tone")) as srv:
        report = await run_replay(
            ReplayOptions(
                video=clip,
                link=LinkOptions(target=srv.address),
                play_to=heard,
                linger_s=1.0,
                want_trace=False,
                echo=None,
            )
        )
    [uid] = report.utterance_ids
    received_ms = report.audio[uid][0].size * 1000 // RATE
    assert told == [(uid, received_ms)]  # played out in full, and the server knows it
    with wave.open(str(heard), "rb") as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    loud = np.flatnonzero(np.abs(frames).max(axis=1) > 300)
    assert loud.size and abs(loud.size * 1000 / RATE - received_ms) <= 40


def test_the_cue_gain_scales_earcons_but_not_speech():
    bench = Bench(jitter_ms=0)
    for p in tone_packets(20):
        bench.sink.feed("u1", p)
    loud = float(np.abs(bench.step(5)[BLOCK:]).max())
    bench.sink.set_cue_gain(0.5)  # the session's volume, which the server's speech has already
    assert float(np.abs(bench.step(5)).max()) == pytest.approx(loud, rel=0.1)
    bench.sink.finish_all()
    alone = Bench(jitter_ms=0)
    alone.sink.cue(pb.Cue(kind=pb.CUE_KIND_ATTENTION))
    full = float(np.abs(alone.step(2)).max())
    halved = Bench(jitter_ms=0)
    halved.sink.set_cue_gain(0.5)
    halved.sink.cue(pb.Cue(kind=pb.CUE_KIND_ATTENTION))
    assert float(np.abs(halved.step(2)).max()) == pytest.approx(full / 2, rel=0.1)


# ---------------------------------------------------------------------- a confirming output


class DeviceOutput(RecordingOutput):
    """An output that still has to hand each block to a device (the Halo's speaker):
    blocks wait in ``waiting`` until the test settles them, as the device link would."""

    confirms = True

    def __init__(self) -> None:
        super().__init__(RATE, 1)
        self.waiting: list[int] = []
        self.discarded: list[int] = []
        self._settled = lambda block, heard: None

    def bind(self, settled) -> None:
        self._settled = settled

    def _keep(self, block: np.ndarray) -> None:
        super()._keep(block)
        self.waiting.append(self.blocks_out - 1)

    def hand_over(self, heard: bool = True, n: int | None = None) -> None:
        for block in self.waiting[:n]:
            self._settled(block, heard)
        self.waiting = self.waiting[n:] if n is not None else []

    def discard(self, blocks) -> None:
        for block in blocks:
            if block in self.waiting:
                self.waiting.remove(block)
                self.discarded.append(block)
                self._settled(block, False)


def _on_device() -> tuple[PlaybackSink, DeviceOutput, list[pb.PlaybackReport]]:
    out = DeviceOutput()
    sink = PlaybackSink(out, PlaybackOptions(rate_hz=RATE))
    reports: list[pb.PlaybackReport] = []
    sink.take_reports(reports.append)
    return sink, out, reports


def test_a_confirming_output_reports_only_the_blocks_the_device_took():
    sink, out, reports = _on_device()
    for p in tone_packets(10):  # 200 ms, whole: it plays at once
        sink.feed("u1", p)
    sink.finish("u1")
    out.step(4)
    out.hand_over()  # four taken
    out.step(3)
    out.hand_over(heard=False)  # three lost (the link went)
    out.step(3)
    assert reports == []  # played out here, but three blocks are still on their way
    assert sink.playing  # the session lingers for them
    out.hand_over()
    [r] = reports
    assert (r.finished, r.played_ms) == (True, 7 * 20)
    assert sink.stats.lost_blocks == 3 and sink.stats.finished == 1


def test_a_cut_discards_what_the_device_has_not_taken_yet():
    sink, out, reports = _on_device()
    for p in tone_packets(50):
        sink.feed("u1", p)
    out.step(5)
    out.hand_over()
    out.step(4)
    out.hand_over(n=1)  # one taken, three waiting for the link
    sink.stop_all()
    assert out.discarded == [6, 7, 8] and out.waiting == []
    [r] = reports
    assert (r.interrupted, r.played_ms) == (True, 6 * 20)
    assert sink.stats.lost_blocks == 0  # a cut is not a loss
    out.step(5)
    assert not out.samples()[-5 * BLOCK :].any()  # nothing more of it


def test_a_cut_after_it_played_out_here_still_stops_it_on_the_device():
    sink, out, reports = _on_device()
    for p in tone_packets(5):
        sink.feed("u1", p)
    sink.finish("u1")
    out.step(5)  # all of it pulled; the device has taken none yet
    out.hand_over(n=2)
    sink.finish("u1", interrupted=True)  # StopSpeaking for it
    assert out.discarded == [2, 3, 4]
    [r] = reports
    assert (r.interrupted, r.finished, r.played_ms) == (True, False, 2 * 20)
