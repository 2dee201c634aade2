"""PairingService on a real SQLite registry and a manual clock: codes, tokens, limits."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from pathlib import Path

import pytest

from server.errors import PairingDenied, PairingMalformed, PairingRateLimited
from server.pairing import codes as codes_mod
from server.pairing import tokens as tokens_mod
from server.pairing.codes import ALPHABET, CODE_LENGTH, AttemptLimiter, normalize_code
from server.pairing.service import PairingService
from server.pairing.tls import ensure_self_signed, fingerprint
from server.pairing.uri import pairing_uri, parse_pairing_uri, reachable_addresses
from server.storage.sqlite import DB_NAME, SqliteDeviceStore
from tests.fakes import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def service(tmp_path: Path, clock: ManualClock):
    svc = PairingService(SqliteDeviceStore(tmp_path / DB_NAME), clock=clock.time)
    yield svc
    svc.close()


async def _issue(svc: PairingService, ttl_s: float = 600.0, name: str = "") -> str:
    issued = await asyncio.get_running_loop().run_in_executor(None, svc.issue_code, ttl_s, name)
    return issued.code


def _wrong_code(i: int) -> str:
    raw = "".join(ALPHABET[(i >> (5 * k)) % 32] for k in range(CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


def test_codes_are_40_bits_from_an_unambiguous_alphabet():
    assert len(ALPHABET) ** CODE_LENGTH >= 2**40
    assert not set("01OI") & set(ALPHABET)
    code = codes_mod.new_code()
    assert len(code) == 9 and code[4] == "-" and normalize_code(code) == code.replace("-", "")
    assert normalize_code(" " + code.lower().replace("-", " ")) == code.replace("-", "")
    assert normalize_code("ABCD-EFG0") is None and normalize_code("x" * 10_000) is None


async def test_a_code_pairs_once_and_the_token_verifies(service, clock):
    code = await _issue(service, name="Frame glasses")
    grant = await service.pair(code, "Pixel 8", "10.0.0.5")
    assert grant.token.startswith(grant.device_id + ".") and grant.token not in repr(grant)
    assert await service.verify(grant.token, "10.0.0.5") == grant.device_id
    with pytest.raises(PairingDenied, match="already used"):
        await service.pair(code, "Pixel 8", "10.0.0.5")
    [device] = await asyncio.to_thread(service.list_devices)
    assert device.name == "Frame glasses"  # the name `murmur pair --name` gave wins
    assert (device.last_seen, device.last_address) == (clock.time(), "10.0.0.5")


async def test_a_code_expires(service, clock):
    code = await _issue(service, ttl_s=60)
    clock.now += 60
    with pytest.raises(PairingDenied, match="expired"):
        await service.pair(code, "phone", "10.0.0.5")


async def test_malformed_requests_are_invalid_argument_errors(service):
    with pytest.raises(PairingMalformed, match="8 letters and digits"):
        await service.pair("12", "phone", "p")
    with pytest.raises(PairingMalformed, match="8 letters and digits"):
        await service.pair("A" * 1_000_000, "phone", "p")
    with pytest.raises(PairingMalformed, match="longer than 64"):
        await service.pair("ABCD-EFGH", "n" * 65, "p")
    with pytest.raises(PairingMalformed, match="control characters"):
        await service.pair("ABCD-EFGH", "bad\x00name", "p")


async def test_wrong_codes_are_limited_per_peer_then_the_wait_ends(service, clock):
    for i in range(codes_mod.PEER_FAILURES):
        with pytest.raises(PairingDenied, match="not valid"):
            await service.pair(_wrong_code(i), "phone", "10.0.0.9")
    good = await _issue(service)
    with pytest.raises(PairingRateLimited, match=r"from this address; wait 60 s") as err:
        await service.pair(good, "phone", "10.0.0.9")  # even the right code: no oracle
    assert err.value.retry_after_s == pytest.approx(60.0)
    assert (await service.pair(good, "phone", "10.0.0.10")).device_id  # another peer may
    clock.now += 30
    with pytest.raises(PairingRateLimited, match="wait 30 s"):
        await service.pair(_wrong_code(99), "phone", "10.0.0.9")
    clock.now += 30
    with pytest.raises(PairingDenied):
        await service.pair(_wrong_code(100), "phone", "10.0.0.9")


async def test_a_thousand_wrong_codes_pair_nothing_and_are_rate_limited(service, clock):
    live = await _issue(service)
    outcomes: dict[str, int] = {}
    for i in range(1000):
        peer = f"10.1.{i // 250}.{i % 250}"  # spread over many peers: the global limit holds
        code = _wrong_code(i * 7919)
        if code == live:
            continue
        try:
            await service.pair(code, "attacker", peer)
            outcomes["paired"] = outcomes.get("paired", 0) + 1
        except PairingRateLimited as e:
            assert "sent to this server" in e.message and "wait" in e.message
            outcomes["limited"] = outcomes.get("limited", 0) + 1
        except PairingDenied:
            outcomes["denied"] = outcomes.get("denied", 0) + 1
        clock.now += 0.01
    assert "paired" not in outcomes
    assert outcomes["denied"] == codes_mod.GLOBAL_FAILURES
    assert outcomes["limited"] >= 1000 - codes_mod.GLOBAL_FAILURES - 1
    assert await asyncio.to_thread(service.list_devices) == []


async def test_concurrent_wrong_codes_cannot_slip_past_the_limit(service):
    results = await asyncio.gather(
        *(service.pair(_wrong_code(i), "x", "10.0.0.1") for i in range(50)),
        return_exceptions=True,
    )
    denied = [r for r in results if isinstance(r, PairingDenied)]
    assert len(denied) == codes_mod.PEER_FAILURES
    assert all(isinstance(r, PairingDenied | PairingRateLimited) for r in results)


def test_the_limiter_forgets_peers_beyond_its_bound():
    limiter = AttemptLimiter(per_peer=1, overall=10**9, window_s=60)
    for i in range(codes_mod.MAX_PEERS + 5):
        limiter.failed(f"p{i}", 0.0)
    assert len(limiter._peers) == codes_mod.MAX_PEERS
    assert limiter.wait_s(f"p{codes_mod.MAX_PEERS + 4}", 1.0)[1] == "peer"


async def test_tokens_are_stored_only_as_hashes(service, tmp_path):
    code = await _issue(service)
    grant = await service.pair(code, "phone", "p")
    secret = grant.token.split(".", 1)[1]
    service.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(DB_NAME))
    assert secret.encode() not in blob and grant.token.encode() not in blob
    assert code.encode() not in blob and code.replace("-", "").encode() not in blob
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in blob


async def test_verify_compares_in_constant_time_and_refuses_bad_tokens(service, monkeypatch):
    grant = await service.pair(await _issue(service), "phone", "p")
    calls: list[tuple[bytes, bytes]] = []
    real = tokens_mod.hmac.compare_digest

    def spy(a, b):  # type: ignore[no-untyped-def]
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens_mod.hmac, "compare_digest", spy)
    assert await service.verify(grant.token, "p") == grant.device_id
    wrong = grant.token[:-2] + ("AA" if not grant.token.endswith("AA") else "BB")
    assert await service.verify(wrong, "p") is None
    assert len(calls) == 2
    for bad in ("", "no-dot", ".x", "x.", "ghost.secret", "é.x", "a." + "x" * 500):
        assert await service.verify(bad, "p") is None


async def test_a_revoked_token_stops_working(service):
    grant = await service.pair(await _issue(service), "phone", "p")
    assert await asyncio.to_thread(service.revoke, grant.device_id)
    assert not await asyncio.to_thread(service.revoke, grant.device_id)
    assert await service.verify(grant.token, "p") is None
    assert await service.revoked_ids() == frozenset({grant.device_id})


async def test_last_seen_is_written_at_most_once_a_minute(service, clock, monkeypatch):
    grant = await service.pair(await _issue(service), "phone", "a")
    writes: list[str] = []
    real = service.store.touch
    monkeypatch.setattr(
        service.store, "touch", lambda d, t, a: (writes.append(a), real(d, t, a))[1]
    )
    for _ in range(5):
        await service.verify(grant.token, "a")
        clock.now += 1
    await service.verify(grant.token, "b")  # a new address is written at once
    clock.now += 61
    await service.verify(grant.token, "b")
    assert writes == ["a", "b", "b"]


async def test_store_calls_never_run_on_the_event_loop(service, monkeypatch):
    loop_thread = threading.get_ident()
    seen: list[int] = []
    real = service.store.device
    monkeypatch.setattr(
        service.store, "device", lambda d: (seen.append(threading.get_ident()), real(d))[1]
    )
    grant = await service.pair(await _issue(service), "phone", "p")
    await service.verify(grant.token, "p")
    assert seen and loop_thread not in seen


def test_issue_code_bounds_its_lifetime(service):
    with pytest.raises(ValueError):
        service.issue_code(0)
    with pytest.raises(ValueError):
        service.issue_code(25 * 3600)


def test_fingerprint_and_uri_formats(tmp_path):
    identity = ensure_self_signed(tmp_path)
    fp = fingerprint(identity.cert_pem)
    assert len(fp) == 64 and fp == fp.lower() and ":" not in fp
    assert ensure_self_signed(tmp_path).fingerprint == fp  # made once, then kept
    assert (tmp_path / "server.key").stat().st_mode & 0o777 == 0o600
    uri = pairing_uri("ABCD-EFGH", fp, ["192.168.1.20:50051", "[fe80::1]:50051"])
    assert uri == (
        f"murmur://pair?code=ABCD-EFGH&fp={fp}&addr=192.168.1.20:50051&addr=[fe80::1]:50051"
    )
    assert parse_pairing_uri(uri) == ("ABCD-EFGH", fp, ["192.168.1.20:50051", "[fe80::1]:50051"])
    assert reachable_addresses("127.0.0.1", 7) == ["127.0.0.1:7"]
    wild = reachable_addresses("0.0.0.0", 7)
    assert wild and all(a.endswith(":7") and not a.startswith("0.0.0.0") for a in wild)


async def test_a_flood_of_refused_tokens_is_logged_once_a_minute_per_peer_with_a_count(
    service, clock, caplog
):
    caplog.set_level(logging.INFO, logger="server.pairing.service")
    for i in range(100):
        assert await service.verify(f"dev{i}.wrongsecret", "2001:db8::1") is None
        clock.now += 0.1
    assert await service.verify("dev.wrongsecret", "10.0.0.7") is None  # another peer: its own
    lines = [r.getMessage() for r in caplog.records if "refused a device token" in r.getMessage()]
    assert len(lines) == 2
    clock.now += 60
    # The same /64 (an IPv6 client picks any address in it) is the same peer.
    assert await service.verify("dev.wrongsecret", "2001:db8::99") is None
    lines = [r.getMessage() for r in caplog.records if "refused a device token" in r.getMessage()]
    assert len(lines) == 3 and "99 more" in lines[-1], lines[-1]
