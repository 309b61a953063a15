"""Scale-out (issue 8, part 5): the data module shards batches across DDP ranks, and
``otus fit --strategy ddp --devices 2`` on CPU (gloo) trains like one process."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from rel_samples import Samples, samples_fixture, training_file  # noqa: F401 (fixture)

from otus.cli import main
from otus.models.config import DataConfig
from otus.models.data import OtusDataModule
from otus.processes import ZEE

ROOT = Path(__file__).resolve().parents[2]


def _trainer(rank: int, world: int, epoch: int) -> SimpleNamespace:
    progress = SimpleNamespace(current=SimpleNamespace(processed=epoch))
    return SimpleNamespace(
        global_rank=rank, world_size=world, fit_loop=SimpleNamespace(epoch_progress=progress)
    )


def _batches(dm: OtusDataModule, rank: int, world: int, epoch: int) -> list[tuple]:
    dm.trainer = _trainer(rank, world, epoch)  # type: ignore[assignment]
    try:
        return list(dm.train_dataloader())
    finally:
        dm.trainer = None


def _rows(batches: list[tuple], i: int) -> Counter:
    return Counter(tuple(r) for b in batches for r in b[i].numpy().tolist())


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_get_disjoint_equal_shards(samples: Samples, world: int) -> None:
    dm = OtusDataModule(
        ZEE, training_file(samples), cfg=DataConfig(batch_size=100, chunk_size=300), seed=4
    )
    for epoch in (0, 1):
        single = _batches(dm, 0, 1, epoch)
        ranks = [_batches(dm, r, world, epoch) for r in range(world)]
        n = len(single) // world
        assert n >= 2 and all(len(b) == n for b in ranks)  # equal steps on every rank
        expected = single[: n * world]
        for i in (0, 3):  # z rows, x rows (batches: z, wz, z_pass, x, wx)
            union = sum((_rows(b, i) for b in ranks), Counter())
            assert union == _rows(expected, i)  # the single-process epoch, split
            for a in range(world):
                for b in range(a + 1, world):
                    # x cycles within an epoch (fewer passing rows than z), z does not
                    if i == 0:
                        assert not set(_rows(ranks[a], i)) & set(_rows(ranks[b], i))
        assert max(_rows(single, 0).values()) == 1  # z: no event twice per epoch
    first = _batches(dm, 0, 2, 0)[0][0]
    assert not torch.equal(first, _batches(dm, 0, 2, 1)[0][0])  # epochs reshuffle


DDP_CONFIG = """\
net: {hidden: 16, depth: 1, noise_dim: 2}
loss: {n_projections: 16, anchor_until_epoch: 1}
data: {batch_size: 128, chunk_size: 500}
trainer: {max_epochs: 3, checkpoint_every_n_epochs: 1, num_threads: 1}
"""


def _val(run: Path) -> list[float]:
    with open(run / "metrics.csv", newline="") as f:
        return [float(r["val/loss"]) for r in csv.DictReader(f) if r.get("val/loss")]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_trains_like_one(samples: Samples, tmp_path: Path) -> None:
    data = training_file(samples)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(DDP_CONFIG)
    one = tmp_path / "one"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(
                [
                    "fit",
                    "zee",
                    "--data",
                    str(data),
                    "--config",
                    str(cfg),
                    "--out",
                    str(one),
                    "--seed",
                    "2",
                ]
            )
            == 0
        )
    two = tmp_path / "two"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "otus",
            "fit",
            "zee",
            "--data",
            str(data),
            "--config",
            str(cfg),
            "--out",
            str(two),
            "--seed",
            "2",
            "--strategy",
            "ddp",
            "--devices",
            "2",
            "--accelerator",
            "cpu",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    a = torch.load(one / "last.ckpt", weights_only=True)
    b = torch.load(two / "last.ckpt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    # each DDP step consumes two batches (one per rank): half the optimizer steps
    assert b["global_step"] == (a["global_step"] // 3 // 2) * 3
    v1, v2 = _val(one), _val(two)
    assert len(v1) == len(v2) == 3 and np.all(np.isfinite(v2))
    assert v2[-1] < v2[0] * 1.05  # it trains
    assert 0.5 < v2[-1] / v1[-1] < 2.0, (v1, v2)  # the same kind of result


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_nodes_on_localhost(samples: Samples, tmp_path: Path) -> None:
    """The README's multi-node recipe, with two 'nodes' on this machine (one CPU process
    each, gloo): both ranks train in lock step and rank 0 writes the shared run folder."""
    data = training_file(samples)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(DDP_CONFIG)
    run = tmp_path / "run"
    port = str(_free_port())
    procs = []
    for node in (0, 1):
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            OMP_NUM_THREADS="1",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            NODE_RANK=str(node),
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "otus",
                    "fit",
                    "zee",
                    "--data",
                    str(data),
                    "--config",
                    str(cfg),
                    "--out",
                    str(run),
                    "--seed",
                    "2",
                    "--strategy",
                    "ddp",
                    "--accelerator",
                    "cpu",
                    "--devices",
                    "1",
                    "--num-nodes",
                    "2",
                ],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    ck = torch.load(run / "last.ckpt", weights_only=True)
    assert ck["epoch"] == 2 and ck["hyper_parameters"]["config"]["trainer"]["num_nodes"] == 2
    v = _val(run)
    assert len(v) == 3 and np.all(np.isfinite(v))
