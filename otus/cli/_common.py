"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def add_seed(p: argparse.ArgumentParser, default: int = 0) -> None:
    p.add_argument("--seed", type=int, default=default, help=f"random seed (default {default})")


def progress(it: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "ev",
             **kw: Any) -> Iterator[T]:
    """A progress bar on stderr, shown on terminals only (quiet in logs and tests)."""
    from tqdm.auto import tqdm

    return iter(tqdm(it, total=total, desc=desc, unit=unit, disable=None, leave=False, **kw))
