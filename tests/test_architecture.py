"""The layering of `src/longwin`, read from the source: every import (a lazy one inside a function too) must
point to the same layer or one below, and no group of modules may import each other in a circle.

Layers, bottom to top (docs/architecture.md): foundations, data, model components, training methods,
training/evaluation/benchmarks, studies (the reports layer), jobs and the command line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "longwin"
LAYERS: list[tuple[str, ...]] = [
    ("longwin.errors", "longwin.outputs", "longwin.flags"),
    ("longwin.data",),
    ("longwin.models", "longwin.rope", "longwin.positions"),
    ("longwin.methods",),
    ("longwin.training", "longwin.eval", "longwin.bench", "longwin.serving"),
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


COMPAT = "longwin.models.compat"
# attributes whose presence tells transformers versions apart: only compat may ask for them by name
VERSION_MARKERS = {"rope_parameters", "rope_scaling", "rope_theta", "validate_rope", "layer_types", "key_cache"}


def version_branches(name: str, path: Path) -> list[str]:
    """Where `name` tells transformers versions apart: a `packaging` import, a comparison involving a
    `__version__`, `Version(...)`, or `getattr`/`hasattr` of a version marker spelled out."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "packaging" for a in node.names):
            found.append(f"{where} imports packaging")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "packaging":
            found.append(f"{where} imports packaging")
        elif isinstance(node, ast.Compare) and any(
            isinstance(n, ast.Attribute) and n.attr == "__version__"
            for part in [node.left, *node.comparators]
            for n in ast.walk(part)
        ):
            found.append(f"{where} compares a __version__")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "Version":
                found.append(f"{where} calls Version")
            elif node.func.id in ("getattr", "hasattr") and len(node.args) >= 2:
                attr = node.args[1]
                if isinstance(attr, ast.Constant) and attr.value in VERSION_MARKERS:
                    found.append(f"{where} sniffs {attr.value!r}")
    return found


def test_every_transformers_version_branch_is_in_models_compat():
    """docs/architecture.md: every transformers-version branch lives in `models/compat.py`."""
    outside = [hit for name, path in modules().items() if name != COMPAT for hit in version_branches(name, path)]
    assert outside == []
    assert version_branches(COMPAT, modules()[COMPAT])  # the check sees the branches where they are


def test_the_version_check_sees_each_kind_of_branch(tmp_path):
    planted = tmp_path / "m.py"
    planted.write_text(
        "import transformers\nfrom packaging.version import Version\n"
        "a = transformers.__version__ >= '5'\nb = Version('5')\nc = hasattr(cfg, 'rope_parameters')\n"
    )
    kinds = " ".join(version_branches("m", planted))
    assert all(k in kinds for k in ("imports packaging", "compares a __version__", "calls Version", "sniffs"))


DOC = SRC.parents[1] / "docs" / "architecture.md"
# the one job with a Trainer of its own: it pretrains from scratch (docs/architecture.md says why)
OWN_TRAINER = "longwin.jobs.pretrain_toy"


def test_the_layer_table_of_the_docs_is_the_one_checked_here():
    rows = [line.split("|") for line in DOC.read_text().splitlines() if line.startswith("| ") and line[2].isdigit()]
    documented = [{name.strip().strip("`") for name in row[2].split(",")} for row in rows]
    checked = [{name.removeprefix("longwin.") for name in layer if name != "longwin"} for layer in LAYERS]
    assert documented == checked


def runner_names(path: Path) -> set[str]:
    """What a module imports from `longwin.training.runner`."""
    return {
        alias.name
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module == "longwin.training.runner"
        for alias in node.names
    }


def builds_a_trainer(path: Path) -> bool:
    """Whether a module imports transformers' `Trainer` (to build one itself)."""
    return any(
        isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith("transformers")
        and any(alias.name == "Trainer" for alias in node.names)
        for node in ast.walk(ast.parse(path.read_text()))
    )


def test_jobs_train_through_the_one_runner():
    """docs/architecture.md: the jobs call `longwin.training.runner.train`; pretrain-toy alone builds its own
    Trainer and shares the runner's checkpoint logic (`plan_run`, `fit`)."""
    jobs = {name: path for name, path in modules().items() if name.startswith(("longwin.jobs.", "longwin.studies."))}
    trainers = {name for name, path in jobs.items() if builds_a_trainer(path)}
    assert trainers == {OWN_TRAINER}
    assert {"plan_run", "fit"} <= runner_names(jobs[OWN_TRAINER])
    callers = {name for name, path in jobs.items() if "train" in runner_names(path)}
    assert callers and OWN_TRAINER not in callers
    assert "jobs/pretrain_toy.py" in DOC.read_text()


def test_every_module_the_page_names_exists():
    """Paths under src/longwin (or the repository); a bare file name (a folder's module the row names) anywhere."""
    named = set(re.findall(r"`([\w/]+\.py)`", DOC.read_text()))
    missing = [
        p
        for p in named
        if not any((root / p).is_file() for root in (SRC, SRC.parents[1])) and ("/" in p or not any(SRC.rglob(p)))
    ]
    assert named and missing == []


def test_each_registered_method_is_its_own_folder():
    from longwin.methods import METHODS

    for name, method in METHODS.items():
        assert method.name == name and method.build.__module__ == f"longwin.methods.{name}.method"
        assert (SRC / "methods" / name / "options.py").is_file()


ROOT = SRC.parents[1]
MAX_FUNCTION_LINES, MAX_EXPERIMENT_LINES = 60, 300


def test_no_function_outside_the_tests_is_over_60_lines_and_no_experiment_file_over_300():
    long_functions = []
    for folder in ("src", "experiments", "benchmarks", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long_functions.append(f"{path.relative_to(ROOT)}:{node.name} ({lines})")
    assert not long_functions
    long_files = [
        p.name for p in (ROOT / "experiments").glob("*.py") if len(p.read_text().splitlines()) > MAX_EXPERIMENT_LINES
    ]
    assert not long_files
