"""Delphes ROOT files (arXiv:1307.6346): read and write the ``Delphes`` tree with uproot.

Layout (as Delphes writes it with ExRootTreeWriter): one entry per event; per collection
``C`` a counter branch ``C_size`` and one jagged branch ``C.Field`` per field. In files written
by Delphes itself, ``C`` is a split TClonesArray, so uproot names the leaves ``C/C.Field`` and
extra leaves (``C.fUniqueID``, ``C.fBits``, ``C.Particle`` refs, ...) are present; the reader
looks leaves up by their last name component and reads only the fields it needs.

Collections (Delphes field names, as :func:`otus.physics.selection.build_x` expects them):
``Electron`` and ``Muon``: PT, Eta, Phi, Charge; ``Jet``: PT, Eta, Phi, Mass; ``MissingET``:
MET, Eta, Phi (one entry per event). Event weights are ``Event.Weight`` (first entry).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from otus.errors import InputFileError, OtusError
from otus.io.atomic import atomic_path
from otus.physics import fourvec as fv
from otus.processes import Process

TREE = "Delphes"
FIELDS: dict[str, tuple[str, ...]] = {
    "Electron": ("PT", "Eta", "Phi", "Charge"),
    "Muon": ("PT", "Eta", "Phi", "Charge"),
    "Jet": ("PT", "Eta", "Phi", "Mass"),
    "MissingET": ("MET", "Eta", "Phi"),
}
_INT_FIELDS = {"Charge"}
_CHUNK = 100_000


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


def write_delphes(
    path: str | os.PathLike[str],
    reco: Mapping[str, ak.Array],
    weight: np.ndarray,
    *,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write detector collections as a ``Delphes`` tree, atomically.

    ``reco`` maps collection names (any of ``Electron``, ``Muon``, ``Jet``, ``MissingET``) to
    jagged awkward records with the fields listed in the module docstring. Kinematics are
    stored as float32 and charges as int32, as Delphes does; ``Event.Weight`` is stored as
    float64 so that weights round-trip exactly. Provenance, when given, is stored as a JSON
    string in the file (key ``otus_provenance``).
    """
    import json

    import uproot

    out = Path(path)
    unknown = sorted(set(reco) - set(FIELDS))
    if unknown:
        raise OtusError(f"{out}: unknown collections {unknown}; known: {', '.join(FIELDS)}")
    if not reco:
        raise OtusError(f"{out}: no collections to write")
    weight = np.asarray(weight, dtype=np.float64)
    n = len(weight)
    data: dict[str, ak.Array] = {}
    for name, coll in reco.items():
        if len(coll) != n:
            raise OtusError(f"{out}: {name} has {len(coll)} events, weight has {n}")
        data[name] = _typed(coll, name)
    data["Event"] = ak.zip({"Weight": ak.unflatten(weight, np.ones(n, dtype=np.int64))})
    with atomic_path(out) as tmp, uproot.recreate(tmp) as f:
        tree = f.mktree(
            TREE,
            {k: v.type.content for k, v in data.items()},
            title="Analysis tree",
            counter_name=lambda counted: f"{counted}_size",
            field_name=lambda outer, inner: f"{outer}.{inner}",
        )
        for a in range(0, max(n, 1), _CHUNK):
            tree.extend({k: v[a : a + _CHUNK] for k, v in data.items()})
        f["otus_provenance"] = json.dumps(provenance or {}, sort_keys=True, default=str)
    return out


def _leaf_map(tree: Any) -> dict[str, str]:
    """Map 'Collection.Field' to the full uproot key (e.g. 'Electron/Electron.PT')."""
    out: dict[str, str] = {}
    for key in tree.keys(recursive=True):
        out.setdefault(key.rsplit("/", 1)[-1], key)
    return out


