"""The house rules that keep the code easy to find one's way around (STYLE.md).

Every test here reads source with ``ast`` and imports nothing heavy, so the whole
file runs in well under a second and can guard every commit.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

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
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "_pb2" not in p.name)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _none_of(found: list[str], what: str) -> None:
    """Fail listing every finding, one a line, without pytest's truncated diff."""
    if found:
        pytest.fail(f"{what}:\n  " + "\n  ".join(found), pytrace=False)


def test_only_transport_talks_grpc_and_protobuf():
    offenders = []
    for path in _py("server"):
        if path.parent.name == "transport":
            continue
        for name in _imports(path):
            if (
                name == "grpc"
                or name.startswith(("grpc.", "grpc_", "murmur.v1"))
                or name.endswith("_pb2")
            ):
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


# --- which room may import which (DESIGN.md §4, architecture-2 P10) -----------------
#
# A room is the most specific key below that names a module ("server.runtime.openai"
# before "server.runtime"). A room may import the modules its rule lists (a prefix
# covers the package below it) and none of those in ``never``. Every import counts:
# lazy ones inside functions and those under TYPE_CHECKING state a dependency too.


@dataclass(frozen=True)
class Rule:
    may_import: tuple[str, ...]
    never: tuple[str, ...] = ()


LEAVES = ("server.events", "server.errors", "server.codes", "server.tasks")
# What a backend package may lean on: the leaf types, telemetry and the phrase table.
BACKEND_LEAVES = (*LEAVES, "server.telemetry", "server.modes.phrases")
# The session talks to voice and agents through these, never through a concrete backend.
VOICE_INTERFACES = (
    "server.voice.asr.base",
    "server.voice.tts.base",
    "server.voice.codec",
    "server.voice.listener",
)
AGENT_INTERFACES = ("server.agents.base", "server.agents.manager")
RUNTIME_LEAVES = ("server.runtime.base", "server.runtime.limits")
RUNTIME_BACKENDS = ("server.runtime.transformers", "server.runtime.openai")

ALLOWED: dict[str, Rule] = {
    # the composition root names everything
    "server.app": Rule(("server",)),
    "server.cli": Rule(("server",)),
    # `murmur doctor` checks what the composition root would build, with its own builders
    "server.doctor": Rule(("server",)),
    # `murmur download`: the hub and the cache, nothing of the server's rooms
    "server.download": Rule(("server.runtime.limits",)),
    "server": Rule(()),  # server/__init__.py: the version, nothing else
    # leaves
    "server.codes": Rule(()),
    "server.tasks": Rule(()),
    "server.errors": Rule(("server.codes",)),
    "server.events": Rule(("server.codes",)),
    "server.config": Rule((*LEAVES, "server.runtime.limits")),
    "server.telemetry": Rule(("server.telemetry", *LEAVES)),
    "server.modes": Rule(("server.modes", "server.events", "server.codes")),
    # transport → session → engine → backends
    "server.transport": Rule(
        (
            "server.transport",
            "server.session",
            *LEAVES,
            "server.config",
            "server.telemetry",
            "server.pairing",
            "server.storage",
        )
    ),
    "server.session": Rule(
        (
            "server.session",
            "server.config",  # SessionServices carries the settings sessions read
            "server.engine",
            *RUNTIME_LEAVES,
            *VOICE_INTERFACES,
            *AGENT_INTERFACES,
            "server.modes",
            "server.vision",
            *LEAVES,
            "server.telemetry",
        )
    ),
    "server.engine": Rule(
        (
            "server.engine",
            "server.modes",
            "server.vision",
            *RUNTIME_LEAVES,
            *LEAVES,
            "server.telemetry",
        )
    ),
    # backends: their own package and the leaves; never config, engine, session,
    # transport or another backend package
    "server.runtime": Rule(("server.runtime", *BACKEND_LEAVES), never=RUNTIME_BACKENDS),
    "server.runtime.transformers": Rule(
        ("server.runtime", *BACKEND_LEAVES), never=("server.runtime.openai",)
    ),
    "server.runtime.openai": Rule(
        ("server.runtime", *BACKEND_LEAVES), never=("server.runtime.transformers",)
    ),
    "server.voice": Rule(("server.voice", *BACKEND_LEAVES)),
    "server.agents": Rule(("server.agents", *BACKEND_LEAVES)),
    "server.vision": Rule(("server.vision", *LEAVES)),  # barcodes and OCR: pixels in, text out
    # below transport (architecture-2 §5)
    "server.pairing": Rule(("server.pairing", "server.storage", *LEAVES, "server.telemetry")),
    "server.storage": Rule(("server.storage", *LEAVES, "server.telemetry")),
}


