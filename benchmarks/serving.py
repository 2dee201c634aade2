"""``murmur serve --model scripted:…`` in a subprocess, for the benchmarks that need a
live server with the machine's cores to itself (bench_sessions, fuzz_server)."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def start_scripted_server(script: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """The server process and its address; loopback, plaintext (``--no-auth``): these
    measure sessions, not TLS. ``extra``: more ``murmur serve`` flags."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", MURMUR_SERVER_MAX_SESSIONS="1000")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--model", f"scripted:{script}",
         "--port", "0", "--no-asr", "--tts", "piper", "--log-level", "warning",
         "--no-auth", *extra],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"on ([\d.]+:\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, m.group(1)
