"""The OT option sets: validation, and the CLI reading its defaults and help from them."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

from otus.calibrate.ot import files as ot_files
from otus.calibrate.ot.config import DualConfig, RegionConfig, config_dict
from otus.cli import main
from otus.errors import ConfigError, OtusError


@pytest.mark.parametrize(
    ("cls", "bad", "match"),
    [
        (DualConfig, {"steps": 0}, "steps must be >= 1, got 0"),
        (DualConfig, {"inner_steps": 0}, "inner_steps must be >= 1"),
        (DualConfig, {"hidden": ()}, "hidden must be positive layer widths"),
        (DualConfig, {"lr": 0.0}, "lr must be > 0, got 0.0"),
        (DualConfig, {"val_fraction": 1.0}, r"val_fraction must lie in \[0, 1\)"),
        (DualConfig, {"guard": -1.0}, "guard must be >= 0, got -1.0"),
        (DualConfig, {"init": "zero"}, "init must be one of"),
        (DualConfig, {"solver": "adam"}, "solver must be one of"),
        (DualConfig, {"max_time": float("nan")}, "max_time must be >= 0"),
        (RegionConfig, {"batch_size": 1}, "batch_size must be >= 2, got 1"),
        (RegionConfig, {"n_projections": 0}, "n_projections must be >= 1"),
        (RegionConfig, {"val_fraction": 0.0}, r"val_fraction must lie in \(0, 1\)"),
        (RegionConfig, {"noise_dims": -1}, "noise_dims must be >= 0, got -1"),
    ],
)
def test_bad_values_name_the_field(cls: type, bad: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        cls(**bad)
    assert "\n" not in str(err.value)


def test_configs_are_frozen_and_serialise_to_plain_values() -> None:
    cfg = DualConfig(hidden=(8, 8))
    with pytest.raises(FrozenInstanceError):
        cfg.steps = 3  # type: ignore[misc]
    d = config_dict(cfg)
    assert d["hidden"] == [8, 8] and set(d) == {f.name for f in fields(DualConfig)}


def _capture(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    seen: list[object] = []

    def fake(*_: object, config: object, **__: object) -> None:
        seen.append(config)
        raise OtusError("stop here")

    monkeypatch.setattr(ot_files, "fit_files", fake)
    return seen


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        ([], DualConfig()),
        (
            ["--inner-steps", "7", "--isotropic", "--hidden", "8,8", "--seed", "3"],
            DualConfig(inner_steps=7, per_feature_scale=False, hidden=(8, 8), seed=3),
        ),
        (
            ["--objective", "region", "--projections", "8", "--noise-dims", "1", "--steps", "9"],
            RegionConfig(n_projections=8, noise_dims=1, steps=9),
        ),
    ],
)
def test_cli_builds_the_config_from_its_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: list[str], want: object
) -> None:
    seen = _capture(monkeypatch)
    base = ["calibrate", "fit", "--mc", "mc.h5", "--data", "d.h5", "--out", str(tmp_path / "o")]
    assert main([*base, *argv]) == 2
    assert seen == [want]


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--objective", "region", "--batch-size", "1"], "--batch-size must be >= 2, got 1"),
        (["--objective", "region", "--projections", "0"], "--projections must be >= 1, got 0"),
        (["--guard", "-1"], "--guard must be >= 0, got -1.0"),
        (["--isotropic", "--objective", "region"], "--isotropic does not apply to the region"),
    ],
)
def test_cli_reports_config_errors_by_option(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    match: str,
) -> None:
    seen = _capture(monkeypatch)
    base = ["calibrate", "fit", "--mc", "mc.h5", "--data", "d.h5", "--out", str(tmp_path / "o")]
    assert main([*base, *argv]) == 2
    assert match in capsys.readouterr().err and not seen


def test_cli_help_shows_the_config_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["calibrate", "fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    d, r = DualConfig(), RegionConfig()
    assert f"g steps per f step (default {d.inner_steps})" in text
    assert f"f steps (dual, default {d.steps}) or steps (region, default {r.steps})" in text
    assert f"(default {d.batch_size} dual, {r.batch_size} region)" in text
    assert f"the coordinate axes (default {r.n_projections})" in text
    assert f"(default {d.guard:g})" in text
