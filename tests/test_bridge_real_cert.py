"""Pinning works for any certificate, not only a Murmur server's own self-signed one.

A CA and its leaves are made here with ``cryptography``: one with SAN
``murmur.example.test`` (served as a full chain, as a real deployment does), one with
an IP SAN ``127.0.0.1``. A real ``grpc.aio`` server presents the leaf; the bridge pairs
pinned to the leaf's fingerprint and converses through ``mobile_bridge.link``. The
CA is never given to the bridge: the pin is the only trust.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.connection import LinkOptions
from mobile_bridge.errors import LinkError
from mobile_bridge.link import BridgeLink
from mobile_bridge.pairing import Invite, pair_with
from mobile_bridge.tls import SERVER_NAME, ServerPin, pinned_credentials, server_name
from tests.fakes import BRIDGE_SAY, FakeCompanion, SelfSignedCert, companion_server
from tests.fakes import self_signed_cert as murmur_own_cert

START = pb.SessionStart(mode=pb.MODE_GENERAL, language="en", client_name="test")
_PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class Issued:
    """A leaf a CA signed: what the server is configured with, and the leaf's pin."""

    leaf_pem: bytes
    chain_pem: bytes  # leaf then CA: `[server] tls_cert` as a real deployment has it
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        der = x509.load_pem_x509_certificate(self.leaf_pem).public_bytes(serialization.Encoding.DER)
        return hashlib.sha256(der).hexdigest()

    def served(self, *, chain: bool = True) -> SelfSignedCert:
        """The shape ``companion_server(tls=…)`` takes (it reads only the two PEMs)."""
        return SelfSignedCert(self.chain_pem if chain else self.leaf_pem, self.key_pem)


class TestCA:
    __test__ = False  # (a helper, not a test class)

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Murmur Test CA")])
        self.cert = (
            self._builder(self.name, self.key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, sans: list[x509.GeneralName] | None, common_name: str | None = None) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
        )
        builder = self._builder(subject, key).add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        leaf = builder.sign(self.key, hashes.SHA256()).public_bytes(_PEM)
        return Issued(
            leaf,
            leaf + self.cert.public_bytes(_PEM),
            key.private_bytes(
                _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )

    def _builder(
        self, subject: x509.Name, key: ec.EllipticCurvePrivateKey
    ) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )


DNS = x509.DNSName
IP = x509.IPAddress
LOOPBACK = ipaddress.ip_address("127.0.0.1")


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


async def _pair_and_converse(issued: Issued, *, chain: bool, host: str | None = None) -> None:
    """`murmur-bridge pair` against the server holding ``issued``, then one exchange."""
    fake = FakeCompanion(token="tok-phone")
    async with companion_server(fake, tls=issued.served(chain=chain)) as target:
        if host is not None:
            target = f"{host}:{target.rsplit(':', 1)[1]}"
        invite = Invite(fake.pair_code, (target,), issued.fingerprint)
        pairing = await pair_with(invite, "phone", timeout_s=5.0)
        assert (pairing.token, pairing.fingerprint) == ("tok-phone", issued.fingerprint)
        assert pairing.certificate_pem.encode() == issued.leaf_pem
        assert [r.code for r in fake.pairs] == [fake.pair_code]

        status: list[str] = []
        link = BridgeLink(
            LinkOptions(target=target, token=pairing.token, pin=pairing.pin),
            START,
            on_status=status.append,
        )
        events: list[pb.ServerEvent] = []

        async def receive() -> None:
            async for ev in link.events():
                events.append(ev)
                if ev.HasField("audio_out") and ev.audio_out.last:
                    await link.close()

        task = asyncio.create_task(receive())
        await link.send(
            pb.ClientEvent(video_frame=pb.VideoFrame(seq=0, encoding=pb.VIDEO_ENCODING_JPEG))
        )
        await asyncio.wait_for(task, 10)

    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[:3] == ["session_ready", "tick", "speech"] and kinds[-1] == "audio_out"
    assert events[2].speech.text == BRIDGE_SAY
    assert fake.metadata[-1]["authorization"] == "Bearer tok-phone"
    assert link.reconnects == 0 and status == []


