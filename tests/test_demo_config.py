"""The demo trains with the measured best zee configuration (experiments/zee_paired.yaml)."""

from __future__ import annotations

from pathlib import Path

import yaml

from otus.demo import DemoSettings, _write_fit_config
from otus.models.config import config_from_dict, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_demo_fit_config_matches_experiments_zee_paired_yaml(tmp_path: Path) -> None:
    path = tmp_path / "fit.yaml"
    _write_fit_config(path, DemoSettings())
    demo = config_from_dict(yaml.safe_load(path.read_text()))
    best = load_config(ROOT / "experiments" / "zee_paired.yaml", process="zee")
    assert demo.net == best.net
    assert demo.loss == best.loss
    assert demo.data.batch_size <= best.data.batch_size
