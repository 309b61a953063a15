from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from otus.cli import main
from otus.io.h5 import Events, write_events
from otus.processes import TTBAR, ZEE


def _zee(seed: int, n: int, *, smear: float = 0.0, fail: float = 0.1) -> Events:
    rng = np.random.default_rng(seed)
    pt = rng.uniform(20, 50, (n, 2))
    phi = rng.uniform(-np.pi, np.pi, (n, 2))
    eta = rng.normal(0, 1, (n, 2))
    z = np.stack(
        [pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)], -1
    ).reshape(n, 8)
    x = z * (1 + smear * rng.standard_normal((n, 1)))
    x_pass = rng.uniform(size=n) > fail
    x[~x_pass] = np.nan
    return Events(
        ZEE,
        z=z.astype(np.float32),
        x=x.astype(np.float32),
        x_pass=x_pass,
        weight=rng.uniform(0.5, 1.5, n),
    )


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    t = write_events(tmp_path / "truth.h5", _zee(0, 1500))
    p = write_events(tmp_path / "pred.h5", _zee(1, 1200, smear=0.2, fail=0.3))
    return t, p


def _args(t: Path, p: Path, out: Path, *extra: str) -> list[str]:
    return [
        "evaluate",
        "--truth",
        str(t),
        "--pred",
        str(p),
        "--out",
        str(out),
        "--projections",
        "50",
        *extra,
    ]


def test_evaluate_writes_tables_and_plots(files, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    t, p = files
    out = tmp_path / "ev"
    with threadpool_limits(1, "openmp"):  # the shared test machine is oversubscribed
        assert main(_args(t, p, out)) == 0
    rep = json.loads((out / "metrics.json").read_text())
    assert rep["process"] == "zee" and rep["level"] == "x" and rep["weighted"]
    assert rep["pass_rate"]["truth"] == pytest.approx(0.9, abs=0.03)
    assert rep["pass_rate"]["prediction"] == pytest.approx(0.7, abs=0.04)
    assert set(rep["observables"]) >= {"e+_py", "e+_pz", "e+_E", "m_ee"}
    # the 20% momentum smearing is visible: the classifier separates the samples
    g = rep["global"]
    assert g["classifier_auc"] - 3 * g["classifier_auc_err"] > 0.5
    md = (out / "metrics.md").read_text()
    assert "| m_ee |" in md and "χ²_R" in md
    pngs = {f.name for f in (out / "plots").iterdir()}
    assert {"m_ee.png", "eplus_py.png", "transport_eplus_px.png"} <= pngs
    assert all((out / "plots" / f).stat().st_size > 5000 for f in pngs)
    assert "otus evaluate: zee x" in capsys.readouterr().out
    # a second run replaces the folder
    assert main(_args(t, p, out, "--no-plots", "--no-auc", "--weights-column", "none")) == 0
    rep2 = json.loads((out / "metrics.json").read_text())
    assert not (out / "plots").exists() and not rep2["weighted"]
    assert "classifier_auc" not in rep2["global"]


def test_plot_legends_name_the_samples(files, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from otus import plots

    seen: set[tuple[str, str]] = set()
    for fn in ("hist_ratio", "mass_peak"):
        orig = getattr(plots, fn)

        def spy(*a, _orig=orig, **kw):  # type: ignore[no-untyped-def]
            seen.add((kw["truth_label"], kw["pred_label"]))
            return _orig(*a, **kw)

        monkeypatch.setattr(plots, fn, spy)
    t, p = files
    assert (
        main(
            _args(
                t,
                p,
                tmp_path / "ev",
                "--no-auc",
                "--truth-label",
                "data",
                "--pred-label",
                "reweighted MC",
            )
        )
        == 0
    )
    assert seen == {("data (x)", "reweighted MC (x)")}


def test_evaluate_z_level_identical_samples(tmp_path: Path) -> None:
    ev = _zee(3, 1000)
    t = write_events(tmp_path / "t.h5", Events(ZEE, z=ev.z))
    out = tmp_path / "ev"
    assert main(_args(t, t, out, "--no-plots", "--no-auc")) == 0
    rep = json.loads((out / "metrics.json").read_text())
    assert rep["level"] == "z"
    assert rep["global"]["sliced_w2"] == 0.0
    assert all(m["W"] == 0.0 and m["KS"] == 0.0 for m in rep["observables"].values())


def test_evaluate_weights_column(files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t, p = files
    for f in (t, p):
        with h5py.File(f, "a") as h:
            h["w2"] = np.full(len(h["weight"]), 3.0)
    out = tmp_path / "ev"
    assert main(_args(t, p, out, "--no-plots", "--no-auc", "--weights-column", "w2")) == 0
    rep = json.loads((out / "metrics.json").read_text())
    assert not rep["weighted"]


def _check_fails(argv: list[str], out: Path, capsys, match: str) -> None:  # type: ignore[no-untyped-def]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("otus evaluate: error:") and "\n" not in err
    assert match in err, err
    assert not out.exists()
    assert not [f for f in out.parent.iterdir() if f.name.startswith(f".{out.name}.")]


def test_bad_inputs(files, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    t, p = files
    out = tmp_path / "bad"
    rng = np.random.default_rng(5)
    tt = write_events(tmp_path / "tt.h5", Events(TTBAR, z=rng.normal(size=(20, 24))))
    _check_fails(
        _args(t, tt, out), out, capsys, "truth holds zee events but prediction holds ttbar"
    )
    zonly = write_events(tmp_path / "z.h5", Events(ZEE, z=_zee(1, 50).z))
    xonly = write_events(tmp_path / "x.h5", Events(ZEE, x=_zee(1, 50).x))
    _check_fails(_args(zonly, xonly, out), out, capsys, "no common level")
    _check_fails(_args(t, zonly, out, "--level", "x"), out, capsys, "prediction file holds no x")
    with h5py.File(tmp_path / "empty.h5", "w") as h:
        h.attrs["process"] = "zee"
        h["z"] = np.zeros((0, 8), np.float32)
    _check_fails(
        _args(t, tmp_path / "empty.h5", out, "--level", "z"), out, capsys, "holds no events"
    )
    nopass = _zee(2, 50, fail=1.1)
    write_events(tmp_path / "nopass.h5", nopass)
    _check_fails(
        _args(t, tmp_path / "nopass.h5", out), out, capsys, "prediction holds no passing events"
    )
    nan = _zee(2, 50)
    nan.z[:, 3] = np.nan
    with h5py.File(tmp_path / "nan.h5", "w") as h:
        h.attrs["process"] = "zee"
        h["z"] = nan.z
    _check_fails(_args(t, tmp_path / "nan.h5", out, "--level", "z"), out, capsys, "NaN")
    with h5py.File(tmp_path / "dims.h5", "w") as h:
        h.attrs["process"] = "zee"
        h["z"] = np.zeros((10, 7), np.float32)
    _check_fails(
        _args(t, tmp_path / "dims.h5", out),
        out,
        capsys,
        "z has shape (10, 7), expected [N, 8] for zee",
    )
    _check_fails(_args(t, tmp_path / "missing.h5", out), out, capsys, "no such file")
    _check_fails(
        _args(t, p, out, "--weights-column", "nope"), out, capsys, "no weights dataset 'nope'"
    )
