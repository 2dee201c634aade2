"""deploy/ is deployable as it stands, checked offline (README "Deployment").

- ``murmur.service``: systemd's own parser (``systemd-analyze verify``, and ``security
  --offline`` for the exposure score) where systemd is installed; always a strict parse
  against the directives we know, the hardening it promises, and its ExecStart through
  murmur's real argparse with the settings file it names.
- ``compose.yaml`` and ``compose.vllm.yaml``: the compose-spec JSON schema (vendored in
  tests/data/ from check-jsonschema 0.39.0, Apache-2.0), ``docker compose config`` where
  a Compose v2 binary is installed, and what Murmur needs of them: the GPU, the volumes
  the image declares, the ports, and a vLLM serving the model under the very name
  Murmur asks for.
- ``Dockerfile``: a small hadolint-like linter (rule names are hadolint's), itself
  tested on broken Dockerfiles, plus the build context ``.dockerignore`` leaves.
- ``healthcheck.py`` (the image's HEALTHCHECK) against a real gRPC health service.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import grpc
import jsonschema
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from server.cli import _parser, _serve_settings
from server.config import MetricsSettings, ServerSettings, Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SCHEMA = json.loads((ROOT / "tests/data/compose-spec.json").read_text())


@pytest.fixture(autouse=True)
def _no_local_settings(monkeypatch, tmp_path):
    """Only the deploy files' own settings count: not this shell's MURMUR_*, nor a
    ~/.config/murmur/server.toml on this machine."""
    for key in [k for k in os.environ if k.startswith("MURMUR_")]:
        monkeypatch.delenv(key)
    monkeypatch.setattr("server.config.DEFAULT_CONFIG", tmp_path / "no-such.toml")


def _murmur_args(argv: list[str]) -> argparse.Namespace:
    """murmur's real parser on ``argv``; a refused command line fails the test."""
    try:
        return _parser().parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"murmur refuses {shlex.join(argv)!r} (exit {e.code})")


def _settings(argv: list[str], env: dict[str, str], monkeypatch, config: Path | None = None):
    """What `murmur ARGV` runs with, given ``env``; ``config`` stands in for --config."""
    args = _murmur_args(argv)
    assert args.command == "serve", argv
    if config is not None:
        args.config = str(config)
    for key, value in env.items():
        if key.startswith("MURMUR_"):  # an unknown one, or a bad value, fails below
            monkeypatch.setenv(key, value)
    settings = _serve_settings(args)
    assert isinstance(settings, Settings), f"murmur cannot read its settings for {argv}"
    return settings


# --- the systemd unit ---------------------------------------------------------------

