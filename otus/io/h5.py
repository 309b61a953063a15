"""The otus event file (SPEC §4): HDF5 with datasets ``z``, ``x``, ``x_pass``, ``weight``.

Writing is atomic and incremental (:class:`EventWriter`); reading validates the schema and
can stream fixed-size chunks (:func:`iter_chunks`) without loading the whole file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import otus
from otus.errors import InputFileError, OtusError
from otus.io.atomic import atomic_path
from otus.processes import Process, get_process

_CHUNK_ROWS = 8192


@dataclass
class Events:
    """Events of one process in memory. ``z`` or ``x`` may be None (a file may hold one level)."""

    process: Process
    z: np.ndarray | None = None
    x: np.ndarray | None = None
    x_pass: np.ndarray | None = None
    weight: np.ndarray | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self)
        if self.x is not None and self.x_pass is None:
            self.x_pass = np.all(np.isfinite(self.x), axis=1)
        if self.weight is None:
            self.weight = np.ones(n, dtype=np.float64)

    def __len__(self) -> int:
        if self.z is not None:
            return len(self.z)
        if self.x is not None:
            return len(self.x)
        raise OtusError("an event file needs z or x")

    def subset(self, idx: Any) -> Events:
        """Rows ``idx`` (slice, index array or mask) as a new :class:`Events`."""

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return Events(
            self.process,
            take(self.z),
            take(self.x),
            take(self.x_pass),
            take(self.weight),
            dict(self.provenance),
        )


def _check_arrays(ev: Events, where: str) -> None:
    p = ev.process
    n = len(ev)
    for name, arr, dim in (("z", ev.z, p.dz), ("x", ev.x, p.dx)):
        if arr is None:
            continue
        if arr.ndim != 2 or arr.shape[1] != dim:
            raise OtusError(
                f"{where}: {name} has shape {arr.shape}, expected [N, {dim}] for {p.name}"
            )
        if len(arr) != n:
            raise OtusError(f"{where}: z and x have different numbers of rows")
    if ev.z is not None and not np.all(np.isfinite(ev.z)):
        bad = int(np.sum(~np.all(np.isfinite(ev.z), axis=1)))
        raise OtusError(f"{where}: z holds NaN or inf in {bad} events")
    if ev.x is not None:
        assert ev.x_pass is not None
        finite = np.all(np.isfinite(ev.x), axis=1)
        bad = int(np.sum(ev.x_pass & ~finite))
        if bad:
            raise OtusError(f"{where}: x holds NaN or inf in {bad} passing events")
    if ev.weight is not None:
        if len(ev.weight) != n:
            raise OtusError(f"{where}: weight has {len(ev.weight)} rows, expected {n}")
        if not np.all(np.isfinite(ev.weight)):
            raise OtusError(f"{where}: weight holds NaN or inf")


class EventWriter:
    """Append events to an HDF5 event file, atomically (the file appears on ``close``).

    Example::

        with EventWriter("out.h5", process, has_z=True, has_x=False) as w:
            w.append(Events(process, z=z_chunk))
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        process: Process,
        *,
        has_z: bool,
        has_x: bool,
        provenance: dict[str, Any] | None = None,
        compression: str | None = "gzip",
    ) -> None:
        self.path = Path(path)
        self.process = process
        self.has_z, self.has_x = has_z, has_x
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        # HDF5 ≥ 1.10 layout: its metadata (superblock, object headers with the attributes,
        # B-trees) carries checksums, and fletcher32 checksums every data chunk, so a damaged
        # file is refused with an error instead of being parsed (the 1.8 layout has no
        # checksums; fuzzing crashed the HDF5 library on damaged attribute messages).
        self._f = h5py.File(tmp, "w", libver=("v110", "latest"))
        kw: dict[str, Any] = {
            "compression": compression,
            "shuffle": compression is not None,
            "fletcher32": True,
        }
        if has_z:
            self._f.create_dataset(
                "z",
                (0, process.dz),
                "f4",
                maxshape=(None, process.dz),
                chunks=(_CHUNK_ROWS, process.dz),
                **kw,
            )
        if has_x:
            self._f.create_dataset(
                "x",
                (0, process.dx),
                "f4",
                maxshape=(None, process.dx),
                chunks=(_CHUNK_ROWS, process.dx),
                **kw,
            )
            self._f.create_dataset(
                "x_pass", (0,), "bool", maxshape=(None,), chunks=(_CHUNK_ROWS,), **kw
            )
        self._f.create_dataset("weight", (0,), "f8", maxshape=(None,), chunks=(_CHUNK_ROWS,), **kw)
        a = self._f.attrs
        a["process"] = process.name
        a["z_features"] = list(process.z_features)
        a["x_features"] = list(process.x_features)
        a["z_masses"] = np.asarray(process.z_masses, dtype=np.float64)
        a["x_masses"] = np.asarray(process.x_masses, dtype=np.float64)
        a["otus_version"] = otus.__version__
        a["provenance"] = json.dumps(provenance or {}, sort_keys=True, default=str)
        self.n = 0

    def append(self, ev: Events) -> None:
        if ev.process.name != self.process.name:
            raise OtusError(
                f"{self.path}: cannot append {ev.process.name} events to a {self.process.name} file"
            )
        if self.has_z != (ev.z is not None) or self.has_x != (ev.x is not None):
            raise OtusError(f"{self.path}: appended events must hold the same levels as the file")
        _check_arrays(ev, str(self.path))
        n, m = self.n, self.n + len(ev)
        for name, arr in (("z", ev.z), ("x", ev.x), ("x_pass", ev.x_pass), ("weight", ev.weight)):
            if arr is None or name not in self._f:
                continue
            ds = self._f[name]
            ds.resize(m, axis=0)
            ds[n:m] = arr
        self.n = m

    def close(self, ok: bool = True) -> None:
        self._f.close()
        if ok:
            self._ctx.__exit__(None, None, None)
        else:
            err = OtusError("write aborted")
            self._ctx.__exit__(type(err), err, None)

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close(ok=True)
        else:
            try:
                self._f.close()
            finally:
                self._ctx.__exit__(exc_type, exc, tb)


