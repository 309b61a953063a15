"""Plain named features from flat ntuples and NumPy files, for event files of process
``generic`` (:func:`otus.io.h5.write_features`).

Inputs:

- ``.root``: a flat TTree (or RNTuple), read with uproot in chunks; each chosen branch is one
  column. Branches must hold one number per event (jagged or fixed-size array branches are
  refused; pick scalar branches, or flatten them first). Without ``branches`` every scalar
  numeric branch is taken; without ``tree`` the file's only tree.
- ``.npz``: each array is one column (1-D, one value per event), chosen by ``branches``.
- ``.npy``: a structured array (its field names are the columns), or a plain [N, F] array
  whose F columns ``branches`` names.

``weight`` names a column of per-event weights (kept out of the features). A row with NaN is
stored as a failing event (``x_pass`` false).

>>> import tempfile
>>> from pathlib import Path
>>> src = Path(tempfile.mkdtemp()) / "toy.npy"
>>> np.save(src, np.random.default_rng(0).normal(size=(500, 3)))
>>> n = write_ntuple(src, src.with_suffix(".h5"), branches=["a", "b", "w"], weight="w")
>>> x, names, w = read_ntuple(src, branches=["a", "b", "w"], weight="w")
>>> n, x.shape, names, w.shape
(500, (500, 2), ('a', 'b'), (500,))
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from otus.errors import ConfigError, InputFileError

SUFFIXES = (".root", ".npy", ".npz")
STEP = 200_000  # rows per chunk


@dataclass(frozen=True)
class Ntuple:
    """A flat table of named numeric columns in a file: ``names`` are the features,
    ``weight`` (optional) the per-event weight column; read with :meth:`chunks`."""

    path: Path
    names: tuple[str, ...]
    weight: str | None
    n: int
    tree: str | None = None
    columns: tuple[str, ...] = ()  # every column of the file, in order
    skipped: tuple[str, ...] = ()  # columns left out of the default choice (not scalar)

    def chunks(
        self, step: int = STEP, max_events: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Consecutive (features [n, F] float32, weights [n] or None) chunks."""
        stop = self.n if max_events is None else min(max_events, self.n)
        cols = [*self.names, *([self.weight] if self.weight else [])]
        for d in _read(self, cols, step, stop):
            x = np.stack([np.asarray(d[c], np.float32) for c in self.names], axis=1)
            w = np.asarray(d[self.weight], np.float64) if self.weight else None
            yield x, w


