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


def progress(
    it: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "ev", **kw: Any
) -> Iterator[T]:
    """A progress bar on stderr, shown on terminals only (quiet in logs and tests)."""
    from tqdm.auto import tqdm

    return iter(tqdm(it, total=total, desc=desc, unit=unit, disable=None, leave=False, **kw))
