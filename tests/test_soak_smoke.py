"""benchmarks/soak.py works: both phases run on the fast clock and every sample is taken.

A few minutes of session time with the scripted model (seconds of wall time). No
timing or memory assertion: on a shared CI machine those belong to the benchmark run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _soak_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("soak", ROOT / "benchmarks" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_the_soak_samples_both_phases_with_the_scripted_model() -> None:
    soak = _soak_module()
    options = soak.SoakOptions(
        model="scripted", minutes=3.0, warmup_s=30.0, mid_minute=1.0, ask_every_s=20.0,
        cycles=4, cycle_s=3.0, cycle_warmup=2, tolerance=10.0,
    )  # fmt: skip
    result = soak.run_soak(options)
    labels = [s.label for s in result.samples]
    assert labels == [
        "server started",
        "warm-up",
        "minute 1",
        "minute 3",
        "session closed",
        "after 2 open/close",
        "after 4 open/close",
    ]
    for s in result.samples:
        assert s.rss_mb > 0 and s.threads >= 1 and s.fds >= 3
    # The scripted model holds no KV cache (the gauge is the process's: compare).
    assert len({s.kv_bytes for s in result.samples}) == 1
    assert [s.at_s for s in result.samples[:4]] == [0.0, 30.0, 60.0, 179.5]
    # The session ran on the fast clock: a tick a second, and the script spoke.
    assert result.sent["SessionReady"] == 5
    assert result.sent["TickTrace"] >= 170
    assert result.sent["Speech"] >= 3 and result.sent["AudioOut"] > 0
    assert result.failures == []  # tolerance 10: only a broken check (KV, fds) could fail
    lines: list[str] = []
    soak.print_table(result, lines.append)
    assert len(lines) == 1 + len(labels) and lines[0].split()[:2] == ["sample", "virtual"]
