"""``murmur download [MODEL]``: fetch a hub model into the Hugging Face cache before the
first ``murmur serve``, after checking there is disk for it.

The plan comes from the hub's file list (``snapshot_download(dry_run=True)``: each
file's size and whether the cache has it); bytes an interrupted run left in the cache's
``.incomplete`` blobs count as fetched, so a re-run asks only for the rest, and
huggingface_hub resumes those files where they stopped. ``murmur doctor`` uses the same
plan for its model-files and disk lines.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from server.runtime.limits import DEFAULT_MODEL

__all__ = [
    "DOCUMENTED_BYTES",
    "DownloadError",
    "DownloadPlan",
    "PlannedFile",
    "cache_root",
    "cached_snapshot",
    "check_disk",
    "describe",
    "download",
    "download_command",
    "free_bytes",
    "gib",
    "hub_offline_reason",
    "plan_download",
    "plan_from",
]

# Sizes of the two official builds (README "Fitting one RTX 3090"), for when the hub's
# file list cannot be read: a rough figure beats none.
DOCUMENTED_BYTES = {
    DEFAULT_MODEL: 17_600_000_000,
    "jdopensource/JoyAI-VL-Interaction-INT4": 7_600_000_000,
}
# Left free after a download: a disk filled to the last byte breaks everything else.
DISK_MARGIN_BYTES = 1 * 2**30


class DownloadError(Exception):
    """Why the download cannot go ahead, and what to do instead; ``short``: the cause
    in a few words (for ``murmur doctor``'s line)."""

    def __init__(self, message: str, short: str = "") -> None:
        super().__init__(message)
        self.short = short or message


class FileInfo(Protocol):
    """What the hub says of one file (huggingface_hub's ``DryRunFileInfo``)."""

    filename: str
    file_size: int | None
    is_cached: bool


@dataclass(frozen=True, slots=True)
class PlannedFile:
    name: str
    size: int
    cached: bool
    partial: int = 0  # bytes an interrupted run left in the cache's .incomplete blob


@dataclass(frozen=True, slots=True)
class DownloadPlan:
    model: str
    revision: str | None
    cache: Path
    files: tuple[PlannedFile, ...]

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def remaining(self) -> int:
        return sum(max(0, f.size - f.partial) for f in self.files if not f.cached)

    @property
    def complete(self) -> bool:
        return all(f.cached for f in self.files)


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where hub models go: ``cache_dir``, else HF_HUB_CACHE (~/.cache/huggingface/hub)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def free_bytes(path: Path) -> int:
    """Free bytes on the disk that holds ``path`` (or would, once it is made)."""
    for p in (path, *path.parents):
        if p.exists():
            return shutil.disk_usage(p).free
    return 0


def hub_offline_reason() -> str | None:
    """Why the hub is off for this process (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE), or None."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE=1"
    if os.environ.get("TRANSFORMERS_OFFLINE") == "1":
        return "TRANSFORMERS_OFFLINE=1"
    return None


def cached_snapshot(
    model: str, revision: str | None = None, cache_dir: str | Path | None = None
) -> Path | None:
    """The model's complete snapshot in the cache, or None (absent, or a run was cut off)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(model, revision=revision, cache_dir=cache_dir, local_files_only=True)
        )
    except Exception:  # not cached, partial, or not a hub id: huggingface_hub says which
        return None


def _partial_bytes(cache: Path, model: str) -> dict[str, int]:
    """Bytes in each ``.incomplete`` blob of ``model`` in ``cache``, by blob name."""
    from huggingface_hub.file_download import repo_folder_name

    blobs = cache / repo_folder_name(repo_id=model, repo_type="model") / "blobs"
    found: dict[str, int] = {}
    if blobs.is_dir():
        for p in blobs.glob("*.incomplete"):
            found[p.name.removesuffix(".incomplete")] = p.stat().st_size
    return found


def plan_from(
    model: str,
    revision: str | None,
    cache: Path,
    infos: Iterable[FileInfo],
    blob_of: dict[str, str] | None = None,
) -> DownloadPlan:
    """A plan from the hub's file list; ``blob_of`` maps a file name to its blob (etag) so
    the bytes of an interrupted run are counted."""
    partial = _partial_bytes(cache, model)
    blob_of = blob_of or {}
    files = tuple(
        PlannedFile(
            i.filename,
            int(i.file_size or 0),
            bool(i.is_cached),
            0 if i.is_cached else partial.get(blob_of.get(i.filename, ""), 0),
        )
        for i in infos
    )
    return DownloadPlan(model, revision, cache, files)