# The directives of systemd 252 (systemd.unit, .service, .exec, .kill, .resource-control)
# a unit like this may use; a typo or a directive in the wrong section fails here even
# where systemd-analyze is not installed.
KNOWN = {
    "Unit": {
        "Description", "Documentation", "After", "Before", "Wants", "Requires", "Requisite",
        "BindsTo", "PartOf", "Conflicts", "StartLimitIntervalSec", "StartLimitBurst",
        "ConditionPathExists", "AssertPathExists", "OnFailure", "DefaultDependencies",
    },
    "Service": {
        "Type", "User", "Group", "ExecStart", "ExecStartPre", "ExecStartPost", "ExecStop",
        "ExecReload", "Restart", "RestartSec", "RestartPreventExitStatus", "TimeoutStartSec",
        "TimeoutStopSec", "KillMode", "KillSignal", "WorkingDirectory", "Environment",
        "EnvironmentFile", "UMask", "StateDirectory", "StateDirectoryMode", "CacheDirectory",
        "CacheDirectoryMode", "ConfigurationDirectory", "ConfigurationDirectoryMode",
        "LogsDirectory", "RuntimeDirectory", "ReadWritePaths", "ReadOnlyPaths",
        "InaccessiblePaths", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
        "PrivateMounts", "PrivateUsers", "PrivateNetwork", "NoNewPrivileges",
        "CapabilityBoundingSet", "AmbientCapabilities", "RestrictSUIDSGID", "RemoveIPC",
        "DevicePolicy", "DeviceAllow", "ProtectKernelTunables", "ProtectKernelModules",
        "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectHostname",
        "ProtectProc", "ProcSubset", "RestrictAddressFamilies", "RestrictNamespaces",
        "RestrictRealtime", "LockPersonality", "MemoryDenyWriteExecute",
        "SystemCallArchitectures", "SystemCallFilter", "SystemCallErrorNumber",
        "IPAddressDeny", "IPAddressAllow", "LimitNOFILE", "LimitMEMLOCK", "MemoryMax",
        "Nice", "DynamicUser", "SupplementaryGroups", "KeyringMode",
    },
    "Install": {"WantedBy", "RequiredBy", "Alias", "Also"},
}  # fmt: skip
# Directives that add to a list when repeated; any other one twice is a mistake.
LISTS = {
    "After", "Before", "Wants", "Requires", "Documentation", "Environment", "EnvironmentFile",
    "ExecStartPre", "ExecStartPost", "DeviceAllow", "SystemCallFilter", "ReadWritePaths",
    "ReadOnlyPaths", "InaccessiblePaths", "RestrictAddressFamilies", "WantedBy",
}  # fmt: skip


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """``{section: [(key, value), …]}``, refusing what systemd would ignore with a warning."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: str | None = None
    logical = ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not logical and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        line, logical = logical + line, ""
        if line.startswith("["):
            if not line.endswith("]") or line[1:-1] not in KNOWN:
                raise ValueError(f"line {n}: unknown section {line}")
            current = line[1:-1]
            if current in sections:
                raise ValueError(f"line {n}: section [{current}] twice")
            sections[current] = []
            continue
        key, eq, value = line.partition("=")
        key = key.strip()
        if current is None or not eq:
            raise ValueError(f"line {n}: {line!r} is not KEY=VALUE inside a section")
        if key not in KNOWN[current]:
            raise ValueError(f"line {n}: {key}= is not a [{current}] directive")
        if key not in LISTS and any(k == key for k, _ in sections[current]):
            raise ValueError(f"line {n}: {key}= twice (the second silently wins)")
        sections[current].append((key, value.strip()))
    return sections


def _one(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    values = [v for k, v in unit[section] if k == key]
    assert len(values) == 1, f"[{section}] {key}= should be set once, is {values}"
    return values[0]


def _all(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit[section] if k == key]


UNIT_TEXT = (DEPLOY / "murmur.service").read_text()
UNIT = parse_unit(UNIT_TEXT)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[Service]\nExecStart=/bin/true\nProtectHom=yes\n", "ProtectHom= is not a [Service]"),
        ("[Unit]\nExecStart=/bin/true\n", "ExecStart= is not a [Unit]"),
        ("[Servce]\nExecStart=/bin/true\n", "unknown section"),
        ("[Service]\nUser=a\nUser=b\n", "User= twice"),
        ("ExecStart=/bin/true\n", "inside a section"),
    ],
)
def test_the_unit_parser_refuses_what_systemd_would_ignore(text, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_unit(text)


HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
    "PrivateTmp": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
    "PrivateDevices": "no", "DevicePolicy": "closed", "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes", "RestrictSUIDSGID": "yes", "RestrictRealtime": "yes",
    "LockPersonality": "yes", "SystemCallArchitectures": "native", "UMask": "0077",
    "PrivateMounts": "yes", "SystemCallFilter": "@system-service", "StateDirectory": "murmur",
    "StateDirectoryMode": "0700",
    # W^X stays off (the unit says why: JIT-generated machine code in torch's stack).
    "MemoryDenyWriteExecute": "no",
}  # fmt: skip


def test_the_unit_is_hardened_and_lets_in_only_the_gpu():
    for key, value in HARDENING.items():
        assert _one(UNIT, "Service", key) == value, key
    assert _one(UNIT, "Service", "User") not in ("", "root", "0")
    allowed = _all(UNIT, "Service", "DeviceAllow")
    assert allowed, "DevicePolicy=closed without DeviceAllow= shuts the GPU out"
    for entry in allowed:
        node, _, access = entry.partition(" ")
        assert node.startswith(("char-nvidia", "/dev/nvidia")) and access == "rw", entry
    families = set(_one(UNIT, "Service", "RestrictAddressFamilies").split())
    assert {"AF_INET", "AF_INET6"} <= families <= {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    assert "multi-user.target" in _all(UNIT, "Install", "WantedBy")


def _unit_env() -> dict[str, str]:
    env = {}
    for value in _all(UNIT, "Service", "Environment"):
        for item in shlex.split(value):
            key, _, val = item.partition("=")
            env[key] = val
    return env


def _exec_argv(value: str) -> list[str]:
    argv = shlex.split(value)
    argv[0] = argv[0].lstrip("-@:+!")  # systemd's prefixes
    return argv


def test_exec_start_is_a_command_line_murmur_accepts(monkeypatch):
    argv = _exec_argv(_one(UNIT, "Service", "ExecStart"))
    assert PurePosixPath(argv[0]).is_absolute() and PurePosixPath(argv[0]).name == "murmur"
    args = _murmur_args(argv[1:])
    assert args.command == "serve"
    assert args.config == "/etc/murmur/server.toml", "README installs deploy/server.toml there"
    assert _one(UNIT, "Service", "ConfigurationDirectory") == "murmur"
    for pre in _all(UNIT, "Service", "ExecStartPre"):
        pre_argv = _exec_argv(pre)
        if PurePosixPath(pre_argv[0]).name == "murmur":
            _murmur_args(pre_argv[1:])
    # The settings it serves with: deploy/server.toml, then the unit's environment.
    env = _unit_env()
    settings = _settings(argv[1:], env, monkeypatch, config=DEPLOY / "server.toml")
    state = f"/var/lib/{_one(UNIT, 'Service', 'StateDirectory')}"
    assert settings.pairing.state_dir == state, "pair, devices and serve share this registry"
    assert settings.server.host == "0.0.0.0", "phones on the network must reach it"
    assert settings.metrics.host == "127.0.0.1", "/metrics has no auth"
    # ProtectSystem=strict: every path written to is one systemd made writable.
    writable = [state, f"/var/cache/{_one(UNIT, 'Service', 'CacheDirectory')}"]
    writable += _all(UNIT, "Service", "ReadWritePaths")
    for key in ("HF_HOME", "XDG_CACHE_HOME"):
        assert any(PurePosixPath(env[key]).is_relative_to(w) for w in writable), key


def test_the_exec_start_check_can_fail():
    """A flag murmur does not have fails it."""
    with pytest.raises(pytest.fail.Exception, match="refuses"):
        _murmur_args(["serve", "--listen", "0.0.0.0"])


def _verifiable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart's binary swapped for one that exists here (verify checks)."""
    stub = tmp_path / "murmur"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    text = UNIT_TEXT.replace("/opt/murmur/.venv/bin/murmur", str(stub))
    unit = tmp_path / "murmur.service"
    unit.write_text(text)
    return unit


