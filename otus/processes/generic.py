"""Plain named features: the process of an event file without physics objects.

A flat ntuple or an array of, say, a BDT's inputs has columns with names but no particles.
Its event file has ``process`` = ``generic`` and ``x`` (and optionally ``z``) whose columns are
named by the ``x_features`` (``z_features``) attribute. :func:`generic` builds the
:class:`~otus.processes.process.Process` of such a file: no objects, no card, and the columns
themselves are its observables, so reweighting, OT calibration, regions and evaluation use
it like any other process. Simulation, unfolding and training need physics objects and refuse
it (:meth:`Process.require_objects`).

Column names start with a letter or ``_`` and hold letters, digits, ``_ . + -`` (they appear
in region expressions such as ``"njet == 2 and mjj > 500"``); Python keywords and ``abs`` are
refused.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Sequence

from otus.errors import ConfigError
from otus.processes.process import Process

GENERIC = "generic"
COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.+\-]*$")
_RESERVED = frozenset(keyword.kwlist) | {"abs"}


def _names(names: Sequence[str], level: str) -> tuple[str, ...]:
    if isinstance(names, str):
        raise ConfigError(f"{level}_features must be a list of names, got the string {names!r}")
    out = tuple(names)
    for n in out:
        if not isinstance(n, str) or not COLUMN_RE.match(n) or n in _RESERVED:
            raise ConfigError(
                f"{level} feature name {n!r} is not usable: names start with a letter or _, "
                "hold letters, digits, _ . + -, and are not Python keywords or abs; rename it"
            )
    dup = sorted({n for n in out if out.count(n) > 1})
    if dup:
        raise ConfigError(f"{level} feature name {dup[0]!r} is used twice; names must be unique")
    return out


def generic(x_features: Sequence[str], z_features: Sequence[str] = ()) -> Process:
    """The process of plain named features: detector-level columns ``x_features`` and,
    optionally, parton-level columns ``z_features`` (no physics objects).

    Its features, default classifier features and observables are the columns themselves.

    >>> p = generic(["mjj", "deta_jj", "njet"])
    >>> p.name, p.dx, p.dz, p.has_objects
    ('generic', 3, 0, False)
    >>> p.default_features()
    ('mjj', 'deta_jj', 'njet')
    """
    x = _names(x_features, "x")
    if not x:
        raise ConfigError("a generic process needs at least one x feature name")
    return Process(
        name=GENERIC,
        parton=(),
        detector=(),
        selection=(),
        anchor_name="",
        z_columns=_names(z_features, "z"),
        x_columns=x,
    )