def _blob_names(model: str, revision: str | None) -> dict[str, str]:
    """File name → the blob name (sha256 of LFS files, git oid of others) the cache uses."""
    from huggingface_hub import HfApi

    out: dict[str, str] = {}
    try:
        for f in HfApi().list_repo_tree(model, recursive=True, revision=revision):
            lfs = getattr(f, "lfs", None)
            oid = lfs.sha256 if lfs is not None else getattr(f, "blob_id", None)
            if oid:
                out[f.path] = str(oid)
    except Exception:  # only the partial-bytes count depends on it
        return {}
    return out


def plan_download(
    model: str = DEFAULT_MODEL, revision: str | None = None, cache_dir: str | Path | None = None
) -> DownloadPlan:
    """What a download of ``model`` would fetch; raises ``DownloadError`` (offline, no
    such model) saying what to do."""
    from huggingface_hub import snapshot_download

    cache = cache_root(cache_dir)
    offline = hub_offline_reason()
    if offline is not None:
        raise DownloadError(
            f"the Hugging Face hub is switched off here ({offline}), so the size of {model} "
            "cannot be read and nothing can be downloaded. Unset it, or download on a machine "
            f"with internet (`murmur download {model} --cache-dir DIR`), copy DIR here and "
            "pass HF_HUB_CACHE=DIR (or --model /path/to/its/snapshot folder)",
            f"the hub is switched off ({offline})",
        )
    try:
        infos: Any = snapshot_download(model, revision=revision, cache_dir=str(cache), dry_run=True)
    except Exception as e:
        raise DownloadError(
            _why(model, e), f"the hub cannot be reached ({type(e).__name__})"
        ) from e
    return plan_from(model, revision, cache, infos, _blob_names(model, revision))


def _why(model: str, e: Exception) -> str:
    name = type(e).__name__
    if name in ("RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError"):
        return (
            f"the hub has no {model!r} you can read ({name}); check the id and revision, "
            "or log in for a gated model (hf auth login)"
        )
    return (
        f"cannot reach the Hugging Face hub for {model!r} ({name}: {str(e).splitlines()[0]}). "
        "Check the network (or HF_ENDPOINT), or download on a machine with internet "
        f"(`murmur download {model} --cache-dir DIR`) and copy DIR here"
    )


def check_disk(plan: DownloadPlan) -> str | None:
    """Why the plan does not fit the disk, or None."""
    free = free_bytes(plan.cache)
    if plan.remaining + DISK_MARGIN_BYTES <= free:
        return None
    return (
        f"{plan.model} needs {gib(plan.remaining)} more on the disk of {plan.cache} "
        f"(plus {gib(DISK_MARGIN_BYTES)} to spare) and it has {gib(free)} free. Free some "
        "space, or download elsewhere: --cache-dir DIR (serve it with HF_HUB_CACHE=DIR)"
    )


def download(plan: DownloadPlan, *, tqdm_class: Any = None) -> Path:
    """Fetch the plan's files with a progress bar; an interrupted run resumes."""
    from huggingface_hub import snapshot_download

    problem = check_disk(plan)
    if problem is not None:
        raise DownloadError(problem)
    try:
        path = snapshot_download(
            plan.model, revision=plan.revision, cache_dir=str(plan.cache), tqdm_class=tqdm_class
        )
    except Exception as e:
        raise DownloadError(_why(plan.model, e) + "; run it again to resume") from e
    return Path(str(path))


def describe(plan: DownloadPlan) -> str:
    have = plan.total - plan.remaining
    return (
        f"{plan.model}: {len(plan.files)} files, {gib(plan.total)} "
        f"({gib(have)} already in {plan.cache}, {gib(plan.remaining)} to fetch; "
        f"{gib(free_bytes(plan.cache))} free)"
    )


def download_command(
    model: str = DEFAULT_MODEL, *, revision: str | None = None, cache_dir: str | None = None
) -> int:
    """``murmur download``: plan, check the disk, fetch; 1 with the reason when it cannot."""
    import sys

    try:
        plan = plan_download(model, revision, cache_dir)
        print(describe(plan), flush=True)
        if plan.complete:
            path = cached_snapshot(model, revision, cache_dir) or download(plan)
            print(f"Already downloaded: {path}")
            return 0
        path = download(plan)
    except DownloadError as e:
        print(f"murmur: cannot download: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nmurmur: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(f"Downloaded {model} to {path}")
    hint = f"HF_HUB_CACHE={plan.cache} " if cache_dir else ""
    print(f"Serve it with: {hint}murmur serve --model {model}")
    return 0