def _systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (the strict parse above still ran)")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)


def test_systemd_verifies_the_unit_without_a_warning(tmp_path):
    r = _systemd_analyze("verify", "--man=no", str(_verifiable_copy(tmp_path)))
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


def test_systemd_verify_does_flag_a_bad_unit(tmp_path):
    unit = _verifiable_copy(tmp_path)
    unit.write_text(unit.read_text().replace("ProtectHome=yes", "ProtectHome=maybe"))
    r = _systemd_analyze("verify", "--man=no", str(unit))
    assert "protect home" in (r.stdout + r.stderr).lower()


def test_systemd_rates_the_unit_exposure_at_most_2_5(tmp_path):
    unit = _verifiable_copy(tmp_path)
    r = _systemd_analyze("security", "--offline=yes", "--threshold=25", str(unit))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    bare = tmp_path / "bare.service"
    bare.write_text(f"[Service]\nExecStart={tmp_path / 'murmur'} serve\n")
    r = _systemd_analyze("security", "--offline=yes", "--threshold=25", str(bare))
    assert r.returncode != 0, "the threshold must be able to fail"


# --- the Dockerfile -----------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    value: str

    def exec_form(self) -> list[str] | None:
        try:
            form = json.loads(self.value)
        except ValueError:
            return None
        return form if isinstance(form, list) and all(isinstance(a, str) for a in form) else None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments dropped."""
    out: list[Instruction] = []
    logical, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not logical:
            start = n
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        keyword, _, value = (logical + line).strip().partition(" ")
        out.append(Instruction(start, keyword.upper(), " ".join(value.split())))
        logical = ""
    if logical:
        raise ValueError(f"line {start}: a continuation runs off the end")
    return out


def _options(value: str) -> tuple[dict[str, str], str]:
    """``--a=1 --b=2 rest`` → ({a: 1, b: 2}, rest)."""
    opts = {}
    while value.startswith("--"):
        opt, _, value = value.partition(" ")
        key, _, val = opt[2:].partition("=")
        opts[key] = val
    return opts, value


def _image_ref(value: str, stages: set[str]) -> str | None:
    """The FROM's image, or None when it names an earlier stage."""
    _, rest = _options(value)
    image = rest.split()[0]
    return None if image in stages else image


