"""The bridge's location: NMEA and gpsd parsed, GPX and NMEA logs replayed, route steps
followed, and fixes reaching a live server's model turn (mobile_bridge/location/).

Real parts: NMEA sentences with real checksums (the textbook pair is checked against
its published checksums), a gpsd-protocol server on loopback TCP, a pseudo-terminal
configured as a serial port, GPX/NMEA files in tests/data, and a real server over gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import termios
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.client import BridgeSession, SessionOptions
from mobile_bridge.connection import LinkOptions
from mobile_bridge.link import BridgeLink
from mobile_bridge.location import (
    Fix,
    GpsdSource,
    LocationError,
    LocationSource,
    NmeaDecoder,
    ReplaySource,
    RoutedSource,
    RoutePlan,
    SerialNmeaSource,
    open_location,
    run_location,
    sentence,
)
from mobile_bridge.location.base import Skipped
from mobile_bridge.location.gpsd import GpsdOptions, tpv_fix
from mobile_bridge.location.lines import Backoff
from mobile_bridge.location.nmea import parse_sentence
from mobile_bridge.location.replay import read_gpx, read_nmea
from mobile_bridge.location.route import RouteFollower
from mobile_bridge.location.serialport import SerialOptions
from mobile_bridge.sources.base import SourceCapabilities
from server.config import Settings
from tests.fakes.bridge import FakeSource, RecordingSink
from tests.fakes.clocks import UNIX0, RecordingClock, SteppingClock
from tests.harness import running_server, scripted

DATA = Path(__file__).parent / "data"
WALK_GPX = DATA / "walk.gpx"
WALK_NMEA = DATA / "walk.nmea"
# The textbook sentences, with the checksums every NMEA reference prints for them.
RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
GGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
FAST = Backoff(first_s=0.01, max_s=0.05)


def lines_to(said: list[str]) -> Callable[[str], None]:
    return said.append


async def take(source: LocationSource, n: int) -> list[Fix]:
    out: list[Fix] = []
    fixes = source.fixes()
    try:
        async for fix in fixes:
            out.append(fix)
            if len(out) == n:
                break
    finally:
        await fixes.aclose()  # type: ignore[attr-defined]
    return out


# ------------------------------------------------------------------ NMEA


def test_the_textbook_sentences_decode_with_their_published_checksums():
    assert sentence(RMC[1:-3]) == RMC and sentence(GGA[1:-3]) == GGA
    decoder = NmeaDecoder()
    assert decoder.feed(GGA) is None  # informs the RMC that follows
    fix = decoder.feed(RMC)
    assert fix is not None
    assert fix.lat == pytest.approx(48 + 7.038 / 60) and fix.lon == pytest.approx(11 + 31 / 60)
    assert fix.speed_mps == pytest.approx(22.4 * 1852 / 3600)
    assert fix.heading_deg == pytest.approx(84.4)
    assert fix.accuracy_m == pytest.approx(0.9 * 5.0)  # HDOP × a typical range error
    assert fix.time_ms == 764_426_119_000  # 1994-03-23 12:35:19 UTC


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (RMC[:-2] + "6B", "bad checksum"),
        (RMC[:40], "truncated sentence"),
        (RMC[:-3], "truncated sentence"),  # the checksum cut off
        ("garbage \x00\xff", "not NMEA"),
        (sentence("GPRMC,123519,V,,,,,,,230394,,"), "no fix"),
        (sentence("GNRMC,123519,A,48x7.038,N,01131.000,E,0,0,230394,,,A"), "malformed sentence"),
        (sentence("GPRMC,123519,A"), "malformed sentence"),
    ],
)
def test_bad_lines_are_skipped_with_a_reason(line, reason):
    with pytest.raises(Skipped) as e:
        NmeaDecoder().feed(line)
    assert e.value.reason == reason


def test_a_gga_without_fix_overrules_its_rmc_and_gst_gives_the_accuracy():
    decoder = NmeaDecoder()
    decoder.feed(sentence("GPGGA,123519,4807.038,N,01131.000,E,0,00,,,M,,M,,"))
    with pytest.raises(Skipped, match="GGA fix quality 0"):
        decoder.feed(RMC)
    decoder.feed(sentence("GPGGA,123520,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"))
    decoder.feed(sentence("GPGST,123520,1.0,3.0,2.0,45.0,3.0,4.0,5.0"))
    fix = decoder.feed(sentence("GPRMC,123520,A,4807.038,S,01131.000,W,0.1,84.4,230394,,"))
    assert fix is not None and fix.accuracy_m == pytest.approx(5.0)  # hypot(3, 4)
    assert fix.lat < 0 and fix.lon < 0
    assert fix.heading_deg is None  # a standing receiver's course is noise
    assert parse_sentence(sentence("PUBX,00,foo")).kind == "PUBX"  # proprietary: ignored


def test_an_nmea_log_keeps_its_good_fixes_and_counts_the_rest():
    track, stats = read_nmea(WALK_NMEA)
    assert [at for at, _ in track] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert dict(stats.skipped) == {"bad checksum": 1, "truncated sentence": 1, "no fix": 1}
    first, last = track[0][1], track[-1][1]
    assert first.lat == pytest.approx(52.52) and last.lat > first.lat
    assert first.accuracy_m == pytest.approx(4.5)


# ------------------------------------------------------------------ GPX and replay


def test_gpx_heading_speed_accuracy_and_waypoints():
    gpx = read_gpx(WALK_GPX)
    assert len(gpx.track) == 12 and gpx.track[-1][0] == 11.0
    first, second = gpx.track[0][1], gpx.track[1][1]
    assert first.heading_deg is None  # nothing before it to take a bearing from
    assert second.heading_deg == pytest.approx(90.0, abs=0.1)  # walking east
    assert second.speed_mps == pytest.approx(1.5, abs=0.05)
    assert second.accuracy_m == pytest.approx(1.2 * 5.0)
    assert [w.text for w in gpx.waypoints] == ["Turn left onto Rathausstrasse"]


def test_gpx_1_0_without_times_or_dop(tmp_path):
    path = tmp_path / "old.gpx"
    path.write_text(
        '<gpx version="1.0" xmlns="http://www.topografix.com/GPX/1/0"><trk><trkseg>'
        '<trkpt lat="1.0" lon="2.0"/><trkpt lat="x" lon="2.0"/>'
        '<trkpt lat="1.0001" lon="2.0"><course>10</course><speed>1.2</speed></trkpt>'
        "</trkseg></trk></gpx>"
    )
    gpx = read_gpx(path, default_accuracy_m=15.0)
    assert [at for at, _ in gpx.track] == [0.0, 1.0]  # untimed: a second apart
    assert gpx.track[1][1].heading_deg == 10.0 and gpx.track[1][1].accuracy_m == 15.0
    assert sum(gpx.stats.skipped.values()) == 1


async def test_replay_runs_on_its_timestamps_scaled_and_stamped_now():
    clock = SteppingClock()
    said: list[str] = []
    source = open_location(f"{WALK_NMEA},speed=2", clock=clock, say=said.append)
    assert isinstance(source, ReplaySource)
    fixes = await take(source, 100)
    assert len(fixes) == 6 and clock.now == pytest.approx(100.0 + 5.0 / 2)
    assert fixes[-1].time_ms == int((UNIX0 + clock.now) * 1000)  # a fix taken now
    assert any("skipped 1 bad checksum" in line for line in said)


# ------------------------------------------------------------------ route steps


def test_route_steps_by_distance_time_and_place():
    plan = RoutePlan.from_lines(
        ["# a plan", "", "10 m Keep straight", "0:03 Mind the kerb", "52.52,13.40524 Turn left"]
    ).with_near(2.0)
    clock = SteppingClock()
    follower = RouteFollower(plan, clock)
    steps = []
    for at, fix in read_gpx(WALK_GPX).track:
        clock.now = 100.0 + at
        steps.append(follower.step(fix))
    assert steps[:3] == ["", "", ""] and steps[3] == "Mind the kerb"
    assert steps[8] == "Keep straight"  # 12 m walked, counted between points 5 m apart
    assert steps[10:] == ["Turn left", "Turn left"]  # within 2 m of the point
    with pytest.raises(LocationError, match="line 1"):
        RoutePlan.from_lines(["turn left somewhere"])


async def test_a_gpx_tracks_waypoints_become_its_route_steps():
    source = open_location(f"{WALK_GPX},near=3,speed=100", clock=SteppingClock())
    assert isinstance(source, RoutedSource)
    steps = [fix.route_step for fix in await take(source, 100)]
    reached = steps.index("Turn left onto Rathausstrasse")
    assert 0 < reached < len(steps) - 1 and set(steps[:reached]) == {""}
    assert set(steps[reached:]) == {"Turn left onto Rathausstrasse"}


# ------------------------------------------------------------------ specs


def test_location_specs():
    gpsd = open_location("gpsd")
    assert isinstance(gpsd, GpsdSource) and gpsd.describe == "gpsd at 127.0.0.1:2947"
    assert open_location("gpsd:gps.local:3000").describe == "gpsd at gps.local:3000"
    assert open_location("gpsd://[::1]").describe == "gpsd at [::1]:2947"
    serial = open_location("/dev/ttyUSB0@4800,accuracy=8")
    assert isinstance(serial, SerialNmeaSource)
    assert (serial.options.path, serial.options.baud) == ("/dev/ttyUSB0", 4800)
    assert serial.options.default_accuracy_m == 8.0
    assert open_location("serial:/dev/ttyACM0").describe.endswith("at 9600 baud")
    assert isinstance(open_location(f"gpx:{WALK_GPX}"), RoutedSource)
    assert isinstance(open_location(f"gpsd,route={WALK_GPX}"), RoutedSource)
    steps = open_location("gpsd", route=["5 m Go"])
    assert isinstance(steps, RoutedSource)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpsd,speed=2", "speed= is for replayed files"),
        (f"{WALK_GPX},speed=0", "expected a number above 0"),
        ("gpsd:host:99999", "out of range"),
        ("/dev/ttyUSB0@fast", "expected a number"),
        ("/nowhere/walk", "give gpsd, a /dev/ device or a GPX/NMEA file"),
        ("", "needs a source"),
    ],
)
def test_bad_specs_say_what_to_write(spec, message):
    with pytest.raises(LocationError, match=message):
        open_location(spec)


def test_a_file_without_fixes_is_refused(tmp_path):
    empty = tmp_path / "empty.nmea"
    empty.write_text(RMC[:-2] + "00\n")
    with pytest.raises(LocationError, match=r"no valid RMC.*1 bad checksum"):
        open_location(str(empty))


# ------------------------------------------------------------------ gpsd


def tpv(**kw: Any) -> bytes:
    report = {"class": "TPV", "device": "/dev/ttyUSB0", "time": "2025-05-01T08:00:00.000Z"}
    return (json.dumps({**report, **kw}) + "\n").encode()


class GpsdServer:
    """gpsd's side of the protocol on loopback: a script of report lines per connection,
    sent after the client's ?WATCH; a connection whose script is done is closed, unless
    it is the last."""

    def __init__(self, scripts: list[list[bytes]]) -> None:
        self.scripts = scripts
        self.watches: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self._hold = asyncio.Event()

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self._hold.set()
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version = {"class": "VERSION", "release": "3.25", "proto_major": 3, "proto_minor": 15}
        writer.write((json.dumps(version) + "\n").encode())
        self.watches.append(await reader.readline())
        script = self.scripts.pop(0)
        for line in script:
            writer.write(line)
            await writer.drain()
        if not self.scripts:
            await self._hold.wait()  # the last connection stays, as gpsd does
        writer.close()


async def test_gpsd_fixes_bad_reports_and_a_restart():
    said: list[str] = []
    sky = {"class": "SKY", "satellites": [{"PRN": 5, "used": True}] * 40}
    gpsd = GpsdServer(
        [
            [
                b'{"class":"DEVICES","devices":[]}\n',
                b'{"class":"WATCH","enable":true,"json":true}\n',
                (json.dumps(sky) + "\n").encode(),
                tpv(mode=1),  # no fix yet
                tpv(mode=3, lat=52.52, lon=13.405, eph=4.5, track=91.0, speed=1.4),
                b'{"class":"TPV","mode":3,"lat":52.5',  # cut off: gpsd goes away mid-line
            ],
            [
                b"not json at all\n",
                tpv(mode=2, lat=52.5201, lon=13.405, epx=3.0, epy=4.0, speed=0.1, track=10.0),
                tpv(mode=3, lat=52.5202, lon=13.405),
            ],
        ]
    )
    await gpsd.start()
    try:
        options = GpsdOptions(port=gpsd.port, backoff=FAST)
        source = GpsdSource(options, clock=RecordingClock(1.0), say=said.append)
        fixes = await take(source, 3)
    finally:
        await gpsd.stop()
    assert gpsd.watches[0] == b'?WATCH={"enable":true,"json":true}\n' == gpsd.watches[1]
    first, second, third = fixes
    assert (first.lat, first.accuracy_m, first.heading_deg) == (52.52, 4.5, 91.0)
    assert first.time_ms == 1_746_086_400_000
    assert second.accuracy_m == pytest.approx(5.0) and second.heading_deg is None
    assert third.accuracy_m == 10.0  # no estimate given
    assert source.stats.skipped == {"no fix": 1, "truncated report": 2}
    assert source.stats.reconnects == 1 and source.stats.fixes == 3
    text = "\n".join(said)
    for expected in ("no GPS receiver attached", "skipped no fix", "went away", "is back"):
        assert expected in text, text
    assert "a fix again" in text


async def test_gpsd_not_running_yet_is_waited_for_and_said_once():
    gpsd = GpsdServer([[tpv(mode=3, lat=1.0, lon=2.0)]])
    await gpsd.start()
    port = gpsd.port
    await gpsd.stop()  # nothing listens there now
    said: list[str] = []
    tries = 0

    class StartsGpsd(RecordingClock):
        async def sleep(self, seconds: float) -> None:
            nonlocal tries
            tries += 1
            if tries == 3:
                gpsd.scripts = [[tpv(mode=3, lat=1.0, lon=2.0)]]
                gpsd._hold = asyncio.Event()
                await gpsd.start(port)
            await asyncio.sleep(0)

    source = GpsdSource(GpsdOptions(port=port, backoff=FAST), clock=StartsGpsd(), say=said.append)
    try:
        [fix] = await take(source, 1)
    finally:
        if gpsd.server is not None:
            await gpsd.stop()
    assert (fix.lat, fix.lon) == (1.0, 2.0)
    down = [line for line in said if "cannot open gpsd" in line]
    assert len(down) == 1 and "Is gpsd running?" in down[0]


def test_tpv_edge_cases():
    assert tpv_fix({"mode": 3, "lat": 1, "lon": 2, "epx": 6.0}).accuracy_m == 6.0
    with pytest.raises(Skipped, match="without lat/lon"):
        tpv_fix({"mode": 3, "lat": 1})
    with pytest.raises(Skipped, match="mode 0"):
        tpv_fix({"class": "TPV"})


# ------------------------------------------------------------------ serial


async def test_a_serial_receiver_on_a_pseudo_terminal():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    said: list[str] = []
    options = SerialOptions(path, baud=4800, backoff=FAST)
    source = SerialNmeaSource(options, clock=RecordingClock(1.0), say=said.append)
    got: list[Fix] = []

    async def read() -> None:
        async for fix in source.fixes():
            got.append(fix)

    reader = asyncio.create_task(read())
    try:
        for _ in range(500):  # until the source has opened and configured the port
            attrs = termios.tcgetattr(slave)
            if not attrs[3] & termios.ICANON:
                break
            await asyncio.sleep(0.01)
        assert attrs[4] == termios.B4800 and not attrs[3] & termios.ECHO
        os.write(master, WALK_NMEA.read_bytes())
        for _ in range(500):
            if len(got) == 6:
                break
            await asyncio.sleep(0.01)
        assert len(got) == 6 and source.stats.skipped["bad checksum"] == 1
        os.close(master)  # unplugged
        master = -1
        for _ in range(500):
            if any("went away" in line for line in said):
                break
            await asyncio.sleep(0.01)
        assert any("went away" in line for line in said), said
        assert not reader.done()  # still waiting for the receiver to come back
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)


# ------------------------------------------------------------------ into a session


class Recorder:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def wait_ready(self) -> None:
        return None

    def send_location(self, fix: pb.Location) -> None:
        self.sent.append(
            {f: getattr(fix, f) for f in ("lat", "lon", "route_step", "time_ms", "heading_deg")}
        )


class Listed(LocationSource):
    def __init__(self, fixes: list[tuple[float, Fix]], clock: SteppingClock) -> None:
        super().__init__()
        self._fixes, self._clock = fixes, clock

    @property
    def describe(self) -> str:
        return "a list"

    async def fixes(self) -> AsyncIterator[Fix]:
        for at, fix in self._fixes:
            self._clock.now = 100.0 + at
            yield fix


async def test_run_location_throttles_keeps_new_steps_and_fixes_a_bad_clock():
    clock = SteppingClock()
    old = Fix(1.0, 2.0, 5.0, heading_deg=None, speed_mps=None, time_ms=315_964_800_000)
    fresh = int((UNIX0 + 100.2) * 1000)
    fixes = [
        (0.0, old),  # a receiver that thinks it is 1980
        (0.1, Fix(1.0, 2.0, 5.0)),  # within the second: left out
        (0.2, Fix(1.0, 2.0, 5.0, route_step="Turn left", time_ms=fresh)),  # a new step: goes
        (1.5, Fix(1.1, 2.0, 5.0, heading_deg=45.0, speed_mps=1.2, route_step="Turn left")),
    ]
    source, sink, said = Listed(fixes, clock), Recorder(), []
    stats = await run_location(source, sink, clock=clock, say=said.append)
    assert [s["route_step"] for s in sink.sent] == ["", "Turn left", "Turn left"]
    assert sink.sent[0]["time_ms"] == int((UNIX0 + 100.0) * 1000) and stats.restamped == 1
    assert sink.sent[1]["time_ms"] == fresh
    assert sink.sent[2]["heading_deg"] == 45.0 and sink.sent[0]["heading_deg"] == 0.0
    assert (stats.sent, stats.throttled) == (3, 1)
    assert "ended: 0 fix(es), 3 sent" in said[-1]


async def test_a_live_server_puts_the_replayed_location_in_the_models_turn(tts):
    runtime = scripted()
    async with running_server(runtime, tts, Settings()) as srv:
        session = BridgeSession(
            FakeSource(SourceCapabilities(), frames=0, packets=0),
            RecordingSink(),
            lambda start: BridgeLink(LinkOptions(target=srv.address), start),
            SessionOptions(mode="navigation", want_trace=False, linger_s=3.5),
        )
        location = open_location(f"{WALK_GPX},speed=4")
        pump = asyncio.create_task(run_location(location, session))
        try:
            await session.run()
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
    assert location.stats.sent >= 2
    turns = "\n".join(runtime.sessions[0].turns)
    assert "Location (0 s old): 52.52000, 13.405" in turns, turns
    assert "(±6 m)" in turns
    assert "Route step (0 s old): Turn left onto Rathausstrasse" in turns
