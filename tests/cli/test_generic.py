"""Reweighting and OT calibration on any event file: plain named features (process
``generic``) and a card-defined process; `otus convert generic --ntuple`; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from otus.cli import main
from otus.io.h5 import Events, read_events, write_events, write_features
from otus.physics import fourvec as fv
from otus.processes import process_from_text

RW_FAST = ["--folds", "2", "--epochs", "20", "--hidden", "16", "--batch-size", "256"]
OT_FAST = ["--steps", "40", "--hidden", "8,8", "--batch-size", "256", "--val-every", "20"]
REGION = "cat != 1 and (cat == 0 or abs(y) < 3)"  # one region string for both tools
SHIFT = 0.3


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _toy(n: int, seed: int, shift: float) -> np.ndarray:
    """Columns x ~ N(shift, 1), y ~ N(0, 1), cat ∈ {0, 1, 2}."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.normal(shift, 1, n), rng.normal(0, 1, n), rng.integers(0, 3, n)], 1)


@pytest.fixture
def toy(tmp_path: Path) -> dict[str, Path]:
    names = ["x", "y", "cat"]
    mc = write_features(tmp_path / "mc.h5", _toy(4000, 0, 0.0), names)
    data = write_features(tmp_path / "data.h5", _toy(4000, 1, SHIFT), names)
    return {"mc": mc, "data": data, "dir": tmp_path}


def _in_region(ev: Events) -> np.ndarray:
    cat = ev.x[:, 2]
    return (cat != 1) & ((cat == 0) | (np.abs(ev.x[:, 1]) < 3))


def _mean(ev: Events, sel: np.ndarray) -> float:
    return float(np.average(ev.x[sel, 0], weights=ev.weight[sel]))


def _fail(capsys: pytest.CaptureFixture[str], argv: list[str], match: str) -> None:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith(f"otus {argv[0]}: error: ") and "\n" not in err, err
    assert match in err, err