def lint_dockerfile(text: str) -> list[str]:
    """hadolint's rules that matter here, and Murmur's own (MUR…): one line per problem."""
    ins = parse_dockerfile(text)
    problems: list[str] = []
    stages: set[str] = set()
    env: dict[str, str] = {}
    shell_pipefail = False
    for i in ins:
        where = f"(line {i.line})"
        if i.keyword == "FROM":
            image = _image_ref(i.value, stages)
            if " AS " in f" {i.value.upper()} ":
                stages.add(i.value.split()[-1])
            if image is not None:
                name = image.split("@")[0]
                tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else None
                if tag is None and "@" not in image:
                    problems.append(f"DL3006 {where}: pin the base image's tag: {image}")
                elif tag == "latest":
                    problems.append(f"DL3007 {where}: 'latest' is not a pin: {image}")
        elif i.keyword == "ENV":
            for item in shlex.split(i.value):
                key, _, val = item.partition("=")
                env[key] = val
        elif i.keyword == "SHELL":
            shell_pipefail = "pipefail" in (i.exec_form() or [])
        elif i.keyword == "ADD":
            problems.append(f"DL3020 {where}: COPY, not ADD, for files and folders")
        elif i.keyword == "MAINTAINER":
            problems.append(f"DL4000 {where}: MAINTAINER is deprecated")
        elif i.keyword == "WORKDIR" and not i.value.startswith(("/", "$")):
            problems.append(f"DL3000 {where}: WORKDIR must be absolute")
        elif i.keyword in ("CMD", "ENTRYPOINT") and i.exec_form() is None:
            problems.append(f"DL3025 {where}: {i.keyword} in JSON form, so signals reach murmur")
        elif i.keyword == "COPY":
            _, rest = _options(i.value)
            if rest.split()[0] in (".", "./"):
                problems.append(f"MUR001 {where}: copy what the image needs, not the context")
        elif i.keyword == "RUN":
            problems += _lint_run(i, env, shell_pipefail)
    users = [i for i in ins if i.keyword == "USER"]
    last = ins[-1].line if ins else 0
    starts = [i.line for i in ins if i.keyword in ("ENTRYPOINT", "CMD")] or [last]
    if not users or users[-1].value.split(":")[0] in ("root", "0"):
        problems.append("DL3002: the last USER must not be root")
    elif users[-1].line > min(starts):
        problems.append("MUR002: USER comes before ENTRYPOINT and CMD")
    checks = [i for i in ins if i.keyword == "HEALTHCHECK"]
    if len(checks) != 1 or "CMD [" not in checks[0].value:
        problems.append("MUR003: one HEALTHCHECK, in JSON form")
    problems += _lint_install_order(ins)
    return problems


