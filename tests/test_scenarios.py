"""The scenario suite (issue 11, item 11): labelled first-person clips through a real
session — policy, urgency classifier, speaker, emergency path — with the oracle model
(tests/scenarios/oracle.py) answering as a perfect model would, chattering between
hazards and nagging about them as real models do.

In every mode: no alert dropped or repeated, every hazard warning spoken as an alert
with its hazard cue first, narration cut by it, no false alert in a quiet stretch; a
sign read from a still the server asked for; a product's barcodes in the model's turn;
a fall leading to "Are you OK?" and, unanswered, to the contacts. On virtual time (the
oracle's model latency passes as virtual time): latency *numbers* are the benchmark's
(benchmarks/bench_scenarios.py).
"""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image

from server.engine.urgency import parse_hazard, worth_repeating
from server.events import Cue, CueKind, Mode, Notice, Speech, SpeechKind, TickTrace
from server.runtime.limits import STILL_MAX_PIXELS
from server.vision.barcodes import decode_barcodes
from tests.scenarios import catalogue
from tests.scenarios.clips import HazardEvent, render, render_jpeg
from tests.scenarios.metrics import Metrics, measure
from tests.scenarios.oracle import OracleOptions, is_news, warning
from tests.scenarios.suite import ScenarioRun, SuiteOptions, run_scenario

CHATTY = OracleOptions(latency_s=0.2, chatter_every_s=4.0, nag=True)
SLOW = OracleOptions(latency_s=0.6, reply_s=0.1, chatter_every_s=3.0, nag=True, seed=1)
# As the real runtimes speak: clause by clause, each hazard in a phrasing of its own,
# some calm in their first clause ("Just so you know, there is a bike at 2 o'clock").
STREAMED = OracleOptions(
    latency_s=0.2, reply_s=0.3, chatter_every_s=4.0, nag=True, varied=True, stream=True, seed=2
)

SCENARIOS = {s.name: s for s in catalogue.core(0)}
# The street walk in every mode, and a slower model that coalesces nothing but speaks late.
SLOW_SCENARIOS = {s.name: s for s in (catalogue.street_walk(1, m) for m in Mode)}
_runs: dict[tuple[str, OracleOptions], tuple[ScenarioRun, Metrics]] = {}


def _run(name: str, oracle: OracleOptions = CHATTY) -> tuple[ScenarioRun, Metrics]:
    key = (name, oracle)
    if key not in _runs:
        scenario = SCENARIOS.get(name) or SLOW_SCENARIOS[name]
        run = run_scenario(scenario, SuiteOptions(oracle=oracle))
        _runs[key] = (run, measure(run))
    return _runs[key]


def _all() -> list[tuple[str, OracleOptions]]:
    return [
        *((n, CHATTY) for n in SCENARIOS),
        *((n, SLOW) for n in SLOW_SCENARIOS),
        *((n, STREAMED) for n in SCENARIOS),
    ]


def _ids() -> list[str]:
    return [f"{n}-{o.latency_s:g}s{'-streamed' if o.stream else ''}" for n, o in _all()]


def test_the_core_scenarios_cover_every_mode():
    assert {s.mode for s in SCENARIOS.values()} == set(Mode)
    assert {s.mode for s in SLOW_SCENARIOS.values()} == set(Mode)


@pytest.mark.parametrize(("name", "oracle"), _all(), ids=_ids())
def test_alerts_are_never_lost_or_repeated_and_their_cue_comes_first(name, oracle):
    run, m = _run(name, oracle)
    assert m.warnings, "the scenario has hazards: the oracle must have warned"
    warned = {w.line.event for w in m.warnings}
    assert warned == set(range(len(run.scenario.hazards)))
    assert m.missed == [] and m.misclassified == []  # warnings are alerts, chatter is not
    assert m.alerts_dropped == 0
    # Superseding (a newer alert about the same thing on the same side takes a waiting
    # one's place) is allowed and counted; the terse phrasings never queue long enough.
    assert m.alerts_superseded == 0 or oracle.varied
    superseded = m.dropped_counts.get("superseded/alert", 0)
    assert superseded == m.alerts_superseded + m.emergency_lines_cut  # every one counted
    # Only a superseded warning goes unplayed: its newer one was said in its place.
    unplayed = [w.line.text for w in m.warnings if not w.played_out]
    assert m.warnings_unplayed <= m.alerts_superseded, unplayed
    assert m.alerts_repeated == 0
    assert m.cue_order_violations == 0
    for w in (w for w in m.warnings if w.played_out):
        assert w.cue_s is not None and w.speech_s is not None and w.audio_s is not None
        assert w.event_s < w.cue_s <= w.speech_s <= w.audio_s
    # The oracle did nag (unchanged warnings every tick in view): the policy held them.
    assert oracle.nag and any(not ln.news for ln in run.oracle.said if ln.kind == "hazard")


