"""The public surface of otus.calibrate, and the shape of its import graph."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import otus.calibrate

ROOT = Path(otus.calibrate.__file__).parent
PACKAGE = "otus.calibrate"


def test_public_api_is_pinned() -> None:
    assert sorted(n for n in dir(otus.calibrate) if not n.startswith("_")) == [
        "ClipReport",
        "DualConfig",
        "OTDual",
        "OTMap",
        "OverlapWarning",
        "Region",
        "RegionConfig",
        "ReweightConfig",
        "ReweightFit",
        "apply_map",
        "classifier_features",
        "classifier_matrix",
        "clip_ratio",
        "diagnose",
        "effective_sample_size",
        "fit_ot_map",
        "fit_region_map",
        "fit_reweighter",
        "known_names",
        "load_reweighter",
        "object_features",
        "parse_region",
        "region_for",
        "region_mask",
        "replace_features",
        "transport_features",
        "transport_matrix",
    ]


def test_every_public_name_resolves_to_its_home_module() -> None:
    for name in otus.calibrate.__all__:
        obj = getattr(otus.calibrate, name)
        assert obj.__module__.startswith(PACKAGE + "."), name
        assert getattr(importlib.import_module(obj.__module__), name) is obj


def test_options_load_without_torch() -> None:
    """The CLI reads the option defaults at start-up; that must not import torch."""
    code = (
        "import sys, otus.cli, otus.calibrate.ot.config, otus.calibrate.reweight.config; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[2:])
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def _imports(path: Path) -> tuple[set[str], list[str]]:
    """The otus.calibrate modules that ``path`` imports, and the imports inside functions."""
    tree = ast.parse(path.read_text())
    deps: set[str] = set()
    local: list[str] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        names = [
            n for n in names if (n == PACKAGE or n.startswith(PACKAGE + ".")) and _is_module(n)
        ]
        if names and in_function:
            local.append(f"{path.name}:{node.lineno}")
        deps.update(names)
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return deps, local


def test_no_import_cycles_inside_calibrate() -> None:
    graph: dict[str, set[str]] = {}
    local: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        deps, inner = _imports(path)
        name = _module_name(path)
        graph[name] = deps - {name}
        local += inner
    assert not local, f"function-local imports of calibrate modules: {local}"
    assert {"otus.calibrate.ot.files", "otus.calibrate.reweight.files"} <= set(graph)
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            assert state.get(dep) != 1, "import cycle: " + " -> ".join([*path, node, dep])
            if dep not in state:
                visit(dep, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
