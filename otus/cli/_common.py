"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


PROCESS_HELP = (
    "a built-in process (zee, ttbar) or the path of a process card (.yaml) declaring your "
    "final state"
)


def resolve_process(spec: str, data: Any = None) -> Any:
    """The process named on the command line: a built-in, a card file, or (so that later
    commands need no card) the name of the process whose card an event file ``data`` holds."""
    from pathlib import Path

    from otus.processes import BUILTIN_NAMES, get_process

    if spec in BUILTIN_NAMES or Path(spec).suffix in (".yaml", ".yml") or Path(spec).is_file():
        return get_process(spec)
    if data is not None:
        from otus.io.h5 import info

        proc = info(data).process
        if proc.name == spec:
            return proc.require_objects("training")  # plain features (generic) are refused
    return get_process(spec)  # the one-line "unknown process" error


def add_seed(p: argparse.ArgumentParser, default: int = 0) -> None:
    p.add_argument("--seed", type=int, default=default, help=f"random seed (default {default})")


REGION_HELP = (
    "control region over observable (or column) names: < <= > >= == !=, and, or, "
    "not, e.g. '80 < m_ee < 100' or 'njet == 2 and mjj > 500'"
)


def add_fit_apply(
    sub: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    description: str,
    fit_help: str,
    fit_description: str,
    mc_help: str,
    apply_help: str,
    apply_description: str,
    input_help: str,
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """A calibration command ``otus NAME fit|apply`` (``calibrate``, ``reweight``): returns the
    ``fit`` parser (with ``--mc``, ``--data``, ``--out``) and the ``apply`` parser (with the
    model folder, ``--input``, ``--out``) for the command's own options."""
    p = sub.add_parser(name, help=help, description=description)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    f = actions.add_parser("fit", help=fit_help, description=fit_description)
    f.add_argument("--mc", required=True, help=mc_help)
    f.add_argument("--data", required=True, help="data event file (.h5), the target")
    f.add_argument("--out", required=True, help="new model folder")
    a = actions.add_parser("apply", help=apply_help, description=apply_description)
    a.add_argument("model", help=f"model folder from `otus {name} fit`")
    a.add_argument("--input", required=True, help=input_help)
    a.add_argument("--out", required=True, help="output event file (.h5)")
    return f, a


def progress(
    it: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "ev", **kw: Any
) -> Iterator[T]:
    """A progress bar on stderr, shown on terminals only (quiet in logs and tests)."""
    from tqdm.auto import tqdm

    return iter(tqdm(it, total=total, desc=desc, unit=unit, disable=None, leave=False, **kw))