def write_events(path: str | os.PathLike[str], ev: Events) -> Path:
    """Write ``ev`` to ``path`` atomically and return the path."""
    with EventWriter(
        path, ev.process, has_z=ev.z is not None, has_x=ev.x is not None, provenance=ev.provenance
    ) as w:
        w.append(ev)
    return Path(path)


@dataclass(frozen=True)
class FileInfo:
    """What an event file holds, read from its header only."""

    path: Path
    process: Process
    n: int
    has_z: bool
    has_x: bool
    provenance: dict[str, Any]


def _open(path: str | os.PathLike[str]) -> h5py.File:
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: no such file")
    if p.is_dir():
        raise InputFileError(f"{p}: is a folder, expected an HDF5 event file")
    try:
        return h5py.File(p, "r")
    except OSError as err:
        raise InputFileError(f"{p}: not a readable HDF5 event file ({_short(err)})") from None


def info(path: str | os.PathLike[str], process: str | None = None) -> FileInfo:
    """Validate the header of an event file and describe it.

    ``process``, when given, must match the file's process. A damaged header (h5py raises
    OSError, KeyError or RuntimeError for those) becomes InputFileError.
    """
    p = Path(path)
    with _open(p) as f:
        try:
            return _info(p, f, process)
        except OtusError:
            raise
        except _H5_ERRORS as err:
            raise InputFileError(f"{p}: corrupt event file ({_short(err)})") from None


# What h5py raises on damaged files: OSError (read errors), KeyError (objects that cannot be
# opened), RuntimeError (damaged B-trees / heaps), ValueError and TypeError (bad attributes).
_H5_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError)


def _short(err: BaseException) -> str:
    text = str(err).strip().strip("'\"").splitlines()
    return text[0] if text else type(err).__name__


def _info(p: Path, f: h5py.File, process: str | None) -> FileInfo:
    try:
        name = f.attrs["process"]
    except KeyError:
        raise InputFileError(f"{p}: not an otus event file (no 'process' attribute)") from None
    name = name.decode() if isinstance(name, bytes) else str(name)
    try:
        proc = get_process(name)
    except OtusError as err:
        raise InputFileError(f"{p}: {err}") from None
    if process is not None and process != proc.name:
        raise InputFileError(f"{p}: holds {proc.name} events, expected {process}")
    has_z, has_x = "z" in f, "x" in f
    if not (has_z or has_x):
        raise InputFileError(f"{p}: holds neither z nor x")
    for key in ("z", "x", "x_pass", "weight"):
        if key in f and not isinstance(f[key], h5py.Dataset):
            raise InputFileError(f"{p}: {key} is not a dataset")
    n = -1
    for key, dim in (("z", proc.dz), ("x", proc.dx)):
        if key in f:
            shape = f[key].shape
            if len(shape) != 2 or shape[1] != dim:
                raise InputFileError(
                    f"{p}: {key} has shape {shape}, expected [N, {dim}] for {proc.name}"
                )
            if n >= 0 and shape[0] != n:
                raise InputFileError(f"{p}: z and x have different numbers of rows")
            n = shape[0]
    for key in ("x_pass", "weight"):
        if key in f and f[key].shape != (n,):
            raise InputFileError(f"{p}: {key} has shape {f[key].shape}, expected ({n},)")
    try:
        prov = json.loads(f.attrs.get("provenance", "{}"))
    except (TypeError, ValueError):
        prov = {}
    return FileInfo(p, proc, n, has_z, has_x, prov)


def _read_slice(f: h5py.File, fi: FileInfo, sl: slice) -> Events:
    z = np.asarray(f["z"][sl], dtype=np.float32) if fi.has_z else None
    x = np.asarray(f["x"][sl], dtype=np.float32) if fi.has_x else None
    x_pass = np.asarray(f["x_pass"][sl], dtype=bool) if fi.has_x and "x_pass" in f else None
    w = np.asarray(f["weight"][sl], dtype=np.float64) if "weight" in f else None
    ev = Events(fi.process, z, x, x_pass, w, fi.provenance)
    _check_arrays(ev, str(fi.path))
    return ev


def read_events(path: str | os.PathLike[str], process: str | None = None) -> Events:
    """Read a whole event file, validating schema and values."""
    fi = info(path, process)
    if fi.n == 0:
        raise InputFileError(f"{fi.path}: holds no events")
    try:
        with _open(path) as f:
            return _read_slice(f, fi, slice(0, fi.n))
    except OtusError as err:
        raise InputFileError(str(err)) from None
    except _H5_ERRORS as err:
        raise InputFileError(f"{fi.path}: corrupt event file ({_short(err)})") from None


def iter_chunks(
    path: str | os.PathLike[str],
    chunk_size: int = 65536,
    process: str | None = None,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[Events]:
    """Yield consecutive chunks of rows ``[start, stop)`` of an event file."""
    fi = info(path, process)
    stop = fi.n if stop is None else min(stop, fi.n)
    with _open(path) as f:
        for a in range(start, stop, chunk_size):
            try:
                yield _read_slice(f, fi, slice(a, min(a + chunk_size, stop)))
            except OtusError as err:
                raise InputFileError(str(err)) from None
            except _H5_ERRORS as err:
                raise InputFileError(f"{fi.path}: corrupt event file ({_short(err)})") from None
