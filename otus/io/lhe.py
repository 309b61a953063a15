"""Les Houches Event files (hep-ph/0609017, arXiv:1405.1067): read parton objects, write events.

Reading goes through pylhe 2.x (``pylhe.LHEFile.fromfile``, whose event generator is consumed
in chunks of :data:`CHUNK` events into ``pylhe.to_awkward``, so memory does not grow with the
file) and selects the parton objects of the process card with
:func:`otus.physics.selection.build_z`: for each card entry in order, the status-1 particles
with one of its PDG ids (and, when the entry names a ``mother``, whose first mother has one
of those ids) that no earlier entry took; the highest pT of them is used. An event lacking one
is skipped and counted (e.g. μμ events of a Z+jets sample read as zee; dileptonic tt̄ read as
semileptonic).

The file's momenta are kept as they are; they are *not* put on the process mass shell (that
is the consumer's job, e.g. the model's decoder). The largest deviation from the process
masses is reported in the provenance (``lhe.max_mass_offshell_GeV``), and the init block's
total cross-section (the sum of XSECUP over its processes, pb) as ``lhe.cross_section_pb``.

Writing (:mod:`otus.io.lhe_writer`, re-exported here) produces a Les Houches v3 file whose
events hold the incoming partons, the intermediate resonances and the z objects.
"""

from __future__ import annotations

import itertools
import logging
import os
import warnings
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from otus.errors import InputFileError
from otus.io.h5 import Events
from otus.io.lhe_writer import ALPHA_QCD, ALPHA_QED, LHEWriter, write_lhe
from otus.physics import fourvec as fv
from otus.physics.selection import build_z, describe_partons, entry_matches
from otus.processes import Process, get_process

__all__ = [
    "ALPHA_QCD",
    "ALPHA_QED",
    "CHUNK",
    "LHESelection",
    "LHEWriter",
    "iter_lhe",
    "read_lhe",
    "select_lhe",
    "summarize",
    "write_lhe",
]

log = logging.getLogger(__name__)

CHUNK = 50_000  # events per pylhe.to_awkward block

# What pylhe and the XML/gzip layers raise on damaged files.
_READ_ERRORS = (
    ValueError,
    EOFError,
    OSError,
    zlib.error,
    ET.ParseError,
    IndexError,
    KeyError,
    TypeError,
    UnicodeDecodeError,
    OverflowError,
)


@dataclass
class LHESelection:
    """Events of an LHE file (or of one chunk of it), with the rows holding the process marked
    by ``selected``.

    ``z`` is [N, Dz] float32 (NaN in rows not selected), ``weight`` [N] float64 (XWGTUP).
    """

    process: Process
    path: Path
    z: np.ndarray
    weight: np.ndarray
    selected: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def events(self) -> Events:
        """The selected rows as :class:`otus.io.h5.Events`."""
        m = self.selected
        return Events(
            self.process,
            z=self.z[m],
            weight=self.weight[m],
            provenance={"source": "lhe", "lhe": dict(self.info)},
        )


def _not_readable(path: Path, err: BaseException) -> InputFileError:
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    return InputFileError(f"{path}: not a readable LHE file ({msg})")


def _replay(path: Path, caught: list[warnings.WarningMessage]) -> None:
    """pylhe reports malformed XML as a RuntimeWarning: make it an error, pass others on."""
    for w in caught:
        if issubclass(w.category, RuntimeWarning) and "Parse Error" in str(w.message):
            raise InputFileError(f"{path}: malformed LHE XML ({w.message})")
        warnings.warn(w.message, w.category, stacklevel=3)


def _blocks(
    path: Path, max_events: int | None, chunk_size: int
) -> Iterator[tuple[ak.Array, float]]:
    """pylhe's awkward view of consecutive blocks of ``chunk_size`` events, each with the
    init block's total cross-section; every reading problem becomes InputFileError."""
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder, expected an LHE file")
    import pylhe

    gen = None
    try:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                lhef = pylhe.LHEFile.fromfile(path, with_attributes=False)
                gen = lhef.events
                xsec = float(sum(p.xSection for p in lhef.init.procInfo))
        except _READ_ERRORS as err:
            raise _not_readable(path, err) from None
        _replay(path, caught)
        left = max_events
        n = 0
        while left is None or left > 0:
            size = chunk_size if left is None else min(chunk_size, left)
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    arr = pylhe.to_awkward(itertools.islice(gen, size))
            except _READ_ERRORS as err:
                raise _not_readable(path, err) from None
            _replay(path, caught)
            if len(arr) == 0:
                break
            n += len(arr)
            left = None if left is None else left - len(arr)
            yield arr, xsec
            if len(arr) < size:
                break
        if n == 0:
            raise InputFileError(f"{path}: holds no events")
    finally:
        if gen is not None and hasattr(gen, "close"):
            gen.close()


def _particles(path: Path, arr: ak.Array, first: int) -> ak.Array:
    """The block's particles as :func:`build_z` records (``first``: index of its first event)."""
    parts = arr.particles
    nup = ak.to_numpy(arr.eventinfo.nparticles)
    held = ak.to_numpy(ak.num(parts.id, axis=1))
    if np.any(nup != held):
        i = int(np.argmax(nup != held))
        raise InputFileError(
            f"{path}: event {first + i} declares {int(nup[i])} particles (NUP) but "
            f"holds {int(held[i])}; the file is truncated or malformed"
        )
    try:
        n_in = ak.num(parts.id, axis=1)
        m1 = parts.mother1
        ok_idx = (m1 >= 1) & (m1 <= n_in)
        mother = ak.where(ok_idx, parts.id[ak.where(ok_idx, m1 - 1, 0)], 0)
    except (ValueError, IndexError) as err:
        raise InputFileError(f"{path}: inconsistent mother indices ({err})") from None
    vec = parts.vector
    return ak.zip(
        {
            "pdg": parts.id,
            "outgoing": parts.status == 1,
            "mother": mother,
            "px": vec.px,
            "py": vec.py,
            "pz": vec.pz,
            "E": vec.e,
        },
        depth_limit=2,
        with_name=None,
    )


