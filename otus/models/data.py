"""Streaming unpaired z and x batches from event files (memory does not grow with the
dataset).

z and x may come from different files of different sizes. Each file is split by rows: the
first ``1 − val_fraction`` for training, the rest for validation. Training batches are drawn
through a shuffle buffer: chunks of ``chunk_size`` rows are read in a random order with
:func:`otus.io.h5.iter_chunks`, permuted, and cut into batches; only passing x events are
used (and with ``data.z_passing_only``, for a paired file, only z of events whose x
passes: the parton-level distribution an unfolder of passing events should recover; this
uses each event's pass flag, not its pairing). One epoch ends when both streams have been read once (the shorter one cycles).
Under DDP each rank takes every ``world``-th batch of the same global sequence (see
:meth:`OtusDataModule.rank_world`), so ranks see disjoint batches and equal step counts.
Standardisation statistics come from the training rows only (:meth:`fit_statistics`).
A bootstrap member (``data.bootstrap`` k, :mod:`otus.models.replicas`) multiplies each row's
weight by its Poisson(1) count, fixed by (seed, k, file, row), and drops rows counted 0; the
statistics weight the rows by the same counts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from otus.calibrate.regions import Region, region_for
from otus.errors import ConfigError, InputFileError
from otus.io.h5 import info, iter_chunks
from otus.models.config import DataConfig
from otus.models.coords import (
    RECOIL_SD_MIN,
    Coordinates,
    loss_features,
    peak_columns,
    recoil_columns,
)
from otus.models.replicas import poisson_counts
from otus.processes import Process

Batch = tuple[torch.Tensor, ...]
# (seed, member, stream) of a bootstrap member's Poisson draws (otus.models.replicas)
Boot = tuple[int, int, int]


def _x_keep(ev: Any, region: Region | None) -> np.ndarray:
    """Rows of a chunk that enter training at detector level: passing, and inside the
    region when one is given."""
    assert ev.x_pass is not None and ev.x is not None
    if region is None:
        return np.asarray(ev.x_pass, bool)
    return region.select(ev.process, ev.x, ev.x_pass)


def passing_weight(
    path: str | os.PathLike[str],
    process: Process,
    region: str | None = None,
    chunk: int = 65536,
    boot: Boot | None = None,
) -> tuple[float, int]:
    """(sum of weights, count) of the passing detector-level events of a whole file, inside
    ``region`` when given: the observed yield N_pass of the efficiency-from-yield term
    (with ``boot``, of a bootstrap member: weights × Poisson counts, rows counted 0 dropped)."""
    reg = region_for(region, process) if region is not None else None
    total, n = 0.0, 0
    a = 0
    for ev in iter_chunks(path, chunk, process):
        assert ev.weight is not None
        keep, w = _x_keep(ev, reg), ev.weight
        if boot is not None:
            c = poisson_counts(*boot, a, a + len(ev))
            keep, w = keep & (c > 0), w * c
        a += len(ev)
        total += float(w[keep].sum())
        n += int(keep.sum())
    return total, n


def _rows(
    path: Path,
    level: str,
    process: Process,
    start: int,
    stop: int,
    chunk: int,
    partner: bool = False,
    region: Region | None = None,
    boot: Boot | None = None,
    counts: bool = False,
) -> Iterator[tuple[np.ndarray, ...]]:
    """(rows, weights) per chunk; z levels add the events' pass flags (1/0 as float, NaN
    where the file has no detector level), which the efficiency model ε(z) learns from, and
    with ``partner`` each z event's own detector-level row (paired files; the supervised
    ``loss.paired`` term uses it for passing events only). x rows are the passing ones,
    inside ``region`` when given. With ``boot`` (a bootstrap member) the weights are
    multiplied by the rows' Poisson counts and rows counted 0 are dropped; ``counts`` adds
    those counts (ones without ``boot``) as a last column."""
    a = start
    for ev in iter_chunks(path, chunk, process, start, stop):
        assert ev.weight is not None  # Events fills in unit weights
        n = len(ev)
        c = poisson_counts(*boot, a, a + n) if boot is not None else np.ones(n, np.int64)
        a += n
        w = ev.weight * c if boot is not None else ev.weight
        keep: np.ndarray | None = c > 0 if boot is not None else None
        cols: tuple[np.ndarray, ...]
        if level in ("z", "z|pass"):
            assert ev.z is not None
            if level == "z|pass":
                assert ev.x_pass is not None
                keep = ev.x_pass if keep is None else keep & ev.x_pass
                flag = np.ones(n, np.float32)
            elif ev.x_pass is not None:
                flag = ev.x_pass.astype(np.float32)
            else:
                flag = np.full(n, np.nan, np.float32)
            if partner:
                assert ev.x is not None
                cols = (ev.z, w, flag, ev.x)
            else:
                cols = (ev.z, w, flag)
        else:
            assert ev.x is not None
            sel = _x_keep(ev, region)
            keep = sel if keep is None else keep & sel
            cols = (ev.x, w)
        if counts:
            cols = (*cols, c.astype(np.float64))
        yield cols if keep is None else tuple(col[keep] for col in cols)


def _stream(
    path: Path,
    level: str,
    process: Process,
    start: int,
    stop: int,
    *,
    chunk: int,
    batch: int,
    rng: np.random.Generator | None,
    partner: bool = False,
    region: Region | None = None,
    boot: Boot | None = None,
) -> Iterator[Batch]:
    """One pass over rows [start, stop) as batches (shuffled when ``rng`` is given)."""
    starts = np.arange(start, stop, chunk)
    if rng is not None:
        starts = rng.permutation(starts)
    buf: list[tuple[np.ndarray, ...]] = []
    for a in starts:
        for cols in _rows(
            path, level, process, int(a), min(int(a) + chunk, stop), chunk, partner, region, boot
        ):
            if rng is not None:
                perm = rng.permutation(len(cols[0]))
                cols = tuple(c[perm] for c in cols)
            buf.append(cols)
        n_buf = sum(len(c[0]) for c in buf)
        if n_buf < batch:
            continue
        # One concatenation per chunk read (not per batch): batches are views into it.
        cat = tuple(np.concatenate(parts) for parts in zip(*buf, strict=True))
        n_full = n_buf // batch * batch
        for b in range(0, n_full, batch):
            yield tuple(torch.from_numpy(c[b : b + batch]) for c in cat)
        buf = [tuple(c[n_full:] for c in cat)] if n_full < n_buf else []
    if buf and rng is None:
        yield tuple(torch.from_numpy(np.concatenate(parts)) for parts in zip(*buf, strict=True))


class _Pairs(IterableDataset):
    """Zipped (z, wz, z_pass, x, wx) batches from two independent streams; in paired mode a
    sixth tensor holds each z event's own detector-level row."""

    def __init__(self, dm: OtusDataModule, split: str) -> None:
        self.dm, self.split = dm, split

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        dm = self.dm
        train = self.split == "train"
        rng = np.random.default_rng([dm.seed, dm.next_epoch()]) if train else None
        b = dm.cfg.batch_size if train else max(dm.cfg.batch_size, 16384)
        (zs, ze), (xs, xe) = dm.ranges("z", self.split), dm.ranges("x", self.split)

        def cycle(path: Path, level: str, a: int, e: int) -> Iterator[tuple[bool, Batch]]:
            first = True
            while True:
                got = False
                for item in _stream(
                    path,
                    level,
                    dm.process,
                    a,
                    e,
                    chunk=dm.cfg.chunk_size,
                    batch=b,
                    rng=rng,
                    partner=dm.paired and level != "x",
                    region=dm.region if level == "x" else None,
                    boot=dm.boot("x" if level == "x" else "z"),
                ):
                    got = True
                    yield first, item
                if not got:
                    raise InputFileError(
                        f"{path}: too few {level} events for one batch of "
                        f"{b} in the {self.split} split"
                    )
                first = False
                if not train:
                    return

        zit, xit = cycle(dm.z_path, dm.z_level, zs, ze), cycle(dm.x_path, "x", xs, xe)
        rank, world = dm.rank_world() if train else (0, 1)
        mine = None
        for k, ((zf, zb), (xf, (x, wx))) in enumerate(zip(zit, xit, strict=False)):
            if train and not zf and not xf:
                return
            # Distributed training: every rank draws the same global batch sequence (same
            # seed and epoch) and keeps batches k ≡ rank (mod world), released only when the
            # group of ``world`` batches is complete, so all ranks take the same number of
            # steps and no batch is used by two ranks.
            if k % world == rank:
                mine = (*zb[:3], x, wx, *zb[3:])
            if k % world == world - 1:
                assert mine is not None
                yield mine


