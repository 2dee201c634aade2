"""Fuzz a live server: ≥ 10,000 messages by class, and a table of what survived.

Starts `murmur serve --model scripted:…` in a subprocess (no pairing, loopback) and
opens sessions, each dedicated to one class of input drawn by Hypothesis
(tests/fuzz_strategies.py), so every outcome can be attributed:

- ``valid``: what a good bridge sends;
- ``hostile``: valid protobuf, hostile values (every ClientEvent member);
- ``not_protobuf``: bytes that do not parse;
- ``oversized``: a few valid messages, then one over ``max_message_bytes``;
- ``wrong_order``: a first message that is not a usable session_start (or is one);
- ``vanishing``: a client that cancels its call mid-stream.

The first three must survive: after their messages the session resumes watching,
answers a probe text, and ends OK at the half-close. ``oversized`` must end with
RESOURCE_EXHAUSTED, ``wrong_order`` with INVALID_ARGUMENT (or start, when the first
message happens to be a good session_start: ``first_outcome``). Every call the
client did not cancel must end with a status. At the end the server must answer
its health check and serve a fresh session, and its RSS is printed before/after.

    python benchmarks/fuzz_server.py                # 600 sessions, about 10,500 messages
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fuzz_strategies

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from murmur.v1 import companion_pb2 as pb
from serving import start_scripted_server  # benchmarks/serving.py, beside this file

from tests.fuzz_strategies import (
    Wire,
    bad_protobuf,
    first_outcome,
    hostile_event,
    valid_event,
)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # [server] max_message_bytes, the default
PROBE = "fuzz probe: are you still there"
START = pb.ClientEvent(session_start=pb.SessionStart(want_trace=True, client_name="fuzz"))
RESUME = pb.ClientEvent(control=pb.Control(pause_watching=False)).SerializeToString()
ASK = pb.ClientEvent(text_input=pb.TextInput(text=PROBE)).SerializeToString()
SURVIVING = ("valid", "hostile", "not_protobuf")
CLASSES = (*SURVIVING, "oversized", "wrong_order", "vanishing")
WAIT_S = 30.0


@dataclass
class Plan:
    cls: str
    messages: list[bytes]
    expect: str  # "survive", a status code name, or "vanish"
    labels: list[str] = field(default_factory=list)  # what each drawn message was


@dataclass
class Row:
    sent: int = 0
    sessions: int = 0
    should_survive: int = 0
    survived: int = 0
    lost: int = 0  # should have survived and did not
    with_status: int = 0
    without_status: int = 0
    wrong_status: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # the first few unexpected outcomes


def draw(strategy: st.SearchStrategy[Any], n: int, at: int) -> list[Any]:
    """``n`` examples of ``strategy``, reproducible from ``at`` (Hypothesis' own
    generation, without a test to fail)."""
    out: list[Any] = []

    @seed(at)
    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: Any) -> None:
        out.append(example)

    collect()
    return out[:n]


def plans(sessions: int, messages: int, at: int) -> list[Plan]:
    out: list[Plan] = []
    by_class = {"valid": valid_event(), "hostile": hostile_event(), "not_protobuf": bad_protobuf()}
    for i, (cls, strategy) in enumerate(by_class.items()):
        batch = st.lists(strategy, min_size=messages, max_size=messages)
        for wires in draw(batch, sessions, at + i):
            raws = [START.SerializeToString(), *(w.raw for w in wires)]
            out.append(Plan(cls, raws, "survive", [w.label for w in wires]))
    lead = st.lists(valid_event(), min_size=0, max_size=4)
    big = pb.ClientEvent(video_frame=pb.VideoFrame(data=b"\xff" * (MAX_MESSAGE_BYTES + 1)))
    for wires in draw(lead, sessions, at + 10):
        raw = [w.raw for w in wires]
        out.append(Plan("oversized", [START.SerializeToString(), *raw, big.SerializeToString()],
                        "RESOURCE_EXHAUSTED"))  # fmt: skip
    first = st.one_of(valid_event(), hostile_event(), bad_protobuf())
    for w in draw(first, sessions, at + 11):
        assert isinstance(w, Wire)
        outcome = first_outcome(w.raw)
        out.append(
            Plan("wrong_order", [w.raw], "survive" if outcome == "ready" else "INVALID_ARGUMENT")
        )
    mixed = st.lists(st.one_of(valid_event(), hostile_event()), min_size=messages // 2,
                     max_size=messages)  # fmt: skip
    for wires in draw(mixed, sessions, at + 12):
        out.append(
            Plan("vanishing", [START.SerializeToString(), *(w.raw for w in wires)], "vanish")
        )
    return out


class Call:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.call: Any = channel.stream_stream(
            "/murmur.v1.Companion/Converse",
            request_serializer=lambda b: b,
            response_deserializer=pb.ServerEvent.FromString,
        )()
        self.events: list[pb.ServerEvent] = []
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while (msg := await self.call.read()) is not grpc.aio.EOF:
                self.events.append(msg)
                self.changed.set()
        except grpc.aio.AioRpcError:
            pass
        finally:
            self.changed.set()

    def ready(self) -> bool:
        return bool(self.events) and self.events[0].HasField("session_ready")

    def answered(self) -> bool:
        return any(PROBE in e.tick.user_query for e in self.events if e.HasField("tick"))

    async def until(self, pred: Any, within_s: float) -> bool:
        async with asyncio.timeout(within_s):
            while not pred() and not self.reader.done():
                self.changed.clear()
                await self.changed.wait()
        return bool(pred())

    async def write(self, raw: bytes) -> bool:
        try:
            await self.call.write(raw)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return False  # the call is over (its status says why)
        return True


async def run_plan(address: str, plan: Plan, row: Row) -> None:
    row.sessions += 1
    row.should_survive += plan.expect == "survive"
    async with grpc.aio.insecure_channel(address) as channel:
        c = Call(channel)
        for raw in plan.messages:
            if not await c.write(raw):
                break
            row.sent += 1
        if plan.expect == "vanish":
            await asyncio.sleep(0.05)
            c.call.cancel()  # the app was killed: nobody is left to get a status
            row.statuses["(cancelled by client)"] += 1
            return
        survived = False
        try:
            if plan.expect == "survive":
                # A drawn first message may be a good session_start without the
                # trace: then being ready is what there is to see.
                traced = plan.cls != "wrong_order"
                row.sent += await c.write(RESUME)
                # The probe is asked up to 3 times: texts that arrive in one tick are
                # joined, and the trace cuts the joined query at 8 KiB (two drawn
                # 4 KiB texts can push the first probe past the cut).
                for _ in range(3 if traced else 1):
                    row.sent += await c.write(ASK)
                    with contextlib.suppress(TimeoutError):
                        survived = await c.until(c.answered if traced else c.ready, WAIT_S / 3)
                    if survived:
                        break
                await c.call.done_writing()
            async with asyncio.timeout(WAIT_S):
                await c.reader
                code = await c.call.code()
        except TimeoutError:
            row.without_status += 1
            row.statuses["(no status)"] += 1
            row.examples.append(f"{plan.cls}: no status after {len(plan.messages)} messages")
            c.call.cancel()
            if plan.expect == "survive":
                row.lost += 1
            return
        row.with_status += 1
        row.statuses[code.name] += 1
        if plan.expect == "survive":
            ok = survived and code == grpc.StatusCode.OK
            row.survived += ok
            if not ok:
                row.lost += 1
                notices = [e.notice.code for e in c.events if e.HasField("notice")]
                row.examples.append(
                    f"{plan.cls}: {code.name}, probe answered: {survived}; sent {plan.labels}; "
                    f"notices {notices}; last {[e.WhichOneof('event') for e in c.events[-3:]]}"
                )
        elif code.name != plan.expect:
            row.wrong_status += 1
            row.examples.append(f"{plan.cls}: {code.name}, expected {plan.expect}")


async def healthy(address: str) -> tuple[str, bool]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        c = Call(channel)
        await c.write(START.SerializeToString())
        await c.write(ASK)
        answered = await c.until(c.answered, WAIT_S)
        await c.call.done_writing()
        async with asyncio.timeout(WAIT_S):
            await c.reader
        ok = answered and await c.call.code() == grpc.StatusCode.OK
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status), ok


async def run_all(address: str, todo: list[Plan], concurrency: int) -> dict[str, Row]:
    rows = {cls: Row() for cls in CLASSES}
    gate = asyncio.Semaphore(concurrency)

    async def one(plan: Plan) -> None:
        async with gate:
            await run_plan(address, plan, rows[plan.cls])

    await asyncio.gather(*(one(p) for p in todo))
    return rows


async def fuzz(
    address: str, todo: list[Plan], concurrency: int
) -> tuple[dict[str, Row], tuple[str, bool], float]:
    t0 = time.monotonic()
    rows = await run_all(address, todo, concurrency)
    took = time.monotonic() - t0
    return rows, await healthy(address), took


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def print_table(rows: dict[str, Row]) -> None:
    hdr = ("class", "sent", "sessions", "survived/should", "lost", "status/without",
           "wrong status", "statuses seen")  # fmt: skip
    print(f"{hdr[0]:<13}{hdr[1]:>7}{hdr[2]:>10}{hdr[3]:>17}{hdr[4]:>6}{hdr[5]:>16}{hdr[6]:>14}  "
          f"{hdr[7]}")  # fmt: skip
    for cls, r in rows.items():
        seen = ", ".join(f"{k} {v}" for k, v in r.statuses.most_common())
        print(f"{cls:<13}{r.sent:>7}{r.sessions:>10}{f'{r.survived}/{r.should_survive}':>17}"
              f"{r.lost:>6}{f'{r.with_status}/{r.without_status}':>16}{r.wrong_status:>14}  "
              f"{seen}")  # fmt: skip
    total = sum(r.sent for r in rows.values())
    print(f"{'total':<13}{total:>7}{sum(r.sessions for r in rows.values()):>10}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sessions", type=int, default=100, help="sessions per class")
    ap.add_argument("--messages", type=int, default=25, help="messages per fuzzed session")
    ap.add_argument("--concurrency", type=int, default=16, help="sessions at once")
    ap.add_argument("--seed", type=int, default=14, help="Hypothesis seed (reproducible runs)")
    args = ap.parse_args()
    t0 = time.monotonic()
    todo = plans(args.sessions, args.messages, args.seed)
    print(f"drew {len(todo)} sessions in {time.monotonic() - t0:.0f} s (seed {args.seed})")
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write(json.dumps({"at": 10_000, "output": "</silence>"}) + "\n")
        script = f.name
    proc, address = start_scripted_server(script, "--tick-hz", "5")
    failed = True
    try:
        before = rss_mb(proc.pid)
        # One loop for both: grpc.aio's poller outlives a closed loop noisily.
        rows, (health, serves), took = asyncio.run(fuzz(address, todo, args.concurrency))
        after = rss_mb(proc.pid)
        print(f"server {address} (pid {proc.pid}); {took:.0f} s of fuzzing, "
              f"{args.concurrency} sessions at once")  # fmt: skip
        print_table(rows)
        for cls, r in rows.items():
            for line in r.examples[:3]:
                print(f"  unexpected ({cls}): {line}")
        print(f"server RSS before {before:.0f} MB, after {after:.0f} MB")
        alive = proc.poll() is None
        print(f"server afterwards: process {'running' if alive else 'EXITED'}, health {health}, "
              f"a fresh session {'answered' if serves else 'DID NOT answer'}")  # fmt: skip
        lost = sum(r.lost for r in rows.values())
        without = sum(r.without_status for r in rows.values())
        wrong = sum(r.wrong_status for r in rows.values())
        print(f"sessions lost that should have survived: {lost}; calls ended without a "
              f"status: {without}; wrong statuses: {wrong}")  # fmt: skip
        failed = bool(lost or without or wrong or not alive or not serves or health != "SERVING")
    finally:
        proc.terminate()
        proc.wait(15)
        os.unlink(script)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