@pytest.mark.parametrize(("name", "oracle"), _all(), ids=_ids())
def test_warnings_cut_narration_and_quiet_stretches_stay_free_of_alerts(name, oracle):
    run, m = _run(name, oracle)
    assert m.narration_not_preempted == 0
    assert m.false_alerts == 0 and m.quiet_minutes > 0
    # Chatter was on: some narration was playing when a warning came, and was cut
    # (with streamed, longer phrasings that timing is the seed's; the rule above holds).
    chatter = [ln for ln in run.oracle.said if ln.kind == "chatter"]
    assert chatter
    assert m.dropped_counts.get("preempted/narration", 0) >= 1 or oracle.stream


@pytest.mark.parametrize(("name", "oracle"), _all(), ids=_ids())
def test_the_models_latency_passes_in_virtual_time(name, oracle):
    _, m = _run(name, oracle)
    model = oracle.latency_s + (0.0 if oracle.stream else oracle.reply_s)  # streamed: sooner
    assert min(m.cue_latencies()) >= model - 1e-6
    assert m.coalesced == 0


def test_reading_asks_for_a_still_and_the_sign_is_read_from_it():
    run, m = _run("blind-errand-en-s0")
    assert (m.reading_needed, m.stills_requested, m.stills_seen, m.signs_read) == (1, 1, 1, 1)
    assert m.still_pixels == [STILL_MAX_PIXELS]
    [still] = [x for x in run.oracle.seen if x.still]
    assert still.image_size == (1600, 1200) and still.query == "Read the sign for me"
    [reading] = [ln for ln in run.oracle.said if ln.kind == "reading"]
    assert "PLATFORM 4" in reading.text
    # "What's around me?" is answered too.
    assert [ln.kind for ln in run.oracle.said if ln.tick_s > still.tick_s].count("answer") == 1


def test_barcodes_in_shopping_frames_reach_the_models_turn():
    run, m = _run("shop-en-s0")
    assert m.barcodes_expected == {catalogue.EAN13, catalogue.QR}
    assert m.barcodes_read == m.barcodes_expected
    [answer] = [ln for ln in run.oracle.said if ln.kind == "answer"]
    assert catalogue.EAN13 in answer.text


def test_a_fall_asks_are_you_ok_and_unanswered_tells_the_contacts():
    run, m = _run("fall-no-answer-en-s0")
    assert (m.falls, m.falls_asked, m.notified, m.notified_expected) == (1, 1, 1, 1)
    [(_, alert)] = run.notifier.alerts
    assert alert.trigger.value == "model" and not alert.confirmed
    ask = next(
        e for e in run.of(Speech) if e.kind is SpeechKind.ALERT and e.text.startswith("Are you OK")
    )
    assert ask is not None
    assert any(c.kind is CueKind.ATTENTION for c in run.of(Cue))


def test_a_fall_answered_im_fine_tells_nobody():
    run = run_scenario(catalogue.fall(0, "I'm fine."), SuiteOptions(oracle=CHATTY))
    m = measure(run)
    assert (m.falls, m.falls_asked, m.notified, m.notified_expected) == (1, 1, 0, 0)
    assert m.alerts_dropped == 0 and m.warnings_unplayed == 0


# ------------------------------------------------------------------ the pieces


def test_the_shop_frame_holds_both_codes_as_the_bridge_encodes_it():
    shop = SCENARIOS["shop-en-s0"]
    t = shop.products[0].start_s + 1
    codes = decode_barcodes(Image.open(io.BytesIO(render_jpeg(shop, t))))
    assert sorted(c.text for c in codes) == sorted([catalogue.EAN13, catalogue.QR])


