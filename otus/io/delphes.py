"""Delphes ROOT files (arXiv:1307.6346): read and write the ``Delphes`` tree with uproot.

Layout (as Delphes writes it with ExRootTreeWriter): one entry per event; per collection
``C`` a counter branch ``C_size`` and one jagged branch ``C.Field`` per field. In files written
by Delphes itself, ``C`` is a split TClonesArray, so uproot names the leaves ``C/C.Field`` and
extra leaves (``C.fUniqueID``, ``C.fBits``, ``C.Particle`` refs, ...) are present; the reader
looks leaves up by their last name component and reads only the fields it needs.

Collections (Delphes field names, as :func:`otus.physics.selection.build_x` expects them):
``Electron`` and ``Muon``: PT, Eta, Phi, Charge; ``Photon``: PT, Eta, Phi; ``Jet``: PT, Eta,
Phi, Mass; ``MissingET``: MET, Eta, Phi (one entry per event). Event weights are
``Event.Weight`` (first entry).

:func:`iter_delphes` reads files in chunks of events (memory does not grow with the file),
:func:`read_delphes` whole; :class:`DelphesWriter` writes chunk by chunk, :func:`write_delphes`
events in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from otus.errors import InputFileError, OtusError
from otus.io._root import get_tree, iter_branches, open_root
from otus.io.atomic import AtomicWriter
from otus.physics import fourvec as fv
from otus.physics.selection import COLLECTION
from otus.processes import Process

TREE = "Delphes"
FIELDS: dict[str, tuple[str, ...]] = {
    "Electron": ("PT", "Eta", "Phi", "Charge"),
    "Muon": ("PT", "Eta", "Phi", "Charge"),
    "Photon": ("PT", "Eta", "Phi"),
    "Jet": ("PT", "Eta", "Phi", "Mass"),
    "MissingET": ("MET", "Eta", "Phi"),
}
_INT_FIELDS = {"Charge"}
_CHUNK = 100_000  # rows per uproot extend
CHUNK = 100_000  # events per chunk read by iter_delphes


def _typed(coll: ak.Array, name: str) -> ak.Array:
    """The collection with exactly the Delphes fields, float32 (Charge int32)."""
    missing = [f for f in FIELDS[name] if f not in ak.fields(coll)]
    if missing:
        raise OtusError(f"collection {name} lacks fields {missing}")
    return ak.zip(
        {
            f: ak.values_astype(coll[f], np.int32 if f in _INT_FIELDS else np.float32)
            for f in FIELDS[name]
        },
        depth_limit=2,
    )


class DelphesWriter(AtomicWriter):
    """Append detector collections to a ``Delphes`` tree, atomically (the file appears on
    ``close``, and a failed write leaves none); :func:`write_delphes` is one chunk.

    Chunks hold the same collections (layout: :func:`write_delphes`). Example::

        with DelphesWriter("big.root") as w:
            for reco, weight in chunks:
                w.append(reco, weight)
    """

    def __init__(
        self, path: str | os.PathLike[str], *, provenance: dict[str, Any] | None = None
    ) -> None:
        import uproot

        super().__init__(path)
        self.provenance = provenance
        with self._opening():
            self._file = uproot.recreate(self.tmp)
        self._tree: Any = None
        self._names: tuple[str, ...] = ()
        self.n = 0

    def append(self, reco: Mapping[str, ak.Array], weight: np.ndarray) -> None:
        """Write the collections ``reco`` of N events with their weights [N]."""
        out = self.path
        unknown = sorted(set(reco) - set(FIELDS))
        if unknown:
            raise OtusError(f"{out}: unknown collections {unknown}; known: {', '.join(FIELDS)}")
        if not reco:
            raise OtusError(f"{out}: no collections to write")
        if self._tree is not None and tuple(reco) != self._names:
            raise OtusError(
                f"{out}: chunk holds collections {list(reco)}, the file {list(self._names)}"
            )
        weight = np.asarray(weight, dtype=np.float64)
        n = len(weight)
        data: dict[str, ak.Array] = {}
        for name, coll in reco.items():
            if len(coll) != n:
                raise OtusError(f"{out}: {name} has {len(coll)} events, weight has {n}")
            data[name] = _typed(coll, name)
        data["Event"] = ak.zip({"Weight": ak.unflatten(weight, np.ones(n, dtype=np.int64))})
        if self._tree is None:
            self._names = tuple(reco)
            self._tree = self._file.mktree(
                TREE,
                {k: v.type.content for k, v in data.items()},
                title="Analysis tree",
                counter_name=lambda counted: f"{counted}_size",
                field_name=lambda outer, inner: f"{outer}.{inner}",
            )
        for a in range(0, max(n, 1), _CHUNK):
            self._tree.extend({k: v[a : a + _CHUNK] for k, v in data.items()})
        self.n += n

    def _finish(self) -> None:
        import json

        if self._tree is None:
            raise OtusError(f"{self.path}: no collections to write")
        self._file["otus_provenance"] = json.dumps(
            self.provenance or {}, sort_keys=True, default=str
        )

    def _release(self) -> None:
        self._file.close()

    def __enter__(self) -> DelphesWriter:
        return self


def write_delphes(
    path: str | os.PathLike[str],
    reco: Mapping[str, ak.Array],
    weight: np.ndarray,
    *,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write detector collections as a ``Delphes`` tree, atomically.

    ``reco`` maps collection names (any of ``Electron``, ``Muon``, ``Photon``, ``Jet``,
    ``MissingET``) to jagged awkward records with the fields listed in the module docstring.
    Kinematics are stored as float32 and charges as int32, as Delphes does; ``Event.Weight``
    is stored as float64 so that weights round-trip exactly. Provenance, when given, is stored
    as a JSON string in the file (key ``otus_provenance``). For files larger than memory, use
    :class:`DelphesWriter`.
    """
    with DelphesWriter(path, provenance=provenance) as w:
        w.append(reco, weight)
    return Path(path)