async def test_a_ca_issued_certificate_named_by_dns_pairs_and_converses(ca: TestCA):
    # Reached at 127.0.0.1, which this certificate does not name: the pin vouches for it.
    issued = ca.issue([DNS("murmur.example.test")])
    await _pair_and_converse(issued, chain=True)


async def test_a_ca_issued_certificate_named_by_ip_pairs_and_converses(ca: TestCA):
    issued = ca.issue([IP(LOOPBACK)], common_name="murmur ip leaf")
    await _pair_and_converse(issued, chain=False)


async def test_the_pairing_address_is_the_name_asked_for_when_the_certificate_holds_it(
    ca: TestCA,
):
    issued = ca.issue([DNS("murmur.example.test"), DNS("localhost")])
    assert server_name(issued.leaf_pem.decode(), "localhost") == "localhost"
    await _pair_and_converse(issued, chain=True, host="localhost")


async def test_another_leaf_of_the_same_ca_with_the_same_name_is_refused(ca: TestCA):
    paired, impostor = (
        ca.issue([DNS("murmur.example.test")]),
        ca.issue([DNS("murmur.example.test")]),
    )
    fake = FakeCompanion()
    async with companion_server(fake, tls=impostor.served()) as target:
        with pytest.raises(LinkError) as info:
            await pair_with(Invite(fake.pair_code, (target,), paired.fingerprint), "phone")
        pin = ServerPin(paired.fingerprint, paired.leaf_pem.decode())
        link = BridgeLink(LinkOptions(target=target, token="t", pin=pin), START)
        with pytest.raises(LinkError) as again:
            async for _ in link.events():
                pass
    for e in (info.value, again.value):
        msg = str(e)
        assert "refusing" in msg and not e.retryable
        assert paired.fingerprint in msg and impostor.fingerprint in msg
    assert fake.pairs == [] and fake.calls == []  # the code never left the bridge


# ------------------------------------------------------------------ which name is asked for


@pytest.mark.parametrize(
    ("sans", "common_name", "host", "name"),
    [
        ([DNS("murmur.example.test")], None, "127.0.0.1", "murmur.example.test"),
        (
            [DNS("a.example.test"), DNS("MURMUR.example.test")],
            None,
            "Murmur.Example.Test",
            "murmur.example.test",
        ),
        ([DNS("*.example.test")], None, "glasses.example.test", "glasses.example.test"),
        ([DNS("*.example.test")], None, "10.0.0.5", f"{SERVER_NAME}.example.test"),
        ([DNS("*.example.test")], None, "a.b.example.test", f"{SERVER_NAME}.example.test"),
        ([IP(LOOPBACK), DNS("murmur.example.test")], None, "127.0.0.1", "127.0.0.1"),
        ([IP(LOOPBACK)], None, "10.0.0.5", "127.0.0.1"),
        ([IP(ipaddress.ip_address("::1"))], None, "0:0::1", "::1"),
        (None, "murmur.example.test", "10.0.0.5", "murmur.example.test"),
        (
            [DNS("murmur.example.test")],
            "ignored.example.test",
            "ignored.example.test",
            "murmur.example.test",
        ),
        (None, None, "127.0.0.1", None),
    ],
)
def test_the_name_asked_for_is_one_the_certificate_holds(ca, sans, common_name, host, name):
    assert server_name(ca.issue(sans, common_name).leaf_pem.decode(), host) == name


def test_murmurs_own_certificate_is_asked_for_as_before():
    pem = murmur_own_cert().cert_pem.decode()
    assert server_name(pem, "127.0.0.1") == "127.0.0.1"
    assert server_name(pem, "192.168.1.20") == SERVER_NAME  # a LAN address it does not name
    assert server_name(pem, "murmur-server") == SERVER_NAME


def test_a_certificate_that_names_no_host_is_a_clear_error(ca: TestCA):
    with pytest.raises(LinkError, match=r"names no host.*subjectAltName") as info:
        pinned_credentials(ca.issue(None).leaf_pem.decode(), "127.0.0.1:1")
    assert not info.value.retryable and info.value.code is None
