"""`murmur pair` and `murmur devices` as a user runs them: subprocesses sharing the state
directory (MURMUR_PAIRING_STATE_DIR) with a running `murmur serve`."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from murmur.v1 import companion_pb2 as pb
from murmur.v1 import companion_pb2_grpc as pb_grpc

from server.pairing.tls import fingerprint
from server.pairing.uri import parse_pairing_uri
from tests.harness import serving_address, session_start, stop_process, write_script

ROOT = Path(__file__).resolve().parents[1]


def _env(state: Path) -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", MURMUR_PAIRING_STATE_DIR=str(state))


def murmur(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        env=_env(state),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_server_state_both_commands_say_what_to_do(tmp_path):
    state = tmp_path / "state"
    for args in (("pair",), ("devices", "list"), ("devices", "revoke", "abc")):
        done = murmur(state, *args)
        assert done.returncode == 1, done
        assert "no server state" in done.stderr and "murmur serve" in done.stderr
        assert str(state) in done.stderr
    assert not state.exists()  # neither command makes server state


def test_serve_no_auth_refuses_a_non_loopback_host(tmp_path):
    done = murmur(
        tmp_path / "s", "serve", "--no-auth", "--host", "0.0.0.0", "--model", "scripted:x"
    )
    assert done.returncode == 1
    assert "--no-auth" in done.stderr and "loopback only" in done.stderr
    assert not (tmp_path / "s").exists()


async def _run(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(murmur, state, *args)


@pytest.mark.slow
async def test_pair_and_devices_while_the_server_runs(tmp_path):
    state = tmp_path / "state"
    script = write_script(tmp_path / "walk.jsonl", (0.2, "</silence>"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "serve", "--model", f"scripted:{script}",
        "--port", "0", "--no-asr", "--tts", "piper",
        cwd=ROOT, env=_env(state),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        address = await serving_address(proc)
        assert (state / "devices.db").stat().st_mode & 0o777 == 0o600
        assert state.stat().st_mode & 0o777 == 0o700

        shown = await _run(state, "pair", "--name", "Frame glasses", "--ttl", "5")
        assert shown.returncode == 0, shown.stderr
        out = shown.stdout
        uri = re.search(r"murmur-bridge pair '(murmur://[^']+)'", out)
        assert uri, out
        code, fp, addrs = parse_pairing_uri(uri.group(1))
        assert re.fullmatch(r"[2-9A-Z]{4}-[2-9A-Z]{4}", code)
        assert addrs == [address]
        cert = (state / "server.crt").read_bytes()
        assert fp == fingerprint(cert) and f"sha256 {fp}" in out
        assert "works once, until" in out and ("▀" in out or "█" in out)  # the QR code

        creds = grpc.ssl_channel_credentials(root_certificates=cert)
        opts = (("grpc.ssl_target_name_override", "murmur-server"),)
        async with grpc.aio.secure_channel(addrs[0], creds, options=opts) as ch:
            stub = pb_grpc.CompanionStub(ch)
            grant = await stub.Pair(pb.PairRequest(code=code, device_name="ignored"), timeout=10)
            call = stub.Converse(metadata=(("authorization", f"Bearer {grant.device_token}"),))
            await call.write(session_start())
            first = await asyncio.wait_for(call.read(), 10)
            assert first.WhichOneof("event") == "session_ready"

            listed = await _run(state, "devices", "list")
            assert listed.returncode == 0, listed.stderr
            assert grant.device_id in listed.stdout and "Frame glasses" in listed.stdout
            assert "127.0.0.1" in listed.stdout and "active" in listed.stdout
            secret = grant.device_token.split(".", 1)[1]
            assert secret not in listed.stdout

            renamed = await _run(state, "devices", "rename", grant.device_id, "Left lens")
            assert renamed.returncode == 0 and "Left lens" in renamed.stdout
            missing = await _run(state, "devices", "revoke", "nosuchid")
            assert missing.returncode == 1 and "devices list" in missing.stderr
            revoked = await _run(state, "devices", "revoke", grant.device_id)
            assert revoked.returncode == 0 and "Revoked" in revoked.stdout

            with pytest.raises(grpc.aio.AioRpcError) as err:
                async with asyncio.timeout(10):
                    while await call.read() is not grpc.aio.EOF:
                        pass
            assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
            again = await _run(state, "devices", "list")
            assert "revoked" in again.stdout and "Left lens" in again.stdout
    finally:
        await stop_process(proc)
    assert proc.stderr is not None
    log = (await proc.stderr.read()).decode()
    assert proc.returncode == 0, log
    assert "Traceback" not in log, log
    assert grant.device_token not in log and secret not in log and code not in log