def _leaf_map(tree: Any) -> dict[str, str]:
    """Map 'Collection.Field' to the full uproot key (e.g. 'Electron/Electron.PT')."""
    out: dict[str, str] = {}
    for key in tree.keys(recursive=True):
        out.setdefault(key.rsplit("/", 1)[-1], key)
    return out


def iter_delphes(
    path: str | os.PathLike[str],
    *,
    step_size: int | None = CHUNK,
    entry_stop: int | None = None,
    collections: tuple[str, ...] | None = None,
) -> Iterator[tuple[dict[str, ak.Array], np.ndarray]]:
    """Read the ``Delphes`` tree in chunks of ``step_size`` events (all at once when None):
    (collections, weights [n] float64) per chunk.

    Reads the known collections that the file holds (or exactly ``collections``, which must
    all be present); weights are the first ``Event.Weight`` per event, 1 when the file has
    no ``Event.Weight``. Raises InputFileError when the file is not ROOT, has no ``Delphes``
    tree, lacks fields, holds no events, or holds NaN/inf values.
    """
    p = Path(path)
    with open_root(p, "a Delphes ROOT file") as f:
        hint = "; a CMS NanoAOD file? use --nanoaod" if TREE not in f and "Events" in f else ""
        tree = get_tree(f, p, TREE, hint)
        leaves = _leaf_map(tree)
        wanted = collections or tuple(c for c in FIELDS if f"{c}.{FIELDS[c][0]}" in leaves)
        if not wanted:
            raise InputFileError(
                f"{p}: the '{TREE}' tree holds none of the collections {', '.join(FIELDS)}"
            )
        for c in wanted:
            if c not in FIELDS:
                raise OtusError(f"unknown collection {c!r}; known: {', '.join(FIELDS)}")
        absent = [c for c in wanted if not any(f"{c}.{fld}" in leaves for fld in FIELDS[c])]
        if absent:
            raise InputFileError(
                f"{p}: the '{TREE}' tree lacks the collections {', '.join(absent)} "
                f"(needed: {', '.join(wanted)})"
            )
        keys: dict[str, str] = {}
        for c in wanted:
            for fld in FIELDS[c]:
                name = f"{c}.{fld}"
                if name not in leaves:
                    raise InputFileError(f"{p}: the '{TREE}' tree lacks branch {name}")
                keys[name] = leaves[name]
        if "Event.Weight" in leaves:
            keys["Event.Weight"] = leaves["Event.Weight"]
        n = 0
        for arrs in iter_branches(tree, p, keys, step_size=step_size, entry_stop=entry_stop):
            yield _collections(p, arrs, wanted, n)
            n += len(next(iter(arrs.values())))
        if n == 0:
            raise InputFileError(f"{p}: the '{TREE}' tree holds no events")


