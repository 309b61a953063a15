"""CMS NanoAOD files: read (in chunks) and write the flat ``Events`` tree with uproot.

Layout: one entry per event; per collection ``C`` a counter ``nC`` and one jagged branch
``C_field`` per field; single objects (``MET``) as plain branches ``MET_pt``, ``MET_phi``.

**Detector level.** ``Electron_*``, ``Muon_*`` (pt, eta, phi, charge), ``Photon_*`` (pt, eta,
phi), ``Jet_*`` (pt, eta, phi, mass) and ``MET_pt``/``MET_phi`` become the Delphes-named
collections of :mod:`otus.io.delphes` (``Electron.PT`` …; ``MissingET`` with η = 0), so that
:func:`otus.physics.selection.build_x` selects x from every format alike. Only the
collections the process card needs are read. Weights: ``genWeight``, 1 when absent (collision
data).

**Parton level** (simulation only), through :func:`otus.physics.selection.build_z`, the one
rule of every format: from ``LHEPart_*`` (pt, eta, phi, mass, pdgId; outgoing: status 1 where
the file has ``LHEPart_status``, else every entry, since NanoAOD versions without the branch
store only the outgoing particles), or, when the card names a ``mother`` for some entry (LHEPart
has no mother index), from the hard-process ``GenPart_*`` particles: ``statusFlags`` bit 7
(isHardProcess) set, outgoing unless status 21 (incoming) or 22 (intermediate resonance), the
direct parent's PDG id through ``genPartIdxMother`` — a copy of a resonance keeps its PDG id,
so a decay product's parent is the resonance (Pythia 8 status codes, kept by CMS for non-final
copies; final ones are 1, decayed ones 2). The two records differ in kinematics: LHEPart holds
the generator's event, GenPart the hard process after the parton shower's recoil (a Z is
boosted by initial-state radiation, and its decay products with it; invariant masses agree).
Files with neither branch are collision data: the detector level alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from otus.errors import InputFileError, OtusError
from otus.io._root import get_tree, iter_branches, open_root
from otus.io.atomic import atomic_path
from otus.physics import fourvec as fv
from otus.physics.selection import build_z, required_collections
from otus.processes import Process, get_process

TREE = "Events"
CHUNK = 100_000  # events per chunk read by iter_nanoaod
# Delphes collection -> (NanoAOD prefix, Delphes field -> NanoAOD field)
RECO: dict[str, tuple[str, dict[str, str]]] = {
    "Electron": ("Electron", {"PT": "pt", "Eta": "eta", "Phi": "phi", "Charge": "charge"}),
    "Muon": ("Muon", {"PT": "pt", "Eta": "eta", "Phi": "phi", "Charge": "charge"}),
    "Photon": ("Photon", {"PT": "pt", "Eta": "eta", "Phi": "phi"}),
    "Jet": ("Jet", {"PT": "pt", "Eta": "eta", "Phi": "phi", "Mass": "mass"}),
    "MissingET": ("MET", {"MET": "pt", "Phi": "phi"}),
}
WEIGHT = "genWeight"
# Generator collections and their fields (LHEPart_status is optional, see the docstring).
GENERATOR: dict[str, tuple[str, ...]] = {
    "LHEPart": ("pt", "eta", "phi", "mass", "pdgId"),
    "GenPart": ("pt", "eta", "phi", "mass", "pdgId", "genPartIdxMother", "status", "statusFlags"),
}
IS_HARD_PROCESS = 1 << 7  # GenPart_statusFlags bit 7
_GEN_INCOMING, _GEN_INTERMEDIATE = 21, 22
_INT_FIELDS = {"charge", "pdgId", "genPartIdxMother", "status", "statusFlags"}
_WRITE_CHUNK = 100_000


@dataclass(frozen=True)
class NanoAODLayout:
    """What a NanoAOD file offers for a process: its events (up to ``max_events``), the
    generator collection its parton level comes from (None: collision data), and whether
    it has ``genWeight``."""

    path: Path
    n_events: int
    parton: str | None
    weighted: bool


@dataclass
class NanoAODChunk:
    """Consecutive events of a NanoAOD file: detector collections (Delphes names), weights
    [n] float64 and, from simulation, z [n, Dz] float32 (NaN in rows not selected) with the
    ``selected`` mask [n]; ``first`` is the index of the chunk's first event."""

    reco: dict[str, ak.Array]
    weight: np.ndarray
    z: np.ndarray | None
    selected: np.ndarray | None
    first: int