def _covers(prefix: str, module: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _module_of(rel: str) -> str:
    """'server/runtime/openai/client.py' → 'server.runtime.openai.client'."""
    parts = rel.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str | None:
    # "server" is only server/__init__.py: a new top-level module needs a rule of its own.
    rooms = [k for k in ALLOWED if module == k or (k != "server" and _covers(k, module))]
    return max(rooms, key=len, default=None)


def _show(rule: Rule) -> str:
    allowed = ", ".join(rule.may_import) or "nothing from server"
    return allowed + (f"; never {', '.join(rule.never)}" if rule.never else "")


def import_violations(imports: Mapping[str, Iterable[str]]) -> list[str]:
    """One line per file:import that breaks ``ALLOWED``; ``imports`` maps a repo-relative
    path to the ``server.*`` modules it imports."""
    out = []
    for rel, modules in sorted(imports.items()):
        room = _room(_module_of(rel))
        if room is None:
            out.append(f"{rel}: in no room; give it a rule in ALLOWED (tests/test_layout.py)")
            continue
        rule = ALLOWED[room]
        for module in sorted(set(modules)):
            if any(_covers(p, module) for p in rule.never):
                out.append(f"{rel}: {module}  [{room} must never import it; rule: {_show(rule)}]")
            elif not any(_covers(p, module) for p in rule.may_import):
                out.append(f"{rel}: {module}  [{room} may import only: {_show(rule)}]")
    return out


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _server_imports(path: Path) -> set[str]:
    """The ``server`` modules a file imports; ``from server.x import y`` names
    ``server.x.y`` when y is a module, else ``server.x``."""
    package = _module_of(_rel(path)).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if alias.name != "*" and _is_module(sub) else module)
    return {n for n in found if _covers("server", n)}


def test_imports_follow_the_package_allow_list():
    imports = {_rel(p): _server_imports(p) for p in _py("server")}
    _none_of(import_violations(imports), "imports against the allow-list (file: import  [rule])")


@pytest.mark.parametrize(
    ("rel", "modules", "expected"),
    [
        # must fail
        ("server/engine/tick.py", {"server.agents.phrases"}, "server.agents.phrases"),
        ("server/engine/loop.py", {"server.agents.manager"}, "server.agents.manager"),
        ("server/agents/registry.py", {"server.config"}, "server.config"),
        ("server/voice/tts/piper.py", {"server.config"}, "server.config"),
        ("server/runtime/openai/client.py", {"server.config"}, "server.config"),
        ("server/runtime/base.py", {"server.runtime.openai.wire"}, "never import"),
        ("server/runtime/transformers/session.py", {"server.runtime.openai"}, "never import"),
        ("server/voice/listener.py", {"server.runtime.base"}, "server.runtime.base"),
        ("server/agents/manager.py", {"server.engine.tick"}, "server.engine.tick"),
        ("server/runtime/scripted.py", {"server.session.session"}, "server.session"),
        ("server/session/session.py", {"server.transport.convert"}, "server.transport"),
        ("server/session/build.py", {"server.voice.tts.piper"}, "server.voice.tts.piper"),
        ("server/session/build.py", {"server.runtime.openai"}, "server.runtime.openai"),
        ("server/engine/policy.py", {"server.voice.tts.base"}, "server.voice.tts.base"),
        ("server/modes/profile.py", {"server.runtime.base"}, "server.runtime.base"),
        ("server/events.py", {"server.session.session"}, "server.session.session"),
        ("server/codes.py", {"server.errors"}, "nothing from server"),
        ("server/config.py", {"server.runtime.prompt"}, "server.runtime.prompt"),
        ("server/helpers.py", set(), "in no room"),
        # must pass
        ("server/engine/tick.py", {"server.modes", "server.runtime.limits", "server.codes"}, None),
        ("server/agents/manager.py", {"server.modes.phrases", "server.agents.base"}, None),
        ("server/runtime/openai/client.py", {"server.runtime.base", "server.telemetry"}, None),
        ("server/session/inbound.py", {"server.engine.commands", "server.voice.listener"}, None),
        ("server/transport/servicer.py", {"server.session.session", "server.config"}, None),
        ("server/config.py", {"server.runtime.limits"}, None),
        ("server/app.py", {"server.runtime.openai.client", "server.voice.tts.piper"}, None),
    ],
)
def test_the_allow_list_checker_itself(rel, modules, expected):
    offenders = import_violations({rel: modules})
    if expected is None:
        assert offenders == []
    else:
        assert len(offenders) == 1 and rel in offenders[0] and expected in offenders[0], offenders