def read_delphes(
    path: str | os.PathLike[str],
    *,
    entry_stop: int | None = None,
    collections: tuple[str, ...] | None = None,
) -> tuple[dict[str, ak.Array], np.ndarray]:
    """Read the ``Delphes`` tree: (collections, weights [N] float64).

    Reads the known collections that the file holds (or exactly ``collections``, which must
    all be present); weights are the first ``Event.Weight`` per event, 1 when the file has
    no ``Event.Weight``. Raises InputFileError when the file is not ROOT, has no ``Delphes``
    tree, lacks fields, or holds NaN/inf values.
    """
    import uproot

    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: no such file")
    if p.is_dir():
        raise InputFileError(f"{p}: is a folder, expected a Delphes ROOT file")
    try:
        f = uproot.open(p)
    except Exception as err:  # uproot raises many types for non-ROOT input
        raise InputFileError(f"{p}: not a readable ROOT file ({_short(err)})") from None
    with f:
        try:
            tree = f[TREE]
        except Exception:
            trees = (
                ", ".join(
                    k
                    for k, c in f.classnames(cycle=False).items()
                    if c in ("TTree", "ROOT::RNTuple")
                )
                or "none"
            )
            raise InputFileError(f"{p}: no '{TREE}' tree (trees: {trees})") from None
        if not hasattr(tree, "arrays"):
            raise InputFileError(f"{p}: '{TREE}' is not a TTree")
        leaves = _leaf_map(tree)
        wanted = collections or tuple(c for c in FIELDS if f"{c}.{FIELDS[c][0]}" in leaves)
        if not wanted:
            raise InputFileError(
                f"{p}: the '{TREE}' tree holds none of the collections {', '.join(FIELDS)}"
            )
        keys: dict[str, str] = {}
        for c in wanted:
            if c not in FIELDS:
                raise OtusError(f"unknown collection {c!r}; known: {', '.join(FIELDS)}")
            for fld in FIELDS[c]:
                name = f"{c}.{fld}"
                if name not in leaves:
                    raise InputFileError(f"{p}: the '{TREE}' tree lacks branch {name}")
                keys[name] = leaves[name]
        if "Event.Weight" in leaves:
            keys["Event.Weight"] = leaves["Event.Weight"]
        try:
            # One branch at a time, by path: full keys like "Electron/Electron.PT" are not
            # valid uproot expressions.
            arrs = {k: tree[v].array(entry_stop=entry_stop, library="ak") for k, v in keys.items()}
        except Exception as err:
            raise InputFileError(f"{p}: cannot read the '{TREE}' tree ({_short(err)})") from None
    n = len(next(iter(arrs.values())))
    if n == 0:
        raise InputFileError(f"{p}: the '{TREE}' tree holds no events")
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
    if "Event.Weight" in keys:
        wa = arrs["Event.Weight"]
        wa = ak.firsts(wa) if wa.ndim > 1 else wa
        w = ak.to_numpy(ak.fill_none(wa, np.nan))
        w = w.astype(np.float64)
        if not np.all(np.isfinite(w)):
            raise InputFileError(
                f"{p}: Event.Weight is missing or NaN in {int(np.sum(~np.isfinite(w)))} events"
            )
    else:
        w = np.ones(n, dtype=np.float64)
    return reco, w


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def collections_from_x(
    process: Process,
    x: np.ndarray,
    x_pass: np.ndarray,
) -> dict[str, ak.Array]:
    """Detector collections whose :func:`~otus.physics.selection.build_x` is ``x``.

    The inverse of ``build_x`` for rows with ``x_pass`` (failing rows get empty
    collections). zee: ``Electron`` = [e− (Charge −1), e+ (+1)]; ttbar: ``Electron`` = [e−],
    ``Jet`` = jet1..jet4 with the mass of their four-vectors, ``MissingET`` = (pT, 0, φ) of the
    met object. ``Muon`` is empty; for zee, ``Jet`` is empty and ``MissingET`` is minus the
    electrons' transverse momentum (the visible-sum definition). Passing rows of ttbar must
    hold jets above the build_x thresholds for the inverse to hold.
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

    charge = np.ones((n, 1))
    if process.name == "zee":
        ele = coll([0, 1], {"Charge": np.concatenate([-charge, charge], 1)}, False)
        vis = obj[:, 0] + obj[:, 1]
        met_pt, met_phi = fv.pt(vis), np.arctan2(-vis[:, 1], -vis[:, 0])
        jets = empty("Jet")
    elif process.name == "ttbar":
        ele = coll([0], {"Charge": -charge}, False)
        jets = coll([2, 3, 4, 5], {}, True)
        met_pt, met_phi = pt[:, 1], phi[:, 1]
    else:  # pragma: no cover - processes are fixed
        raise OtusError(f"no detector collections for process {process.name!r}")
    met = ak.zip(
        {
            f: ak.unflatten(v[x_pass], counts)
            for f, v in (("MET", met_pt), ("Eta", np.zeros(n)), ("Phi", met_phi))
        }
    )
    return {"Electron": ele, "Muon": empty("Muon"), "Jet": jets, "MissingET": met}
