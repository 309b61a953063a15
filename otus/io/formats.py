"""Choose the event-file format by file name: ``.h5`` (otus), ``.lhe[.gz]`` (parton level),
``.root`` (Delphes, detector level). Used by commands that take or write any of them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from otus.errors import InputFileError, OtusError
from otus.io.h5 import Events, read_events, write_events
from otus.processes import Process, get_process

Kind = Literal["h5", "lhe", "root"]


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


def read_input(
    path: str | os.PathLike[str], process: Process | str, *, max_events: int | None = None
) -> Events:
    """Events from an otus, LHE (z only) or Delphes ROOT (x only) file."""
    proc = get_process(process) if isinstance(process, str) else process
    kind = file_kind(path)
    if kind == "h5":
        ev = read_events(path, proc.name)
        return ev if max_events is None else ev.subset(slice(0, max_events))
    if kind == "lhe":
        from otus.io.lhe import read_lhe

        return read_lhe(path, proc, max_events=max_events)
    from otus.io.delphes import read_delphes
    from otus.physics.selection import build_x

    reco, weight = read_delphes(path, entry_stop=max_events)
    try:
        x, x_pass = build_x(proc, reco)
    except OtusError as err:
        raise InputFileError(f"{path}: {err}") from None
    return Events(
        proc, x=x, x_pass=x_pass, weight=weight, provenance={"source": "delphes", "file": str(path)}
    )


def write_output(path: str | os.PathLike[str], ev: Events) -> Path:
    """Write ``ev`` as an otus file (all it holds), LHE (its z) or Delphes ROOT (its x)."""
    kind = file_kind(path)
    if kind == "h5":
        return write_events(path, ev)
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
