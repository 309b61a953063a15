"""Choose the event-file format by file name: ``.h5`` (otus), ``.lhe[.gz]`` (parton level),
``.root`` (detector level: a Delphes file, tree ``Delphes``, or a CMS NanoAOD file, tree
``Events``). Used by commands that take or write any of them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from otus.errors import InputFileError, OtusError
from otus.io.h5 import Events, read_events, write_events
from otus.processes import Process, get_process

Kind = Literal["h5", "lhe", "root"]
RootKind = Literal["delphes", "nanoaod"]
CHUNK = 100_000


def file_kind(path: str | os.PathLike[str]) -> Kind:
    """The format of ``path`` from its suffix; OtusError for anything else."""
    name = Path(path).name.lower()
    if name.endswith((".h5", ".hdf5")):
        return "h5"
    if name.endswith((".lhe", ".lhe.gz")):
        return "lhe"
    if name.endswith(".root"):
        return "root"
    raise OtusError(f"{path}: unknown event-file type; use .h5, .lhe, .lhe.gz or .root")


def root_kind(path: str | os.PathLike[str]) -> RootKind:
    """Delphes or NanoAOD, by the tree the ROOT file holds (``Delphes`` or ``Events``)."""
    from otus.io import delphes, nanoaod
    from otus.io._root import open_root, tree_names

    p = Path(path)
    with open_root(p, "a Delphes or NanoAOD ROOT file") as f:
        if delphes.TREE in f:
            return "delphes"
        if nanoaod.TREE in f:
            return "nanoaod"
        trees = ", ".join(tree_names(f)) or "none"
    raise InputFileError(
        f"{p}: neither a Delphes ('{delphes.TREE}' tree) nor a NanoAOD ('{nanoaod.TREE}' tree) "
        f"file (trees: {trees})"
    )


def iter_detector(
    path: str | os.PathLike[str],
    process: Process | str,
    *,
    chunk_size: int | None = CHUNK,
    max_events: int | None = None,
) -> Iterator[Events]:
    """Detector-level events (x, x_pass, weight) of a Delphes or NanoAOD ROOT file, in chunks
    of ``chunk_size`` events (all at once when None)."""
    from otus.physics.selection import build_x, required_collections

    proc = get_process(process) if isinstance(process, str) else process
    kind = root_kind(path)
    prov = {"source": kind, "file": str(path)}
    chunks: Iterator[tuple[dict, np.ndarray]]
    if kind == "delphes":
        from otus.io.delphes import iter_delphes

        chunks = iter_delphes(
            path,
            step_size=chunk_size,
            entry_stop=max_events,
            collections=required_collections(proc),
        )
    else:
        from otus.io.nanoaod import iter_nanoaod

        chunks = (
            (c.reco, c.weight)
            for c in iter_nanoaod(
                path, proc, step_size=chunk_size, max_events=max_events, parton=False
            )
        )
    for reco, weight in chunks:
        try:
            x, x_pass = build_x(proc, reco)
        except OtusError as err:
            raise InputFileError(f"{path}: {err}") from None
        yield Events(proc, x=x, x_pass=x_pass, weight=weight, provenance=dict(prov))


def read_input(
    path: str | os.PathLike[str], process: Process | str, *, max_events: int | None = None
) -> Events:
    """Events from an otus, LHE (z only) or Delphes/NanoAOD ROOT (x only) file."""
    proc = get_process(process) if isinstance(process, str) else process
    kind = file_kind(path)
    if kind == "h5":
        ev = read_events(path, proc.name)
        return ev if max_events is None else ev.subset(slice(0, max_events))
    if kind == "lhe":
        from otus.io.lhe import read_lhe

        return read_lhe(path, proc, max_events=max_events)
    (ev,) = iter_detector(path, proc, chunk_size=None, max_events=max_events)
    return ev


def write_output(path: str | os.PathLike[str], ev: Events) -> Path:
    """Write ``ev`` as an otus file (all it holds), LHE (its z) or Delphes ROOT (its x)."""
    kind = file_kind(path)
    if kind == "h5":
        return write_events(path, ev)
    assert ev.weight is not None  # set by Events.__post_init__
    if kind == "lhe":
        if ev.z is None:
            raise OtusError(f"{path}: LHE holds parton-level events, but these have no z")
        from otus.io.lhe import write_lhe

        return write_lhe(path, ev.process, ev.z, ev.weight, provenance=ev.provenance)
    if ev.x is None:
        raise OtusError(f"{path}: Delphes ROOT holds detector-level events, but these have no x")
    from otus.io.delphes import collections_from_x, write_delphes

    assert ev.x_pass is not None  # set by Events.__post_init__
    reco = collections_from_x(ev.process, ev.x, ev.x_pass)
    return write_delphes(path, reco, ev.weight, provenance=ev.provenance)
