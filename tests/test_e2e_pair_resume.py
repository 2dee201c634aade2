"""Pairing and resume as a user meets them, end to end.

The first test is the whole journey through the command lines: `murmur serve`,
`murmur pair`, `murmur-bridge pair`, `murmur-bridge replay`, a wrong token, a revoke.
The second walks a phone through a network drop: the real bridge link, pinned TLS
through a TCP proxy that cuts the network for five seconds, and a real server whose
session must come back with its memory, its clock and the answer it prepared meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.connection import Backoff, LinkOptions, pair
from mobile_bridge.link import BridgeLink
from mobile_bridge.synth import write_synthetic_clip
from mobile_bridge.tls import ServerPin
from mobile_bridge.tokens import load_pairings
from server.agents.manager import DelegationManager
from server.pairing.tls import fingerprint
from server.pairing.uri import parse_pairing_uri
from server.runtime.scripted import ScriptLine
from tests.fakes import RecordingClock, SleepyAgent, TcpProxy
from tests.harness import jpeg, scripted, secure_server, serving_address, stop_process, write_script

ROOT = Path(__file__).resolve().parents[1]


async def _until(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {timeout_s:g} s")


# ---------------------------------------------------------------------------------------
# The journey through the command lines
# ---------------------------------------------------------------------------------------


def _env(tmp: Path) -> dict[str, str]:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        MURMUR_PAIRING_STATE_DIR=str(tmp / "server-state"),
        XDG_CONFIG_HOME=str(tmp / "phone-config"),  # where the bridge keeps its pairing
    )
    env.pop("MURMUR_TOKEN", None)
    return env


async def _cli(tmp: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=_env(tmp),
            capture_output=True,
            text=True,
            timeout=90,
        )

    return await asyncio.to_thread(run)


@pytest.mark.slow
async def test_pair_replay_refuse_and_revoke_through_the_command_lines(tmp_path):
    script = write_script(
        tmp_path / "walk.jsonl",
        (1.0, "</response> Crossing ahead, the light is green."),
        (3.0, "</response> Bench on your right."),
    )
    clip = tmp_path / "walk.mp4"
    write_synthetic_clip(clip, seconds=4.0, fps=4.0)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "serve", "--model", f"scripted:{script}",
        "--port", "0", "--no-asr", "--tts", "piper",
        cwd=ROOT, env=_env(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    outputs: list[str] = []

    async def bridge(*args: str) -> subprocess.CompletedProcess[str]:
        done = await _cli(tmp_path, "mobile_bridge.cli", *args)
        outputs.extend((done.stdout, done.stderr))
        return done

    replay = ("replay", str(clip), "--fps", "2", "--linger", "1.5")
    try:
        await serving_address(proc)
        # Nothing connects before pairing: the bridge says how to pair.
        unpaired = await bridge(*replay)
        assert unpaired.returncode != 0
        assert "pair" in unpaired.stderr, unpaired.stderr

        shown = await _cli(tmp_path, "server.cli", "pair", "--name", "glasses")
        assert shown.returncode == 0, shown.stderr
        outputs.append(shown.stdout)
        uri = re.search(r"murmur-bridge pair '(murmur://[^']+)'", shown.stdout)
        assert uri, shown.stdout
        code, _, _ = parse_pairing_uri(uri.group(1))

        paired = await bridge("pair", uri.group(1), "--name", "walker's phone")
        assert paired.returncode == 0, paired.stderr
        saved = [p for p in (tmp_path / "phone-config").rglob("*") if p.is_file()]
        assert saved and all(p.stat().st_mode & 0o077 == 0 for p in saved)  # owner only
        # The code worked once: pairing a second time with it is refused.
        again = await bridge("pair", uri.group(1), "--name", "thief")
        assert again.returncode != 0 and "used" in again.stderr, again.stderr

        walked = await bridge(*replay)
        assert walked.returncode == 0, walked.stderr
        assert "Crossing ahead, the light is green." in walked.stdout, walked.stdout

        wrong = await bridge(*replay, "--token", "dev.notarealtoken")
        assert wrong.returncode == 1, wrong
        assert "refused this bridge" in wrong.stderr, wrong.stderr
        assert "Pair again: murmur-bridge pair" in wrong.stderr, wrong.stderr

        listed = await _cli(tmp_path, "server.cli", "devices", "list")
        # The name given to `murmur pair` wins over the one the bridge offered.
        assert listed.returncode == 0 and "glasses" in listed.stdout, listed
        outputs.append(listed.stdout)
        device_id = next(
            line.split()[0] for line in listed.stdout.splitlines() if "glasses" in line
        )
        revoked = await _cli(tmp_path, "server.cli", "devices", "revoke", device_id)
        assert revoked.returncode == 0, revoked.stderr
        after = await bridge(*replay)
        assert after.returncode == 1, after
        assert "revoked" in after.stderr and "Pair again" in after.stderr, after.stderr
    finally:
        await stop_process(proc)
    assert proc.stderr is not None and proc.stdout is not None
    log = (await proc.stderr.read()).decode() + (await proc.stdout.read()).decode()
    assert proc.returncode == 0, log
    assert "Traceback" not in log, log
    # The saved token and the one-time code are in no log and no output (the code is
    # in its own invitation only).
    (saved_pairing,) = load_pairings(tmp_path / "phone-config" / "murmur" / "bridge.toml")
    token = saved_pairing.token
    assert token and token.split(".", 1)[-1] not in log
    assert not any(token in out or token.split(".", 1)[-1] in out for out in outputs)
    assert code not in log


# ---------------------------------------------------------------------------------------
# A network drop mid-walk
# ---------------------------------------------------------------------------------------

START = pb.SessionStart(mode=pb.MODE_GENERAL, language="en", client_name="e2e", want_trace=True)


async def test_a_five_second_network_drop_resumes_the_same_session_with_its_answer(tmp_path, tts):
    runtime = scripted()
    runtime.script = [
        ScriptLine(0, "</response> It is a bakery.", query="what is this"),
        ScriptLine(2.0, "</response> One moment. </delegation> When does it open?"),
    ]
    manager = DelegationManager(SleepyAgent(3.0, "The shop opens at nine."))
    async with (
        secure_server(tmp_path, tts, runtime, delegations=manager) as srv,
        TcpProxy(srv.address) as proxy,
    ):
        # The bridge pairs as `murmur-bridge pair` does: it learns the pin, then the token.
        pin = ServerPin(fingerprint(srv.cert_pem))
        grant = await pair(LinkOptions(proxy.address, pin=pin), await srv.issue(), "phone")
        options = LinkOptions(
            target=proxy.address,
            token=grant.token,
            pin=ServerPin(pin.fingerprint, grant.certificate_pem),
            backoff=Backoff(initial_s=0.05, factor=2.0, max_s=0.2, jitter=0.0),
            max_reconnects=100,
        )
        status: list[str] = []
        events: list[pb.ServerEvent] = []
        link = BridgeLink(options, START, on_status=status.append, clock=RecordingClock(1.0))

        async def receive() -> None:
            async for ev in link.events():
                events.append(ev)

        def ticks() -> list[float]:
            return [e.tick.tick_s for e in events if e.HasField("tick")]

        def spoken() -> list[tuple[str, int]]:
            return [(e.speech.text, e.speech.kind) for e in events if e.HasField("speech")]

        reader = asyncio.create_task(receive())
        seq = 0

        async def frames(n: int) -> None:
            nonlocal seq
            for _ in range(n):
                seq += 1
                await link.send(
                    pb.ClientEvent(
                        video_frame=pb.VideoFrame(
                            seq=seq, encoding=pb.VIDEO_ENCODING_JPEG, data=jpeg(shade=seq % 90)
                        )
                    )
                )
                await asyncio.sleep(0.1)

        await link.send(pb.ClientEvent(text_input=pb.TextInput(text="what is this?")))
        await frames(5)
        await _until(lambda: any(e.HasField("delegation_update") for e in events))
        before = ticks()[-1]
        await proxy.cut()  # the phone walks out of Wi-Fi
        await asyncio.sleep(5.0)  # the answer is ready while nobody is connected
        await proxy.mend()
        await _until(lambda: len([e for e in events if e.HasField("session_ready")]) == 2)
        await frames(5)
        await _until(
            lambda: ("The shop opens at nine.", pb.SPEECH_KIND_DELEGATION_RESULT) in spoken()
        )
        await frames(3)
        await link.close()
        await asyncio.wait_for(reader, 15)
    await manager.aclose()

    readies = [e.session_ready for e in events if e.HasField("session_ready")]
    assert len(readies) == 2 and readies[0].session_id == readies[1].session_id
    assert not [e.notice.code for e in events if e.HasField("notice")]  # a resume, not anew
    assert link.reconnects >= 1 and any("lost the stream" in s for s in status)
    # The session's clock went on through the drop; no tick ran while it was away.
    resumed_at = [i for i, e in enumerate(events) if e.HasField("session_ready")][1]
    after = [e.tick.tick_s for e in events[resumed_at:] if e.HasField("tick")]
    assert after and after[0] >= before + 4.5, (before, after[:3])
    # One model session all along, holding the first question and its answer.
    assert len(runtime.sessions) == 1
    model = runtime.sessions[0]
    qa = model.debug_state().qa_history.lower()
    assert "what is this" in qa and "bakery" in qa
    assert not [t.tick_s for t in model.ticks if before + 0.5 < t.tick_s < before + 4.5]
    assert max(t.tick_s for t in model.ticks) >= after[0]
    # What was prepared while away is spoken after the resume, once.
    assert spoken().count(("The shop opens at nine.", pb.SPEECH_KIND_DELEGATION_RESULT)) == 1
    first_answer = next(
        i for i, e in enumerate(events) if e.HasField("speech") and "nine" in e.speech.text
    )
    assert first_answer > resumed_at
    # And the bridge learns how the background task ended, not only its words.
    updates = [
        e.delegation_update.state for e in events[resumed_at:] if e.HasField("delegation_update")
    ]
    assert pb.DELEGATION_STATE_DONE in updates, updates