def test_reweight_fit_apply_on_plain_features(toy: dict[str, Path]) -> None:
    out, res = toy["dir"] / "rw", toy["dir"] / "rw.h5"
    argv = ["--mc", str(toy["mc"]), "--data", str(toy["data"]), "--out", str(out)]
    assert main(["reweight", "fit", *argv, "--region", REGION, "--features", "x,y", *RW_FAST]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["process"] == "generic" and rep["features"] == ["x", "y"]
    d = rep["diagnostics"]
    assert abs(d["auc_after"] - 0.5) < abs(d["auc_before"] - 0.5)
    assert main(["reweight", "apply", str(out), "--input", str(toy["mc"]), "--out", str(res)]) == 0
    before, after = read_events(toy["mc"]), read_events(res)
    assert after.process == before.process
    sel = _in_region(before)
    data = read_events(toy["data"])
    target = _mean(data, _in_region(data))
    assert abs(_mean(after, sel) - target) < 0.5 * abs(_mean(before, sel) - target)


def test_calibrate_fit_apply_on_plain_features(toy: dict[str, Path]) -> None:
    out, res = toy["dir"] / "ot", toy["dir"] / "ot.h5"
    argv = ["--mc", str(toy["mc"]), "--data", str(toy["data"]), "--out", str(out)]
    assert main(["calibrate", "fit", *argv, "--region", REGION, "--features", "x,y", *OT_FAST]) == 0
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["process"] == "generic" and diag["features"] == ["x", "y"]
    args = ["--input", str(toy["mc"]), "--out", str(res), "--region", REGION]
    assert main(["calibrate", "apply", str(out), *args]) == 0
    before, after = read_events(toy["mc"]), read_events(res)
    sel = _in_region(before)
    np.testing.assert_array_equal(after.x[~sel], before.x[~sel])  # outside the region: kept
    np.testing.assert_array_equal(after.x[:, 2], before.x[:, 2])  # cat is not transported
    assert abs(_mean(after, sel) - SHIFT) < 0.5 * abs(_mean(before, sel) - SHIFT)


def test_default_features_are_the_columns(toy: dict[str, Path]) -> None:
    out = toy["dir"] / "rw"
    argv = ["--mc", str(toy["mc"]), "--data", str(toy["data"]), "--out", str(out)]
    assert main(["reweight", "fit", *argv, *RW_FAST, "--epochs", "2", "--no-diagnostics"]) == 0
    assert json.loads((out / "report.json").read_text())["features"] == ["x", "y", "cat"]


MUMU = """\
name: mumu_test
parton:
  - {name: mu-, pdg: 13}
  - {name: mu+, pdg: -13}
detector:
  - {name: mu-, type: muon, charge: -1}
  - {name: mu+, type: muon, charge: 1}
selection:
  muon: {pt_min: 10, eta_max: 2.4, count: 2}
anchor: mu+
observables:
  m_mumu: {mass: [mu-, mu+]}
"""


def _mumu(n: int, seed: int, scale: float) -> Events:
    proc = process_from_text(MUMU, where="test card")
    rng = np.random.default_rng(seed)
    pt = rng.normal(40, 8, (n, 2)).clip(15) * scale
    eta, phi = rng.uniform(-2.4, 2.4, (n, 2)), rng.uniform(-np.pi, np.pi, (n, 2))
    x = np.concatenate([fv.from_ptetaphim(pt[:, i], eta[:, i], phi[:, i], 0.0) for i in (0, 1)], 1)
    return Events(proc, x=x.astype(np.float32))


def test_reweight_on_a_card_defined_process(tmp_path: Path) -> None:
    mc = write_events(tmp_path / "mc.h5", _mumu(3000, 0, 1.0))
    data = write_events(tmp_path / "data.h5", _mumu(3000, 1, 1.05))
    out, res = tmp_path / "rw", tmp_path / "rw.h5"
    argv = ["--mc", str(mc), "--data", str(data), "--out", str(out), "--region", "m_mumu > 20"]
    assert main(["reweight", "fit", *argv, *RW_FAST, "--epochs", "3", "--no-diagnostics"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["process"] == "mumu_test" and "m_mumu" in rep["features"]
    assert main(["reweight", "apply", str(out), "--input", str(mc), "--out", str(res)]) == 0
    assert read_events(res).process.name == "mumu_test"


def test_convert_generic_ntuple(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "cols.npz", a=np.arange(20.0), b=np.ones(20), w=np.full(20, 2.0))
    out = tmp_path / "f.h5"
    argv = ["convert", "generic", "--ntuple", str(tmp_path / "cols.npz"), "--out", str(out)]
    assert main([*argv, "--branches", "a,b", "--weight-branch", "w", "--max-events", "15"]) == 0
    assert "wrote 15 generic events" in capsys.readouterr().err
    ev = read_events(out)
    assert ev.process.x_features == ("a", "b") and np.all(ev.weight == 2.0)
    assert json.loads(json.dumps(ev.provenance))["settings"]["weight"] == "w"
    _fail(capsys, [*argv[:1], "zee", *argv[2:]], "give the process generic, not 'zee'")
    _fail(capsys, [*argv, "--lhe", "x.lhe"], "--ntuple does not combine with --lhe")
    _fail(capsys, ["convert", "generic", "--tree", "t", "--out", str(out)], "apply to --ntuple")
    _fail(capsys, ["convert", "generic", "--lhe", "x.lhe", "--out", str(out)], "physics process")


def test_bad_inputs_one_line_exit_2(
    toy: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    d = toy["dir"]
    files = ["--mc", str(toy["mc"]), "--data", str(toy["data"])]
    for tool, fast in (("reweight", RW_FAST), ("calibrate", OT_FAST)):
        out = str(d / f"bad_{tool}")
        _fail(capsys, [tool, "fit", *files, "--out", out, "--features", "x,nope", *fast], "nope")
        _fail(
            capsys,
            [tool, "fit", *files, "--out", out, "--region", "foo > 1", *fast],
            "unknown observable 'foo'; choose from cat, x, y",
        )
        assert not Path(out).exists() or not any(Path(out).iterdir())
    run = str(d / "run")
    _fail(capsys, ["fit", "generic", "--data", str(toy["mc"]), "--out", run], "needs a physics")
    _fail(capsys, ["fit", "zee", "--data", str(toy["mc"]), "--out", run], "need a physics process")
    assert not (d / "run" / "last.ckpt").exists()
