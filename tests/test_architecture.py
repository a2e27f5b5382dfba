"""The layering of `src/longwin`, read from the source: every import (a lazy one inside a function too) must
point to the same layer or one below, and no group of modules may import each other in a circle.

Layers, bottom to top (docs/architecture.md): foundations, data, model components, training methods,
training/evaluation/benchmarks, studies (the reports layer), jobs and the command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "longwin"
LAYERS: list[tuple[str, ...]] = [
    ("longwin.errors", "longwin.outputs", "longwin.flags"),
    ("longwin.data",),
    ("longwin.models", "longwin.rope", "longwin.positions"),
    ("longwin.methods",),
    ("longwin.training", "longwin.eval", "longwin.bench"),
    ("longwin.studies",),
    ("longwin.jobs", "longwin.cli", "longwin.__main__", "longwin"),
]


def modules(root: Path = SRC) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The longwin modules `name` imports anywhere in its body (package `__init__`s count as modules)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in known and target != name and target.startswith("longwin"):
                out.add(target)
    return out


def layer(name: str) -> int:
    best = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    assert best is not None, f"{name} is in no layer: add it to LAYERS"
    return best[0]


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_no_upward_imports():
    upward = [
        f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})"
        for name, targets in graph().items()
        for target in targets
        if layer(target) > layer(name)
    ]
    assert upward == []


def test_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    """The checks can fail: a planted cycle and a planted upward import are found."""
    pkg = tmp_path / "longwin"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("")
    (pkg / "data" / "a.py").write_text("def f():\n    from longwin.data import b\n")
    (pkg / "data" / "b.py").write_text("from longwin.data.a import f\nfrom longwin.eval import runner\n")
    (pkg / "eval").mkdir()
    (pkg / "eval" / "__init__.py").write_text("")
    (pkg / "eval" / "runner.py").write_text("")
    known = modules(pkg)
    edges = {name: imports(name, path, known) for name, path in known.items()}
    assert ["longwin.data.a", "longwin.data.b"] in cycles(edges)
    assert "longwin.eval.runner" in edges["longwin.data.b"] and layer("longwin.eval.runner") > layer("longwin.data.b")


@pytest.mark.parametrize("name", ["longwin.methods.sharedllm.modeling", "longwin.eval.adapters"])
def test_every_module_has_a_layer(name):
    assert name in modules() and layer(name) >= 0
