"""The otus event file: HDF5 with datasets ``z``, ``x``, ``x_pass``, ``weight`` (and, in
unfolded files with replicas, ``replica``: every event once per replica, SPEC §4).

Writing is atomic and incremental (:class:`EventWriter`); reading validates the schema and
can stream fixed-size chunks (:func:`iter_chunks`) without loading the whole file. Plain named
features (a flat ntuple, a NumPy array) are written with :func:`write_features` as a file of
process ``generic`` (:func:`otus.processes.generic`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import otus
from otus.errors import InputFileError, OtusError
from otus.io.atomic import AtomicWriter
from otus.processes import Process, generic, process_from_attrs

_CHUNK_ROWS = 8192


@dataclass
class Events:
    """Events of one process in memory. ``z`` or ``x`` may be None (a file may hold one level);
    ``replica`` [N] (int) numbers the replica of each row in a file of replicas
    (``otus unfold --replicas``), None elsewhere."""

    process: Process
    z: np.ndarray | None = None
    x: np.ndarray | None = None
    x_pass: np.ndarray | None = None
    weight: np.ndarray | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    replica: np.ndarray | None = None

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
            take(self.replica),
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
    if ev.replica is not None:
        if ev.replica.shape != (n,):
            raise OtusError(f"{where}: replica has shape {ev.replica.shape}, expected ({n},)")
        if n and ev.replica.min() < 0:
            raise OtusError(f"{where}: replica holds negative indices")


class EventWriter(AtomicWriter):
    """Append events to an HDF5 event file, atomically (the file appears on ``close``).
    With ``replicas`` the file gets the int dataset ``replica`` and every appended
    :class:`Events` must carry its ``replica`` array.

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
        cross_section_pb: float | None = None,
        replicas: bool = False,
    ) -> None:
        self.path = Path(path)
        self.process = process
        self.has_z, self.has_x = has_z, has_x
        self.replicas = replicas
        super().__init__(self.path)
        tmp = self.tmp
        # HDF5 ≥ 1.10 layout: its metadata (superblock, object headers with the attributes,
        # B-trees) carries checksums, and fletcher32 checksums every data chunk, so a damaged
        # file is refused with an error instead of being parsed (the 1.8 layout has no
        # checksums; fuzzing crashed the HDF5 library on damaged attribute messages).
        # The attributes stay in the object header (compact storage) up to 16 of them:
        # HDF5's default moves more than 8 into a fractal heap, whose damaged copies hung the
        # HDF5 library in fuzzing instead of raising an error.
        with self._opening():
            fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
            fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_LATEST)
            fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
            fcpl.set_attr_phase_change(16, 14)
            fcpl.set_obj_track_times(False)  # no time stamps: same inputs, same bytes
            fid = h5py.h5f.create(os.fsencode(tmp), h5py.h5f.ACC_TRUNC, fapl=fapl, fcpl=fcpl)
            self._f = h5py.File(fid)
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
        if replicas:
            self._f.create_dataset(
                "replica", (0,), "i4", maxshape=(None,), chunks=(_CHUNK_ROWS,), **kw
            )
        a = self._f.attrs
        a["process"] = text_attr(process.name)
        a["process_card"] = text_attr(process.card_text)
        a["z_features"] = _text_list(process.z_features)
        a["x_features"] = _text_list(process.x_features)
        a["z_masses"] = np.asarray(process.z_masses, dtype=np.float64)
        a["x_masses"] = np.asarray(process.x_masses, dtype=np.float64)
        a["otus_version"] = text_attr(otus.__version__)
        self.n = 0
        self.set_metadata(provenance=provenance or {}, cross_section_pb=cross_section_pb)

    def set_metadata(
        self,
        *,
        provenance: dict[str, Any] | None = None,
        cross_section_pb: float | None = None,
    ) -> None:
        """Set the ``provenance`` and ``cross_section_pb`` attributes (those given), e.g. once
        a streaming conversion knows its totals."""
        if provenance is not None:
            self._f.attrs["provenance"] = text_attr(
                json.dumps(provenance, sort_keys=True, default=str)
            )
        if cross_section_pb is not None:
            self._f.attrs["cross_section_pb"] = float(cross_section_pb)

    def append(self, ev: Events) -> None:
        if ev.process != self.process:
            raise OtusError(
                f"{self.path}: cannot append {ev.process.name} events to a {self.process.name} file"
            )
        if self.has_z != (ev.z is not None) or self.has_x != (ev.x is not None):
            raise OtusError(f"{self.path}: appended events must hold the same levels as the file")
        if self.replicas != (ev.replica is not None):
            raise OtusError(
                f"{self.path}: appended events must carry a replica index exactly when the "
                "file has one"
            )
        _check_arrays(ev, str(self.path))
        n, m = self.n, self.n + len(ev)
        cols = (
            ("z", ev.z),
            ("x", ev.x),
            ("x_pass", ev.x_pass),
            ("weight", ev.weight),
            ("replica", ev.replica),
        )
        for name, arr in cols:
            if arr is None or name not in self._f:
                continue
            ds = self._f[name]
            ds.resize(m, axis=0)
            ds[n:m] = arr
        self.n = m

    def _release(self) -> None:
        self._f.close()

    def __enter__(self) -> EventWriter:
        return self