# --- promises kept: settings read, events emitted (architecture-2 P7) ----------------
#
# A setting counts as read where a section's field is read off the settings
# (``settings.server.tick_hz``, ``cfg = services.settings.server; cfg.port``,
# ``def f(v: VoiceSettings): v.asr``), not wherever something has an attribute of that
# name: ``self.timeout_s`` or ``model.model`` say nothing about ``[agent] timeout_s``.


@dataclass(frozen=True)
class Section:
    """One ``[section]`` of the settings: its attribute on ``Settings``, class, fields."""

    name: str
    cls: str
    fields: tuple[str, ...]


def _settings_sections() -> list[Section]:
    """Each section dataclass ``Settings`` holds, with its field names."""
    classes = {
        n.name: n for n in _tree(ROOT / "server/config.py").body if isinstance(n, ast.ClassDef)
    }
    assert "Settings" in classes, "server/config.py has no class Settings"

    def fields(cls: ast.ClassDef) -> list[tuple[str, ast.expr]]:
        return [
            (s.target.id, s.annotation)
            for s in cls.body
            if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
        ]

    sections = []
    for attr, annotation in fields(classes["Settings"]):
        cls = ast.unparse(annotation).strip("'\"")
        if cls in classes:
            sections.append(Section(attr, cls, tuple(f for f, _ in fields(classes[cls]))))
    assert sections, "found no settings sections in server/config.py"
    return sections


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_SETTINGS = "Settings"  # the kind of a value that is the whole settings object


class _SettingsReads(ast.NodeVisitor):
    """Collects ``(section, field)`` for every read of a field off a settings section.

    A value is the settings when it is a name or attribute called ``settings`` (the
    house name for it), a parameter annotated ``Settings``, a call to ``Settings``,
    ``load_settings`` or ``.with_overrides`` on the settings, or a name bound to one
    of these. It is a section when it is ``<settings>.<section>``, a parameter
    annotated with the section's class, or a name bound to one. Bindings are per
    function (a closure sees its outer function's) and a name's last binding there is
    the one that counts: rebound to anything else (a loop, ``with``, unpacking,
    another value), it is not a section any more.
    """

    def __init__(self, sections: Mapping[str, str]) -> None:
        self.sections = sections  # section attribute -> class name
        self.by_class = {cls: name for name, cls in sections.items()}
        self.scopes: list[dict[str, str | None]] = []
        self.found: set[tuple[str, str]] = set()

    def kind(self, node: ast.AST) -> str | None:
        """``_SETTINGS``, a section's name, or None for anything else."""
        if isinstance(node, ast.Name):
            if node.id == "settings":
                return _SETTINGS
            for scope in reversed(self.scopes):
                if node.id in scope:
                    return scope[node.id]
            return None
        if isinstance(node, ast.Attribute):
            if node.attr == "settings":
                return _SETTINGS
            if node.attr in self.sections and self.kind(node.value) == _SETTINGS:
                return node.attr
            return None
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                if func.id in ("Settings", "load_settings"):
                    return _SETTINGS
                return self.by_class.get(func.id)
            if isinstance(func, ast.Attribute) and func.attr == "with_overrides":
                return _SETTINGS if self.kind(func.value) == _SETTINGS else None
        return None

    def _declared(self, arg: ast.arg) -> str | None:
        if arg.annotation is not None:
            for part in ast.unparse(arg.annotation).strip("'\"").split("|"):
                name = part.strip().rsplit(".", 1)[-1]
                if name == "Settings":
                    return _SETTINGS
                if name in self.by_class:
                    return self.by_class[name]
        return None

    def _scope(self, node: ast.AST) -> None:
        scope: dict[str, str | None] = {}
        if isinstance(node, _SCOPES):
            a = node.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
                if arg is not None:
                    scope[arg.arg] = self._declared(arg)
        self.scopes.append(scope)
        for target, value in _bindings(node):
            scope[target] = self.kind(value) if value is not None else None
        self.generic_visit(node)
        self.scopes.pop()

    visit_Module = visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scope

    def visit_Attribute(self, node: ast.Attribute) -> None:
        section = self.kind(node.value)
        if isinstance(node.ctx, ast.Load) and section in self.sections:
            self.found.add((section, node.attr))
        self.generic_visit(node)


