"""Security: no unpickling of untrusted data, no shell. A static scan of the package source
(ast, so comments and strings do not count) that fails on any of the risky calls."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "otus"

# Module-level calls that must not appear at all (module, attribute).
FORBIDDEN = {
    ("os", "system"): "runs a shell",
    ("os", "popen"): "runs a shell",
    ("os.path", "expandvars"): "expands variables in paths",
    ("pickle", "load"): "unpickles arbitrary objects",
    ("pickle", "loads"): "unpickles arbitrary objects",
    ("pickle", "Unpickler"): "unpickles arbitrary objects",
    ("dill", "load"): "unpickles arbitrary objects",
    ("joblib", "load"): "unpickles arbitrary objects",
    ("marshal", "loads"): "loads code objects",
    ("yaml", "unsafe_load"): "constructs arbitrary objects",
}
FORBIDDEN_NAMES = {"eval": "evaluates code", "exec": "executes code"}
EXCEPTIONS_ONLY = {"UnpicklingError", "PickleError"}
FORBIDDEN_IMPORTS = {"pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _kw(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def scan(source: str, where: str = "<string>") -> list[str]:
    """Problems found in one module's source, as 'file:line: call (why)'."""
    problems: list[str] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            if isinstance(node, ast.Import):
                # ``import pickle`` alone is fine (its exceptions); its loaders are calls,
                # caught below.
                names = [a.name for a in node.names if a.name != "pickle"]
            elif all(a.name in EXCEPTIONS_ONLY for a in node.names):
                names = []  # importing an exception class unpickles nothing
            else:
                names = [node.module or ""]
            for n in names:
                if n.split(".")[0] in FORBIDDEN_IMPORTS:
                    problems.append(f"{where}:{node.lineno}: import {n} (unpickling)")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        mod, _, attr = name.rpartition(".")
        line = f"{where}:{node.lineno}: {name}"
        if (mod, attr) in FORBIDDEN:
            problems.append(f"{line} ({FORBIDDEN[(mod, attr)]})")
        elif name in FORBIDDEN_NAMES:
            problems.append(f"{line} ({FORBIDDEN_NAMES[name]})")
        elif attr == "load" and mod.endswith("torch") and not _is_true(_kw(node, "weights_only")):
            problems.append(f"{line} without weights_only=True")
        elif attr == "load" and mod in ("yaml",):
            loader = _kw(node, "Loader")
            if loader is None or not _dotted(loader).endswith("SafeLoader"):
                problems.append(f"{line} without a SafeLoader")
        elif attr == "load" and mod in ("np", "numpy") and _is_true(_kw(node, "allow_pickle")):
            problems.append(f"{line} with allow_pickle=True")
        elif _is_true(_kw(node, "shell")):
            problems.append(f"{line} with shell=True")
    return problems


@pytest.mark.parametrize(
    ("source", "expect"),
    [
        ("import torch\ntorch.load('a')", "without weights_only=True"),
        ("import torch\ntorch.load('a', weights_only=False)", "without weights_only=True"),
        ("import pickle\npickle.load(f)", "unpickl"),
        ("pickle.loads(b)", "unpickles arbitrary objects"),
        ("import subprocess\nsubprocess.run('ls', shell=True)", "shell=True"),
        ("import os\nos.system('ls')", "runs a shell"),
        ("eval('1+1')", "evaluates code"),
        ("import yaml\nyaml.load(s)", "without a SafeLoader"),
        ("import numpy as np\nnp.load('a.npy', allow_pickle=True)", "allow_pickle"),
        ("from joblib import load", "import joblib"),
        ("from pickle import Unpickler, UnpicklingError", "import pickle"),
        ("import pickle\npickle.Unpickler(f).load()", "unpickles"),
        ("import dill", "import dill"),
    ],
)
def test_scanner_finds_risky_calls(source: str, expect: str) -> None:
    problems = scan(source)
    assert problems and expect in problems[0], problems


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.load('a', weights_only=True, map_location='cpu')",
        "import yaml\nyaml.safe_load(s)",
        "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)",
        "import subprocess\nsubprocess.run(['git', 'rev-parse', 'HEAD'], check=False)",
        "# torch.load(x) in a comment\nx = 'eval(1)'",
        "from pickle import UnpicklingError",
        "import pickle\ntry:\n    pass\nexcept pickle.UnpicklingError:\n    pass",
    ],
)
def test_scanner_accepts_safe_calls(source: str) -> None:
    assert scan(source) == []


def test_package_has_no_risky_calls() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    problems = [p for f in files for p in scan(f.read_text(), str(f.relative_to(PACKAGE.parent)))]
    assert problems == [], "\n".join(problems)
