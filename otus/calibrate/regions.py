"""A safe language for analysis regions, e.g. ``"80 < m_ee < 100"`` (the Z-peak control
region) or ``"m_ee < 80 or m_ee > 100"`` (the off-peak signal region).

This is the one region grammar of otus (reweighting, OT calibration, fine-tuning).
Grammar: comparisons (``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``, chained as in Python)
between numbers and the detector-level observable names of the event file's process
(:func:`otus.physics.observables.observables`: e.g. ``m_ee``, ``e-_pt``, ``jet1_eta``; for
plain features, the column names, e.g. ``"njet == 2 and mjj > 500"``), joined by ``and`` /
``or`` / ``not`` and parentheses; ``abs(...)`` and unary minus are allowed inside comparisons. The text is parsed
with :mod:`ast` and only these node types are accepted; nothing is ever ``eval``-ed.
Events that failed reconstruction (``x_pass`` false) are in no region, whatever the
expression (so ``not`` cannot pull them in).
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from otus.errors import ConfigError
from otus.physics.observables import observables
from otus.processes import Process

_CMP: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def _placeholder(i: int) -> str:
    return f"__obs{i}__"


@dataclass(frozen=True)
class Region:
    """A parsed, validated region expression; :meth:`mask` evaluates it on observables."""

    expr: str
    names: tuple[str, ...]  # observables the expression uses
    _tree: ast.Expression
    _slots: dict[str, str]  # placeholder -> observable name

    def mask(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Boolean mask [N] of the rows of ``obs`` (name -> [N] array) inside the region."""
        missing = [n for n in self.names if n not in obs]
        if missing:
            raise ConfigError(f"region {self.expr!r}: observables {missing} are not available")
        out = _eval(
            self._tree.body, {k: np.asarray(obs[v]) for k, v in self._slots.items()}, self.expr
        )
        if not isinstance(out, np.ndarray) or out.dtype != bool:
            raise ConfigError(f"region {self.expr!r}: is not a condition (use <, >, and, or)")
        return out

    def select(
        self, process: Process, x: np.ndarray, x_pass: np.ndarray | None = None
    ) -> np.ndarray:
        """Mask [N] of detector-level rows ``x`` of ``process`` inside the region; events that
        failed reconstruction (``x_pass`` false, or non-finite rows) are in no region."""
        x = np.asarray(x, np.float64)
        passed = np.all(np.isfinite(x), axis=1)
        if x_pass is not None:
            passed &= np.asarray(x_pass, bool)
        out = np.zeros(len(x), dtype=bool)
        if passed.any():
            out[passed] = self.mask(observables(process, x[passed], "x"))
        return out


def parse_region(expr: str, known: Iterable[str]) -> Region:
    """Parse ``expr`` against the observable names ``known``; raise ConfigError if unsafe."""
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError("region expression is empty")
    known = sorted(set(known), key=len, reverse=True)
    slots: dict[str, str] = {}
    text = expr
    for name in known:  # longest first, so 'e-_pt' is not cut by a shorter name
        pat = re.compile(r"(?<![\w+\-])" + re.escape(name) + r"(?![\w])")
        if pat.search(text):
            ph = _placeholder(len(slots))
            slots[ph] = name
            text = pat.sub(ph, text)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ConfigError(f"region {expr!r}: not a valid expression") from None
    for node in ast.walk(tree):
        _check_node(node, expr, slots, known)
    return Region(expr, tuple(slots.values()), tree, slots)


def known_names(process: Process) -> tuple[str, ...]:
    """The detector-level observable names that regions of ``process`` may use."""
    with np.errstate(all="ignore"):  # one dummy event: only the names matter
        return tuple(observables(process, np.ones((1, process.dx)), "x"))


def region_for(expr: str, process: Process) -> Region:
    """Parse ``expr`` against the detector-level observables of ``process``."""
    return parse_region(expr, known_names(process))


_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.Compare,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Call,
    *_CMP,
)


def _check_node(
    node: ast.AST, expr: str, slots: Mapping[str, str], known: Iterable[str] = ()
) -> None:
    if not isinstance(node, _ALLOWED):
        raise ConfigError(
            f"region {expr!r}: {type(node).__name__} is not allowed "
            "(only comparisons, and/or/not, numbers, observables, abs())"
        )
    if isinstance(node, ast.Name) and node.id not in slots and node.id != "abs":
        choose = f"; choose from {', '.join(sorted(known))}" if known else ""
        raise ConfigError(f"region {expr!r}: unknown observable {node.id!r}{choose}")
    if isinstance(node, ast.Call) and (
        not isinstance(node.func, ast.Name)
        or node.func.id != "abs"
        or len(node.args) != 1
        or node.keywords
    ):
        raise ConfigError(f"region {expr!r}: only abs(x) may be called")
    if isinstance(node, ast.Constant) and (
        isinstance(node.value, bool) or not isinstance(node.value, int | float)
    ):
        raise ConfigError(f"region {expr!r}: constant {node.value!r} is not a number")


def _eval(node: ast.AST, env: Mapping[str, np.ndarray], expr: str) -> np.ndarray | float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id == "abs":
            raise ConfigError(f"region {expr!r}: abs must be called, abs(x)")
        return env[node.id]
    if isinstance(node, ast.Call):
        return np.abs(_eval(node.args[0], env, expr))
    if isinstance(node, ast.UnaryOp):
        val = _eval(node.operand, env, expr)
        if isinstance(node.op, ast.USub):
            return -val
        return ~_as_bool(val, expr)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env, expr)
        result: np.ndarray | None = None
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, env, expr)
            if (isinstance(left, np.ndarray) and left.dtype == bool) or (
                isinstance(right, np.ndarray) and right.dtype == bool
            ):
                raise ConfigError(f"region {expr!r}: cannot compare a condition with a number")
            part = np.asarray(_CMP[type(op)](left, right), dtype=bool)
            result = part if result is None else result & part
            left = right
        assert result is not None  # ast guarantees at least one comparator
        return result
    if isinstance(node, ast.BoolOp):
        vals = [_as_bool(_eval(v, env, expr), expr) for v in node.values]
        out = vals[0]
        for v in vals[1:]:
            out = (out & v) if isinstance(node.op, ast.And) else (out | v)
        return out
    raise ConfigError(f"region {expr!r}: {type(node).__name__} is not allowed")  # pragma: no cover


def _as_bool(val: np.ndarray | float, expr: str) -> np.ndarray:
    if not isinstance(val, np.ndarray) or val.dtype != bool:
        raise ConfigError(f"region {expr!r}: and/or/not need conditions, e.g. m_ee < 80")
    return val


def region_mask(
    expr: str, process: Process, x: np.ndarray, x_pass: np.ndarray | None = None
) -> np.ndarray:
    """Mask [N] of detector-level rows ``x`` inside region ``expr`` (failed events excluded)."""
    return region_for(expr, process).select(process, x, x_pass)
