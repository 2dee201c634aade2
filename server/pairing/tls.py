"""The server's TLS identity: a self-signed certificate made at first start, or a real one.

The bridge pins the certificate it learned at pairing by ``fingerprint``: the lowercase
hex sha256 of the DER-encoded certificate (64 characters, no colons). The bridge
implements the same definition; change neither alone.

The certificate names ``murmur-server`` (what bridges ask for with
``grpc.ssl_target_name_override``), ``localhost``, the loopback addresses and the host's
own addresses at the time it was made; the pin, not the name, is what makes it trusted.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CERT_NAME",
    "KEY_NAME",
    "SERVER_NAME",
    "TlsIdentity",
    "ensure_self_signed",
    "fingerprint",
    "load_identity",
    "local_ipv4_addresses",
]

log = logging.getLogger(__name__)

SERVER_NAME = "murmur-server"
CERT_NAME = "server.crt"
KEY_NAME = "server.key"
VALID_DAYS = 3650  # pinned, not chained: expiry would only break paired bridges


@dataclass(frozen=True, slots=True)
class TlsIdentity:
    cert_pem: bytes
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert_pem)


def fingerprint(cert_pem: bytes | str) -> str:
    """Lowercase hex sha256 of the first certificate's DER bytes."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    pem = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    cert = x509.load_pem_x509_certificate(pem)
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def load_identity(cert_path: str | Path, key_path: str | Path) -> TlsIdentity:
    """A configured certificate and key (``[server] tls_cert``/``tls_key``)."""
    cert, key = Path(cert_path).expanduser(), Path(key_path).expanduser()
    for path, what in ((cert, "tls_cert"), (key, "tls_key")):
        if not path.is_file():
            raise FileNotFoundError(f"[server] {what} {path} does not exist")
    identity = TlsIdentity(cert.read_bytes(), key.read_bytes())
    try:
        fingerprint(identity.cert_pem)
    except ValueError as e:
        raise ValueError(f"[server] tls_cert {cert} is not a PEM certificate ({e})") from e
    return identity


def ensure_self_signed(state_dir: Path) -> TlsIdentity:
    """The state directory's certificate and key, made on first use."""
    cert, key = state_dir / CERT_NAME, state_dir / KEY_NAME
    if cert.is_file():
        if not key.is_file():
            raise FileNotFoundError(
                f"{cert} exists but its key {key} does not; delete {cert} to make a new "
                "certificate (every bridge must then pair again)"
            )
        return TlsIdentity(cert.read_bytes(), key.read_bytes())
    identity = _make_self_signed()
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The key first, then the certificate: a crash between leaves no certificate,
    # and the next start makes a fresh pair (nothing can have pinned it yet).
    _write_private(key, identity.key_pem, 0o600)
    _write_private(cert, identity.cert_pem, 0o644)
    log.info("made a self-signed TLS certificate %s (sha256 %s)", cert, identity.fingerprint)
    return identity


def _write_private(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _make_self_signed() -> TlsIdentity:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    ips = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    ips.update(ipaddress.ip_address(a) for a in local_ipv4_addresses())
    alt: list[x509.GeneralName] = [x509.DNSName(SERVER_NAME), x509.DNSName("localhost")]
    alt += [x509.IPAddress(ip) for ip in sorted(ips, key=lambda i: (i.version, int(i)))]
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return TlsIdentity(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def local_ipv4_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses, as far as cheaply known (no packets sent)."""
    found: list[str] = []
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.append(str(info[4][0]))
    except OSError:
        pass
    try:
        # Connecting a UDP socket sends nothing; it only picks the outgoing interface.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            found.append(s.getsockname()[0])
    except OSError:
        pass
    out = []
    for a in found:
        ip = ipaddress.ip_address(a)
        if not ip.is_loopback and not ip.is_unspecified and a not in out:
            out.append(a)
    return out
