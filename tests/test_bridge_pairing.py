"""Pairing from the bridge's side: the ``murmur://`` link, the owner-only pairings
file, TLS pinned to the certificate learned at pairing, and the errors a person sees.

Servers are the in-test ``FakeCompanion`` on loopback with a certificate made here
(SAN ``murmur-server``), so nothing depends on the server's own pairing code.
"""

from __future__ import annotations

import asyncio
import logging
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlencode

import grpc
import pytest

from mobile_bridge.cli import main as bridge_main
from mobile_bridge.connection import LinkOptions, connect, hear_refusal
from mobile_bridge.errors import LinkError, explain_status
from mobile_bridge.pairing import ConnectFlags, link_options, parse_invite
from mobile_bridge.synth import write_synthetic_clip
from mobile_bridge.tls import ServerPin
from mobile_bridge.tokens import (
    Pairing,
    PairingFileError,
    find_pairing,
    load_pairings,
    remove_pairing,
    save_pairing,
)
from server.pairing.uri import parse_pairing_uri
from tests.fakes import FakeCompanion, SelfSignedCert, companion_server, self_signed_cert

T = TypeVar("T")
FP = "ab" * 32


@pytest.fixture(scope="module")
def cert() -> SelfSignedCert:
    return self_signed_cert()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("MURMUR_TOKEN", raising=False)
    return tmp_path / "cfg" / "murmur" / "bridge.toml"


def _uri(code: str, fp: str, *addrs: str) -> str:
    return "murmur://pair?" + urlencode([("code", code), ("fp", fp)] + [("addr", a) for a in addrs])


def _serving(fake: FakeCompanion, tls: SelfSignedCert | None, fn: Callable[[str], T]) -> T:
    """``fn(address)`` on a thread (the CLI runs its own event loop) while serving."""

    async def go() -> T:
        async with companion_server(fake, tls=tls) as target:
            return await asyncio.to_thread(fn, target)

    return asyncio.run(go())


def _pairing(cert: SelfSignedCert, *addresses: str, token: str = "tok") -> Pairing:
    return Pairing(
        addresses=addresses,
        fingerprint=cert.fingerprint,
        certificate_pem=cert.cert_pem.decode(),
        device_id="dev-1",
        token=token,
        device_name="phone ✓ \x7f",
    )


# ------------------------------------------------------------------ the pairing link


def test_a_pairing_link_gives_code_fingerprint_and_addresses_in_order():
    inv = parse_invite(_uri("ABCD-EFGH", FP.upper(), "10.0.0.2:50051", "[::1]:50051"))
    assert (inv.code, inv.fingerprint) == ("ABCD-EFGH", FP)
    assert inv.addresses == ("10.0.0.2:50051", "[::1]:50051")
    again = parse_invite(_uri("C", FP, "10.0.0.2:50051"), server="h:1")
    assert again.addresses == ("h:1", "10.0.0.2:50051")  # --server first


@pytest.mark.parametrize(
    ("text", "server", "says"),
    [
        ("ABCD-EFGH", None, "needs --server"),
        ("murmur://pair?code=X&addr=h:1", None, "no certificate fingerprint"),
        ("murmur://pair?fp=" + FP + "&addr=h:1", None, "no code"),
        ("murmur://pair?code=X&fp=" + FP, None, "names no server address"),
        ("murmur://pair?code=X&fp=abc&addr=h:1", None, "64 hex digits"),
        ("murmur://pair?code=X&fp=" + FP + "&addr=nohost", None, "HOST:PORT"),
        ("murmur://other?code=X", None, "not a Murmur pairing link"),
    ],
)
def test_a_bad_pairing_link_says_what_is_wrong(text, server, says):
    with pytest.raises(ValueError, match=says):
        parse_invite(text, server)