def _lint_run(i: Instruction, env: dict[str, str], shell_pipefail: bool) -> list[str]:
    where = f"(line {i.line})"
    cmd = i.value
    out = []
    if re.search(r"(^|[;&|]\s*)sudo\s", cmd):
        out.append(f"DL3004 {where}: no sudo in RUN (it runs as root already)")
    if re.search(r"(^|[;&]\s*)cd\s", cmd):
        out.append(f"DL3003 {where}: WORKDIR, not cd")
    if re.search(r"[^|]\|[^|]", cmd) and not shell_pipefail:
        out.append(f"DL4006 {where}: a pipe needs SHELL [..., '-o', 'pipefail', ...]")
    if "apt-get install" in cmd:
        if "--no-install-recommends" not in cmd:
            out.append(f"DL3015 {where}: apt-get install --no-install-recommends")
        if not re.search(r"apt-get install[^&;]*\s(-y|--yes|-qq)\b", cmd):
            out.append(f"DL3014 {where}: apt-get install -y")
        if "apt-get update" not in cmd.split("apt-get install")[0]:
            out.append(f"DL3009 {where}: apt-get update in the same RUN as install")
        if "rm -rf /var/lib/apt/lists/*" not in cmd.split("apt-get install")[-1]:
            out.append(f"DL3009 {where}: rm -rf /var/lib/apt/lists/* after installing")
    if re.search(r"pip3? install", cmd) and "--no-cache-dir" not in cmd:
        if env.get("PIP_NO_CACHE_DIR", "").lower() not in ("1", "true", "yes", "on"):
            out.append(f"DL3042 {where}: pip install --no-cache-dir")
    return out


def _lint_install_order(ins: list[Instruction]) -> list[str]:
    """The dependencies install before the source is copied, the source without them."""
    source = [i for i in ins if i.keyword == "COPY" and re.search(r"\bserver\b", i.value)]
    deps = [i for i in ins if i.keyword == "RUN" and "pip install" in i.value and " -r " in i.value]
    own = [i for i in ins if i.keyword == "RUN" and "pip install" in i.value and " -r " not in i.value]  # fmt: skip
    if not source or not deps or not own:
        return ["MUR004: pip install -r (dependencies), COPY server, pip install --no-deps ."]
    problems = []
    if deps[0].line > source[0].line:
        problems.append("MUR004: install the dependencies before COPY of the source")
    if any("--no-deps" not in i.value for i in own if i.line > source[0].line):
        problems.append("MUR004: the source installs with --no-deps")
    return problems


DOCKERFILE_TEXT = (DEPLOY / "Dockerfile").read_text()
DOCKERFILE = parse_dockerfile(DOCKERFILE_TEXT)


def test_the_dockerfile_passes_the_linter():
    assert lint_dockerfile(DOCKERFILE_TEXT) == []


def _drop_healthcheck(text: str) -> str:
    return re.sub(r"HEALTHCHECK[^\n]*\\\n[^\n]*\n", "", text)


@pytest.mark.parametrize(
    ("break_it", "rule"),
    [
        (lambda t: re.sub(r"^FROM \S+", "FROM nvidia/cuda:latest", t, flags=re.M), "DL3007"),
        (lambda t: re.sub(r"^FROM \S+", "FROM nvidia/cuda", t, flags=re.M), "DL3006"),
        (lambda t: t.replace("--no-install-recommends", ""), "DL3015"),
        (lambda t: t.replace("&& rm -rf /var/lib/apt/lists/*", ""), "DL3009"),
        (lambda t: t.replace("USER murmur", "USER root"), "DL3002"),
        (lambda t: t.replace("USER murmur\n", "") + "USER murmur\n", "MUR002"),
        (lambda t: t.replace('ENTRYPOINT ["murmur"]', "ENTRYPOINT murmur"), "DL3025"),
        (lambda t: t.replace("COPY server ./server", "COPY . ."), "MUR001"),
        (_drop_healthcheck, "MUR003"),
        (lambda t: t.replace("--no-deps", ""), "MUR004"),
        (lambda t: t.replace("PIP_NO_CACHE_DIR=1", "X=1").replace("--no-cache-dir", ""), "DL3042"),
        (lambda t: t.replace("SHELL [", "# [") + "RUN echo a | tee b\n", "DL4006"),
        (lambda t: t + "RUN sudo apt-get install -y --no-install-recommends x\n", "DL3004"),
        (lambda t: t + "ADD server /x\n", "DL3020"),
    ],
)
def test_the_linter_catches_a_broken_dockerfile(break_it, rule):
    broken = break_it(DOCKERFILE_TEXT)
    assert broken != DOCKERFILE_TEXT
    assert any(p.startswith(rule) for p in lint_dockerfile(broken)), lint_dockerfile(broken)


