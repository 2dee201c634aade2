"""Pairing: one-time codes traded for device tokens, and the server's TLS identity.

Pure logic over a ``server.storage.DeviceStore``; no grpc, no SQL, no settings.
"""

from server.pairing.codes import IssuedCode
from server.pairing.service import DeviceGrant, PairingService
from server.pairing.tls import TlsIdentity, fingerprint

__all__ = ["DeviceGrant", "IssuedCode", "PairingService", "TlsIdentity", "fingerprint"]
