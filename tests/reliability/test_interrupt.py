"""Interrupted runs (issue 8, part 2): ``otus fit`` killed with SIGKILL mid-training and
continued with ``--resume`` loses at most one checkpoint interval and ends exactly where an
uninterrupted run with the same seed ends (same weights and metrics on CPU)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rel_samples import Samples, samples_fixture, training_file  # noqa: F401 (fixture)

from otus.cli import main

EPOCHS = 6
CONFIG = f"""\
net: {{hidden: 16, depth: 1, noise_dim: 2}}
loss: {{n_projections: 16, anchor_until_epoch: 2}}
data: {{batch_size: 256, chunk_size: 500}}
trainer: {{max_epochs: {EPOCHS}, checkpoint_every_n_epochs: 1, num_threads: 1}}
"""
ROOT = Path(__file__).resolve().parents[2]


def _fit(*argv: object) -> None:
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert main(["fit", "zee", *map(str, argv)]) == 0


def _last_val_row(run: Path) -> dict[str, str]:
    with open(run / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/loss")]
    return rows[-1]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> float:
    """Wait until ``path`` exists; return its modification time."""
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"otus fit ended (exit {proc.returncode}) before writing {path.name}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"no {path.name} after {timeout} s")
        time.sleep(0.05)
    return path.stat().st_mtime


def kill_and_resume(samples: Samples, tmp_path: Path) -> dict:
    """Train uninterrupted; train again, SIGKILL mid-epoch, resume; measure and compare."""
    data = training_file(samples)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG)
    ref = tmp_path / "ref"
    _fit("--data", data, "--config", cfg, "--out", ref, "--seed", 1)

    run = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
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
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        t0 = _wait_for(run / "epoch0000.ckpt", proc, 300)
        t1 = _wait_for(run / "epoch0001.ckpt", proc, 120)
        interval = max(t1 - t0, 0.05)  # one checkpoint interval (1 epoch), in seconds
        time.sleep(interval / 2)  # kill in the middle of the next epoch
        t_kill = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    ck = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)  # intact
    out = {
        "returncode": proc.returncode,
        "saved_epoch": int(ck["epoch"]),
        "interval_s": interval,
        "lost_s": t_kill - (run / "last.ckpt").stat().st_mtime,
        "leftovers": [p.name for p in run.glob("*.tmp")] + [p.name for p in run.glob(".*.tmp")],
    }
    _fit("--data", data, "--out", run, "--resume")
    a = torch.load(ref / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)
    out["epochs"] = (int(a["epoch"]), int(b["epoch"]))
    out["steps"] = (int(a["global_step"]), int(b["global_step"]))
    out["weights_differ"] = [
        k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])
    ]
    ra, rb = _last_val_row(ref), _last_val_row(run)
    out["val_ref"] = {k: v for k, v in ra.items() if k.startswith("val/")}
    out["val_resumed"] = {k: v for k, v in rb.items() if k.startswith("val/")}
    return out


def test_sigkill_then_resume_matches_uninterrupted_run(
    samples: Samples, tmp_path: Path, record_property
) -> None:
    r = kill_and_resume(samples, tmp_path)
    record_property("kill_and_resume", json.dumps(r))  # experiments.reliability_table
    assert r["returncode"] == -signal.SIGKILL
    assert 1 <= r["saved_epoch"] < EPOCHS - 1, "the kill should land mid-training"
    assert r["lost_s"] <= 1.5 * r["interval_s"], r  # at most one checkpoint interval
    assert not r["leftovers"]
    assert r["epochs"] == (EPOCHS - 1, EPOCHS - 1) and r["steps"][0] == r["steps"][1]
    assert not r["weights_differ"], "resumed weights differ from the uninterrupted run"
    assert r["val_ref"] == r["val_resumed"]
