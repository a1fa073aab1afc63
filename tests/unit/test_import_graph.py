"""No import cycles among Vigil's modules, function-local and type-only imports included.

A local import can hide a cycle from Python (it runs after both modules loaded) but not from
a reader: the two modules are one unit that pretends to be two. Before this test,
``stream.dev.simulate`` and ``stream.dev.incident_sim``, and ``stream.settings`` and
``stream.kafka.kafka_options``, imported each other that way.

And the rooms of ``stream/`` (docs/design.md, "The house") keep their doors: ``stream/core``
knows no Kafka, service, telemetry or dev code, and nothing the services run imports
``stream/dev`` (the CLI reaches the dev commands through imports inside their functions).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST) -> set[str]:
    """Every name an import statement in ``tree`` may mean: a module, or a module's member."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update([node.module, *(f"{node.module}.{a.name}" for a in node.names)])
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def _sources(packages: tuple[str, ...]) -> dict[str, Path]:
    return {_module_name(p): p for package in packages for p in (ROOT / package).rglob("*.py")}


def import_graph(packages: tuple[str, ...] = ("stream", "models")) -> dict[str, set[str]]:
    """Each module's imports of other modules of ``packages`` (any import statement)."""
    paths = _sources(packages)
    return {
        name: {
            w
            for w in _imports(ast.parse(path.read_text(encoding="utf-8")))
            if w in paths and w != name
        }
        for name, path in paths.items()
    }


def _imported(room: str) -> dict[str, set[str]]:
    """The imports (any statement, third-party included) of each module of ``room``."""
    return {
        name: _imports(ast.parse(path.read_text(encoding="utf-8")))
        for name, path in _sources(("stream",)).items()
        if name == room or name.startswith(f"{room}.")
    }


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def test_the_graph_sees_local_imports() -> None:
    graph = import_graph()
    assert "stream.dev.simulate_run" in graph["stream.cli"]  # imported inside a function


def test_no_module_imports_itself_through_others() -> None:
    try:
        tuple(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_core_knows_no_kafka_service_telemetry_or_dev_code() -> None:
    banned = (
        "aiokafka",
        "stream.kafka",
        "stream.detector",
        "stream.sidecar",
        "stream.notify",
        "stream.telemetry",
        "stream.dev",
    )
    imported = _imported("stream.core")
    assert "stream.core.pipeline" in imported
    offences = {
        module: sorted(n for n in names if _within(n, banned))
        for module, names in imported.items()
        if any(_within(n, banned) for n in names)
    }
    assert not offences, f"stream/core imports outside its room: {offences}"


RUNTIME = (
    "stream.core",
    "stream.kafka",
    "stream.detector",
    "stream.sidecar",
    "stream.notify",
    "stream.correlate",
    "stream.telemetry",
    "stream.offline",
)


def test_the_runtime_never_imports_dev_code() -> None:
    imported = {m: names for room in RUNTIME for m, names in _imported(room).items()}
    assert "stream.detector.detector" in imported
    assert "stream.sidecar.service" in imported
    offences = {
        module: sorted(n for n in names if _within(n, ("stream.dev",)))
        for module, names in imported.items()
        if any(_within(n, ("stream.dev",)) for n in names)
    }
    assert not offences, f"runtime modules importing stream/dev: {offences}"


def _outside_functions(tree: ast.Module) -> ast.Module:
    """``tree`` without the bodies of its functions (what runs when the module is imported)."""

    class Strip(ast.NodeTransformer):
        def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
            return None

        def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
            return None

    stripped = Strip().visit(tree)
    assert isinstance(stripped, ast.Module)
    return stripped


def test_the_contract_imports_dev_code_only_inside_functions() -> None:
    contract = {m: p for m, p in _sources(("stream",)).items() if m.count(".") == 1}
    assert "stream.cli" in contract
    for module, path in contract.items():
        tree = _outside_functions(ast.parse(path.read_text(encoding="utf-8")))
        eager = sorted(n for n in _imports(tree) if _within(n, ("stream.dev",)))
        assert not eager, f"{module} imports stream/dev when it is imported: {eager}"
