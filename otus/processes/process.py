"""Process definitions (SPEC §5): object lists, feature names and masses of z and x.

A four-momentum is stored as (px, py, pz, E) per object, GeV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from otus.errors import OtusError

ELECTRON_MASS = 0.000511
B_MASS = 4.7
NAN = math.nan
COMPONENTS = ("px", "py", "pz", "E")


@dataclass(frozen=True)
class Process:
    """One physics process: its parton-level (z) and detector-level (x) objects."""

    name: str
    z_objects: tuple[str, ...]
    z_masses: tuple[float, ...]
    x_objects: tuple[str, ...]
    # NaN: the object's mass is not fixed (jets keep their mass), so E is a free output.
    x_masses: tuple[float, ...]
    # Index of the reference particle for the anchoring loss, in z and in x.
    anchor: tuple[int, int]

    @property
    def z_features(self) -> tuple[str, ...]:
        return _features(self.z_objects)

    @property
    def x_features(self) -> tuple[str, ...]:
        return _features(self.x_objects)

    @property
    def dz(self) -> int:
        return 4 * len(self.z_objects)

    @property
    def dx(self) -> int:
        return 4 * len(self.x_objects)


def _features(objects: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{o}_{c}" for o in objects for c in COMPONENTS)


ZEE = Process(
    name="zee",
    z_objects=("e-", "e+"),
    z_masses=(ELECTRON_MASS, ELECTRON_MASS),
    x_objects=("e-", "e+"),
    x_masses=(ELECTRON_MASS, ELECTRON_MASS),
    anchor=(1, 1),
)

# Semileptonic ttbar, electron channel: t -> W+ b, W+ -> q qbar'; tbar -> W- bbar, W- -> e- nuebar.
TTBAR = Process(
    name="ttbar",
    z_objects=("e-", "nuebar", "b", "bbar", "q", "qbar"),
    z_masses=(0.0, 0.0, B_MASS, B_MASS, 0.0, 0.0),
    x_objects=("e-", "met", "jet1", "jet2", "jet3", "jet4"),
    x_masses=(0.0, 0.0, NAN, NAN, NAN, NAN),
    anchor=(0, 0),
)

PROCESSES: dict[str, Process] = {p.name: p for p in (ZEE, TTBAR)}


def get_process(name: str) -> Process:
    """Return the process called ``name``; raise a one-line error naming the choices."""
    try:
        return PROCESSES[name]
    except KeyError:
        raise OtusError(f"unknown process {name!r}; choose one of {', '.join(PROCESSES)}") from None
