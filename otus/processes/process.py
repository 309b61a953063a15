"""A physics process: what z and x hold, how x is selected, and the process's observables.

A :class:`Process` is built from a process card (:mod:`otus.processes.card`) and owns every
piece of per-process behaviour that readers, models and metrics need, so that none of them
branches on a process name. A four-momentum is stored as (px, py, pz, E) per object, GeV.
A row holds the objects' four-momenta, then the process's plain named columns (only
:func:`otus.processes.generic.generic` processes have columns, and no objects).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

COMPONENTS = ("px", "py", "pz", "E")
NAN = math.nan

# Detector object types and the parton-level PDG ids they are reconstructed from (for the
# identity bias of the networks: an output object starts from the matching input object).
TYPES = ("electron", "muon", "photon", "jet", "met")
TYPE_PDG: dict[str, frozenset[int]] = {
    "electron": frozenset({11}),
    "muon": frozenset({13}),
    "photon": frozenset({22}),
    "jet": frozenset({1, 2, 3, 4, 5, 6, 21}),
    "met": frozenset({12, 14, 16}),
}


@dataclass(frozen=True)
class Parton:
    """One parton-level (z) object: a hard-process particle chosen by PDG id (and mother)."""

    name: str
    pdg: tuple[int, ...]
    mother: tuple[int, ...] | None
    mass: float

    @property
    def kind(self) -> str | None:
        """The detector type this particle is seen as (None: none, e.g. a tau)."""
        apdg = {abs(p) for p in self.pdg}
        for t, ids in TYPE_PDG.items():
            if apdg <= ids:
                return t
        return None


@dataclass(frozen=True)
class Slot:
    """One detector-level (x) object: the n-th object of a type (and charge)."""

    name: str
    type: str
    charge: int | None
    # NaN: the mass is measured (jets keep theirs), so E is a free output of the networks.
    mass: float


@dataclass(frozen=True)
class Cut:
    """Selection of one object type: thresholds and the required count."""

    pt_min: float = 0.0
    eta_max: float = math.inf
    count: int | None = None
    min_count: int | None = None

    def count_ok(self, n: Any) -> Any:
        """Mask (numpy or awkward) of events whose number ``n`` of objects passes."""
        if self.count is not None:
            return n == self.count
        return n >= (self.min_count or 0)


@dataclass(frozen=True)
class Observable:
    """A named observable: ``kind`` is mass, mt, pt (of the sum of ``objects``) or builtin."""

    name: str
    kind: str
    objects: tuple[str, ...] = ()
    builtin: str | None = None


@dataclass(frozen=True)
class LHERecord:
    """How unfolded events are written as LHE: incoming partons, an optional s-channel
    resonance, or a named built-in record (resonance chains with colour flow)."""

    incoming: tuple[int, int] = (2, -2)
    resonance: int | None = None
    builtin: str | None = None


@dataclass(frozen=True)
class Process:
    """One process: its parton-level (z) and detector-level (x) objects, or, for plain
    features (:func:`otus.processes.generic.generic`), named columns and no objects."""

    name: str
    parton: tuple[Parton, ...]
    detector: tuple[Slot, ...]
    selection: tuple[tuple[str, Cut], ...]
    anchor_name: str
    observable_defs: tuple[Observable, ...] = ()
    pythia: tuple[str, ...] = ()
    lhe: LHERecord = LHERecord()
    # plain named columns stored after the objects' four-momenta (generic processes only)
    z_columns: tuple[str, ...] = ()
    x_columns: tuple[str, ...] = ()
    card_text: str = field(default="", compare=False, repr=False)
    # Where the card came from (a file, "built-in card zee"), for error messages.
    source: str = field(default="card", compare=False, repr=False)

    def differs_at(self, other: Process) -> str | None:
        """The first card key at which two processes differ (None: the same process)."""
        for key in ("name", "parton", "detector", "selection", "anchor_name"):
            a, b = getattr(self, key), getattr(other, key)
            if isinstance(a, tuple) and isinstance(b, tuple):
                for i, (u, v) in enumerate(zip(a, b, strict=False)):
                    if u != v:
                        label = u[0] if key == "selection" else i
                        return f"{key}[{label}]" if key != "selection" else f"selection.{label}"
                if len(a) != len(b):
                    return f"{key} (length {len(a)} vs {len(b)})"
            elif a != b:
                return "anchor" if key == "anchor_name" else key
        for key in ("observable_defs", "pythia", "lhe"):
            if getattr(self, key) != getattr(other, key):
                return {"observable_defs": "observables"}.get(key, key)
        return None

    # -- object lists ------------------------------------------------------------------
    @property
    def z_objects(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parton)

    @property
    def x_objects(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.detector)

    @property
    def z_masses(self) -> tuple[float, ...]:
        return tuple(p.mass for p in self.parton)

    @property
    def x_masses(self) -> tuple[float, ...]:
        return tuple(s.mass for s in self.detector)

    @property
    def x_types(self) -> tuple[str, ...]:
        return tuple(s.type for s in self.detector)

    @property
    def anchor(self) -> tuple[int, int]:
        """Index of the reference particle of the anchoring loss, in z and in x."""
        return self.z_objects.index(self.anchor_name), self.x_objects.index(self.anchor_name)

    @property
    def z_features(self) -> tuple[str, ...]:
        """Names of the columns of z: four-momentum components of each object, then plain
        columns."""
        return _features(self.z_objects) + self.z_columns

    @property
    def x_features(self) -> tuple[str, ...]:
        """Names of the columns of x: four-momentum components of each object, then plain
        columns."""
        return _features(self.x_objects) + self.x_columns

    @property
    def dz(self) -> int:
        return 4 * len(self.parton) + len(self.z_columns)

    @property
    def dx(self) -> int:
        return 4 * len(self.detector) + len(self.x_columns)

    @property
    def has_objects(self) -> bool:
        """Whether events hold physics objects (False: plain named features only)."""
        return bool(self.parton or self.detector)

    def require_objects(self, what: str) -> Process:
        """This process, or a one-line error when it holds plain features (no objects):
        ``what`` (simulation, unfolding, training) needs a physics process."""
        if not self.has_objects:
            from otus.errors import ConfigError

            raise ConfigError(
                f"{what} needs a physics process (zee, ttbar or a process card); "
                f"{self.name!r} events hold plain named features, which reweighting, OT "
                "calibration and evaluation take"
            )
        return self

    def objects(self, level: str) -> tuple[str, ...]:
        """Object names of level ``'z'`` or ``'x'``."""
        return self.z_objects if level == "z" else self.x_objects

    def transverse(self, level: str) -> tuple[bool, ...]:
        """Which objects of a level are transverse only (missing ET: pz = 0, no η)."""
        if level == "z":
            return (False,) * len(self.parton)
        return tuple(s.type == "met" for s in self.detector)

    # -- selection ---------------------------------------------------------------------
    def cut(self, type_: str) -> Cut:
        """The selection of one object type (no thresholds, no count if the card has none)."""
        return dict(self.selection).get(type_, Cut())

    @property
    def collection_types(self) -> tuple[str, ...]:
        """Detector object types that the selection reads: slots and counted types."""
        seen = [s.type for s in self.detector] + [t for t, _ in self.selection]
        return tuple(dict.fromkeys(seen))

    # -- observables -------------------------------------------------------------------
    def mass_combos(self, level: str) -> list[tuple[int, ...]]:
        """Object index groups whose invariant masses form the ``masses`` loss block."""
        names = self.objects(level)
        out: list[tuple[int, ...]] = []
        for ob in self.observable_defs:
            if ob.kind == "mass" and all(o in names for o in ob.objects):
                out.append(tuple(names.index(o) for o in ob.objects))
            elif ob.kind == "builtin":
                from otus.processes.named import builtin_mass_combos

                out += builtin_mass_combos(ob.builtin or "", self, level)
        return out

    def mt_combos(self, level: str) -> list[tuple[int, ...]]:
        """Object index groups whose transverse masses (the card's ``mt`` observables, e.g.
        mt(e, MET)) follow the invariant masses in the ``masses`` loss block."""
        names = self.objects(level)
        return [
            tuple(names.index(o) for o in ob.objects)
            for ob in self.observable_defs
            if ob.kind == "mt" and all(o in names for o in ob.objects)
        ]

    def observable_names(self, level: str) -> tuple[str, ...]:
        """Names of the card's observables that can be evaluated at ``level``."""
        names = self.objects(level)
        out: list[str] = []
        for ob in self.observable_defs:
            if ob.kind == "builtin":
                from otus.processes.named import builtin_names

                out += builtin_names(ob.builtin or "")
            elif all(o in names for o in ob.objects):
                out.append(ob.name)
        return tuple(out)

    def default_features(self) -> tuple[str, ...]:
        """φ-free detector-level observables, the default classifier features: pT and η of
        each object, pT of missing ET, and the card's observables (azimuthal symmetry makes φ
        carry no information, and raw px, py mix φ into every column); plain columns are
        features as they stand."""
        tr = self.transverse("x")
        objs = self.x_objects
        return (
            *(f"{o}_{v}" for o, t in zip(objs, tr, strict=True) if not t for v in ("pt", "eta")),
            *(f"{o}_pt" for o, t in zip(objs, tr, strict=True) if t),
            *self.observable_names("x"),
            *self.x_columns,
        )

    @property
    def two_body(self) -> bool:
        """Two visible objects at both levels (the pair-recoil loss features apply)."""
        return len(self.parton) == 2 and len(self.detector) == 2 and "met" not in self.x_types

    # -- networks ----------------------------------------------------------------------
    def bias_sources(self, direction: str) -> tuple[list[int], list[int]]:
        """Input object feeding each output object's identity bias, and the input objects
        that are re-sorted by decreasing pT first (quarks → pT-ordered jets).

        An output object starts from the input object of the same name; otherwise from the
        next unused input object of its type (a jet slot from the pT-ordered quarks and
        gluons, missing ET from a neutrino); otherwise from the first input object.
        """
        if direction == "decode":
            src_names = self.z_objects
            src_kind: list[str | None] = [p.kind for p in self.parton]
            dst: list[tuple[str, str | None]] = [(s.name, s.type) for s in self.detector]
        else:
            src_names = self.x_objects
            src_kind = [s.type for s in self.detector]
            dst = [(p.name, p.kind) for p in self.parton]
        group = [i for i, k in enumerate(src_kind) if k == "jet"] if direction == "decode" else []
        used: set[int] = set()
        sources: list[int] = []
        jets_taken = 0
        for name, kind in dst:
            if name in src_names:
                i = src_names.index(name)
            elif direction == "decode" and kind == "jet" and group:
                i = group[min(jets_taken, len(group) - 1)]
                jets_taken += 1
            else:
                free = [j for j, k in enumerate(src_kind) if k == kind and j not in used]
                i = free[0] if free else 0
            used.add(i)
            sources.append(i)
        # Sorting only matters when more than one jet-like parton feeds the jets.
        if sum(1 for _, k in dst if k == "jet") == 0 or len(group) < 2:
            group = []
        return sources, group


def _features(objects: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{o}_{c}" for o in objects for c in COMPONENTS)


def jet_pairs_and_triples(idx: list[int]) -> list[tuple[int, ...]]:
    """All pairs, then all triples, of the object indices ``idx``."""
    return list(combinations(idx, 2)) + list(combinations(idx, 3))