def _ins(keyword: str) -> list[Instruction]:
    return [i for i in DOCKERFILE if i.keyword == keyword]


def _image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for i in _ins("ENV"):
        for item in shlex.split(i.value):
            key, _, val = item.partition("=")
            env[key] = val
    return env


def _entrypoint() -> list[str]:
    form = _ins("ENTRYPOINT")[-1].exec_form()
    assert form is not None and form[0] == "murmur", "the image's command is `murmur …`"
    return form


def test_the_image_runs_murmur_serve_with_its_volumes_and_ports(monkeypatch):
    cmd = _ins("CMD")[-1].exec_form()
    assert cmd is not None
    env = _image_env()
    settings = _settings([*_entrypoint()[1:], *cmd], env, monkeypatch)
    assert settings.server.host == "0.0.0.0", "a published port reaches only 0.0.0.0"
    volumes = set(json.loads(_ins("VOLUME")[-1].value))
    assert {env["HF_HOME"], settings.pairing.state_dir} == volumes
    exposed = {int(p.split("/")[0]) for i in _ins("EXPOSE") for p in i.value.split()}
    assert {ServerSettings().port, MetricsSettings().port} <= exposed
    assert settings.metrics.host == "0.0.0.0", "else a published metrics port answers nothing"


def test_the_dependency_step_lists_what_pyproject_asks_for():
    """The RUN that reads pyproject.toml, run here on the real file with the ARG's default."""
    from packaging.requirements import Requirement

    (run,) = [i for i in _ins("RUN") if "tomllib" in i.value]
    python, flag, code, *_ = shlex.split(run.value)
    assert python == "/opt/murmur/bin/python" and flag == "-c"
    (extras,) = [i.value.partition("=")[2] for i in _ins("ARG") if i.value.startswith("EXTRAS=")]
    r = subprocess.run([sys.executable, "-c", code, extras], cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in extras.split(","):
        wanted += project["optional-dependencies"][extra]
    assert r.stdout.splitlines() == wanted
    for line in wanted:
        Requirement(line)  # pip -r reads each line as one


def test_the_healthcheck_runs_the_probe_the_image_copies():
    (check,) = _ins("HEALTHCHECK")
    opts, rest = _options(check.value)
    assert {"interval", "timeout", "start-period", "retries"} <= set(opts)
    argv = json.loads(rest.removeprefix("CMD").strip())
    assert argv[0] == "/opt/murmur/bin/python", "the venv's python: it has grpc and murmur"
    assert any("-m venv /opt/murmur" in i.value for i in _ins("RUN"))
    copied = {i.value.split()[-1]: i.value.split()[-2] for i in _ins("COPY")}
    assert argv[1] in copied, "HEALTHCHECK runs a file the image does not have"
    assert (ROOT / copied[argv[1]]).is_file()


# --- the build context: .dockerignore -----------------------------------------------


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes?, pattern) in order, with Docker's matching: * within a name, ** across."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        rx = ""
        for part in re.split(r"(\*\*/?|\*|\?)", pattern):
            rx += {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                part, re.escape(part)
            )
        rules.append((not include, re.compile(rx + r"\Z")))
    return rules


def in_context(path: str) -> bool:
    """Whether ``path`` (relative to the repo) reaches the build; last matching rule wins."""
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for excludes, rx in _ignore_rules():
        if any(rx.match(p) for p in prefixes):
            excluded = excludes
    return not excluded