def _parton_source(p: Path, proc: Process, keys: set[str]) -> str | None:
    have = {g for g, fields in GENERATOR.items() if all(f"{g}_{f}" in keys for f in fields)}
    with_mother = [e.name for e in proc.parton if e.mother is not None]
    if with_mother:
        if "GenPart" in have:
            return "GenPart"
        if "LHEPart" in have:
            raise InputFileError(
                f"{p}: the {proc.name} card names a mother for {', '.join(with_mother)}, which "
                "needs the GenPart branches (LHEPart has no mother index); the file has LHEPart "
                "only; convert it with a card without mother, or from the LHE file"
            )
        return None
    return "LHEPart" if "LHEPart" in have else ("GenPart" if "GenPart" in have else None)


def _open(p: Path) -> tuple[Any, Any]:
    f = open_root(p, "a NanoAOD ROOT file")
    try:
        hint = "; a Delphes file? use --delphes" if TREE not in f and "Delphes" in f else ""
        return f, get_tree(f, p, TREE, hint)
    except BaseException:
        f.close()
        raise


def layout(
    path: str | os.PathLike[str], process: Process | str, *, max_events: int | None = None
) -> NanoAODLayout:
    """Describe a NanoAOD file for ``process`` (InputFileError when it is not one)."""
    proc = get_process(process) if isinstance(process, str) else process
    p = Path(path)
    f, tree = _open(p)
    with f:
        keys = set(tree.keys())
        n = tree.num_entries if max_events is None else min(max_events, tree.num_entries)
        return NanoAODLayout(p, n, _parton_source(p, proc, keys), WEIGHT in keys)


def _branches(p: Path, proc: Process, keys: set[str], parton: str | None) -> dict[str, str]:
    want = [f"{RECO[c][0]}_{s}" for c in required_collections(proc) for s in RECO[c][1].values()]
    missing = [b for b in want if b not in keys]
    if missing:
        raise InputFileError(
            f"{p}: the '{TREE}' tree lacks branches {', '.join(missing)} needed for {proc.name}"
        )
    if parton is not None:
        want += [f"{parton}_{f}" for f in GENERATOR[parton]]
        if parton == "LHEPart" and "LHEPart_status" in keys:
            want.append("LHEPart_status")
    if WEIGHT in keys:
        want.append(WEIGHT)
    return {b: b for b in want}


def _finite(p: Path, name: str, col: ak.Array) -> None:
    bad = ~np.isfinite(col)
    if col.ndim > 1:
        bad = ak.any(bad, axis=-1)
    k = int(ak.sum(bad))
    if k:
        raise InputFileError(f"{p}: {name} holds NaN or inf in {k} events")


def _reco(p: Path, proc: Process, arrs: dict[str, ak.Array], n: int) -> dict[str, ak.Array]:
    reco: dict[str, ak.Array] = {}
    for c in required_collections(proc):
        prefix, fields = RECO[c]
        for s in fields.values():
            _finite(p, f"{prefix}_{s}", arrs[f"{prefix}_{s}"])
        if c == "MissingET":
            one = np.ones(n, dtype=np.int64)
            met = ak.values_astype(arrs["MET_pt"], np.float32)
            phi = ak.values_astype(arrs["MET_phi"], np.float32)
            reco[c] = ak.zip(
                {
                    "MET": ak.unflatten(met, one),
                    "Eta": ak.unflatten(np.zeros(n, dtype=np.float32), one),
                    "Phi": ak.unflatten(phi, one),
                }
            )
        else:
            reco[c] = ak.zip({d: arrs[f"{prefix}_{s}"] for d, s in fields.items()}, depth_limit=2)
    return reco


def _p4(arrs: dict[str, ak.Array], g: str) -> dict[str, ak.Array]:
    """px, py, pz, E (float64) of a generator collection from its pt, eta, phi, mass."""
    counts = ak.num(arrs[f"{g}_pt"])
    flat = [
        ak.to_numpy(ak.flatten(arrs[f"{g}_{f}"])).astype(np.float64)
        for f in ("pt", "eta", "phi", "mass")
    ]
    with np.errstate(invalid="ignore", over="ignore"):
        p4 = fv.from_ptetaphim(*flat)
    return {c: ak.unflatten(p4[:, i], counts) for i, c in enumerate(("px", "py", "pz", "E"))}


