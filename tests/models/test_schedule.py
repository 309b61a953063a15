"""The learning rate anneals within the training budget, whether epochs or time end it."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from otus._schedule import COSINE_FLOOR, cosine_floor
from otus.cli import main


def _final_lr(run: Path) -> float:
    ckpt = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)
    return float(ckpt["optimizer_states"][0]["param_groups"][0]["lr"])


def test_cosine_floor_is_monotone_from_one_to_the_floor() -> None:
    values = [cosine_floor(p / 20) for p in range(21)]
    assert values[0] == 1.0 and values[-1] == pytest.approx(COSINE_FLOOR)
    assert all(a > b for a, b in itertools.pairwise(values))
    assert cosine_floor(-1.0) == 1.0 and cosine_floor(2.0) == values[-1]


def test_time_budget_anneals_the_learning_rate(
    zee_file: Path, tiny_config: Path, tmp_path: Path
) -> None:
    """--max-time alone: epochs unlimited, and at the end of the budget the rate is near its
    floor (a run stopped by its time limit used to keep its initial rate)."""
    run = tmp_path / "run"
    rc = main(
        [
            "fit",
            "zee",
            "--data",
            str(zee_file),
            "--config",
            str(tiny_config),
            "--out",
            str(run),
            "--max-time",
            "00:00:00:08",
        ]
    )
    assert rc == 0
    lr0 = 1e-3
    assert _final_lr(run) < lr0 * (COSINE_FLOOR + 0.1)
    import yaml

    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_epochs"] == -1


def test_epoch_budget_anneals_per_epoch(zee_file: Path, tiny_config: Path, tmp_path: Path) -> None:
    """Without a time limit the schedule is the per-epoch cosine over max_epochs: after the
    last of 2 epochs the rate is that of progress 1/2."""
    run = tmp_path / "run"
    assert (
        main(
            ["fit", "zee", "--data", str(zee_file), "--config", str(tiny_config), "--out", str(run)]
        )
        == 0
    )
    assert _final_lr(run) == pytest.approx(1e-3 * cosine_floor(0.5), rel=1e-6)
