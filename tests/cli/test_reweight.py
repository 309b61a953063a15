from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from otus.calibrate.regions import region_mask
from otus.cli import main
from otus.io.h5 import Events, read_events, write_events
from otus.physics import fourvec as fv
from otus.processes import TTBAR, ZEE

FAST = ["--folds", "2", "--epochs", "30", "--hidden", "16", "--batch-size", "256"]
CR = "80 < m_ee < 100"


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _zee(n: int, seed: int, scale: float = 1.0, weight: float = 1.0) -> Events:
    """Back-to-back-ish electron pairs around the Z peak; ``scale`` shifts the energy."""
    rng = np.random.default_rng(seed)
    pt = rng.normal(42.0, 8.0, (n, 2)).clip(15) * scale
    eta = rng.uniform(-2.4, 2.4, (n, 2))
    phi = rng.uniform(-np.pi, np.pi, n)
    e1 = fv.from_ptetaphim(pt[:, 0], eta[:, 0], phi, np.zeros(n))
    e2 = fv.from_ptetaphim(pt[:, 1], eta[:, 1], phi + np.pi + rng.normal(0, 0.3, n), np.zeros(n))
    x = np.concatenate([e1, e2], axis=1).astype(np.float32)
    x_pass = rng.random(n) > 0.05
    x[~x_pass] = np.nan
    return Events(ZEE, None, x, x_pass, np.full(n, weight), {"test": seed})


@pytest.fixture
def files(tmp_path):
    mc = write_events(tmp_path / "mc.h5", _zee(6000, 0))
    data = write_events(tmp_path / "data.h5", _zee(6000, 1, scale=1.08))
    return tmp_path, mc, data


def test_fit_and_apply(files, capsys) -> None:
    tmp, mc, data = files
    out = tmp / "rw"
    rc = main(
        [
            "reweight",
            "fit",
            "--mc",
            str(mc),
            "--data",
            str(data),
            "--region",
            CR,
            "--out",
            str(out),
            "--seed",
            "3",
            *FAST,
        ]
    )
    assert rc == 0
    assert "fitted 2-fold reweighter" in capsys.readouterr().out
    assert {"model.pt", "report.json", "report.md", "ratio_m_ee.png"} <= {
        p.name for p in out.iterdir()
    }
    rep = json.loads((out / "report.json").read_text())
    assert rep["region"] == CR and rep["features"][4] == "m_ee"
    assert rep["config"]["calibrate_logit"] and rep["logit_calibration"]["scale"] > 0
    d = rep["diagnostics"]
    assert 0 <= d["auc_before"] <= 1 and 0 <= d["auc_after"] <= 1 and d["auc_after_err"] > 0
    f = d["features"]["e-_pt"]  # the 8% energy scale shows in pT; reweighting must reduce it
    assert f["ks_after"] < 0.6 * f["ks_before"] and f["chi2_r_after"] < f["chi2_r_before"]
    assert d["ess_after"] < d["ess_before"] == pytest.approx(d["n_mc"])
    assert "Classifier AUC" in (out / "report.md").read_text()

    rc = main(["reweight", "apply", str(out), "--input", str(mc), "--out", str(tmp / "o.h5")])
    assert rc == 0
    before, after = read_events(mc), read_events(tmp / "o.h5")
    np.testing.assert_array_equal(after.x_pass, before.x_pass)
    np.testing.assert_array_equal(np.nan_to_num(after.x), np.nan_to_num(before.x))
    assert not np.array_equal(after.weight, before.weight)
    assert np.all(after.weight[~before.x_pass] == 1.0)  # failed events untouched
    # on the training file every CR event gets its out-of-fold weight; normalise=data
    # makes the CR sum equal the data's CR sum
    ev_d = read_events(data)
    cr_mc = region_mask(CR, ZEE, before.x, before.x_pass)
    cr_d = region_mask(CR, ZEE, ev_d.x, ev_d.x_pass)
    assert after.weight[cr_mc].sum() == pytest.approx(ev_d.weight[cr_d].sum(), rel=1e-5)
    with h5py.File(tmp / "o.h5") as f:
        assert f.attrs["process"].decode() == "zee"
        assert json.loads(f.attrs["provenance"])["reweight"]["column"] == "weight"
        assert json.loads(f.attrs["provenance"])["test"] == 0

    rc = main(
        [
            "reweight",
            "apply",
            str(out),
            "--input",
            str(mc),
            "--out",
            str(tmp / "c.h5"),
            "--column",
            "weight_rw",
        ]
    )
    assert rc == 0
    with h5py.File(tmp / "c.h5") as f:
        np.testing.assert_array_equal(f["weight"][:], before.weight)
        np.testing.assert_allclose(f["weight_rw"][:], after.weight)


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0  # one line
    return err


