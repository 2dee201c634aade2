"""A background agent that is a command-line program: Codex (``codex exec``), Claude
Code (``claude -p``), OpenClaw, or any script.

The argv template's placeholders are replaced per question (no shell is involved):

==============  ==========================================================
``{question}``  the question
``{prompt}``    the question with instructions and context (``prompt_text``)
``{frames_dir}`` a private folder holding the recent frames as ``frame-N.jpg``
``{location}``  the user's location as text ("" when unknown)
``{language}``  the session's language code
``{context}``   what the model told the user when it delegated
``{barcodes}``  the barcodes read on what the user looks at, comma-separated ("" if none)
``{sandbox}``   the ``sandbox_flags``, as separate arguments
==============  ==========================================================

Without ``{sandbox}`` the sandbox flags go just before the first argument that holds
a placeholder (``codex exec {question}`` → ``codex exec --sandbox read-only …``).
The same values are in the environment as ``MURMUR_QUESTION``, ``MURMUR_FRAMES_DIR``,
``MURMUR_LOCATION``, ``MURMUR_LANGUAGE``, ``MURMUR_BARCODES``.

The program inherits the server's environment minus its ``MURMUR_*`` settings (which
hold the server's keys). It runs in its own process group. On timeout or cancellation the whole group
(the program and everything it started) gets SIGTERM, then SIGKILL after a short
grace, and the program is reaped, so neither strays nor zombies are left; the frames
folder is removed whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from server.agents.base import (
    Agent,
    AgentAnswer,
    AgentCapabilities,
    AgentError,
    DelegationRequest,
    parse_output,
    prompt_text,
)

__all__ = ["PLACEHOLDERS", "CommandAgent", "run_in_group"]

PLACEHOLDERS = ("question", "prompt", "frames_dir", "location", "language", "context", "barcodes")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_MAX_OUTPUT = 1 << 20  # bytes of stdout kept; a runaway agent must not fill memory
_STDERR_TAIL = 400


class CommandAgent(Agent):
    def __init__(
        self,
        argv_template: list[str] | tuple[str, ...],
        *,
        timeout_s: float = 60.0,
        sandbox_flags: list[str] | tuple[str, ...] = (),
        workdir: str | Path | None = None,
        kill_grace_s: float = 1.0,
    ) -> None:
        if not argv_template:
            raise ValueError(
                "the agent command is empty; set [agent] command, e.g. ['codex', 'exec', '{question}']"
            )
        super().__init__(
            AgentCapabilities(
                name=f"command:{Path(argv_template[0]).name}",
                vision=any("{frames_dir}" in a for a in argv_template),
            ),
            timeout_s=timeout_s,
        )
        self.argv_template = tuple(argv_template)
        self.sandbox_flags = tuple(sandbox_flags)
        self.workdir = Path(workdir) if workdir is not None else None
        self.kill_grace_s = kill_grace_s
        self.last_pid: int | None = None  # for tests and diagnostics

    def argv(self, request: DelegationRequest, frames_dir: str) -> list[str]:
        values = {
            "question": request.question,
            "prompt": prompt_text(request),
            "frames_dir": frames_dir,
            "location": request.location or "",
            "language": request.language,
            "context": request.context,
            "barcodes": ",".join(request.barcodes),
        }
        out: list[str] = []
        flags_placed = "{sandbox}" in self.argv_template
        for arg in self.argv_template:
            if arg == "{sandbox}":
                out.extend(self.sandbox_flags)
                continue
            if not flags_placed and _PLACEHOLDER.search(arg):
                out.extend(self.sandbox_flags)
                flags_placed = True
            value = _PLACEHOLDER.sub(lambda m: values[m.group(1)], arg)
            if value.startswith("-") and arg != value and not arg.startswith("-"):
                # The question comes from a model that reads signs in the street: it must
                # never be taken for an option of the tool.
                value = " " + value
            out.append(value)
        if not flags_placed:
            out.extend(self.sandbox_flags)
        return out

    async def _run(self, request: DelegationRequest) -> AgentAnswer:
        # Kept on the loop on purpose: a few small files, and no await between creating
        # the folder and the ``try`` that removes it, so a cancel cannot leak it.
        frames_dir = tempfile.mkdtemp(prefix="murmur-agent-")  # mode 0700
        try:
            _write_frames(Path(frames_dir), request.frames)
            argv = self.argv(request, frames_dir)
            code, out, err = await self._exec(argv, request, frames_dir)
        finally:
            shutil.rmtree(frames_dir, ignore_errors=True)
        if code != 0:
            tail = err.decode("utf-8", "replace").strip()[-_STDERR_TAIL:]
            raise AgentError(
                f"the agent command {argv[0]} exited with status {code}: {tail or '(no stderr)'}",
                is_permanent=code in (126, 127),
            )
        answer = parse_output(out.decode("utf-8", "replace"))
        if answer is None:
            raise AgentError(f"the agent command {argv[0]} printed nothing usable")
        return answer

    async def _exec(
        self, argv: list[str], request: DelegationRequest, frames_dir: str
    ) -> tuple[int, bytes, bytes]:
        return await run_in_group(
            argv,
            env={
                "MURMUR_QUESTION": request.question,
                "MURMUR_FRAMES_DIR": frames_dir,
                "MURMUR_LOCATION": request.location or "",
                "MURMUR_LANGUAGE": request.language,
                "MURMUR_BARCODES": ",".join(request.barcodes),
            },
            cwd=str(self.workdir) if self.workdir is not None else frames_dir,
            kill_grace_s=self.kill_grace_s,
            on_start=self._started,
        )

    def _started(self, pid: int) -> None:
        self.last_pid = pid


async def run_in_group(
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    kill_grace_s: float = 1.0,
    what: str = "the agent command",
    setting: str = "[agent] command",
    on_start: Callable[[int], None] | None = None,
) -> tuple[int, bytes, bytes]:
    """Run ``argv`` in a process group of its own; (exit status, stdout, stderr).

    It gets the server's environment minus its ``MURMUR_*`` settings, plus ``env``.
    Cancelled (a timeout, a delegation cancelled), the whole group is ended
    (``_terminate_group``); finished, whatever it left running goes with it. A program
    that cannot be started raises a permanent ``AgentError`` naming ``what`` and ``setting``.
    """
    # The server's own MURMUR_* settings (API keys among them) are not the program's business.
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MURMUR_")}
    full_env.update(env)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=full_env,
            start_new_session=True,  # its own process group, killed as a whole
        )
    except (FileNotFoundError, PermissionError) as e:
        raise AgentError(
            f"cannot run {what} {argv[0]!r} ({e.strerror}); check {setting}",
            is_permanent=True,
        ) from e
    if on_start is not None:
        on_start(proc.pid)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        out, err, code = await asyncio.gather(
            _read_capped(proc.stdout, _MAX_OUTPUT),
            _read_capped(proc.stderr, _MAX_OUTPUT),
            proc.wait(),
        )
    except BaseException:
        # A timeout (the caller cancels us) or a cancelled delegation: no strays.
        # Shielded so that a second cancel cannot leave the group half-killed.
        await asyncio.shield(_terminate_group(proc, kill_grace_s))
        raise
    # Whatever the program left running in the background goes with it.
    _signal_group(proc.pid, signal.SIGKILL)
    return code, out, err


def _write_frames(folder: Path, frames: tuple[bytes, ...]) -> None:
    for i, jpeg in enumerate(frames):
        path = folder / f"frame-{i}.jpg"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(jpeg)


async def _read_capped(stream: asyncio.StreamReader, cap: int) -> bytes:
    kept = bytearray()
    while chunk := await stream.read(65536):
        if len(kept) < cap:
            kept += chunk[: cap - len(kept)]
    return bytes(kept)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _terminate_group(proc: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM to the whole group, SIGKILL after ``grace_s``, then reap the leader."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(grace_s):
            await proc.wait()
    except TimeoutError:
        pass
    # Children that outlived the leader (or ignore SIGTERM) still hold the group id.
    _signal_group(proc.pid, signal.SIGKILL)
    await proc.wait()
