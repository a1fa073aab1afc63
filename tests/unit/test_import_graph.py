"""No import cycles among Vigil's modules, function-local and type-only imports included.

A local import can hide a cycle from Python (it runs after both modules loaded) but not from
a reader: the two modules are one unit that pretends to be two. Before this test,
``stream.dev.simulate`` and ``stream.dev.incident_sim``, and ``stream.settings`` and
``stream.kafka.kafka_options``, imported each other that way.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(packages: tuple[str, ...] = ("stream", "models")) -> dict[str, set[str]]:
    """Each module's imports of other modules of ``packages`` (any import statement)."""
    paths = {_module_name(p): p for package in packages for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                wanted = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                wanted = [a.name for a in node.names]
            else:
                continue
            edges.update(w for w in wanted if w in paths and w != name)
    return graph


def test_the_graph_sees_local_imports() -> None:
    graph = import_graph()
    assert "stream.dev.simulate_run" in graph["stream.cli"]  # imported inside a function


def test_no_module_imports_itself_through_others() -> None:
    try:
        tuple(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None
