"""Processes: final states declared by process cards (:mod:`otus.processes.card`).

``zee`` and ``ttbar`` are built-in cards shipped with the package; any other final state is
a card file. :func:`get_process` takes either. Plain named features without physics objects
(process ``generic``) have the process :func:`generic` builds.

>>> from otus.processes import get_process
>>> p = get_process("zee")
>>> p.z_objects, p.x_objects, p.anchor
(('e-', 'e+'), ('e-', 'e+'), (1, 1))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path

from otus.errors import OtusError
from otus.processes.card import CardError, load_card, process_from_dict, process_from_text
from otus.processes.generic import GENERIC, generic
from otus.processes.process import (
    COMPONENTS,
    NAN,
    TYPES,
    Cut,
    LHERecord,
    Observable,
    Parton,
    Process,
    Slot,
)

ELECTRON_MASS = 0.000511
B_MASS = 4.7
BUILTIN_NAMES = ("zee", "ttbar")


@cache
def builtin(name: str) -> Process:
    """The built-in process ``name`` (its card is package data)."""
    if name == GENERIC:
        raise OtusError(
            f"process {GENERIC!r} (plain named features) is not a physics process; this needs "
            f"one of {', '.join(BUILTIN_NAMES)} or the path of a process card (.yaml)"
        )
    if name not in BUILTIN_NAMES:
        raise OtusError(
            f"unknown process {name!r}; choose one of {', '.join(BUILTIN_NAMES)} or give the "
            "path of a process card (.yaml)"
        )
    text = resources.files("otus.processes").joinpath(f"{name}.yaml").read_text("utf-8")
    return process_from_text(text, where=f"built-in card {name}")


def builtin_card_text(name: str) -> str:
    """The YAML text of a built-in card (a starting point for one's own)."""
    return builtin(name).card_text


def get_process(spec: str | os.PathLike[str] | Process) -> Process:
    """A built-in process by name, or the process of a card file.

    >>> get_process("ttbar").x_objects
    ('e-', 'met', 'jet1', 'jet2', 'jet3', 'jet4')
    """
    if isinstance(spec, Process):
        return spec
    s = os.fspath(spec)
    if s in BUILTIN_NAMES:
        return builtin(s)
    p = Path(s)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        return load_card(p)
    return builtin(s)  # raises the one-line "unknown process" error


def process_from_attrs(
    name: str,
    card: str = "",
    *,
    x_features: Sequence[str] = (),
    z_features: Sequence[str] = (),
    where: str = "event file",
) -> Process:
    """The process that stored attributes describe (an event file's or a saved model's):
    plain features for ``generic`` (named by ``x_features``, ``z_features``), else the card
    text ``card``, else (files written before cards) the built-in process ``name``.

    >>> process_from_attrs("generic", x_features=["a", "b"]).x_features
    ('a', 'b')
    """
    if name == GENERIC:
        return generic(x_features, z_features)
    if card:
        proc = process_from_text(card, where=f"{where} (its process_card)")
        if proc.name != name:
            raise CardError(
                f"unknown process {name!r}: the process_card stored with it declares {proc.name!r}"
            )
        return proc
    return get_process(name)


def _all_builtins() -> dict[str, Process]:
    return {n: builtin(n) for n in BUILTIN_NAMES}


PROCESSES: dict[str, Process] = _all_builtins()
ZEE = PROCESSES["zee"]
TTBAR = PROCESSES["ttbar"]

__all__ = [
    "BUILTIN_NAMES",
    "COMPONENTS",
    "GENERIC",
    "NAN",
    "PROCESSES",
    "TTBAR",
    "TYPES",
    "ZEE",
    "CardError",
    "Cut",
    "LHERecord",
    "Observable",
    "Parton",
    "Process",
    "Slot",
    "builtin",
    "builtin_card_text",
    "generic",
    "get_process",
    "load_card",
    "process_from_attrs",
    "process_from_dict",
    "process_from_text",
]