def open_ntuple(
    path: str | os.PathLike[str],
    *,
    tree: str | None = None,
    branches: Sequence[str] | None = None,
    weight: str | None = None,
) -> Ntuple:
    """Describe the columns of ``path`` that :meth:`Ntuple.chunks` will read (see module doc)."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: no such file")
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputFileError(f"{p}: unsupported input; expected one of {', '.join(SUFFIXES)}")
    if tree is not None and suffix != ".root":
        raise ConfigError(f"{p}: --tree applies to ROOT files only")
    if suffix == ".root":
        tree, columns, n = _root_columns(p, tree)
    else:
        columns, n = _numpy_columns(p, branches)
    scalar = [c for c, ok in columns.items() if ok]
    chosen = list(branches) if branches else [c for c in scalar if c != weight]
    for c in [*chosen, *([weight] if weight else [])]:
        if c not in columns:
            raise ConfigError(f"{p}: no column {c!r}; it holds {', '.join(columns) or 'none'}")
        if not columns[c]:
            raise ConfigError(
                f"{p}: column {c!r} holds more than one number per event (jagged or array); "
                "pick scalar columns or flatten it first"
            )
    names = tuple(c for c in chosen if c != weight)
    if not names:
        raise ConfigError(f"{p}: no scalar numeric columns to read")
    skipped = tuple(c for c in columns if not columns[c] and not branches)
    return Ntuple(p, names, weight, n, tree, tuple(columns), skipped)


def read_ntuple(
    path: str | os.PathLike[str],
    *,
    tree: str | None = None,
    branches: Sequence[str] | None = None,
    weight: str | None = None,
    max_events: int | None = None,
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray | None]:
    """The features [N, F] (float32), their names and the weights [N] (or None) of a flat
    ntuple or NumPy file, read in chunks."""
    nt = open_ntuple(path, tree=tree, branches=branches, weight=weight)
    parts = list(nt.chunks(max_events=max_events))
    x = np.concatenate([a for a, _ in parts]) if parts else np.zeros((0, len(nt.names)), "f4")
    w = np.concatenate([b for _, b in parts if b is not None]) if weight and parts else None
    return x, nt.names, w


def write_ntuple(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    tree: str | None = None,
    branches: Sequence[str] | None = None,
    weight: str | None = None,
    max_events: int | None = None,
    provenance: dict[str, Any] | None = None,
) -> int:
    """Stream a flat ntuple or NumPy file into the event file ``out`` of plain features
    (process ``generic``), chunk by chunk; return the number of events."""
    from otus.io.h5 import Events, EventWriter
    from otus.processes import generic

    nt = open_ntuple(path, tree=tree, branches=branches, weight=weight)
    proc = generic(nt.names)
    prov = {"source": str(nt.path), "tree": nt.tree, "weight": weight, **(provenance or {})}
    with EventWriter(out, proc, has_z=False, has_x=True, provenance=prov) as w:
        for x, wt in nt.chunks(max_events=max_events):
            w.append(Events(proc, x=x, weight=wt))
        if w.n == 0:
            raise InputFileError(f"{nt.path}: holds no events")
        return w.n


def _root_columns(p: Path, tree: str | None) -> tuple[str, dict[str, bool], int]:
    """(tree name, {column: scalar numeric?}, entries) of a ROOT file."""
    f = _open_root(p)
    with f:
        trees = [k for k, c in f.classnames(cycle=False).items() if c in _TREES]
        if tree is None:
            if len(trees) != 1:
                raise ConfigError(
                    f"{p}: holds {len(trees)} trees ({', '.join(trees) or 'none'}); "
                    "choose one with --tree"
                )
            tree = trees[0]
        if tree not in trees:
            raise ConfigError(f"{p}: no tree {tree!r}; it holds {', '.join(trees) or 'none'}")
        t = f[tree]
        return tree, {k: _readable_scalar(t, k) for k in t.keys()}, int(t.num_entries)


_TREES = ("TTree", "ROOT::RNTuple")


def _open_root(p: Path) -> Any:
    import uproot

    try:
        return uproot.open(p)
    except Exception as err:  # uproot raises many types for damaged files
        raise InputFileError(f"{p}: not a readable ROOT file ({type(err).__name__})") from None


def _numpy_columns(p: Path, branches: Sequence[str] | None) -> tuple[dict[str, bool], int]:
    """({column: scalar numeric?}, rows) of a .npy or .npz file (named by ``branches`` for
    a plain [N, F] .npy array)."""
    a = _load_numpy(p)
    if isinstance(a, np.lib.npyio.NpzFile):
        with a:
            cols = {k: a[k] for k in a.files}
        lengths = {len(v) for v in cols.values() if v.ndim >= 1}
        if len(lengths) > 1:
            raise InputFileError(f"{p}: its arrays have different lengths {sorted(lengths)}")
        return {k: _scalar(v) for k, v in cols.items()}, lengths.pop() if lengths else 0
    if a.dtype.names:
        return {k: _scalar(a[k]) for k in a.dtype.names}, len(a)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise InputFileError(f"{p}: holds an array of shape {a.shape}; expected [N, F]")
    if not branches or len(branches) != a.shape[1]:
        raise ConfigError(
            f"{p}: a plain array of {a.shape[1]} columns has no names; give --branches with "
            f"one name per column ({'got ' + str(len(branches)) if branches else 'none given'})"
        )
    return {b: a.dtype.kind in "biuf" for b in branches}, len(a)


def _load_numpy(p: Path) -> Any:
    try:  # memory-mapped: a .npy is read chunk by chunk
        return np.load(p, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise InputFileError(f"{p}: not a readable NumPy file ({err})") from None


def _readable_scalar(t: Any, key: str) -> bool:
    """Whether branch ``key`` of tree ``t`` holds one number per event (its first entry
    read as NumPy: jagged branches come as objects, fixed-size arrays as 2-D)."""
    try:
        return _scalar(t.arrays([key], library="np", entry_stop=1)[key])
    except Exception:  # a branch uproot cannot read as NumPy (objects, unknown streamers)
        return False


def _scalar(v: Any) -> bool:
    a = np.asarray(v)
    return a.ndim == 1 and a.dtype.kind in "biuf"


def _read(nt: Ntuple, cols: list[str], step: int, stop: int) -> Iterator[dict[str, Any]]:
    """Chunks {column: values} of rows [0, stop)."""
    if nt.tree is not None:
        with _open_root(nt.path) as f:
            yield from f[nt.tree].iterate(cols, library="np", step_size=step, entry_stop=stop)
        return
    a = _load_numpy(nt.path)
    if isinstance(a, np.lib.npyio.NpzFile):
        with a:
            d = {c: a[c] for c in cols}
        for s in range(0, stop, step):
            yield {c: v[s : min(s + step, stop)] for c, v in d.items()}
        return
    for s in range(0, stop, step):
        part = a[s : min(s + step, stop)]
        if a.dtype.names:
            yield {c: part[c] for c in cols}
        else:
            part = part.reshape(len(part), -1)
            yield {c: part[:, i] for i, c in enumerate(nt.columns) if c in cols}