def _partons(arrs: dict[str, ak.Array], g: str) -> ak.Array:
    """The generator collection as :func:`build_z` records."""
    pdg = arrs[f"{g}_pdgId"]
    if g == "LHEPart":
        st = arrs.get("LHEPart_status")
        outgoing = ak.ones_like(pdg, dtype=bool) if st is None else st == 1
        mother = ak.zeros_like(pdg)
    else:
        status = arrs["GenPart_status"]
        hard = (arrs["GenPart_statusFlags"] & IS_HARD_PROCESS) != 0
        outgoing = hard & (status != _GEN_INCOMING) & (status != _GEN_INTERMEDIATE)
        idx = arrs["GenPart_genPartIdxMother"]
        ok = (idx >= 0) & (idx < ak.num(pdg))
        mother = ak.where(ok, pdg[ak.where(ok, idx, 0)], 0)
    return ak.zip({"pdg": pdg, "outgoing": outgoing, "mother": mother, **_p4(arrs, g)})


def iter_nanoaod(
    path: str | os.PathLike[str],
    process: Process | str,
    *,
    step_size: int | None = CHUNK,
    max_events: int | None = None,
    parton: bool = True,
) -> Iterator[NanoAODChunk]:
    """Read a NanoAOD ``Events`` tree in chunks of ``step_size`` events (all at once when
    None): detector collections, weights and (with ``parton`` and generator branches) z.

    Rules: module docstring. Raises InputFileError when the file is not ROOT, has no
    ``Events`` tree, lacks branches the card needs, holds no events, or holds NaN/inf in
    detector branches, weights or selected parton momenta.
    """
    proc = get_process(process) if isinstance(process, str) else process
    p = Path(path)
    f, tree = _open(p)
    with f:
        keys = set(tree.keys())
        source = _parton_source(p, proc, keys) if parton else None
        branches = _branches(p, proc, keys, source)
        first = 0
        for arrs in iter_branches(tree, p, branches, step_size=step_size, entry_stop=max_events):
            n = len(next(iter(arrs.values())))
            reco = _reco(p, proc, arrs, n)
            if WEIGHT in arrs:
                _finite(p, WEIGHT, arrs[WEIGHT])
                weight = ak.to_numpy(arrs[WEIGHT]).astype(np.float64)
            else:
                weight = np.ones(n, dtype=np.float64)
            z = selected = None
            if source is not None:
                z64, selected = build_z(proc, _partons(arrs, source))
                bad = int(np.sum(~np.all(np.isfinite(z64[selected]), axis=1)))
                if bad:
                    raise InputFileError(
                        f"{p}: {source} holds NaN or inf momenta in {bad} selected events"
                    )
                z = z64.astype(np.float32)
            yield NanoAODChunk(reco, weight, z, selected, first)
            first += n
        if first == 0:
            raise InputFileError(f"{p}: the '{TREE}' tree holds no events")


def read_nanoaod(
    path: str | os.PathLike[str],
    process: Process | str,
    *,
    max_events: int | None = None,
    parton: bool = True,
) -> NanoAODChunk:
    """Read a whole NanoAOD file (rules and errors as :func:`iter_nanoaod`, which reads files
    larger than memory in chunks)."""
    (chunk,) = iter_nanoaod(path, process, step_size=None, max_events=max_events, parton=parton)
    return chunk


# --------------------------------------------------------------------------- writing


def lhepart_from_z(process: Process, z: np.ndarray) -> ak.Array:
    """``LHEPart`` records (pt, eta, phi, mass, pdgId, status 1) of the z objects [N, Dz],
    each with the first PDG id of its card entry: the parton level of a NanoAOD file."""
    z = np.asarray(z, dtype=np.float64)
    k = len(process.parton)
    if z.ndim != 2 or z.shape[1] != process.dz:
        raise OtusError(f"z has shape {z.shape}, expected [N, {process.dz}]")
    with np.errstate(invalid="ignore"):
        ptetaphim = fv.to_ptetaphim(fv.objects(z, k))
    ptetaphim[..., 3] = np.nan_to_num(ptetaphim[..., 3])  # rounding below the light cone
    counts = np.full(len(z), k, dtype=np.int64)
    fields: dict[str, Any] = {
        name: ak.unflatten(ptetaphim[..., i].reshape(-1).astype(np.float32), counts)
        for i, name in enumerate(("pt", "eta", "phi", "mass"))
    }
    pdg = np.tile([e.pdg[0] for e in process.parton], len(z)).astype(np.int32)
    fields["pdgId"] = ak.unflatten(pdg, counts)
    fields["status"] = ak.unflatten(np.ones(len(pdg), dtype=np.int32), counts)
    return ak.zip(fields)