def _bindings(scope: ast.AST) -> list[tuple[str, ast.expr | None]]:
    """Names a scope binds (not its nested scopes), in source order, each with its
    value when it is a plain ``name = value``; None for a loop, ``with``, unpacking."""
    own: list[ast.AST] = []
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        own.append(node)
        if not isinstance(node, (*_SCOPES, ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(node))
    values: dict[int, ast.expr | None] = {}
    for node in own:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            values[id(node.targets[0])] = node.value
        elif isinstance(node, ast.AnnAssign | ast.NamedExpr):
            values[id(node.target)] = node.value
    names = [n for n in own if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
    names.sort(key=lambda n: (n.lineno, n.col_offset))
    return [(n.id, values.get(id(n))) for n in names]


def settings_read(source: str, sections: Mapping[str, str]) -> set[tuple[str, str]]:
    """The ``(section, field)`` pairs ``source`` reads off the settings; ``sections``
    maps each section's attribute on ``Settings`` to its class."""
    reads = _SettingsReads(sections)
    reads.visit(ast.parse(source))
    return reads.found


# Fields read by a route the AST check cannot follow, each with where it is read.
# (None today: CLI flags and ``with_overrides`` only *write* settings; what serve
# reads afterwards goes through ``settings.<section>.<field>`` like everything else.)
SETTINGS_READ_ELSEWHERE: dict[str, str] = {}


def test_every_setting_is_read_outside_config():
    sections = _settings_sections()
    by_name = {s.name: s.cls for s in sections}
    read: set[tuple[str, str]] = set()
    for path in _py("server"):
        if _rel(path) != "server/config.py":
            read |= settings_read(path.read_text(encoding="utf-8"), by_name)
    unread = [
        f"[{s.name}] {field}  ({s.cls}.{field})"
        for s in sections
        for field in s.fields
        if (s.name, field) not in read and f"{s.name}.{field}" not in SETTINGS_READ_ELSEWHERE
    ]
    _none_of(
        unread,
        "settings nothing outside server/config.py reads as settings.<section>.<field> "
        "(wire them, delete them, or name where they are read in SETTINGS_READ_ELSEWHERE)",
    )
    stale = [k for k in SETTINGS_READ_ELSEWHERE if tuple(k.split(".", 1)) in read]
    _none_of(stale, "SETTINGS_READ_ELSEWHERE entries that are read directly now (drop them)")


_SECTIONS = {
    "server": "ServerSettings",
    "pairing": "PairingSettings",
    "model": "ModelSettings",
    "voice": "VoiceSettings",
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # counted
        ("def f(settings):\n    return settings.server.tick_hz", {("server", "tick_hz")}),
        ("def f(self):\n    return self.services.settings.server.port", {("server", "port")}),
        (
            "def f(self):\n    cfg = self._services.settings.server\n    cfg.host",
            {("server", "host")},
        ),
        ("def f(s: Settings):\n    return s.voice.asr", {("voice", "asr")}),
        ("def f(v: 'VoiceSettings'):\n    return v.rate", {("voice", "rate")}),
        ("def f(m: config.ModelSettings | None):\n    return m.dtype", {("model", "dtype")}),
        (
            "def f(p):\n    s = load_settings(p).with_overrides('voice', asr='none')\n"
            "    return s.voice.asr_model",
            {("voice", "asr_model")},
        ),
        (
            "def f(settings):\n    v = settings.voice\n    def g():\n        return v.volume\n",
            {("voice", "volume")},
        ),
        (
            "def f(o):\n    settings, db = o\n    settings.pairing.code_ttl_s",
            {("pairing", "code_ttl_s")},
        ),
        # not counted: a field's name off something that is not a settings section
        ("def f(self):\n    return self.timeout_s", set()),
        ("def f(model):\n    return model.model.get_rope_index", set()),
        ("def f(m):\n    return m.server.port", set()),
        ("def f(p):\n    s = load_settings(p)\n    s = other()\n    return s.server.port", set()),
        ("def f(s: Settings):\n    for s in xs:\n        s.server.port", set()),
        ("def f(settings):\n    cfg = settings.server\n    cfg = 3\n    cfg.port", set()),
        ("def f(settings):\n    settings.server.port = 1", set()),
        ("def f(v: VoiceSettings):\n    def g(v):\n        return v.rate\n", set()),
    ],
)
def test_the_settings_reader_itself(source, expected):
    assert settings_read(source, _SECTIONS) == expected


def _server_event_classes() -> list[str]:
    for node in _tree(ROOT / "server/events.py").body:
        if isinstance(node, ast.Assign):
            target: ast.expr = node.targets[0]
        elif isinstance(node, ast.AnnAssign):
            target = node.target
        else:
            continue
        if isinstance(target, ast.Name) and target.id == "ServerEvent" and node.value is not None:
            names = [n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)]
            return [n for n in names if n not in ("Union", "TypeAlias")]
    raise AssertionError("server/events.py defines no ServerEvent union")