@pytest.mark.parametrize(
    "link",
    [
        "murmur://other?code=SECRET-CODE&fp=" + FP + "&addr=h:1",
        "murmur://SECRET-CODE",
        "murmur:pair?code=SECRET-CODE",
        "murmur://pair?code=SECRET-CODE&fp=abc",
        "murmur://pair?code=SECRET-CODE&fp=" + FP,
    ],
)
def test_a_bad_pairing_link_is_never_repeated_with_its_code(link: str):
    # Both readers of the link: the bridge's and the server's own (`murmur pair`'s).
    for parse in (parse_invite, parse_pairing_uri):
        with pytest.raises(ValueError) as info:
            parse(link)
        msg = str(info.value)
        assert "SECRET" not in msg and link not in msg and msg, (parse, msg)


# ------------------------------------------------------------------ the pairings file


def test_the_pairings_file_is_owner_only_and_round_trips(tmp_path: Path, cert: SelfSignedCert):
    path = tmp_path / "murmur" / "bridge.toml"
    p = _pairing(cert, "127.0.0.1:1", "10.0.0.2:1")
    save_pairing(p, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_pairings(path) == [p]
    assert find_pairing("10.0.0.2:1", path) == p and find_pairing(None, path) == p
    assert find_pairing("other:1", path) is None
    assert "tok" not in repr(p) and "CERTIFICATE" not in repr(p)


def test_pairing_again_replaces_the_entry_and_unpair_removes_it(tmp_path: Path):
    path = tmp_path / "bridge.toml"
    a, b = self_signed_cert(), self_signed_cert()
    save_pairing(_pairing(a, "h:1"), path)
    save_pairing(_pairing(b, "k:2"), path)
    with pytest.raises(PairingFileError, match="paired with 2 servers; pass --server"):
        find_pairing(None, path)
    _, replaced = save_pairing(_pairing(a, "h:1", "h:3", token="tok2"), path)
    assert [r.fingerprint for r in replaced] == [a.fingerprint]
    assert [p.token for p in load_pairings(path)] == ["tok", "tok2"]
    assert remove_pairing("k:2", path).fingerprint == b.fingerprint
    assert [p.addresses for p in load_pairings(path)] == [("h:1", "h:3")]
    with pytest.raises(PairingFileError, match="not paired with k:2"):
        remove_pairing("k:2", path)


def test_a_damaged_pairings_file_is_a_clear_error(tmp_path: Path, cert: SelfSignedCert):
    path = tmp_path / "bridge.toml"
    path.write_text("servers = [", encoding="utf-8")
    with pytest.raises(PairingFileError, match="not valid TOML"):
        load_pairings(path)
    with pytest.raises(PairingFileError):  # nor is it silently replaced
        save_pairing(_pairing(cert, "h:1"), path)
    path.unlink()
    save_pairing(_pairing(cert, "h:1"), path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(cert.fingerprint, "0" * 64, 2), encoding="utf-8")
    with pytest.raises(PairingFileError, match="edited or damaged"):
        load_pairings(path)


# ------------------------------------------------------------------ how to connect


def test_connect_flags_resolve_to_pinned_tls_insecure_or_a_clear_error(
    config: Path, cert: SelfSignedCert
):
    with pytest.raises(LinkError, match=r"pair first: murmur-bridge pair .*--insecure"):
        link_options(ConnectFlags(), default_server="127.0.0.1:50051")
    dev = link_options(ConnectFlags(insecure=True), default_server="127.0.0.1:50051")
    assert (dev.target, dev.pin, dev.tls, dev.token) == ("127.0.0.1:50051", None, False, None)
    with pytest.raises(LinkError, match="plaintext to this machine only"):
        link_options(ConnectFlags(server="10.0.0.9:1", insecure=True), default_server="x:1")

    save_pairing(_pairing(cert, "10.0.0.2:1", "127.0.0.1:1"))
    paired = link_options(ConnectFlags(), default_server="127.0.0.1:50051")
    assert paired.addresses == ("10.0.0.2:1", "127.0.0.1:1") and paired.token == "tok"
    assert paired.pin == ServerPin(cert.fingerprint, cert.cert_pem.decode())
    chosen = link_options(ConnectFlags(server="127.0.0.1:1"), default_server="x:1")
    assert chosen.addresses == ("127.0.0.1:1", "10.0.0.2:1")
    # A stored token never goes out in plaintext.
    assert link_options(ConnectFlags(insecure=True), default_server="127.0.0.1:1").token is None
    with pytest.raises(LinkError, match=r"not paired with 10\.9\.9\.9:1"):
        link_options(ConnectFlags(server="10.9.9.9:1"), default_server="x:1")
    ca = link_options(ConnectFlags(tls=True, ca="ca.pem"), default_server="x:1")
    assert (ca.tls, ca.ca_file, ca.pin, ca.token) == (True, "ca.pem", None, "tok")


# ------------------------------------------------------------------ pair, replay, unpair


def test_pair_with_the_link_then_replay_uses_the_pairing_then_unpair(
    config: Path,
    cert: SelfSignedCert,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.DEBUG)
    clip = write_synthetic_clip(tmp_path / "walk.mp4", 1.0, 10.0)
    fake = FakeCompanion(token="tok-phone")

    def flow(target: str) -> list[int]:
        dead = "127.0.0.1:1"  # the first address in the link does not answer
        link = _uri("123456", cert.fingerprint, dead, target)
        return [
            bridge_main(["pair", link, "--name", "phone"]),
            bridge_main(["replay", str(clip), "--fps", "2", "--speed", "4", "--linger", "0.3"]),
        ]

    assert _serving(fake, cert, flow) == [0, 0]
    out, err = capfd.readouterr()
    assert "paired with 127.0.0.1:" in out and f"certificate fingerprint {cert.fingerprint}" in out
    assert "readable by you only" in out
    (p,) = load_pairings(config)
    assert (
        p.addresses[0] != "127.0.0.1:1" and p.addresses[1] == "127.0.0.1:1"
    )  # what answered first
    assert (p.token, p.device_id, p.fingerprint) == ("tok-phone", "dev-1", cert.fingerprint)
    assert p.certificate_pem == cert.cert_pem.decode()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert [r.code for r in fake.pairs] == ["123456"]
    assert fake.metadata[-1]["authorization"] == "Bearer tok-phone"
    assert fake.calls and fake.calls[-1][0].HasField("session_start")
    assert "Door ahead" in out  # the replay got speech over pinned TLS

    assert bridge_main(["unpair"]) == 0
    out2, err2 = capfd.readouterr()
    assert f"unpaired from {p.addresses[0]}" in out2 and load_pairings(config) == []
    everything = out + err + out2 + err2 + caplog.text
    assert "tok-phone" not in everything  # the token stays in the owner-only file


def test_a_wrong_fingerprint_is_refused_before_the_code_is_sent(
    config: Path, cert: SelfSignedCert, capfd: pytest.CaptureFixture[str]
):
    fake = FakeCompanion()
    rc = _serving(fake, cert, lambda t: bridge_main(["pair", _uri("123456", FP, t)]))
    assert rc == 1 and fake.pairs == [] and not config.exists()
    err = capfd.readouterr().err
    assert cert.fingerprint in err and FP in err and "refusing" in err


def test_a_bare_code_needs_the_fingerprint_confirmed(
    config: Path,
    cert: SelfSignedCert,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    fake = FakeCompanion()
    rc = _serving(fake, cert, lambda t: bridge_main(["pair", "123456", "--server", t]))
    out, err = capfd.readouterr()
    assert rc == 1 and fake.pairs == [] and cert.fingerprint in out
    assert "pass --fingerprint HEX" in err and "not paired" in err

    grouped = ":".join(cert.fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    rc = _serving(
        fake,
        cert,
        lambda t: bridge_main(["pair", "123456", "--server", t, "--fingerprint", grouped]),
    )
    assert rc == 0 and [p.fingerprint for p in load_pairings(config)] == [cert.fingerprint]
    rc = _serving(fake, cert, lambda t: bridge_main(["pair", "999", "--server", t, "--yes"]))
    assert rc == 1 and "wrong pairing code" in capfd.readouterr().err


async def test_a_server_whose_certificate_changed_is_refused_with_both_fingerprints(
    cert: SelfSignedCert,
):
    other = self_signed_cert()
    async with companion_server(FakeCompanion(), tls=other) as target:
        opts = LinkOptions(target=target, pin=ServerPin(cert.fingerprint, cert.cert_pem.decode()))
        with pytest.raises(LinkError) as info:
            await connect(opts)
    msg = str(info.value)
    assert other.fingerprint in msg and cert.fingerprint in msg and not info.value.retryable


# ------------------------------------------------------------------ errors a person can act on


async def test_plaintext_against_tls_and_tls_against_plaintext_say_tls(cert: SelfSignedCert):
    async with companion_server(FakeCompanion(), tls=cert) as tls_target:
        with pytest.raises(LinkError, match=r"speaks TLS.*murmur-bridge pair.*--tls"):
            await connect(LinkOptions(target=tls_target, connect_timeout_s=2))
    async with companion_server(FakeCompanion()) as plain:
        pin = ServerPin(cert.fingerprint, cert.cert_pem.decode())
        with pytest.raises(
            LinkError, match=r"not using TLS \(started with --no-auth\?\).*--insecure"
        ):
            await connect(LinkOptions(target=plain, pin=pin, connect_timeout_s=2))
        with pytest.raises(LinkError, match="not using TLS"):
            await connect(LinkOptions(target=plain, tls=True, connect_timeout_s=2))


def test_status_details_become_advice():
    u = grpc.StatusCode.UNAVAILABLE
    assert "speaks TLS" in explain_status(u, "ipv4:1.2.3.4:5: Socket closed", "h:1", tls=False)
    assert "not using TLS" in explain_status(
        u, "Tls handshake failed (TSI_PROTOCOL_FAILURE): WRONG_VERSION_NUMBER", "h:1", tls=True
    )
    assert "does not trust" in explain_status(u, "CERTIFICATE_VERIFY_FAILED", "h:1", tls=True)
    msg = explain_status(grpc.StatusCode.UNAUTHENTICATED, "the device token is not valid", "h:1")
    assert "missing or was revoked" in msg and "murmur-bridge pair" in msg


def test_unauthenticated_replay_says_pair_again(
    config: Path, cert: SelfSignedCert, tmp_path: Path, capfd: pytest.CaptureFixture[str]
):
    clip = write_synthetic_clip(tmp_path / "walk.mp4", 1.0, 10.0)
    save_pairing(_pairing(cert, "127.0.0.1:1", token="revoked-token"))
    fake = FakeCompanion(token="the-real-one")

    def replay(target: str) -> int:
        return bridge_main(["replay", str(clip), "--server", target, "--speed", "4"])

    # --server that is not in the pairing: said so, nothing sent
    assert _serving(fake, cert, replay) == 2
    assert "not paired with" in capfd.readouterr().err
    p = load_pairings(config)[0]

    def replay_paired(target: str) -> int:
        save_pairing(Pairing((target,), p.fingerprint, p.certificate_pem, "d", "revoked-token"))
        return bridge_main(["replay", str(clip), "--speed", "4"])

    assert _serving(fake, cert, replay_paired) == 1
    out, err = capfd.readouterr()
    assert "missing or was revoked" in err and "murmur-bridge pair" in err
    assert "revoked-token" not in out + err


async def test_a_refusal_is_heard_on_a_call_that_writes_nothing():
    # What the link asks when its first write came back as the core's INTERNAL
    # (grpc/grpc#36066): a refusing server answers at once, an accepting one waits.
    fake = FakeCompanion(token="the-real-one")
    async with companion_server(fake) as target, grpc.aio.insecure_channel(target) as channel:
        refused = await hear_refusal(channel, (("authorization", "Bearer revoked"),), 5.0)
        assert refused is not None and refused.code() is grpc.StatusCode.UNAUTHENTICATED
        welcome = (("authorization", "Bearer the-real-one"),)
        assert await hear_refusal(channel, welcome, 0.2) is None