def test_dockerignore_keeps_the_repo_clutter_out_and_the_copied_files_in():
    for path in (".git/config", ".venv-test/bin/python", ".venv/bin/python", "tests/x.py",
                 "server/__pycache__/cli.cpython-311.pyc", "murmur.egg-info/PKG-INFO"):  # fmt: skip
        assert not in_context(path), path
    for i in _ins("COPY"):
        opts, rest = _options(i.value)
        if "from" in opts:
            continue
        *sources, _ = rest.split()
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
            assert in_context(src), f"COPY {src}: .dockerignore keeps it out of the build"
    assert in_context("server/cli.py") and in_context("proto/murmur/v1/companion_pb2.py")


# --- compose ------------------------------------------------------------------------


def _compose(name: str) -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / name).read_text())


def _service(name: str, service: str) -> dict[str, Any]:
    """A service with ``extends`` resolved (the overrides here are whole keys)."""
    spec = dict(_compose(name)["services"][service])
    base = spec.pop("extends", None)
    if base is None:
        return spec
    return {**_service(base["file"], base["service"]), **spec}


def _schema_errors(doc: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]  # fmt: skip


COMPOSE_FILES = ["compose.yaml", "compose.vllm.yaml"]


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_files_follow_the_compose_spec(name):
    doc = _compose(name)
    assert _schema_errors(doc) == []
    used = {
        volume.split(":")[0]
        for service in doc["services"]
        for volume in _service(name, service).get("volumes", [])
        if not volume.startswith((".", "/", "~"))
    }
    assert used <= set(doc.get("volumes", {})), "every named volume is declared"


def test_the_schema_check_can_fail():
    doc = _compose("compose.yaml")
    doc["services"]["murmur"]["ports"] = "50051:50051"
    doc["servcies"] = {}
    errors = _schema_errors(doc)
    assert any("servcies" in e for e in errors) and any(e.startswith("services/murmur/ports") for e in errors)  # fmt: skip