def _collections(
    p: Path, arrs: dict[str, ak.Array], wanted: tuple[str, ...], first: int
) -> tuple[dict[str, ak.Array], np.ndarray]:
    n = len(next(iter(arrs.values())))
    reco: dict[str, ak.Array] = {}
    for c in wanted:
        cols = {}
        for fld in FIELDS[c]:
            col = arrs[f"{c}.{fld}"]
            if ak.any(~np.isfinite(col)):
                bad = int(ak.sum(ak.any(~np.isfinite(col), axis=-1)))
                raise InputFileError(f"{p}: {c}.{fld} holds NaN or inf in {bad} events")
            cols[fld] = col
        reco[c] = ak.zip(cols, depth_limit=2)
    if "Event.Weight" in arrs:
        wa = arrs["Event.Weight"]
        wa = ak.firsts(wa) if wa.ndim > 1 else wa
        w = ak.to_numpy(ak.fill_none(wa, np.nan)).astype(np.float64)
        if not np.all(np.isfinite(w)):
            raise InputFileError(
                f"{p}: Event.Weight is missing or NaN in {int(np.sum(~np.isfinite(w)))} events"
            )
    else:
        w = np.ones(n, dtype=np.float64)
    return reco, w


def read_delphes(
    path: str | os.PathLike[str],
    *,
    entry_stop: int | None = None,
    collections: tuple[str, ...] | None = None,
) -> tuple[dict[str, ak.Array], np.ndarray]:
    """Read the whole ``Delphes`` tree: (collections, weights [N] float64); rules and errors
    as :func:`iter_delphes`, which reads files larger than memory in chunks."""
    (chunk,) = iter_delphes(path, step_size=None, entry_stop=entry_stop, collections=collections)
    return chunk


def collections_from_x(
    process: Process,
    x: np.ndarray,
    x_pass: np.ndarray,
) -> dict[str, ak.Array]:
    """Detector collections whose :func:`~otus.physics.selection.build_x` is ``x``.

    The inverse of ``build_x`` for rows with ``x_pass`` (failing rows get empty
    collections): each object type's slots become its collection (leptons with the slot's
    charge, 0 where the card gives none; jets with the mass of their four-vectors), types
    without slots empty collections (``Photon`` only when the card has photons), and
    ``MissingET`` the met object's (pT, 0, φ) or, without one, minus the objects' summed
    transverse momentum (the visible-sum definition). Passing rows must hold objects above the
    card's thresholds for the inverse to hold.
    """
    x = np.asarray(x, dtype=np.float64)
    x_pass = np.asarray(x_pass, dtype=bool)
    if x.ndim != 2 or x.shape[1] != process.dx or x_pass.shape != (len(x),):
        raise OtusError(
            f"x has shape {x.shape} and x_pass {x_pass.shape}; expected "
            f"[N, {process.dx}] and [N] for {process.name}"
        )
    if not np.all(np.isfinite(x[x_pass])):
        raise OtusError("x holds NaN or inf in passing rows")
    n = len(x)
    obj = fv.objects(np.where(x_pass[:, None], x, 0.0), len(process.x_objects))
    pt, eta, phi, m = (fv.to_ptetaphim(obj)[..., i] for i in range(4))
    counts = x_pass.astype(np.int64)

    def coll(idx: list[int], extra: dict[str, np.ndarray], with_mass: bool) -> ak.Array:
        k = len(idx)
        fields = {"PT": pt[:, idx], "Eta": eta[:, idx], "Phi": phi[:, idx]}
        if with_mass:
            fields["Mass"] = m[:, idx]
        fields.update(extra)
        return ak.zip(
            {f: ak.unflatten(v[x_pass].reshape(-1), counts * k) for f, v in fields.items()}
        )

    def empty(name: str) -> ak.Array:
        z = np.zeros(0)
        return ak.zip(
            {
                f: ak.unflatten(
                    z.astype(np.int32 if f in _INT_FIELDS else np.float32),
                    np.zeros(n, dtype=np.int64),
                )
                for f in FIELDS[name]
            }
        )

    types = process.x_types
    out: dict[str, ak.Array] = {}
    for t in ("electron", "muon", "photon", "jet"):
        idx = [i for i, u in enumerate(types) if u == t]
        name = COLLECTION[t]
        if not idx:
            if t != "photon":
                out[name] = empty(name)
            continue
        extra = {}
        if "Charge" in FIELDS[name]:
            q = [process.detector[i].charge or 0 for i in idx]
            extra["Charge"] = np.tile(np.asarray(q, dtype=np.float64), (n, 1))
        out[name] = coll(idx, extra, t == "jet")
    if "met" in types:
        k = types.index("met")
        met_pt, met_phi = pt[:, k], phi[:, k]
    else:  # the visible-sum definition: minus the transverse momentum of all objects
        vis = obj.sum(axis=1)
        met_pt, met_phi = fv.pt(vis), np.arctan2(-vis[:, 1], -vis[:, 0])
    met = ak.zip(
        {
            f: ak.unflatten(v[x_pass], counts)
            for f, v in (("MET", met_pt), ("Eta", np.zeros(n)), ("Phi", met_phi))
        }
    )
    out["MissingET"] = met
    return out