def test_a_hazard_is_drawn_bigger_as_it_nears():
    street = SCENARIOS["street-general-en-s0"]
    bike = street.hazards[0]
    green = np.array([30, 160, 40], dtype=np.uint8)  # the bike's colour (clips._LOOKS)

    def area(t: float) -> int:
        return int(np.all(np.asarray(render(street, t)) == green, axis=-1).sum())

    assert area(bike.onset_s - 1) == 0
    assert 0 < area(bike.onset_s) < area(bike.closest_s)
    assert bike.at(bike.onset_s) == (2, bike.distance_m[0])
    assert bike.at(bike.closest_s) == (1, 1.5) and bike.at(bike.gone_s) is None


def test_clock_directions_go_the_short_way_round():
    h = HazardEvent("person", 0.0, 4.0, (11, 1), (8.0, 2.0))
    assert [h.at(t)[0] for t in (0.0, 2.0, 4.0)] == [11, 12, 1]  # type: ignore[index]


@pytest.mark.parametrize("language", ["en", "de", "es"])
def test_what_the_oracle_calls_news_the_policy_lets_through(language):
    """The oracle repeats a warning only when the policy's repeat rule would let it
    through, so a warning it gives is never held back as a repeat."""
    h = HazardEvent("bicycle", 0.0, 1.0, (2, 2), (8.0, 1.0))
    states = list(itertools.product([12, 1, 2, 3, 9], [1.0, 1.5, 2.5, 4.0, 6.0, 8.0]))
    for a, b in itertools.product(states, states):
        if not is_news(a, b):
            continue
        before = parse_hazard(warning(h, *a, language), language)
        after = parse_hazard(warning(h, *b, language), language)
        assert before is not None and after is not None
        assert worth_repeating(before, after), (a, b)


@pytest.mark.parametrize("mode", [Mode.BLIND, Mode.GENERAL])
def test_dense_traffic_queues_alerts_behind_alerts_and_loses_none(mode):
    """Three hazards, two at once: warnings wait behind warnings (alerts never cut
    alerts); none is dropped, a waiting one is only ever replaced by a newer one about
    the same thing on the same side, and every cue comes first."""
    run = run_scenario(catalogue.dense(0, mode), SuiteOptions(oracle=CHATTY))
    m = measure(run)
    assert {w.line.event for w in m.warnings} == set(range(len(run.scenario.hazards)))
    assert m.missed == [] and m.alerts_dropped == 0 and m.cue_order_violations == 0
    assert m.dropped_counts.get("superseded/alert", 0) == m.alerts_superseded
    assert m.warnings_unplayed <= m.alerts_superseded and m.alerts_repeated == 0
    assert any(w.queued for w in m.warnings)  # some warning did wait behind another


@pytest.mark.slow
def test_the_suite_runs_through_the_real_transformers_path(tmp_path):
    """The street walk with the tiny random Qwen3-VL in place of the oracle (it says
    nonsense, so only the path is checked): every tick reaches the real runtime with
    its frame, nothing fails, and what it says goes through the policy."""
    from server.runtime.transformers import TransformersOptions, TransformersRuntime
    from tests.tiny_qwen import build_tiny_qwen

    folder = build_tiny_qwen(tmp_path / "tiny-qwen3-vl")
    options = TransformersOptions(
        min_pixels=32 * 32, max_pixels=160 * 160, max_new_tokens=6,
        summary_max_new_tokens=4, background_summary=False,
    )  # fmt: skip
    rt = TransformersRuntime.load(str(folder), device="cpu", options=options)
    try:
        scenario = catalogue.street_walk(0, Mode.BLIND)
        run = run_scenario(scenario, SuiteOptions(runtime=lambda _s, _o: rt))
    finally:
        rt.close()
    traces = [e for e in run.of(TickTrace) if e.action != "emergency"]
    assert len(traces) >= scenario.duration_s - 2
    assert not [n for n in run.of(Notice) if n.code == "model.error"]
    assert all(any(s.stage == "model" and s.ms > 0 for s in e.timings) for e in traces)
    assert sum(e.frame_age_ms >= 0 for e in traces) >= len(traces) - 2  # frames reached it
