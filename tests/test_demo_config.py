"""The demo trains with the project's default configuration (otus/models/defaults.yaml), the
one ``otus fit`` uses without --config; only the batch size follows the sample size."""

from __future__ import annotations

from pathlib import Path

import yaml

from otus.demo import TINY, DemoSettings, _write_fit_config
from otus.models.config import config_from_dict, load_config


def test_demo_fit_config_is_the_package_default(tmp_path: Path) -> None:
    default = load_config(None, process="zee")
    for settings in (DemoSettings(), TINY):
        path = tmp_path / "fit.yaml"
        _write_fit_config(path, settings)
        demo = config_from_dict(yaml.safe_load(path.read_text()))
        assert demo.net == default.net
        assert demo.loss == default.loss
        assert demo.optim == default.optim
        assert demo.data.batch_size <= default.data.batch_size