def test_fit_repeats_saves_every_model(files, capsys) -> None:
    tmp, mc, data = files
    out = tmp / "rw"
    args = ["--mc", str(mc), "--data", str(data), "--out", str(out), "--no-diagnostics"]
    rc = main(["reweight", "fit", *args, *FAST, "--epochs", "2", "--repeats", "2"])
    assert rc == 0 and "2-fold reweighter (2 repeats)" in capsys.readouterr().out
    d = torch.load(out / "model.pt", weights_only=True)
    assert len(d["states"]) == 4 and tuple(d["train_folds"].shape)[1:] == (2,)
    assert (
        main(["reweight", "apply", str(out), "--input", str(mc), "--out", str(tmp / "o.h5")]) == 0
    )


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--region", "m_ee > 1e6"], "no passing events in region"),
        (["--region", "mee < 3"], "unknown observable 'mee'"),
        (["--region", "__import__('os')"], "only abs"),
        (["--features", "m_ee,bogus"], "unknown features"),
        (["--hidden", "16,x"], "--hidden must be"),
        (["--folds", "1"], "k_folds must be at least 2"),
        (["--repeats", "0"], "repeats must be at least 1"),
        (["--val-fraction", "1"], "val_fraction must lie in (0, 1)"),
    ],
)
def test_fit_bad_input(files, capsys, extra, match) -> None:
    tmp, mc, data = files
    out = tmp / "rw"
    rc = main(
        ["reweight", "fit", "--mc", str(mc), "--data", str(data), "--out", str(out), *FAST, *extra]
    )
    assert rc == 2
    err = _err(capsys)
    assert err.startswith("otus reweight: error:") and match in err
    assert not out.exists()
    assert [p.name for p in tmp.iterdir()] == ["mc.h5", "data.h5"] or set(
        p.name for p in tmp.iterdir()
    ) == {"mc.h5", "data.h5"}


def test_fit_bad_files(files, capsys) -> None:
    tmp, mc, data = files
    zero = _zee(500, 5, weight=0.0)
    write_events(tmp / "zero.h5", zero)
    n = 50
    tt = Events(
        TTBAR,
        None,
        np.random.default_rng(0).normal(50, 10, (n, 24)).astype(np.float32),
        np.ones(n, bool),
        np.ones(n),
    )
    write_events(tmp / "tt.h5", tt)
    (tmp / "full").mkdir()
    (tmp / "full" / "x").write_text("keep")
    cases = [
        (["--mc", str(mc), "--data", str(tmp / "tt.h5")], "holds ttbar events but"),
        (["--mc", str(tmp / "zero.h5"), "--data", str(data)], "all MC weights are zero"),
        (["--mc", str(tmp / "nope.h5"), "--data", str(data)], "no such file"),
    ]
    for args, match in cases:
        rc = main(["reweight", "fit", *args, "--out", str(tmp / "rw"), *FAST])
        assert rc == 2 and match in _err(capsys)
        assert not (tmp / "rw").exists()
    rc = main(
        ["reweight", "fit", "--mc", str(mc), "--data", str(data), "--out", str(tmp / "full"), *FAST]
    )
    assert rc == 2 and "not empty" in _err(capsys)
    assert (tmp / "full" / "x").read_text() == "keep"


def test_apply_bad_input(tmp_path, capsys) -> None:
    tmp = tmp_path
    mc = write_events(tmp / "mc.h5", _zee(600, 0))
    data = write_events(tmp / "data.h5", _zee(600, 1))
    rc = main(["reweight", "apply", str(tmp), "--input", str(mc), "--out", str(tmp / "o.h5")])
    assert rc == 2 and "not a reweighting model folder" in _err(capsys)
    out = tmp / "rw"
    assert (
        main(
            [
                "reweight",
                "fit",
                "--mc",
                str(mc),
                "--data",
                str(data),
                "--out",
                str(out),
                "--no-diagnostics",
                *FAST[:4],
                "--epochs",
                "2",
            ]
        )
        == 0
    )
    capsys.readouterr()
    n = 30
    tt = Events(
        TTBAR,
        None,
        np.random.default_rng(0).normal(50, 10, (n, 24)).astype(np.float32),
        np.ones(n, bool),
        np.ones(n),
    )
    write_events(tmp / "tt.h5", tt)
    (out / "bad").mkdir()
    (out / "bad" / "model.pt").write_bytes(b"not a model")
    cases = [
        ([str(out), "--input", str(tmp / "tt.h5")], "holds ttbar events, expected zee"),
        ([str(out), "--input", str(mc), "--column", "x"], "must be a new dataset"),
        ([str(out / "bad"), "--input", str(mc)], "unreadable reweighting model"),
    ]
    for args, match in cases:
        rc = main(["reweight", "apply", *args, "--out", str(tmp / "o.h5")])
        assert rc == 2 and match in _err(capsys)
        assert not (tmp / "o.h5").exists()
    assert not [p for p in tmp.iterdir() if p.name.endswith(".tmp")]
