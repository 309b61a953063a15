"""Apply a trained :class:`~otus.models.api.Surrogate` to event files, chunk by chunk.

Input and output formats: ``simulate`` reads ``.h5`` (z) or ``.lhe[.gz]`` and
writes ``.h5`` or Delphes-layout ``.root``; ``unfold`` reads ``.h5`` (passing x) or Delphes or
NanoAOD ``.root`` and writes ``.h5`` or ``.lhe.gz``. Written ``.h5`` files are paired: row i holds
the input event and one stochastic output; with ``repeats`` K the K outputs of an event are
adjacent and each carries weight w/K, so weighted sums are unchanged. Simulated rows outside
the detector acceptance, or lost to the learnt efficiency ε(z), are stored as failing (NaN,
``x_pass`` false), like real data.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from otus.errors import InputFileError, OtusError
from otus.io.h5 import Events, EventWriter, info, iter_chunks
from otus.models.api import Surrogate
from otus.provenance import provenance

CHUNK = 65536


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in (".lhe.gz", ".lhe", ".h5", ".hdf5", ".root"):
        if name.endswith(s):
            return s
    return path.suffix.lower()


def _io(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(f"otus.io.{module}")
    except ModuleNotFoundError:
        raise OtusError(
            f"this installation cannot read or write {module.upper()} files "
            f"(otus.io.{module} missing); use .h5 instead"
        ) from None


def _input_chunks(sur: Surrogate, path: Path, level: str) -> Iterator[Events]:
    p = sur.process
    suf = _suffix(path)
    if suf in (".h5", ".hdf5"):
        fi = info(path, p.name)
        if fi.n == 0:
            raise InputFileError(f"{path}: holds no events")
        if level == "z" and not fi.has_z:
            raise InputFileError(f"{path}: holds no parton-level z events to simulate from")
        if level == "x" and not fi.has_x:
            raise InputFileError(f"{path}: holds no detector-level x events to unfold")
        yield from iter_chunks(path, CHUNK, p.name)
        return
    if level == "x" and suf == ".root":  # Delphes or NanoAOD, read in chunks
        yield from _io("formats").iter_detector(path, p, chunk_size=CHUNK)
        return
    if level == "z" and suf in (".lhe", ".lhe.gz"):
        ev = _io("lhe").read_lhe(path, p)
    else:
        want = ".h5 or .lhe[.gz]" if level == "z" else ".h5 or .root"
        raise InputFileError(f"{path}: unsupported input format; expected {want}")
    if len(ev) == 0:
        raise InputFileError(f"{path}: holds no events")
    for a in range(0, len(ev), CHUNK):
        yield ev.subset(slice(a, a + CHUNK))


def _prov(sur: Surrogate, inp: Path, command: str, seed: int, repeats: int) -> dict[str, Any]:
    return provenance(
        seed=seed,
        inputs=[str(inp)],
        command=command,
        run=str(sur.run_dir),
        repeats=repeats,
        process=sur.process.name,
    )


class _Sink:
    """Where results go: an atomic HDF5 writer, or a list handed to ``finish`` (the LHE or
    ROOT writer, which need all rows) once every chunk succeeded."""

    def __init__(self, out: Path, p: Any, prov: dict[str, Any], h5: bool) -> None:
        self.writer = EventWriter(out, p, has_z=True, has_x=True, provenance=prov) if h5 else None
        self.parts: list[Events] = []

    def append(self, ev: Events) -> None:
        if self.writer is not None:
            self.writer.append(ev)
        else:
            self.parts.append(ev)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close(ok=False)

    def column(self, name: str) -> np.ndarray:
        return np.concatenate([getattr(e, name) for e in self.parts])


def _apply_file(
    sur: Surrogate,
    inp: Path,
    out: Path,
    command: str,
    formats: tuple[str, ...],
    seed: int,
    repeats: int,
    chunks: Callable[[Path], Iterator[Events]],
    finish: Callable[[_Sink, dict[str, Any]], int],
) -> int:
    """Write ``chunks(inp)`` to ``out``: HDF5 chunk by chunk, any other format through
    ``finish`` once every chunk succeeded; nothing is left behind on failure."""
    osuf = _suffix(out)
    if osuf not in formats:
        want = " or ".join(f for f in formats if f != ".hdf5")
        raise OtusError(f"{out}: unsupported output format; expected {want}")
    prov = _prov(sur, inp, command, seed, repeats)
    sink = _Sink(out, sur.process, prov, osuf in (".h5", ".hdf5"))
    try:
        for ev in chunks(inp):
            sink.append(ev)
    except BaseException:
        sink.abort()
        raise
    if sink.writer is not None:
        sink.writer.close()
        return sink.writer.n
    return finish(sink, prov)


def simulate_file(
    sur: Surrogate,
    inp: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    seed: int,
    repeats: int = 1,
    batch_size: int = CHUNK,
) -> int:
    """Simulate detector-level events for every z in ``inp``; return the rows written."""
    p = sur.process

    def chunks(path: Path) -> Iterator[Events]:
        for k, ev in enumerate(_input_chunks(sur, path, "z")):
            assert ev.z is not None and ev.weight is not None
            x, x_pass = sur.simulate(
                ev.z, seed=seed + 7919 * k, repeats=repeats, batch_size=batch_size, with_pass=True
            )
            x[~x_pass] = np.nan
            z, w = np.repeat(ev.z, repeats, axis=0), np.repeat(ev.weight, repeats) / repeats
            yield Events(p, z, x, x_pass, w)

    def finish(sink: _Sink, _: dict[str, Any]) -> int:
        dl = _io("delphes")
        x = sink.column("x")
        collections = dl.collections_from_x(p, x, sink.column("x_pass"))
        dl.write_delphes(Path(out), collections, sink.column("weight"))
        return len(x)

    formats = (".h5", ".hdf5", ".root")
    return _apply_file(
        sur, Path(inp), Path(out), "simulate", formats, seed, repeats, chunks, finish
    )


def unfold_file(
    sur: Surrogate,
    inp: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    seed: int,
    repeats: int = 1,
    batch_size: int = CHUNK,
) -> int:
    """Unfold every passing detector-level event of ``inp``; return the rows written."""
    p = sur.process

    def chunks(path: Path) -> Iterator[Events]:
        n_pass = 0
        for k, ev in enumerate(_input_chunks(sur, path, "x")):
            assert ev.x is not None and ev.x_pass is not None and ev.weight is not None
            x = ev.x[ev.x_pass]
            if len(x) == 0:
                continue
            n_pass += len(x)
            z = sur.unfold(x, seed=seed + 7919 * k, repeats=repeats, batch_size=batch_size)
            xr = np.repeat(x, repeats, axis=0)
            w = np.repeat(ev.weight[ev.x_pass], repeats) / repeats
            yield Events(p, z, xr, np.ones(len(xr), bool), w)
        if n_pass == 0:
            raise InputFileError(f"{path}: holds no passing detector-level events to unfold")

    def finish(sink: _Sink, prov: dict[str, Any]) -> int:
        z = sink.column("z")
        _io("lhe").write_lhe(Path(out), p, z, sink.column("weight"), provenance=prov)
        return len(z)

    formats = (".h5", ".hdf5", ".lhe.gz")
    return _apply_file(sur, Path(inp), Path(out), "unfold", formats, seed, repeats, chunks, finish)
