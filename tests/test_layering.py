"""The import rules of DESIGN.md, read from the source: layers, purity, no cycles."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import etcd_twisted

ROOT = Path(etcd_twisted.__file__).parent
PACKAGE = "etcd_twisted"

#: Each top-level part of the package and its layer; a module may import only from its own
#: layer or lower ones. ``grpc``, ``sniff``, ``listen``, ``logs``, ``systemd`` and ``tls`` stand apart: they
#: know nothing of etcd (they may use ``_pb`` for the gRPC health messages).
LAYERS: dict[str, int] = {
    "__init__": 0,
    "_pb": 0,
    "failpoints": 0,
    "deep_proto": 0,
    "config": 0,
    "raft": 1,
    "wal": 1,
    "backend": 2,
    "mvcc": 3,
    "lease": 3,
    "auth": 3,
    "membership": 3,
    "apply": 4,
    "snapshot": 4,
    "server": 5,
    "grpc": 5,
    "sniff": 5,
    "listen": 5,
    "tls": 0,
    "security": 5,
    "logs": 5,
    "systemd": 5,
    "peer": 6,
    "api": 6,
    "metrics": 6,
    "ui": 6,
    "embed": 7,
    "proxy": 7,
    "discovery": 7,
    "tap": 8,
    "testing": 9,
}
#: Parts that know only Twisted, h2 and TLS (and ``_pb``, and each other), nothing of etcd.
STANDALONE = {"grpc", "sniff", "listen", "logs", "systemd", "tls"}
#: Pure logic: driven by plain calls and an injected clock, never the reactor.
PURE = {"raft", "wal", "backend", "mvcc", "lease", "auth", "membership", "apply"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports_of(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, ``TYPE_CHECKING`` blocks and function bodies included;
    ``from package import submodule`` counts as the submodule."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                yield candidate if is_module(candidate) else source


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {
        name: {m for m in imports_of(path) if m in modules and m != name}
        for name, path in modules.items()
    }


class LayeringTests(SynchronousTestCase):
    def test_every_part_has_a_layer(self) -> None:
        """Each top-level module or package is placed in the layering table."""
        parts = {part_of(m) for m in graph()}
        self.assertEqual(parts - set(LAYERS), set())

    def test_no_module_imports_a_layer_above_it(self) -> None:
        """Imports go down the layers of DESIGN.md (or stay within a layer)."""
        wrong = []
        for module, targets in graph().items():
            here = part_of(module)
            for target in targets:
                there = part_of(target)
                if here == there:
                    continue
                if LAYERS[there] > LAYERS[here]:
                    wrong.append(f"{module} -> {target}")
                elif here in STANDALONE and there not in STANDALONE | {"_pb", "__init__"}:
                    wrong.append(f"{module} -> {target} (standalone)")
        self.assertEqual(wrong, [])

    def test_pure_packages_do_not_import_twisted(self) -> None:
        """raft, wal, backend, mvcc, lease, auth, membership and apply never import twisted."""
        wrong = []
        for path in ROOT.rglob("*.py"):
            module = module_name(path)
            if part_of(module) in PURE:
                wrong += [
                    f"{module} -> {m}" for m in imports_of(path) if m.split(".")[0] == "twisted"
                ]
        self.assertEqual(wrong, [])

    def test_no_import_cycles(self) -> None:
        """No module reaches itself through imports (type-checking ones included)."""
        edges = graph()
        state: dict[str, int] = {}
        cycles: list[str] = []

        def visit(module: str, trail: list[str]) -> None:
            state[module] = 1
            for target in sorted(edges[module]):
                if state.get(target) == 1:
                    cycles.append(" -> ".join(trail[trail.index(target) :] + [target]))
                elif target not in state:
                    visit(target, trail + [target])
            state[module] = 2

        for module in sorted(edges):
            if module not in state:
                visit(module, [module])
        self.assertEqual(cycles, [])

    def test_only_raft_reads_the_raft_state_machine(self) -> None:
        """Nothing outside raft/ reaches into ``RawNode.raft``."""
        wrong = []
        for path in ROOT.rglob("*.py"):
            if part_of(module_name(path)) == "raft":
                continue
            text = path.read_text()
            for needle in ("node.raft.", ".raft.trk", ".raft.raft_log"):
                if needle in text:
                    wrong.append(f"{module_name(path)}: {needle}")
        self.assertEqual(wrong, [])
