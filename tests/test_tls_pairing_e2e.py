"""Pairing and auth end to end: a real GrpcServer on loopback with its generated TLS
certificate, a real SQLite registry, and clients built from the generated stubs."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import Counter
from typing import Any

import grpc
import pytest
from murmur.v1 import companion_pb2 as pb
from murmur.v1 import companion_pb2_grpc as pb_grpc

from server.config import Settings
from server.pairing import codes as codes_mod
from server.pairing.codes import ALPHABET, CODE_LENGTH, hash_code
from server.pairing.tokens import hash_secret
from server.transport import server as server_mod
from server.transport.security import build_pairing
from tests.harness import (
    NAME_OVERRIDE,
    Secure,
    running_server,
    scripted,
    secure_server,
    session_start,
)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(
    not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (cannot bind [::1])"
)


def _fresh_channel(srv: Secure) -> grpc.aio.Channel:
    """A channel with its own connection (a new client port), not one from grpc's pool."""
    creds = grpc.ssl_channel_credentials(root_certificates=srv.cert_pem)
    options = (*NAME_OVERRIDE, ("grpc.use_local_subchannel_pool", 1))
    return grpc.aio.secure_channel(srv.address, creds, options=options)


def _wrong_code(i: int) -> str:
    raw = "".join(ALPHABET[(i >> (5 * k)) % 32] for k in range(CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


async def _pair(srv: Secure, code: str, name: str = "Pixel 8") -> pb.PairResponse:
    async with srv.channel() as ch:
        return await pb_grpc.CompanionStub(ch).Pair(
            pb.PairRequest(code=code, device_name=name), timeout=10
        )


async def _pair_error(srv: Secure, code: str, name: str = "phone") -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _pair(srv, code, name)
    return err.value


async def _converse(channel: grpc.aio.Channel, token: str | None) -> Any:
    md = (("authorization", f"Bearer {token}"),) if token is not None else None
    call = pb_grpc.CompanionStub(channel).Converse(metadata=md)
    await call.write(session_start())
    return call


async def _first_event(call: Any) -> str:
    msg = await asyncio.wait_for(call.read(), 10)
    return msg.WhichOneof("event")


async def test_pair_over_tls_then_converse_with_the_token(tmp_path, tts):
    async with secure_server(tmp_path, tts) as srv:
        grant = await _pair(srv, await srv.issue())
        assert grant.device_id and grant.device_token.startswith(grant.device_id + ".")
        async with srv.channel() as ch:
            call = await _converse(ch, grant.device_token)
            assert await _first_event(call) == "session_ready"
            call.cancel()
        [device] = await asyncio.to_thread(srv.pairing.list_devices)
        assert (device.name, device.last_address) == ("Pixel 8", "127.0.0.1")


@pytest.mark.parametrize("token", [None, "", "not-a-token", "deadbeef.wrongsecret"])
async def test_missing_or_wrong_tokens_are_unauthenticated_with_how_to_pair(tmp_path, tts, token):
    async with secure_server(tmp_path, tts) as srv, srv.channel() as ch:
        # The token is checked before the first message: a call that writes nothing
        # hears the refusal (a write racing it can get grpc's INTERNAL, grpc#36066).
        md = (("authorization", f"Bearer {token}"),) if token is not None else None
        call = pb_grpc.CompanionStub(ch).Converse(metadata=md)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _first_event(call)
        assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "murmur pair" in (err.value.details() or "")
        assert "murmur-bridge pair" in (err.value.details() or "")


async def test_a_revoked_token_is_unauthenticated(tmp_path, tts):
    async with secure_server(tmp_path, tts) as srv:
        grant = await _pair(srv, await srv.issue())
        assert await srv.revoke(grant.device_id)
        async with srv.channel() as ch:
            call = await _converse(ch, grant.device_token)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _first_event(call)
        assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in (err.value.details() or "")


async def test_revoking_a_live_device_ends_its_session_within_seconds(tmp_path, tts):
    async with secure_server(tmp_path, tts) as srv:
        keep = await _pair(srv, await srv.issue(), "other phone")
        grant = await _pair(srv, await srv.issue())
        async with srv.channel() as ch:
            doomed = await _converse(ch, grant.device_token)
            other = await _converse(ch, keep.device_token)
            assert await _first_event(doomed) == "session_ready"
            assert await _first_event(other) == "session_ready"
            t0 = time.monotonic()
            assert await srv.revoke(grant.device_id)  # from "the CLI": another connection
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async with asyncio.timeout(8):
                    while True:
                        if await doomed.read() is grpc.aio.EOF:
                            break
            elapsed = time.monotonic() - t0
            assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
            assert "revoked" in (err.value.details() or "") and "murmur pair" in (
                err.value.details() or ""
            )
            assert elapsed < 6.0
            assert not other.done()  # the other device's session goes on
            other.cancel()


async def test_pair_failures_each_have_a_clear_status(tmp_path, tts):
    async with secure_server(tmp_path, tts) as srv:
        e = await _pair_error(srv, "12")
        assert e.code() is grpc.StatusCode.INVALID_ARGUMENT and "ABCD-EFGH" in (e.details() or "")
        e = await _pair_error(srv, "A" * 1_000_000)  # big but under the message limit
        assert e.code() is grpc.StatusCode.INVALID_ARGUMENT
        e = await _pair_error(srv, "A" * (5 * 1024 * 1024))  # over max_message_bytes
        assert e.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        e = await _pair_error(srv, "ABCD-EFGH", "n" * 100)
        assert e.code() is grpc.StatusCode.INVALID_ARGUMENT and "device name" in (e.details() or "")
        e = await _pair_error(srv, "ABCD-EFGH")
        assert e.code() is grpc.StatusCode.PERMISSION_DENIED and "not valid" in (e.details() or "")
        code = await srv.issue()
        await _pair(srv, code)
        e = await _pair_error(srv, code)
        assert e.code() is grpc.StatusCode.PERMISSION_DENIED and "already used" in (
            e.details() or ""
        )
        for _ in range(codes_mod.PEER_FAILURES):
            await _pair_error(srv, "ABCD-EFGH")
        e = await _pair_error(srv, await srv.issue())
        assert e.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "wait" in (e.details() or "") and " s " in (e.details() or "")
        # the server is unaffected: health still answers, sessions still open
        async with srv.channel() as ch:
            from grpc_health.v1 import health_pb2, health_pb2_grpc

            health = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_an_expired_code_is_permission_denied(tmp_path, tts):
    async with secure_server(tmp_path, tts) as srv:
        code = await srv.issue(ttl_s=0.2)
        await asyncio.sleep(0.4)
        e = await _pair_error(srv, code)
        assert e.code() is grpc.StatusCode.PERMISSION_DENIED and "expired" in (e.details() or "")


async def test_a_plaintext_client_against_the_tls_port_fails_fast(tmp_path, tts):
    async with secure_server(tmp_path, tts) as srv:
        t0 = time.monotonic()
        async with grpc.aio.insecure_channel(srv.address) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await pb_grpc.CompanionStub(ch).Pair(pb.PairRequest(code="x"), timeout=20)
        elapsed = time.monotonic() - t0
    # What grpc 1.85 says (recorded for the bridge, which turns it into "speaks TLS"):
    # UNAVAILABLE "failed to connect to all addresses; last error: UNAVAILABLE:
    # ipv4:127.0.0.1:PORT: Socket closed" — the server's TLS stack hangs up on the
    # plaintext HTTP/2 preface. Not a timeout.
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE, err.value
    assert err.value.code() is not grpc.StatusCode.DEADLINE_EXCEEDED
    assert elapsed < 5.0
    assert "Socket closed" in (err.value.details() or "") or "failed to connect" in (
        err.value.details() or ""
    )


async def test_a_wrong_certificate_is_refused_by_the_client(tmp_path, tts):
    from server.pairing.tls import ensure_self_signed

    other = ensure_self_signed(tmp_path / "elsewhere")
    async with secure_server(tmp_path, tts) as srv:
        creds = grpc.ssl_channel_credentials(root_certificates=other.cert_pem)
        async with grpc.aio.secure_channel(srv.address, creds, options=NAME_OVERRIDE) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await pb_grpc.CompanionStub(ch).Pair(pb.PairRequest(code="x"), timeout=10)
        assert err.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_logs_never_hold_a_token_a_used_code_or_a_hash(tmp_path, tts, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("grpc", "server", ""):
        logging.getLogger(name).setLevel(logging.DEBUG)
    async with secure_server(tmp_path, tts) as srv:
        code = await srv.issue()
        grant = await _pair(srv, code)
        secret = grant.device_token.split(".", 1)[1]
        async with srv.channel() as ch:
            call = await _converse(ch, grant.device_token)
            assert await _first_event(call) == "session_ready"
            bad = await _converse(ch, grant.device_token + "x")
            with pytest.raises(grpc.aio.AioRpcError):
                await _first_event(bad)
            await _pair_error(srv, code)  # a used code tried again
            await srv.revoke(grant.device_id)
            with pytest.raises(grpc.aio.AioRpcError):
                async with asyncio.timeout(8):
                    while await call.read() is not grpc.aio.EOF:
                        pass
    text = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert "paired device" in text and "revoked" in text  # the logs were captured
    raw = code.replace("-", "")
    for needle in (grant.device_token, secret, code, raw, hash_code(raw), hash_secret(secret)):
        assert needle not in text


async def test_without_a_verifier_pair_is_unimplemented_and_says_so(tts):
    async with running_server(scripted(), tts) as srv, grpc.aio.insecure_channel(srv.address) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.CompanionStub(ch).Pair(pb.PairRequest(code="ABCD-EFGH"))
    assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert "--no-auth" in (err.value.details() or "")


def test_no_auth_is_refused_beyond_loopback(tmp_path):
    settings = Settings().with_overrides("pairing", state_dir=str(tmp_path / "s"))
    with pytest.raises(ValueError, match="loopback only"):
        build_pairing(settings.with_overrides("server", no_auth=True, host="0.0.0.0"))
    dev = build_pairing(settings.with_overrides("server", no_auth=True, host="::1"))
    assert dev.pairing is None and dev.tls is None
    assert not (tmp_path / "s").exists()  # development mode makes no state


def test_configured_certificates_take_precedence(tmp_path):
    from server.pairing.tls import ensure_self_signed

    real = ensure_self_signed(tmp_path / "real")
    settings = (
        Settings()
        .with_overrides("pairing", state_dir=str(tmp_path / "s"))
        .with_overrides(
            "server",
            tls_cert=str(tmp_path / "real/server.crt"),
            tls_key=str(tmp_path / "real/server.key"),
        )
    )
    security = build_pairing(settings)
    try:
        assert security.tls is not None and security.tls.fingerprint == real.fingerprint
        assert not (tmp_path / "s/server.crt").exists()
    finally:
        security.close()


async def _ended(call: Any, within_s: float = 8.0) -> grpc.aio.AioRpcError:
    """Read ``call`` until it ends; the status it ended with."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async with asyncio.timeout(within_s):
            while await call.read() is not grpc.aio.EOF:
                pass
    return err.value


async def _ready(call: Any) -> pb.SessionReady:
    while True:
        msg = await asyncio.wait_for(call.read(), 10)
        assert msg is not grpc.aio.EOF, "the call ended before session_ready"
        if msg.HasField("session_ready"):
            return msg.session_ready


@needs_ipv6
async def test_over_ipv6_wrong_codes_are_limited_per_address_not_per_connection(tmp_path, tts):
    async with secure_server(tmp_path, tts, host="::1") as srv:
        code = await srv.issue()
        async with _fresh_channel(srv) as ch:
            grant = await pb_grpc.CompanionStub(ch).Pair(pb.PairRequest(code=code), timeout=10)
        async with _fresh_channel(srv) as ch:
            call = await _converse(ch, grant.device_token)
            assert await _first_event(call) == "session_ready"
            call.cancel()
        [device] = await asyncio.to_thread(srv.pairing.list_devices)
        assert device.last_address == "::1"  # not "%5B::1%5D:50748", a new one per call
        for i in range(codes_mod.PEER_FAILURES):  # each from a new connection (a new port)
            async with _fresh_channel(srv) as ch:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await pb_grpc.CompanionStub(ch).Pair(pb.PairRequest(code=_wrong_code(i)))
            assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
        async with _fresh_channel(srv) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await pb_grpc.CompanionStub(ch).Pair(pb.PairRequest(code=await srv.issue()))
        assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "from this address" in (err.value.details() or "")


@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", marks=needs_ipv6)])
async def test_a_thousand_wrong_codes_in_a_row_pair_nothing_and_are_rate_limited(
    tmp_path, tts, host
):
    async with secure_server(tmp_path, tts, host=host) as srv:
        live = (await srv.issue()).replace("-", "")
        wrong = (c for i in range(2000) if (c := _wrong_code(i * 7919)).replace("-", "") != live)
        outcomes: Counter[Any] = Counter()
        for _ in range(20):  # a new connection every 50 attempts
            async with _fresh_channel(srv) as ch:
                stub = pb_grpc.CompanionStub(ch)
                for _ in range(50):
                    try:
                        await stub.Pair(pb.PairRequest(code=next(wrong)), timeout=10)
                        outcomes["paired"] += 1
                    except grpc.aio.AioRpcError as e:
                        outcomes[e.code()] += 1
        assert "paired" not in outcomes
        assert outcomes[grpc.StatusCode.PERMISSION_DENIED] == codes_mod.PEER_FAILURES
        assert outcomes[grpc.StatusCode.RESOURCE_EXHAUSTED] == 1000 - codes_mod.PEER_FAILURES
        # The right code from the same peer, during the limit: refused too (no oracle).
        async with _fresh_channel(srv) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await pb_grpc.CompanionStub(ch).Pair(pb.PairRequest(code=live), timeout=10)
        assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "from this address" in (err.value.details() or "")
        assert await asyncio.to_thread(srv.pairing.list_devices) == []


async def test_a_session_opened_just_before_its_device_is_revoked_is_ended(
    tmp_path, tts, monkeypatch
):
    monkeypatch.setattr(server_mod, "REVOCATION_POLL_S", 0.05)
    async with secure_server(tmp_path, tts) as srv:
        grant = await _pair(srv, await srv.issue())
        runtime = srv.app.services.runtime
        real_open = runtime.open_session

        def open_during_a_revocation(*args: Any, **kw: Any) -> Any:
            # In the model thread, after the token was checked: the device is revoked
            # and the watcher looks while this session is not registered yet.
            asyncio.run(srv.revoke(grant.device_id))
            time.sleep(0.5)
            return real_open(*args, **kw)

        monkeypatch.setattr(runtime, "open_session", open_during_a_revocation)
        async with srv.channel() as ch:
            call = await _converse(ch, grant.device_token)
            err = await _ended(call, within_s=5.0)
        assert err.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in (err.details() or "")
        assert not srv.server.servicer.sessions  # the session is gone, not only its call


async def test_at_max_sessions_a_device_resumes_and_takes_over_its_own_session(tmp_path, tts):
    async with secure_server(tmp_path, tts, server={"max_sessions": 1}) as srv:
        mine = await _pair(srv, await srv.issue(), "mine")
        other = await _pair(srv, await srv.issue(), "other")
        async with srv.channel() as a, srv.channel() as b, srv.channel() as c:
            # The first call went silent (the phone changed networks); the server has not
            # noticed and still counts it when the phone comes back on another connection.
            stale = await _converse(a, mine.device_token)
            ready = await _ready(stale)
            md = (("authorization", f"Bearer {mine.device_token}"),)
            resumed = pb_grpc.CompanionStub(b).Converse(metadata=md)
            await resumed.write(session_start(resume_token=ready.resume_token))
            assert (await _ready(resumed)).session_id == ready.session_id
            err = await _ended(stale)
            assert err.code() is grpc.StatusCode.ABORTED
            # A new session from the same device takes over the one it has.
            fresh = await _converse(c, mine.device_token)
            assert (await _ready(fresh)).session_id != ready.session_id
            err = await _ended(resumed)
            assert err.code() is grpc.StatusCode.ABORTED
            assert "took over" in (err.details() or "")
            # Another device is still held to the limit.
            refused = await _converse(a, other.device_token)
            err = await _ended(refused)
            assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_sessions" in (err.details() or "")
            fresh.cancel()


async def test_a_resume_token_of_another_device_is_permission_denied(tmp_path, tts):
    async with secure_server(tmp_path, tts) as srv:
        owner = await _pair(srv, await srv.issue(), "owner")
        thief = await _pair(srv, await srv.issue(), "thief")
        async with srv.channel() as ch:
            call = await _converse(ch, owner.device_token)
            ready = await _ready(call)
            md = (("authorization", f"Bearer {thief.device_token}"),)
            stolen = pb_grpc.CompanionStub(ch).Converse(metadata=md)
            await stolen.write(session_start(resume_token=ready.resume_token))
            err = await _ended(stolen)
            assert err.code() is grpc.StatusCode.PERMISSION_DENIED
            assert "another device" in (err.details() or "")
            assert not call.done()  # the owner's session goes on
            call.cancel()


async def test_a_second_connection_of_a_device_aborts_the_first_with_why(tmp_path, tts):
    async with secure_server(tmp_path, tts) as srv:
        grant = await _pair(srv, await srv.issue())
        async with srv.channel() as a, srv.channel() as b:
            first = await _converse(a, grant.device_token)
            await _ready(first)
            second = await _converse(b, grant.device_token)
            await _ready(second)
            err = await _ended(first)
            assert err.code() is grpc.StatusCode.ABORTED
            assert "a newer connection from this device took over" in (err.details() or "")
            assert not second.done()
            second.cancel()


async def test_a_restarted_server_knows_its_devices_and_keeps_its_certificate(tmp_path, tts):
    async with secure_server(tmp_path, tts) as first:
        grant = await _pair(first, await first.issue())
        pem = first.cert_pem
    async with secure_server(tmp_path, tts) as again, again.channel() as ch:
        assert again.cert_pem == pem  # the bridge's pin still holds
        call = await _converse(ch, grant.device_token)
        assert await _first_event(call) == "session_ready"
        call.cancel()
        [device] = await asyncio.to_thread(again.pairing.list_devices)
        assert device.id == grant.device_id