class OtusDataModule(pl.LightningDataModule):
    """Unpaired z/x batches for :class:`otus.models.module.OtusModule`."""

    def __init__(
        self,
        process: Process,
        x_path: str | os.PathLike[str],
        z_path: str | os.PathLike[str] | None = None,
        *,
        cfg: DataConfig | None = None,
        seed: int = 0,
        paired: bool = False,
    ) -> None:
        super().__init__()
        self.process = process
        self.x_path = Path(x_path)
        self.z_path = Path(z_path) if z_path is not None else self.x_path
        self.cfg = cfg or DataConfig()
        self.seed = seed
        fz, fx = info(self.z_path, process), info(self.x_path, process)
        if not fz.has_z:
            raise InputFileError(f"{self.z_path}: holds no parton-level z events")
        if not fx.has_x:
            raise InputFileError(f"{self.x_path}: holds no detector-level x events")
        self.z_level = "z"
        self.z_has_flags = fz.has_x  # pass flags for the efficiency model ε(z)
        if paired and not fz.has_x:
            raise ConfigError(
                f"loss.paired needs a paired file; {self.z_path} holds no detector-level events"
            )
        self.paired = paired  # z batches carry each event's own x (loss.paired)
        if self.cfg.z_passing_only:
            if not fz.has_x:
                raise ConfigError(
                    f"data.z_passing_only needs a paired file; {self.z_path} "
                    f"holds no detector-level pass flags"
                )
            self.z_level = "z|pass"
        self.region = region_for(self.cfg.region, process) if self.cfg.region else None
        self.n = {"z": fz.n, "x": fx.n}
        for level, path in (("z", self.z_path), ("x", self.x_path)):
            n_val = self.n[level] - self._n_train(level)
            if self._n_train(level) < 2 or n_val < 1:
                raise InputFileError(
                    f"{path}: holds {self.n[level]} events, too few to train "
                    f"(need a training and a validation split)"
                )

    def next_epoch(self) -> int:
        """The epoch whose shuffle comes next: the trainer's epoch when attached (so a
        resumed run continues the sequence), else a counter."""
        if self.trainer is not None:
            # Epochs already processed, not ``current_epoch``: Lightning prefetches the first
            # batch before it advances ``current_epoch`` when resuming from an epoch-end
            # checkpoint, so that would replay the previous epoch's shuffle.
            done = self.trainer.fit_loop.epoch_progress.current
            # Lightning types ``current`` as the base tracker; this one is a _ProcessedTracker.
            return int(done.processed)  # type: ignore[attr-defined]
        self._served = getattr(self, "_served", -1) + 1
        return self._served

    def rank_world(self) -> tuple[int, int]:
        """(rank, number of ranks) of the attached trainer; (0, 1) without one."""
        if self.trainer is None:
            return 0, 1
        return int(self.trainer.global_rank), int(self.trainer.world_size)

    def boot(self, level: str) -> Boot | None:
        """(seed, member, stream) of the Poisson draws of ``level``'s file for a bootstrap
        member (None otherwise); one file read at both levels is one stream, so an event's
        z and x share a draw."""
        if self.cfg.bootstrap is None:
            return None
        same = self.z_path.resolve() == self.x_path.resolve()
        return self.seed, self.cfg.bootstrap, 0 if level == "x" or same else 1

    def _n_train(self, level: str) -> int:
        return math.floor(self.n[level] * (1.0 - self.cfg.val_fraction))

    def ranges(self, level: str, split: str) -> tuple[int, int]:
        cut = self._n_train(level)
        if split == "train":
            return 0, cut
        # Validation reads at most val_max_rows rows, so its time and memory stay bounded
        # however large the file.
        return cut, min(self.n[level], cut + self.cfg.val_max_rows)

    def fit_statistics(self, coords: str, features: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Mean and standard deviation of coordinates and loss features, training rows only."""
        out: dict[str, torch.Tensor] = {}
        for level, path in (("z", self.z_path), ("x", self.x_path)):
            a, e = self.ranges(level, "train")
            e = min(e, a + self.cfg.stat_rows)
            cmap = Coordinates(self.process, level, coords)
            acc: dict[str, list[np.ndarray]] = {"c": [], "f": []}
            lv = self.z_level if level == "z" else level
            w_sum = 0.0
            reg = self.region if level == "x" else None
            boot = self.boot(level)
            counts: list[np.ndarray] = []
            for r, w, *_, cnt in _rows(
                path,
                lv,
                self.process,
                a,
                e,
                self.cfg.chunk_size,
                region=reg,
                boot=boot,
                counts=True,
            ):
                w_sum += float(np.sum(w))
                counts.append(cnt)
                t = torch.from_numpy(r).double()
                acc["c"].append(cmap.encode(t).numpy())
                acc["f"].append(loss_features(self.process, level, t, features).numpy())
            for key, parts in acc.items():
                if not parts or sum(len(p) for p in parts) < 2:
                    raise InputFileError(
                        f"{path}: fewer than 2 usable {level} events in the training split"
                    )
                if not w_sum > 0:
                    raise InputFileError(
                        f"{path}: the weights of the usable {level} events in "
                        f"the training split sum to {w_sum:.3g}; need > 0"
                    )
                arr = np.concatenate(parts)
                if boot is None:
                    mu, sd = arr.mean(0), arr.std(0)
                else:  # the bootstrap sample's: rows weighted by their counts
                    cw = np.concatenate(counts)
                    mu = np.average(arr, axis=0, weights=cw)
                    sd = np.sqrt(np.average((arr - mu) ** 2, axis=0, weights=cw))
                if key == "f":
                    # peaks: centre and half-width of the line, median and half IQR (robust
                    # against its far tails, which set the standard deviation)
                    for pc in peak_columns(self.process, level, features, arr.shape[1]):
                        q1, q2, q3 = np.quantile(arr[:, pc], [0.25, 0.5, 0.75])
                        mu[pc], sd[pc] = q2, (q3 - q1) / 2
                sd = np.where(sd > 1e-6 * np.maximum(np.abs(mu), 1.0), sd, 1.0)
                if key == "f":
                    for rc in recoil_columns(self.process, level, features):
                        sd[rc] = max(sd[rc], RECOIL_SD_MIN)
                out[f"{key}{level}_mu"] = torch.from_numpy(mu).float()
                out[f"{key}{level}_sd"] = torch.from_numpy(sd).float()
        return out

    def train_dataloader(self) -> Any:
        return DataLoader(_Pairs(self, "train"), batch_size=None, num_workers=0)

    def val_dataloader(self) -> Any:
        return DataLoader(_Pairs(self, "val"), batch_size=None, num_workers=0)
