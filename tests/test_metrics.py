"""Watching the server: /metrics moves during a live session, health waits for the
model's warm-up, JSON log lines name the session and device and nothing private,
and the scrape config and dashboard in deploy/ name what the server exports.

No timing is asserted: a series "moves" when its count grows between two scrapes.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from murmur.v1 import companion_pb2 as pb
from murmur.v1 import companion_pb2_grpc as pb_grpc
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from server.app import Overrides, build_app
from server.config import MetricsSettings, Settings
from server.runtime.scripted import ScriptLine
from server.telemetry.logs import JsonFormatter
from server.telemetry.metrics import REGISTRY
from server.transport.server import SERVICE_NAME, GrpcServer
from server.voice.tts.base import VoiceOptions
from server.voice.tts.fallback import FallbackTTS
from tests.audio_fixtures import needs_espeak
from tests.fakes import FakeTTS
from tests.harness import (
    Client,
    running_server,
    scripted,
    secure_server,
    serving_address,
    session_start,
    stop_process,
    write_script,
)

ROOT = Path(__file__).resolve().parents[1]
FAST = Settings().with_overrides("server", tick_hz=5.0, frame_wait_ms=20)
FIRST = "Door on your left."
ASKED = "what colour is the door"
SECOND = "The door is a deep teal."

Samples = list[tuple[str, dict[str, str], float]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


async def _scrape(port: int) -> tuple[str, Samples]:
    text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
    samples = [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]
    return text, samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        v
        for n, got, v in samples
        if n == name and all(got.get(k) == want for k, want in labels.items())
    )


# --- the acceptance: the series move during a live session ---------------------------


async def test_a_live_session_moves_the_tick_slip_and_decision_to_audio_series(tts):
    runtime = scripted()
    runtime.script = [
        ScriptLine(0, f"</response> {FIRST}"),
        ScriptLine(0, f"</response> {SECOND}", query="colour"),
    ]
    settings = FAST.with_overrides("metrics", port=_free_port())
    async with running_server(runtime, tts, settings) as srv:
        srv.app.serve_metrics()  # as `murmur serve` does, on [metrics] port
        assert srv.app.metrics is not None, "the metrics endpoint did not start"
        port = srv.app.metrics.port
        try:
            _, before = await _scrape(port)
            async with Client(srv.address) as c:
                ready = await c.start()
                for seq in range(1, 4):
                    await c.frame(seq)
                    await asyncio.sleep(0.1)
                await c.wait_for("audio_out", pred=lambda a: a.last)
                _, during = await _scrape(port)
                await c.frame(10, b"\xff\xd8\xff\xe0 this is not a jpeg")
                await c.wait_for("notice", pred=lambda n: n.code == "frame.corrupt")
                await c.send(pb.ClientEvent(text_input=pb.TextInput(text=ASKED)))
                await c.wait_for("speech", pred=lambda s: s.text == SECOND)
                await c.wait_for("audio_out", count=2, pred=lambda a: a.last)
                text, later = await _scrape(port)
                assert await c.finish() == grpc.StatusCode.OK
        finally:
            await asyncio.to_thread(srv.app.metrics.close)

    moving = (
        ("murmur_ticks_total", {}),
        ("murmur_tick_slip_seconds_count", {}),
        ("murmur_decision_to_first_audio_seconds_count", {}),
        ("murmur_tick_stage_seconds_count", {"stage": "model"}),
    )
    for name, labels in moving:
        a, b, c_ = (_value(s, name, **labels) for s in (before, during, later))
        assert a < b < c_, f"{name}{labels} did not move: {a} → {b} → {c_}"
    corrupt = [_value(s, "murmur_frames_dropped_total", reason="corrupt") for s in (during, later)]
    assert corrupt[0] < corrupt[1], corrupt
    attached = _value(during, "murmur_sessions", state="attached")
    assert attached >= _value(before, "murmur_sessions", state="attached") + 1
    # Nothing said or seen, and no session's id or token, is in what Prometheus stores.
    for secret in (FIRST, SECOND, ASKED, "teal", ready.session_id, ready.resume_token):
        assert secret not in text, secret


async def test_a_tts_failure_before_audio_counts_a_fallback_for_that_backend():
    def fallbacks(backend: str) -> float:
        return REGISTRY.get_sample_value("murmur_tts_fallbacks_total", {"backend": backend}) or 0

    chain = FallbackTTS([FakeTTS("metrics-a", broken=True), FakeTTS("metrics-b")])
    try:
        before = fallbacks("metrics-a")
        chunks = [chunk async for chunk in chain.stream("Door ahead.", VoiceOptions())]
        assert chunks and fallbacks("metrics-a") == before + 1
        assert fallbacks("metrics-b") == 0  # the one that spoke is not counted
    finally:
        chain.close()


async def test_the_endpoint_says_what_to_do_when_its_port_is_taken():
    from server.telemetry.metrics import MetricsEndpoint

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(OSError, match=r"\[metrics\] port"):
            MetricsEndpoint.start("127.0.0.1", s.getsockname()[1])


# --- health: NOT_SERVING until the model is warm ------------------------------------


async def _health(address: str, service: str = "") -> int:
    async with grpc.aio.insecure_channel(address) as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        return int(reply.status)


async def test_health_is_not_serving_until_the_model_is_warm(tts):
    runtime = scripted()
    warm = threading.Event()
    warming = threading.Event()

    def slow_warm_up() -> None:  # a model's first step, held until the test lets it go
        warming.set()
        warm.wait(10)

    runtime.warm_up = slow_warm_up  # type: ignore[method-assign]
    settings = FAST.with_overrides("voice", asr="none").with_overrides("agent", backend="")
    app = build_app(settings, Overrides(runtime=runtime, tts=tts))
    server = GrpcServer(app.services)
    port = await server.start("127.0.0.1", 0)
    address = f"127.0.0.1:{port}"
    NOT_SERVING, SERVING = (
        health_pb2.HealthCheckResponse.NOT_SERVING,
        health_pb2.HealthCheckResponse.SERVING,
    )
    try:
        assert await _health(address) == NOT_SERVING  # listening, not warm yet
        warming_up = asyncio.create_task(server.warm_up())
        assert await asyncio.to_thread(warming.wait, 10)
        assert await _health(address) == NOT_SERVING
        assert await _health(address, SERVICE_NAME) == NOT_SERVING
        warm.set()
        await warming_up
        assert await _health(address) == SERVING
        assert await _health(address, SERVICE_NAME) == SERVING
    finally:
        warm.set()
        await server.stop(0.5)
        app.services.executors.shutdown()  # as the harness does: the shared voice stays open


# --- JSON logs: the session's and device's ids, nothing private ---------------------

TYPED = "quokka marmalade"
ANSWER = "The purple sign says Sunrise Loaves."
JPEG_MARK = b"frame-marker-7f3a9c"
JSON_KEYS = {"ts", "level", "logger", "message", "session", "device", "exc"}


def _marked_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 60, 160)).save(buf, "JPEG", comment=JPEG_MARK)
    return buf.getvalue()


async def _read_until(call: Any, kind: str, pred: Any = None) -> Any:
    async with asyncio.timeout(15):
        while True:
            msg = await call.read()
            assert msg is not grpc.aio.EOF, f"the stream ended before {kind}"
            if msg.WhichOneof("event") == kind and (pred is None or pred(getattr(msg, kind))):
                return getattr(msg, kind)


async def test_json_log_lines_name_the_session_and_device_and_nothing_private(
    tmp_path, tts, caplog
):
    caplog.set_level(logging.DEBUG)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    runtime = scripted()
    runtime.script = [ScriptLine(0, f"</response> {ANSWER}", query="quokka")]
    try:
        async with secure_server(tmp_path, tts, runtime) as srv:
            async with srv.channel() as ch:
                stub = pb_grpc.CompanionStub(ch)
                grant = await stub.Pair(
                    pb.PairRequest(code=await srv.issue(), device_name="Pixel 8"), timeout=10
                )
                call = stub.Converse(metadata=(("authorization", f"Bearer {grant.device_token}"),))
                await call.write(session_start())
                ready = await _read_until(call, "session_ready")
                for seq in range(1, 3):
                    frame = pb.VideoFrame(seq=seq, capture_time_ms=seq, data=_marked_jpeg())
                    await call.write(pb.ClientEvent(video_frame=frame))
                await call.write(pb.ClientEvent(text_input=pb.TextInput(text=TYPED)))
                await _read_until(call, "speech", lambda s: s.text == ANSWER)
                await call.done_writing()
                while await call.read() is not grpc.aio.EOF:
                    pass
                assert await call.code() == grpc.StatusCode.OK
        # The server has stopped: every session has closed and logged its "ended" line.
    finally:
        logging.getLogger().removeHandler(handler)

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines and all(set(line) <= JSON_KEYS for line in lines)
    mine = [line for line in lines if line.get("session") == ready.session_id]
    assert mine, "no JSON line names the session"
    assert all(line.get("device") == grant.device_id for line in mine)
    assert any("ended" in line["message"] for line in mine)
    text = out.getvalue()
    secret = grant.device_token.split(".", 1)[1]
    for private in (TYPED, ANSWER, "quokka", "sunrise", secret, ready.resume_token):
        assert private.lower() not in text.lower(), private
    assert JPEG_MARK.decode() not in text


# --- murmur serve: JSON logs, /metrics and health, wired as a user starts it ---------


@pytest.mark.slow
@needs_espeak
async def test_murmur_serve_logs_json_and_serves_metrics(tmp_path):
    script = write_script(tmp_path / "walk.jsonl", (0.2, f"</response> {FIRST}"))
    config = tmp_path / "server.toml"
    config.write_text('[server]\ntick_hz = 5.0\nlog_format = "json"\n')
    metrics_port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "serve", "--model", f"scripted:{script}",
        "--port", "0", "--no-asr", "--tts", "espeak", "--config", str(config), "--no-auth",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, HF_HUB_OFFLINE="1", MURMUR_METRICS_PORT=str(metrics_port)),
    )  # fmt: skip
    try:
        address = await serving_address(proc)
        # The "serving" line comes after the warm-up: health already says SERVING.
        assert await _health(address) == health_pb2.HealthCheckResponse.SERVING
        async with Client(address) as c:
            ready = await c.start()
            await c.frame(1)
            await c.wait_for("speech")
            _, samples = await _scrape(metrics_port)
            assert _value(samples, "murmur_ticks_total") > 0
            assert _value(samples, "murmur_sessions", state="attached") == 1
            assert await c.finish() == grpc.StatusCode.OK
    finally:
        await stop_process(proc)
    assert proc.stderr is not None
    err = (await proc.stderr.read()).decode()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines and len(lines) == len([x for x in err.splitlines() if x.strip()]), err
    assert any(f":{metrics_port}/metrics" in line["message"] for line in lines), err
    ended = [line for line in lines if "ended" in line["message"]]
    assert ended and ended[0].get("session") == ready.session_id, err
    assert ended[0].get("device") == "anonymous", err  # --no-auth: no device to name


# --- deploy/: the scrape config and the dashboard name what is exported --------------


def _exported() -> set[str]:
    """Every sample name the registry can export (a histogram's _bucket/_count/_sum)."""
    names: set[str] = set()
    for metric in REGISTRY.collect():
        names.add(metric.name)
        if metric.type == "counter":
            names.add(metric.name + "_total")
        if metric.type == "histogram":
            names.update(metric.name + s for s in ("_bucket", "_count", "_sum"))
    return names


def test_the_scrape_config_points_at_the_default_metrics_port():
    config = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    targets = [
        t
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for t in static["targets"]
    ]
    default = MetricsSettings()
    assert f"{default.host}:{default.port}" in targets, targets
    assert all(
        job.get("metrics_path", "/metrics") == "/metrics" for job in config["scrape_configs"]
    )


def test_the_dashboard_names_only_metrics_the_server_exports():
    import re

    board = json.loads((ROOT / "deploy/grafana-dashboard.json").read_text())
    panels = [p for p in board["panels"] if p.get("type") != "row"]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert len(panels) >= 8 and len(exprs) >= len(panels)
    named = {m for e in exprs for m in re.findall(r"\bmurmur_[a-z_]+\b", e)}
    unknown = named - _exported()
    assert not unknown, f"the dashboard names metrics nothing exports: {sorted(unknown)}"
    wanted = {
        "murmur_sessions",
        "murmur_ticks_total",
        "murmur_tick_slip_seconds_bucket",
        "murmur_decision_to_first_audio_seconds_bucket",
        "murmur_barge_ins_total",
        "murmur_speech_dropped_total",
        "murmur_tts_fallbacks_total",
        "murmur_delegations_total",
        "murmur_frames_dropped_total",
    }
    assert wanted <= named, f"panels missing for {sorted(wanted - named)}"
    assert any("stage=" in e and "model" in e for e in exprs), "no model step time panel"
