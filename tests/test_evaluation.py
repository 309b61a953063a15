from __future__ import annotations

import json

import numpy as np
import pytest

from otus.errors import OtusError
from otus.evaluation import evaluate, infer_level, json_ready, markdown
from otus.io.h5 import Events
from otus.processes import ZEE


def _events(seed: int, n: int, shift: float = 0.0) -> Events:
    rng = np.random.default_rng(seed)
    pt = rng.uniform(20, 50, (n, 2)) + shift
    phi = rng.uniform(-np.pi, np.pi, (n, 2))
    eta = rng.normal(0, 1, (n, 2))
    x = np.stack(
        [pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)], -1
    ).reshape(n, 8)
    return Events(ZEE, x=x.astype(np.float32))


def test_weights_of_a_calibration_are_used() -> None:
    truth = _events(0, 5000)
    good, junk = _events(1, 5000), _events(2, 5000, shift=30.0)
    # a calibration that weights the junk half away (zero weight)
    pred = Events(
        ZEE,
        x=np.concatenate([good.x, junk.x]),
        weight=np.concatenate([np.ones(5000), np.zeros(5000)]),
    )
    raw = evaluate(truth, pred, use_weights=False, auc=False, n_projections=20)
    cal = evaluate(truth, pred, use_weights=True, auc=False, n_projections=20)
    ref = evaluate(truth, good, auc=False, n_projections=20)
    assert cal["weighted"] and not raw["weighted"]
    assert raw["observables"]["e-_pt"]["KS"] > 0.4
    for name, m in cal["observables"].items():
        assert m["KS"] == pytest.approx(ref["observables"][name]["KS"], abs=1e-12), name
        assert m["W"] == pytest.approx(ref["observables"][name]["W"], rel=1e-9), name
        assert m["chi2_r"] == pytest.approx(ref["observables"][name]["chi2_r"], rel=1e-9), name
    assert cal["global"]["sliced_w2"] == pytest.approx(ref["global"]["sliced_w2"], rel=1e-9)


def test_infer_level_and_errors() -> None:
    zx = Events(ZEE, z=np.zeros((3, 8), np.float32), x=np.ones((3, 8), np.float32))
    z = Events(ZEE, z=np.zeros((3, 8), np.float32))
    assert infer_level(zx, zx) == "x"
    assert infer_level(zx, z) == "z"
    assert infer_level(zx, zx, "z") == "z"
    unfolded = Events(ZEE, z=zx.z, x=zx.x, provenance={"settings": {"command": "unfold"}})
    assert infer_level(zx, unfolded) == "z"
    assert infer_level(zx, unfolded, "x") == "x"
    with pytest.raises(OtusError, match="prediction file holds no x"):
        infer_level(zx, z, "x")
    with pytest.raises(OtusError, match="level must be"):
        infer_level(zx, zx, "y")


def test_unfolding_is_compared_with_z_of_passing_events() -> None:
    rng = np.random.default_rng(9)
    z = _events(3, 400).x
    x_pass = rng.uniform(size=400) > 0.5
    x = z.copy()
    x[~x_pass] = np.nan
    truth = Events(ZEE, z=z, x=x, x_pass=x_pass)
    unf = Events(ZEE, z=z[x_pass], x=x[x_pass], provenance={"settings": {"command": "unfold"}})
    rep = evaluate(truth, unf, auc=False, n_projections=10)
    assert rep["level"] == "z" and rep["n_truth"] == x_pass.sum()
    assert "whose x passes" in rep["truth_selection"]
    assert rep["global"]["sliced_w2"] == 0.0


def test_markdown_and_json_ready() -> None:
    rep = evaluate(_events(0, 2000), _events(1, 2000), auc=False, n_projections=10)
    md = markdown(rep, title="demo")
    assert md.startswith("## demo: zee, level x")
    assert md.count("\n| ") == 1 + len(rep["observables"])
    s = json.dumps(
        json_ready({"a": float("nan"), "b": np.float32(1.5), "c": [np.int64(2)]}), allow_nan=False
    )
    assert json.loads(s) == {"a": None, "b": 1.5, "c": [2]}
