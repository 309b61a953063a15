"""Apply a trained :class:`~otus.models.api.Surrogate` to event files, chunk by chunk.

Input and output formats: ``simulate`` reads ``.h5`` (z) or ``.lhe[.gz]`` and
writes ``.h5`` or Delphes-layout ``.root``; ``unfold`` reads ``.h5`` (passing x) or Delphes or
NanoAOD ``.root`` and writes ``.h5`` or ``.lhe.gz``. Written ``.h5`` files are paired: row i holds
the input event and one stochastic output; with ``repeats`` K the K outputs of an event are
adjacent and each carries weight w/K, so weighted sums are unchanged. ``unfold`` with
``replicas`` K (a run trained with ``otus fit --replicas``) writes every event once per
replica, replica k unfolded by member k with the input weights × Poisson(1) counts (seed,
k, input row) (:mod:`otus.models.replicas`), and the dataset ``replica``. Simulated rows outside
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
# Smallest ε(z) divided by in full-phase-space unfolding: an event the run says almost never
# passes gets at most 100 times its weight (its neighbours in z carry the rest).
EPS_MIN = 0.01


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


def _prov(
    sur: Surrogate, inp: Path, command: str, seed: int, repeats: int, extra: dict[str, Any]
) -> dict[str, Any]:
    return provenance(
        seed=seed,
        inputs=[str(inp)],
        command=command,
        run=str(sur.run_dir),
        repeats=repeats,
        process=sur.process.name,
        **extra,
    )


class _Sink:
    """Where results go: an atomic HDF5 writer, or a list handed to ``finish`` (the LHE or
    ROOT writer, which need all rows) once every chunk succeeded."""

    def __init__(
        self, out: Path, p: Any, prov: dict[str, Any], h5: bool, replicas: bool = False
    ) -> None:
        self.writer = (
            EventWriter(out, p, has_z=True, has_x=True, provenance=prov, replicas=replicas)
            if h5
            else None
        )
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
    replicas: int = 0,
    settings: dict[str, Any] | None = None,
) -> int:
    """Write ``chunks(inp)`` to ``out``: HDF5 chunk by chunk, any other format through
    ``finish`` once every chunk succeeded; nothing is left behind on failure."""
    osuf = _suffix(out)
    if osuf not in formats:
        want = " or ".join(f for f in formats if f != ".hdf5")
        raise OtusError(f"{out}: unsupported output format; expected {want}")
    extra = {"replicas": replicas} if replicas else {}
    prov = _prov(sur, inp, command, seed, repeats, {**extra, **(settings or {})})
    sink = _Sink(out, sur.process, prov, osuf in (".h5", ".hdf5"), replicas > 0)
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
    replicas: int = 0,
    iterations: int = 0,
    acceleration: float | None = None,
    full_phase_space: bool = False,
) -> int:
    """Unfold every passing detector-level event of ``inp``; return the rows written.

    With ``iterations`` N > 0 the unfolded events get weights, iterated N times so that the
    run's simulator folds them back onto the input (:mod:`otus.models.iterate`): the answer
    no longer follows the training sample's parton-level spectrum; ``acceleration`` is the
    exponent of each update (None: :data:`otus.models.iterate.ACCELERATION`). The passing
    events of ``inp`` are then held in memory.

    The answer is the parton level of the events that *pass* the detector; with
    ``full_phase_space`` each event's weight is divided by the run's learnt efficiency ε(z)
    (at least :data:`EPS_MIN`), so that the weighted events estimate the full parton-level
    distribution wherever the detector sees events at all. The provenance says which
    (``phase_space``: ``passing`` or ``full``).

    With ``replicas`` K > 0 the run (``sur.run_dir``) must hold K bootstrap members
    (``otus fit --replicas``): replica k unfolds every passing event with member k's encoder
    and multiplies its weight by a Poisson(1) count fixed by (``seed``, k, input row); the
    ``.h5`` output holds every event once per replica and the dataset ``replica``.
    """
    p = sur.process
    members: list[tuple[int, Surrogate]] = []
    if replicas:
        from otus.models.api import load_replicas

        members = list(enumerate(load_replicas(sur.run_dir, replicas, device=sur.module.device)))

    from otus.models.iterate import check_acceleration

    if iterations < 0:
        raise OtusError(f"--iterations must be >= 0, got {iterations}")
    accel = check_acceleration(acceleration)
    if full_phase_space:
        sur.efficiency(np.zeros((0, p.dz), np.float32))  # the run's error, before any output

    def full(m: Surrogate, z: np.ndarray, w: np.ndarray) -> np.ndarray:
        return w / np.maximum(m.efficiency(z), EPS_MIN) if full_phase_space else w

    def chunks(path: Path) -> Iterator[Events]:
        if iterations:
            yield from _iterated(
                sur, members, path, seed, repeats, batch_size, iterations, accel, full
            )
            return
        from otus.models.replicas import poisson_counts

        n_pass = row = 0
        for k, ev in enumerate(_input_chunks(sur, path, "x")):
            assert ev.x is not None and ev.x_pass is not None and ev.weight is not None
            a, row = row, row + len(ev)
            x = ev.x[ev.x_pass]
            if len(x) == 0:
                continue
            n_pass += len(x)
            xr = np.repeat(x, repeats, axis=0)
            ok = np.ones(len(xr), bool)
            if not members:
                z = sur.unfold(x, seed=seed + 7919 * k, repeats=repeats, batch_size=batch_size)
                w = np.repeat(ev.weight[ev.x_pass], repeats) / repeats
                yield Events(p, z, xr, ok, full(sur, z, w))
            for r, m in members:
                s = int(np.random.SeedSequence([seed % 2**63, k, r]).generate_state(1)[0])
                z = m.unfold(x, seed=s, repeats=repeats, batch_size=batch_size)
                c = poisson_counts(seed, r, 0, a, row)[ev.x_pass]
                w = np.repeat(ev.weight[ev.x_pass] * c, repeats) / repeats
                rep = np.full(len(xr), r, np.int32)
                yield Events(p, z, xr, ok, full(m, z, w), replica=rep)
        if n_pass == 0:
            raise InputFileError(f"{path}: holds no passing detector-level events to unfold")

    def finish(sink: _Sink, prov: dict[str, Any]) -> int:
        z = sink.column("z")
        rep = sink.column("replica") if replicas else None
        lhe = _io("lhe")
        lhe.write_lhe(Path(out), p, z, sink.column("weight"), provenance=prov, replica=rep)
        return len(z)

    formats = (".h5", ".hdf5", ".lhe.gz")
    settings = {
        "iterations": iterations,
        **({"acceleration": accel} if iterations else {}),
        "phase_space": "full" if full_phase_space else "passing",
    }
    return _apply_file(
        sur,
        Path(inp),
        Path(out),
        "unfold",
        formats,
        seed,
        repeats,
        chunks,
        finish,
        replicas,
        settings,
    )


def _iterated(
    sur: Surrogate,
    members: list[tuple[int, Surrogate]],
    path: Path,
    seed: int,
    repeats: int,
    batch_size: int,
    iterations: int,
    acceleration: float,
    full: Callable[[Surrogate, np.ndarray, np.ndarray], np.ndarray],
) -> Iterator[Events]:
    """:func:`unfold_file`'s events with ``iterations`` > 0: every passing event of ``path``
    at once (each iteration's classifier sees the whole folded answer), per replica when
    ``members`` are given (each with its own bootstrap weights of the input and its own
    decoder, as without iterations)."""
    from otus.calibrate.features import classifier_matrix
    from otus.models.iterate import iterate_unfolding
    from otus.models.replicas import poisson_counts

    p = sur.process
    xs, ws, counts = [], [], []
    row = 0
    for ev in _input_chunks(sur, path, "x"):
        assert ev.x is not None and ev.x_pass is not None and ev.weight is not None
        a, row = row, row + len(ev)
        xs.append(ev.x[ev.x_pass])
        ws.append(ev.weight[ev.x_pass])
        counts.append([poisson_counts(seed, r, 0, a, row)[ev.x_pass] for r, _ in members])
    x, w = np.concatenate(xs), np.concatenate(ws)
    if len(x) == 0:
        raise InputFileError(f"{path}: holds no passing detector-level events to unfold")

    def features(rows: np.ndarray) -> np.ndarray:
        return classifier_matrix(p, rows)

    xr = np.repeat(x, repeats, axis=0)
    for i, (r, m) in enumerate(members or [(-1, sur)]):
        w_r = w * np.concatenate([c[i] for c in counts]) if members else w

        def unfold(rows: np.ndarray, s: int, k: int, m: Surrogate = m) -> np.ndarray:
            return m.unfold(rows, seed=s, repeats=k, batch_size=batch_size)

        def simulate(
            rows: np.ndarray, s: int, k: int, m: Surrogate = m
        ) -> tuple[np.ndarray, np.ndarray]:
            out: tuple[np.ndarray, np.ndarray] = m.simulate(
                rows, seed=s, repeats=k, batch_size=batch_size, with_pass=True
            )
            return out

        s = seed if r < 0 else int(np.random.SeedSequence([seed % 2**63, r]).generate_state(1)[0])
        z, wz = iterate_unfolding(
            unfold,
            simulate,
            x,
            w_r,
            features,
            iterations=iterations,
            seed=s,
            repeats=repeats,
            acceleration=acceleration,
        )
        for a in range(0, len(z), CHUNK):
            sl = slice(a, a + CHUNK)
            n = len(z[sl])
            rep = None if r < 0 else np.full(n, r, np.int32)
            yield Events(p, z[sl], xr[sl], np.ones(n, bool), full(m, z[sl], wz[sl]), replica=rep)