def _typed(coll: ak.Array, fields: tuple[str, ...], where: str) -> ak.Array:
    missing = [f for f in fields if f not in ak.fields(coll)]
    if missing:
        raise OtusError(f"{where} lacks fields {missing}")
    return ak.zip(
        {
            f: ak.values_astype(coll[f], np.int32 if f in _INT_FIELDS else np.float32)
            for f in fields
        },
        depth_limit=2,
    )


def write_nanoaod(
    path: str | os.PathLike[str],
    reco: Mapping[str, ak.Array],
    weight: np.ndarray | None,
    *,
    generator: Mapping[str, ak.Array] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write detector collections (Delphes names, as :func:`otus.io.delphes.write_delphes`
    takes them) and optionally generator collections as a NanoAOD ``Events`` tree, atomically.

    ``MissingET`` has at most one entry per event (none: ``MET_pt`` = 0, as NanoAOD always
    holds MET). ``weight`` None writes no ``genWeight``
    (collision data); otherwise it is stored as float64 so that weights round-trip exactly.
    ``generator`` maps ``LHEPart`` and/or ``GenPart`` to records with the NanoAOD field names
    (module constants; ``LHEPart`` may add ``status``). Provenance, when given, is a JSON
    string in the file (key ``otus_provenance``).
    """
    import uproot

    out = Path(path)
    unknown = sorted(set(reco) - set(RECO)) + sorted(set(generator or {}) - set(GENERATOR))
    if unknown:
        raise OtusError(
            f"{out}: unknown collections {unknown}; known: {', '.join([*RECO, *GENERATOR])}"
        )
    if not reco:
        raise OtusError(f"{out}: no collections to write")
    n = len(next(iter(reco.values())))
    data: dict[str, Any] = {}
    for name, coll in reco.items():
        if len(coll) != n:
            raise OtusError(f"{out}: {name} has {len(coll)} events, {next(iter(reco))} {n}")
        prefix, fields = RECO[name]
        typed = _typed(coll, tuple(fields), f"{out}: collection {name}")
        if name == "MissingET":
            if not ak.all(ak.num(typed.MET) <= 1):
                raise OtusError(f"{out}: MissingET needs at most one entry per event")
            data["MET_pt"] = ak.to_numpy(ak.fill_none(ak.firsts(typed.MET), 0.0))
            data["MET_phi"] = ak.to_numpy(ak.fill_none(ak.firsts(typed.Phi), 0.0))
        else:
            data[prefix] = ak.zip({s: typed[d] for d, s in fields.items()})
    for g, coll in (generator or {}).items():
        if len(coll) != n:
            raise OtusError(f"{out}: {g} has {len(coll)} events, expected {n}")
        extra = ("status",) if g == "LHEPart" and "status" in ak.fields(coll) else ()
        data[g] = _typed(coll, GENERATOR[g] + extra, f"{out}: {g}")
    if weight is not None:
        weight = np.asarray(weight, dtype=np.float64)
        if weight.shape != (n,):
            raise OtusError(f"{out}: weight has shape {weight.shape}, expected ({n},)")
        data[WEIGHT] = weight
    types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}
    with atomic_path(out) as tmp, uproot.recreate(tmp) as f:
        tree = f.mktree(
            TREE,
            types,
            title="Events",
            counter_name=lambda counted: f"n{counted}",
            field_name=lambda outer, inner: f"{outer}_{inner}",
        )
        for a in range(0, max(n, 1), _WRITE_CHUNK):
            tree.extend({k: v[a : a + _WRITE_CHUNK] for k, v in data.items()})
        f["otus_provenance"] = json.dumps(provenance or {}, sort_keys=True, default=str)
    return out
