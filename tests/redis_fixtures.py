"""A real ``redis-server`` for the fleet's tests: its own process on a free loopback
port, its files in the test's tmp dir, nothing persisted.

scripts/install-system-deps.sh installs it (Debian ``redis-server``), so CI always has
it: there (``CI`` set) a missing binary fails; elsewhere the tests that need it skip,
saying how to install it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["REDIS_SERVER", "redis_url"]

REDIS_SERVER = shutil.which("redis-server")
MISSING = "redis-server is not installed: run scripts/install-system-deps.sh (apt redis-server)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    assert REDIS_SERVER is not None
    for _ in range(5):  # another process may take the free port before redis binds it
        port = _free_port()
        proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--logfile", str(folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return proc, port
            except OSError:
                time.sleep(0.05)
        proc.kill()
        proc.wait()
    raise RuntimeError(f"redis-server did not start; see {folder / 'redis.log'}")


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """``redis://127.0.0.1:PORT/0`` of a redis-server that lives as long as the test."""
    if REDIS_SERVER is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    folder = tmp_path / "redis"
    folder.mkdir()
    proc, port = _start(folder)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