def _compose_cli() -> list[str] | None:
    exe = shutil.which("docker-compose")
    if exe:
        return [exe]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:  # fmt: skip
        return [docker, "compose"]
    return None


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_docker_compose_accepts_the_file(name):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no Compose v2 binary here (the schema check above still ran)")
    r = subprocess.run([*cli, "-f", str(DEPLOY / name), "config", "--quiet"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr


def _gpu(service: dict[str, Any]) -> bool:
    devices = service.get("deploy", {}).get("resources", {}).get("reservations", {})
    return any(
        d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", [])
        for d in devices.get("devices", [])
    )


def test_compose_runs_murmur_alone_on_the_gpu(monkeypatch):
    murmur = _service("compose.yaml", "murmur")
    assert murmur["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (DEPLOY / murmur["build"]["context"] / murmur["build"]["dockerfile"]).is_file()
    assert _gpu(murmur)
    targets = {v.split(":")[1] for v in murmur["volumes"]}
    assert targets == set(json.loads(_ins("VOLUME")[-1].value)), "the image's volumes, named"
    env = {**_image_env(), **murmur.get("environment", {})}
    settings = _settings([*_entrypoint()[1:], *murmur["command"]], env, monkeypatch)
    ports = {p.rsplit(":", 1)[-1]: p for p in murmur["ports"]}
    assert ports[str(settings.server.port)] == f"{settings.server.port}:{settings.server.port}"
    assert ports[str(settings.metrics.port)].startswith("127.0.0.1:"), "/metrics has no auth"
    assert settings.server.no_auth is False


def _vllm_flag(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


def test_compose_with_vllm_serves_the_model_under_the_name_murmur_asks_for(monkeypatch):
    from server.app import _openai_options
    from server.runtime.openai.client import _pick_served

    vllm = _service("compose.vllm.yaml", "vllm")
    image, _, tag = vllm["image"].rpartition(":")
    assert image == "vllm/vllm-openai" and re.fullmatch(r"v\d+\.\d+\.\d+", tag), vllm["image"]
    assert _gpu(vllm)
    command = vllm["command"]
    assert "--enable-prefix-caching" in command, "each tick repeats the chunk: cache it"
    served = _vllm_flag(command, "--served-model-name")
    assert served, "name the model explicitly"

    murmur = _service("compose.vllm.yaml", "murmur")
    env = {**_image_env(), **murmur.get("environment", {})}
    settings = _settings([*_entrypoint()[1:], *murmur["command"]], env, monkeypatch)
    url = urlsplit(settings.model.model)
    assert url.hostname == "vllm" and url.path == "/v1"
    assert url.port == int(_vllm_flag(command, "--port") or 8000)
    wanted = _openai_options(settings.model).model
    # What Murmur does with vLLM's GET /models: it must find its model there (else it
    # refuses to start), and by the exact name, so no near match is left to chance.
    listing = [{"id": served, "root": command[0]}]
    assert _pick_served(listing, wanted, settings.model.model) == served
    assert served == wanted, f"vLLM serves {served!r}, Murmur asks for {wanted!r}"

    test = " ".join(vllm["healthcheck"]["test"])
    assert f":{url.port}/health" in test
    assert murmur["depends_on"]["vllm"]["condition"] == "service_healthy"


# --- the image's health probe ---------------------------------------------------------


def _probe_module():
    spec = importlib.util.spec_from_file_location("murmur_healthcheck", DEPLOY / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def health_server(tmp_path):
    """A real gRPC health service on a free port: TLS with the server's own certificate
    made in a state directory, as `murmur serve` makes it; yields (servicer, config)."""
    from server.pairing.tls import ensure_self_signed

    started: list[grpc.Server] = []

    def start(tls: bool):
        state = tmp_path / "state"
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        if tls:
            identity = ensure_self_signed(state)
            creds = grpc.ssl_server_credentials([(identity.key_pem, identity.cert_pem)])
            port = server.add_secure_port("127.0.0.1:0", creds)
        else:
            port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        started.append(server)
        config = tmp_path / "server.toml"
        host = "0.0.0.0" if tls else "127.0.0.1"  # a wildcard bind is asked on loopback
        config.write_text(
            f'[server]\nhost = "{host}"\nport = {port}\nno_auth = {str(not tls).lower()}\n'
            f'[pairing]\nstate_dir = "{state}"\n'
        )
        return servicer, config

    yield start
    for server in started:
        server.stop(None)


@pytest.mark.parametrize("tls", [True, False])
def test_the_probe_is_healthy_only_while_serving(health_server, tls, capsys):
    probe = _probe_module()
    servicer, config = health_server(tls)
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert probe.main(["--config", str(config)]) == 1
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert probe.main(["--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith(": SERVING")


def test_the_probe_fails_with_no_server_or_no_certificate(tmp_path, capsys):
    probe = _probe_module()
    config = tmp_path / "server.toml"
    config.write_text(f'[pairing]\nstate_dir = "{tmp_path / "none"}"\n')
    assert probe.main(["--config", str(config)]) == 1  # no certificate: not started yet
    config.write_text('[server]\nhost = "127.0.0.1"\nport = 9\nno_auth = true\n')
    assert probe.main(["--config", str(config), "--timeout", "1"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().out


# --- README "Deployment" --------------------------------------------------------------


def _deployment_commands() -> list[list[str]]:
    """Every `murmur …` and `murmur-bridge …` command in the section's shell blocks."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Deployment\n")
    section = readme[start : readme.index("\n## ", start + 1)]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            for n, word in enumerate(words):
                name = PurePosixPath(word).name
                rest = words[n + 1 :]
                if name in ("murmur", "murmur-bridge") and rest and rest[0] in SUBCOMMANDS:
                    cut = [k for k, w in enumerate(rest) if w in ("&&", "||", "|", ";")]
                    commands.append([name, *rest[: cut[0] if cut else None]])
                    break
    return commands


SUBCOMMANDS = {"serve", "doctor", "download", "pair", "devices"}


def test_every_command_in_the_deployment_steps_is_one_murmur_accepts():
    from mobile_bridge.cli import build_parser

    commands = _deployment_commands()
    assert {c[1] for c in commands if c[0] == "murmur"} >= {"download", "doctor", "pair"}
    for argv in commands:
        parser = _parser() if argv[0] == "murmur" else build_parser()
        try:
            parser.parse_args(argv[1:])
        except SystemExit as e:
            pytest.fail(f"README: {shlex.join(argv)!r} is refused (exit {e.code})")
