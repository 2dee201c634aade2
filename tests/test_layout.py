"""The house rules that keep the code easy to find one's way around (STYLE.md)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _py(folder: str) -> list[Path]:
    return [p for p in (ROOT / folder).rglob("*.py") if "_pb2" not in p.name]


def test_only_transport_talks_grpc_and_protobuf():
    offenders = []
    for path in _py("server"):
        if path.parent.name == "transport":
            continue
        for name in _imports(path):
            if name == "grpc" or name.startswith(("grpc.", "grpc_", "murmur.v1")) or name.endswith("_pb2"):
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


def test_bridge_never_imports_the_server():
    offenders = [
        f"{p.relative_to(ROOT)}: {n}"
        for p in _py("mobile_bridge")
        for n in _imports(p)
        if n == "server" or n.startswith("server.")
    ]
    assert offenders == []


def test_engine_and_below_do_not_reach_up():
    upward = ("server.transport", "server.session", "server.app", "server.cli")
    offenders = [
        f"{p.relative_to(ROOT)}: {n}"
        for pkg in ("server/engine", "server/runtime", "server/voice", "server/agents", "server/modes")
        for p in _py(pkg)
        for n in _imports(p)
        if n.startswith(upward)
    ]
    assert offenders == []


def test_no_file_outgrows_a_room():
    big = [
        f"{p.relative_to(ROOT)} ({n} lines)"
        for folder in ("server", "mobile_bridge")
        for p in _py(folder)
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 650
    ]
    assert big == []


def test_generated_proto_is_fresh(tmp_path):
    """Fails when companion.proto changed without running scripts/gen_proto.sh."""
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}",
         f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
         str(ROOT / "proto/murmur/v1/companion.proto")],
        check=True,
    )  # fmt: skip
    for name in ("companion_pb2.py", "companion_pb2.pyi", "companion_pb2_grpc.py"):
        fresh = (tmp_path / "murmur/v1" / name).read_text()
        committed = (ROOT / "proto/murmur/v1" / name).read_text()
        assert fresh == committed, f"{name} is stale: run scripts/gen_proto.sh and commit"


def test_readme_configuration_example_loads(tmp_path):
    """The README's settings file is one `murmur serve --config` accepts as it is."""
    from server.config import load_settings

    block = re.search(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None
    path = tmp_path / "server.toml"
    path.write_text(block.group(1))
    settings = load_settings(str(path))
    assert settings.model.frame_refs is True