def iter_lhe(
    path: str | os.PathLike[str],
    process: Process | str,
    *,
    chunk_size: int = CHUNK,
    max_events: int | None = None,
) -> Iterator[LHESelection]:
    """Read an LHE file in chunks of ``chunk_size`` events, one :class:`LHESelection` each.

    Each chunk's ``info`` counts its own events (``first_event``, ``n_events``,
    ``n_selected``, ``max_mass_offshell_GeV``, ``cross_section_pb``); :func:`summarize` adds
    them up. Raises InputFileError when the file cannot be read or holds NaN momenta in
    selected events; a file without the process is the caller's (or summarize's) check.
    """
    proc = get_process(process) if isinstance(process, str) else process
    p = Path(path)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    first = 0
    for arr, xsec in _blocks(p, max_events, chunk_size):
        parts = _particles(p, arr, first)
        z, selected = build_z(proc, parts)
        weight = ak.to_numpy(arr.eventinfo.weight).astype(np.float64)
        zs = z[selected]
        bad = ~np.all(np.isfinite(zs), axis=1) | ~np.isfinite(weight[selected])
        if bad.any():
            raise InputFileError(
                f"{p}: NaN or inf momenta or weights in {int(bad.sum())} selected events"
            )
        off = None
        if len(zs):
            masses = fv.mass(fv.objects(zs, len(proc.z_objects)))
            off = float(np.abs(masses - np.asarray(proc.z_masses)).max())
        n = len(selected)
        info = {
            "file": str(p),
            "first_event": first,
            "n_events": n,
            "n_selected": int(selected.sum()),
            "max_mass_offshell_GeV": off,
            "cross_section_pb": xsec,
            # Per-entry match counts only serve the error for a file without the process:
            # not computed for chunks that hold it.
            "entry_events": None if selected.any() else entry_matches(proc, parts),
        }
        first += n
        yield LHESelection(proc, p, z.astype(np.float32), weight, selected, info)


def summarize(
    path: str | os.PathLike[str], process: Process, infos: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The file's totals from the ``info`` of its chunks (:func:`iter_lhe`): ``n_events``,
    ``n_selected``, ``n_skipped``, ``max_mass_offshell_GeV``, ``cross_section_pb``.

    Raises InputFileError when no event holds the process.
    """
    p = Path(path)
    n = sum(i["n_events"] for i in infos)
    k = sum(i["n_selected"] for i in infos)
    if k == 0:
        hint = ""
        counts: list[list[int]] = [i["entry_events"] for i in infos if i.get("entry_events")]
        if counts and len(counts) == len(infos):
            found = [sum(c[j] for c in counts) for j in range(len(process.parton))]
            if 0 in found:
                j = found.index(0)
                e = process.parton[j]
                key = "pdg" if e.mother is None else "pdg/mother"
                moth = f" from {'|'.join(map(str, e.mother))}" if e.mother else ""
                hint = (
                    f"; {process.source}: parton[{j}].{key}: no event has an outgoing "
                    f"{'|'.join(map(str, e.pdg))}{moth} (wrong card or wrong file)"
                )
        raise InputFileError(f"{p}: none of its {n} events holds {describe_partons(process)}{hint}")
    offs = [i["max_mass_offshell_GeV"] for i in infos if i["max_mass_offshell_GeV"] is not None]
    if n - k:
        log.info(
            "%s: kept %d of %d events holding %s, skipped %d",
            p,
            k,
            n,
            describe_partons(process),
            n - k,
        )
    return {
        "file": str(p),
        "n_events": n,
        "n_selected": k,
        "n_skipped": n - k,
        "max_mass_offshell_GeV": max(offs),
        "cross_section_pb": infos[0]["cross_section_pb"],
    }


def select_lhe(
    path: str | os.PathLike[str],
    process: Process | str,
    *,
    max_events: int | None = None,
    chunk_size: int = CHUNK,
) -> LHESelection:
    """Read a whole LHE file and mark the events that hold ``process`` (rules: module
    docstring). For files larger than memory, use :func:`iter_lhe`.

    Raises InputFileError when the file cannot be read, holds NaN momenta, or no event
    holds the process.
    """
    proc = get_process(process) if isinstance(process, str) else process
    chunks = list(iter_lhe(path, proc, chunk_size=chunk_size, max_events=max_events))
    info = summarize(path, proc, [c.info for c in chunks])

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(c, name) for c in chunks])

    return LHESelection(proc, Path(path), cat("z"), cat("weight"), cat("selected"), info)


def read_lhe(
    path: str | os.PathLike[str], process: Process | str, *, max_events: int | None = None
) -> Events:
    """The ``process`` events of an LHE file as :class:`Events` with ``z`` and ``weight``.

    Events without the process are skipped; their count is in
    ``provenance["lhe"]["n_skipped"]``. Example::

        ev = read_lhe("unweighted_events.lhe.gz", "zee")
    """
    return select_lhe(path, process, max_events=max_events).events()
