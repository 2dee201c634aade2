"""Who is calling: gRPC peer strings → addresses, and the keys wrong codes are counted by.

grpc 1.85 reports peers as ``ipv4:10.0.0.5:51234`` and, percent-encoded,
``ipv6:%5B::1%5D:50748``. The port changes with every connection, so a peer is its
host; an IPv6 client picks any address of its /64, so it is limited by that /64.
"""

from __future__ import annotations

import pytest

from server.pairing.codes import AttemptLimiter, peer_key
from server.transport.auth import peer_host


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:10.0.0.5:51234", "10.0.0.5"),
        ("ipv4:127.0.0.1:1", "127.0.0.1"),
        ("ipv6:[::1]:5", "::1"),
        ("ipv6:%5B::1%5D:50748", "::1"),
        ("ipv6:%5B2001:DB8:0:0::7%5D:443", "2001:db8::7"),  # one spelling per address
        ("ipv6:%5B::ffff:10.0.0.5%5D:50748", "10.0.0.5"),  # IPv4-mapped: the IPv4 client
        ("ipv6:[::ffff:192.168.1.20]:9", "192.168.1.20"),
        ("ipv6:%5Bfe80::1%25eth0%5D:50748", "fe80::1%eth0"),  # link-local, with its zone
        ("unix:/run/murmur.sock", "unix:/run/murmur.sock"),
        ("unix:", "unix:"),
        ("ipv4:not-an-address:1", "ipv4:not-an-address:1"),  # unknown: kept, never a crash
        ("", ""),
    ],
)
def test_peer_host_is_the_address_without_the_port(peer: str, host: str):
    assert peer_host(peer) == host


def test_two_connections_of_one_client_are_one_peer():
    assert peer_host("ipv6:%5B::1%5D:50748") == peer_host("ipv6:%5B::1%5D:50749")
    assert peer_host("ipv4:10.0.0.5:1") == peer_host("ipv6:%5B::ffff:10.0.0.5%5D:2")


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("10.0.0.5", "10.0.0.5"),
        ("::1", "::/64"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("unix:", "unix:"),
        ("p", "p"),
    ],
)
def test_wrong_codes_are_counted_per_ipv4_address_and_per_ipv6_64(host: str, key: str):
    assert peer_key(host) == key


def test_an_ipv6_client_cannot_dodge_the_limit_by_changing_its_address():
    limiter = AttemptLimiter(per_peer=2, overall=10**6, window_s=60)
    limiter.failed("2001:db8:1:2::10", 0.0)
    limiter.failed("2001:db8:1:2:ffff::99", 0.0)
    assert limiter.wait_s("2001:db8:1:2::7", 1.0) == (59.0, "peer")
    assert limiter.wait_s("2001:db8:1:3::10", 1.0) == (0.0, "")  # another /64 may
    limiter.forgive("2001:db8:1:2::10", 0.0)
    assert limiter.wait_s("2001:db8:1:2::7", 1.0) == (0.0, "")
