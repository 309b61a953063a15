"""Convert a user's files into the otus event file, streaming (``otus convert``).

Inputs are read in chunks of ``chunk_size`` events and appended to an
:class:`~otus.io.h5.EventWriter`, so memory does not grow with the files: parton level from
LHE (:func:`otus.io.lhe.iter_lhe`), detector level from Delphes ROOT
(:func:`otus.io.delphes.iter_delphes`), or both from one CMS NanoAOD file
(:func:`otus.io.nanoaod.iter_nanoaod`; the detector level alone from collision data).

With both levels, row i of the inputs is one event: an LHE and a Delphes file must hold the
same number of events, and rows whose parton level lacks the process are dropped from both
levels. The output holds every remaining row; x is NaN (and ``x_pass`` false) where the
detector selection fails. The written file is bit for bit the same for every ``chunk_size``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from otus.errors import ConfigError, InputFileError, OtusError
from otus.io.h5 import Events, EventWriter
from otus.physics.selection import build_x, describe_partons, required_collections
from otus.processes import Process, get_process

CHUNK = 50_000
PathLike = str | os.PathLike[str]


@dataclass
class _Chunk:
    """One chunk of input rows: parton level (z, selected, its weights) and/or detector
    level (x, x_pass, its weights)."""

    n: int
    z: np.ndarray | None = None
    selected: np.ndarray | None = None
    z_weight: np.ndarray | None = None
    x: np.ndarray | None = None
    x_pass: np.ndarray | None = None
    x_weight: np.ndarray | None = None


@dataclass
class ConvertResult:
    """What a conversion wrote: rows, passing rows (None without x), input rows skipped for
    lacking the process at parton level, where the parton level came from (``lhe``,
    ``LHEPart``, ``GenPart``, or None), and the settings stored in the provenance."""

    n_written: int
    n_pass: int | None
    n_skipped: int
    parton: str | None
    info: dict[str, Any] = field(default_factory=dict)


def _x(proc: Process, path: Path, reco: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    try:
        return build_x(proc, reco)
    except OtusError as err:
        raise InputFileError(f"{path}: {err}") from None


def _lhe_chunks(proc: Process, path: Path, chunk: int, stop: int | None, infos: list) -> Any:
    from otus.io.lhe import iter_lhe

    for sel in iter_lhe(path, proc, chunk_size=chunk, max_events=stop):
        infos.append(sel.info)
        yield _Chunk(len(sel.selected), z=sel.z, selected=sel.selected, z_weight=sel.weight)


def _delphes_chunks(proc: Process, path: Path, chunk: int, stop: int | None) -> Any:
    from otus.io.delphes import iter_delphes

    cols = required_collections(proc)
    for reco, w in iter_delphes(path, step_size=chunk, entry_stop=stop, collections=cols):
        x, x_pass = _x(proc, path, reco)
        yield _Chunk(len(w), x=x, x_pass=x_pass, x_weight=w)


def _nanoaod_chunks(proc: Process, path: Path, chunk: int, stop: int | None) -> Any:
    from otus.io.nanoaod import iter_nanoaod

    for c in iter_nanoaod(path, proc, step_size=chunk, max_events=stop):
        x, x_pass = _x(proc, path, c.reco)
        yield _Chunk(
            len(c.weight),
            z=c.z,
            selected=c.selected,
            z_weight=c.weight,
            x=x,
            x_pass=x_pass,
            x_weight=c.weight,
        )


def _paired(lhe: Path, det: Path, zs: Iterator[_Chunk], xs: Iterator[_Chunk]) -> Any:
    """Chunks of an LHE and a Delphes file side by side, both chunked alike; InputFileError
    (after counting both files) when they hold different numbers of events."""
    n_z = n_x = 0
    for cz, cx in itertools.zip_longest(zs, xs):
        n_z += cz.n if cz is not None else 0
        n_x += cx.n if cx is not None else 0
        if cz is None or cx is None or cz.n != cx.n:
            n_z += sum(c.n for c in zs)
            n_x += sum(c.n for c in xs)
            raise InputFileError(
                f"{lhe} holds {n_z} events but {det} holds {n_x}; paired conversion needs "
                "the same events in the same order"
            )
        yield _Chunk(cz.n, cz.z, cz.selected, cz.z_weight, cx.x, cx.x_pass, cx.x_weight)


def convert(
    process: Process | str,
    out: PathLike,
    *,
    lhe: PathLike | None = None,
    delphes: PathLike | None = None,
    nanoaod: PathLike | None = None,
    max_events: int | None = None,
    chunk_size: int = CHUNK,
    provenance: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ConvertResult:
    """Convert ``lhe`` and/or ``delphes``, or ``nanoaod``, into the event file ``out``.

    ``max_events`` caps the events read from each input; ``provenance`` makes the file's
    provenance from the conversion's settings; ``progress`` is called with the number of
    input events of each chunk. The output appears only when everything succeeded.
    Raises ConfigError for a bad combination of inputs and InputFileError for bad files
    (e.g. no event holding the process, or none passing the detector selection).
    """
    proc = get_process(process) if isinstance(process, str) else process
    if nanoaod is not None and (lhe is not None or delphes is not None):
        raise ConfigError("--nanoaod holds both levels; give it alone, without --lhe or --delphes")
    if lhe is None and delphes is None and nanoaod is None:
        raise ConfigError("give --lhe, --delphes or both, or --nanoaod")
    if max_events is not None and max_events < 1:
        raise ConfigError(f"--max-events must be positive, got {max_events}")
    if chunk_size < 1:
        raise ConfigError(f"chunk size must be positive, got {chunk_size}")
    lhe_p, det_p, nano_p = (None if f is None else Path(f) for f in (lhe, delphes, nanoaod))
    lhe_infos: list[dict[str, Any]] = []
    parton: str | None = None
    chunks: Iterator[_Chunk]
    if nano_p is not None:
        from otus.io.nanoaod import layout

        parton = layout(nano_p, proc, max_events=max_events).parton
        chunks = _nanoaod_chunks(proc, nano_p, chunk_size, max_events)
    else:
        zs = _lhe_chunks(proc, lhe_p, chunk_size, max_events, lhe_infos) if lhe_p else None
        xs = _delphes_chunks(proc, det_p, chunk_size, max_events) if det_p else None
        parton = "lhe" if lhe_p else None
        if zs is not None and xs is not None:
            assert lhe_p is not None and det_p is not None
            chunks = _paired(lhe_p, det_p, zs, xs)
        else:
            chunks = zs if zs is not None else xs  # type: ignore[assignment]
    has_z, has_x = parton is not None, det_p is not None or nano_p is not None
    n_in = n_sel = n_written = n_pass = 0
    agree = True
    with EventWriter(out, proc, has_z=has_z, has_x=has_x) as w:
        for c in chunks:
            n_in += c.n
            if progress is not None:
                progress(c.n)
            keep = c.selected if has_z else np.ones(c.n, dtype=bool)
            assert keep is not None
            n_sel += int(keep.sum())
            weight = c.z_weight if has_z else c.x_weight
            assert weight is not None
            if has_z and has_x and lhe_p is not None:
                assert c.x_weight is not None and c.z_weight is not None
                agree &= bool(np.allclose(c.x_weight[keep], c.z_weight[keep], rtol=1e-5, atol=0))
            ev = Events(
                proc,
                z=None if c.z is None or not has_z else c.z[keep],
                x=None if c.x is None else c.x[keep],
                x_pass=None if c.x_pass is None else c.x_pass[keep],
                weight=weight[keep],
            )
            if len(ev):
                w.append(ev)
                n_written += len(ev)
                n_pass += int(ev.x_pass.sum()) if has_x and ev.x_pass is not None else 0
        info = _summary(proc, lhe_p, det_p, nano_p, lhe_infos, parton, n_in, n_sel)
        if lhe_p is not None and det_p is not None:
            info["weights_agree"] = agree
        if has_x and n_pass == 0:
            src = det_p or nano_p
            raise InputFileError(
                f"{src}: none of its {n_written} events passes the {proc.name} detector "
                "selection (see otus.physics.selection)"
            )
        xsec = info["lhe"]["cross_section_pb"] if "lhe" in info else None
        w.set_metadata(
            provenance=provenance(info) if provenance is not None else None,
            cross_section_pb=xsec,
        )
    return ConvertResult(n_written, n_pass if has_x else None, n_in - n_sel, parton, info)


def _summary(
    proc: Process,
    lhe: Path | None,
    det: Path | None,
    nano: Path | None,
    lhe_infos: list[dict[str, Any]],
    parton: str | None,
    n_in: int,
    n_sel: int,
) -> dict[str, Any]:
    """Per-input settings for the provenance; InputFileError when no event holds the
    process at parton level."""
    info: dict[str, Any] = {}
    if lhe is not None:
        from otus.io.lhe import summarize

        info["lhe"] = summarize(lhe, proc, lhe_infos)
    if det is not None:
        info["delphes"] = {"file": str(det), "n_events": n_in}
    if nano is not None:
        if parton is not None and n_sel == 0:
            raise InputFileError(
                f"{nano}: none of its {n_in} events holds {describe_partons(proc)} in its "
                f"{parton} branches (see otus.physics.selection for the rule)"
            )
        info["nanoaod"] = {
            "file": str(nano),
            "n_events": n_in,
            "parton_level": parton,
            "n_selected": n_sel if parton else None,
            "n_skipped": n_in - n_sel if parton else 0,
        }
    return info