def write_events(path: str | os.PathLike[str], ev: Events) -> Path:
    """Write ``ev`` to ``path`` atomically and return the path."""
    with EventWriter(
        path,
        ev.process,
        has_z=ev.z is not None,
        has_x=ev.x is not None,
        provenance=ev.provenance,
        replicas=ev.replica is not None,
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
    cross_section_pb: float | None = None  # of the parton level read from LHE


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


def info(path: str | os.PathLike[str], process: str | Process | None = None) -> FileInfo:
    """Validate the header of an event file and describe it.

    The file's process comes from its ``process_card`` attribute (files without one hold a
    built-in process, by name). ``process``, when given (a name or a :class:`Process`), must
    match the file's process. A damaged header (h5py raises
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


def _info(p: Path, f: h5py.File, process: str | Process | None) -> FileInfo:
    try:
        name = f.attrs["process"]
    except KeyError:
        raise InputFileError(
            f"{p}: not an otus event file, or a damaged one (no 'process' attribute)"
        ) from None
    name = name.decode() if isinstance(name, bytes) else str(name)
    card = f.attrs.get("process_card", "")
    card = card.decode() if isinstance(card, bytes) else str(card)
    try:
        # Files written before process cards hold only the name of a built-in process.
        proc = process_from_attrs(
            name,
            card,
            x_features=_strings(f.attrs.get("x_features", ())),
            z_features=_strings(f.attrs.get("z_features", ())),
            where=str(p),
        )
    except OtusError as err:
        raise InputFileError(f"{p}: {err}") from None
    want = process.name if isinstance(process, Process) else process
    other = want != proc.name or (isinstance(process, Process) and process != proc)
    if want is not None and not proc.has_objects and other:
        raise InputFileError(
            f"{p}: holds plain named features ({', '.join(proc.x_features)}), not {want} "
            "events; simulation, unfolding and training need a physics process"
            if want != proc.name
            else f"{p}: holds the features {', '.join(proc.x_features)}, not those given"
        )
    if want is not None and want != proc.name:
        raise InputFileError(f"{p}: holds {proc.name} events, expected {want}")
    if isinstance(process, Process):
        key = process.differs_at(proc)
        if key is not None:
            raise InputFileError(
                f"{process.source}: {key}: contradicts the card stored in {p} ({proc.name}); "
                "use the card the file was written with, or convert the file again"
            )
    elif process is not None and process != proc.name:
        raise InputFileError(f"{p}: holds {proc.name} events, expected {process}")
    has_z, has_x = "z" in f, "x" in f
    if not (has_z or has_x):
        raise InputFileError(f"{p}: holds neither z nor x")
    for key in ("z", "x", "x_pass", "weight", "replica"):
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
    for key in ("x_pass", "weight", "replica"):
        if key in f and f[key].shape != (n,):
            raise InputFileError(f"{p}: {key} has shape {f[key].shape}, expected ({n},)")
    if "replica" in f and f["replica"].dtype.kind not in "iu":
        raise InputFileError(f"{p}: replica has type {f['replica'].dtype}, expected integers")
    try:
        prov = json.loads(f.attrs.get("provenance", "{}"))
    except (TypeError, ValueError):
        prov = {}
    xsec = f.attrs.get("cross_section_pb")
    xsec = float(xsec) if xsec is not None and np.ndim(xsec) == 0 else None
    return FileInfo(p, proc, n, has_z, has_x, prov, xsec)


def text_attr(text: str) -> np.bytes_:
    """Text as a fixed-length (UTF-8) string attribute. Variable-length strings live in
    HDF5's global heap, which has no checksums: damaged copies hung the HDF5 library in
    fuzzing instead of raising an error."""
    return np.bytes_(text.encode("utf-8"))


def _text_list(names: Any) -> Any:
    """A list of names as a fixed-length string array attribute (see :func:`text_attr`)."""
    return np.array([n.encode("utf-8") for n in names], dtype="S") if len(names) else []


def _strings(v: Any) -> tuple[str, ...]:
    """A string-list attribute (h5py returns bytes or str objects; an empty list as floats)."""
    return tuple(a.decode() if isinstance(a, bytes) else str(a) for a in np.atleast_1d(v))


def _read_slice(f: h5py.File, fi: FileInfo, sl: slice) -> Events:
    z = np.asarray(f["z"][sl], dtype=np.float32) if fi.has_z else None
    x = np.asarray(f["x"][sl], dtype=np.float32) if fi.has_x else None
    x_pass = np.asarray(f["x_pass"][sl], dtype=bool) if fi.has_x and "x_pass" in f else None
    w = np.asarray(f["weight"][sl], dtype=np.float64) if "weight" in f else None
    rep = np.asarray(f["replica"][sl], dtype=np.int64) if "replica" in f else None
    ev = Events(fi.process, z, x, x_pass, w, fi.provenance, rep)
    _check_arrays(ev, str(fi.path))
    return ev


def read_events(path: str | os.PathLike[str], process: str | Process | None = None) -> Events:
    """Read a whole event file, validating schema and values."""
    fi = info(path, process)
    if fi.n == 0:
        raise InputFileError(f"{fi.path}: holds no events")
    with _read_errors(fi), _open(path) as f:
        return _read_slice(f, fi, slice(0, fi.n))


@contextmanager
def _read_errors(fi: FileInfo) -> Iterator[None]:
    """Reading rows of ``fi``: a schema or value problem, or a damaged file, becomes one
    :class:`InputFileError` naming the file."""
    try:
        yield
    except OtusError as err:
        raise InputFileError(str(err)) from None
    except _H5_ERRORS as err:
        raise InputFileError(f"{fi.path}: corrupt event file ({_short(err)})") from None


def iter_chunks(
    path: str | os.PathLike[str],
    chunk_size: int = 65536,
    process: str | Process | None = None,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[Events]:
    """Yield consecutive chunks of rows ``[start, stop)`` of an event file."""
    fi = info(path, process)
    stop = fi.n if stop is None else min(stop, fi.n)
    with _open(path) as f:
        for a in range(start, stop, chunk_size):
            with _read_errors(fi):
                ev = _read_slice(f, fi, slice(a, min(a + chunk_size, stop)))
            yield ev


def write_features(
    path: str | os.PathLike[str],
    x: Any,
    names: Sequence[str],
    *,
    weight: Any = None,
    z: Any = None,
    z_names: Sequence[str] = (),
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write plain named features (no physics objects) as an event file of process
    ``generic``, atomically, and return the path.

    Args:
        path: the event file to write (``.h5``).
        x: detector-level features [N, F] (a 1-D [N] array when F = 1); rows holding NaN
            are stored as failing events (``x_pass`` false).
        names: the F column names, e.g. ``("mjj", "deta_jj")`` (see
            :mod:`otus.processes.generic` for the allowed names).
        weight: event weights [N] (may be negative; default 1).
        z: optional parton-level features [N, Fz], named by ``z_names``.
        provenance: recorded in the file's ``provenance`` attribute.

    >>> import tempfile
    >>> rng = np.random.default_rng(0)
    >>> x = np.stack([rng.exponential(300, 1000), rng.normal(0, 2, 1000)], axis=1)
    >>> path = write_features(Path(tempfile.mkdtemp()) / "toy.h5", x, ["mjj", "deta_jj"])
    >>> ev = read_events(path)
    >>> ev.process.name, ev.process.x_features, ev.x.shape
    ('generic', ('mjj', 'deta_jj'), (1000, 2))
    """
    proc = generic(names, z_names if z is not None else ())
    try:
        xa = _columns(x, proc.dx, "x")
        za = None if z is None else _columns(z, proc.dz, "z")
        w = None if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise OtusError(f"{path}: features are not numbers ({_short(err)})") from None
    ev = Events(proc, z=za, x=xa, weight=w, provenance=dict(provenance or {}))
    _check_arrays(ev, str(path))
    return write_events(path, ev)


def _columns(a: Any, dim: int, level: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float32)
    if arr.ndim == 1 and dim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise OtusError(
            f"{level} has shape {arr.shape} but {dim} {level} feature names are given; "
            f"pass an [N, {dim}] array or one name per column"
        )
    return arr