def test_every_server_event_is_emitted():
    skip = {"server/events.py", "server/transport/convert.py"}
    built = {
        node.func.id if isinstance(node.func, ast.Name) else node.func.attr
        for p in _py("server")
        if _rel(p) not in skip
        for node in ast.walk(_tree(p))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)
    }
    events = _server_event_classes()
    assert len(events) > 3, f"ServerEvent parsed as {events}"
    _none_of(
        [e for e in events if e not in built],
        "ServerEvents nothing in server/ constructs (emit them or delete them)",
    )


# --- room sizes ----------------------------------------------------------------------


@pytest.mark.parametrize(("folder", "limit"), [("server", 400), ("mobile_bridge", 650)])
def test_no_file_outgrows_a_room(folder, limit):
    big = [
        f"{_rel(p)} ({n} lines)"
        for p in _py(folder)
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > limit
    ]
    _none_of(big, f"files in {folder}/ over {limit} lines (split them)")


MAX_METHODS = 15  # at or over this, a class is doing more than one job (P1, P5)


def _methods(cls: ast.ClassDef) -> int:
    return sum(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) for n in cls.body)


def _classes(path: Path) -> list[ast.ClassDef]:
    return [n for n in _tree(path).body if isinstance(n, ast.ClassDef)]


def _transformers_sessions() -> list[tuple[Path, ast.ClassDef]]:
    """The ``ModelSession`` subclass for transformers, wherever the move has put it."""
    found = []
    for path in _py("server/runtime"):
        for cls in _classes(path):
            bases = {ast.unparse(b).rsplit(".", 1)[-1] for b in cls.bases}
            in_transformers = "transformers" in path.relative_to(ROOT / "server/runtime").parts
            if "ModelSession" in bases and (in_transformers or "transformers" in cls.name.lower()):
                found.append((path, cls))
    return found


def test_no_class_has_too_many_methods():
    checked: list[tuple[Path, ast.ClassDef]] = []
    session = ROOT / "server/session/session.py"
    assert session.is_file(), (
        "server/session/session.py is missing: point this test at Session's file"
    )
    checked += [(session, cls) for cls in _classes(session)]

    transformers = _transformers_sessions()
    assert transformers, (
        "found no ModelSession subclass for transformers under server/runtime "
        "(expected server/runtime/transformers/session.py): point this test at it"
    )
    checked += transformers

    listener = ROOT / "server/voice/listener.py"
    assert listener.is_file(), (
        "server/voice/listener.py is missing: point this test at AudioListener"
    )
    audio = [c for c in _classes(listener) if c.name == "AudioListener"]
    assert audio, "server/voice/listener.py has no class AudioListener: point this test at it"
    checked += [(listener, audio[0])]

    heavy = [
        f"{_rel(path)}:{cls.lineno} {cls.name} ({n} methods)"
        for path, cls in checked
        if (n := _methods(cls)) >= MAX_METHODS
    ]
    _none_of(heavy, f"classes with {MAX_METHODS} or more methods (split them)")


# --- generated code and docs stay true -----------------------------------------------


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
