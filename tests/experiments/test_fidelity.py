from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from experiments import fidelity as fid
from otus.errors import OtusError
from otus.io.h5 import Events
from otus.physics.selection import acceptance
from otus.processes import TTBAR, ZEE, Process


def _zee_test(n: int, seed: int = 0) -> Events:
    rng = np.random.default_rng(seed)
    pt = rng.uniform(20, 50, (n, 2))
    phi = rng.uniform(-np.pi, np.pi, (n, 2))
    eta = rng.normal(0, 1, (n, 2))
    z = (
        np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)], -1)
        .reshape(n, 8)
        .astype(np.float32)
    )
    x = (z * (1 + 0.05 * rng.standard_normal((n, 1)))).astype(np.float32)
    x_pass = acceptance(ZEE, x) & (rng.uniform(size=n) > 0.1)
    x[~x_pass] = np.nan
    return Events(ZEE, z=z, x=x, x_pass=x_pass, weight=rng.uniform(0.5, 1.5, n))


@dataclass
class LookupSurrogate:
    """A perfect model: returns the paired truth of each input row (+ an optional bias)."""

    process: Process
    test: Events
    bias: float = 0.0

    def simulate(
        self, z: np.ndarray, *, seed: int, repeats: int = 1, with_pass: bool = False
    ) -> Any:
        idx = {r.tobytes(): i for i, r in enumerate(self.test.z)}
        rows = [idx[r.tobytes()] for r in z.astype(np.float32)]
        x = self.test.x[rows].copy()
        x[:, 5] += self.bias  # e+ py
        return (x, self.test.x_pass[rows].copy()) if with_pass else x

    def unfold(self, x: np.ndarray, *, seed: int, repeats: int = 1) -> np.ndarray:
        idx = {r.tobytes(): i for i, r in enumerate(self.test.x)}
        out = []
        for r in x.astype(np.float32):
            i = idx.get(r.tobytes())
            out.append(self.test.z[i] if i is not None else r)  # D(E(x)) rows come back here
        return np.asarray(out)


def test_perfect_model_closes() -> None:
    test = _zee_test(6000)
    with threadpool_limits(1, "openmp"):  # the shared test machine is oversubscribed
        r = fid.fidelity(test, LookupSurrogate(ZEE, test), n_projections=100, auc=True)
    assert set(r["rows"]) == {"e+ py", "e+ pz", "e+ E", "M_ee"}
    for lab, cols in r["rows"].items():
        assert set(cols) == set(fid.KEYS)
        for key, m in cols.items():
            assert m["KS"] < 0.05, (lab, key, m)
            assert m["chi2_r"] < 2.0, (lab, key, m)
    # both halves of one distribution: classifier cannot separate them
    for key in fid.KEYS:
        g = r["global"][key]
        assert abs(g["auc"] - 0.5) < 3 * g["auc_err"] + 0.02, (key, g)
        assert g["sliced_w2_std"] < 0.01, (key, g)
    pr = r["pass_rate"]
    assert pr["simulate"] == pytest.approx(pr["truth"], abs=0.03)


def test_biased_simulator_shows_in_its_column() -> None:
    test = _zee_test(4000, seed=1)
    kw = {"n_projections": 50, "auc": False}
    r0 = fid.fidelity(test, LookupSurrogate(ZEE, test), **kw)
    r5 = fid.fidelity(test, LookupSurrogate(ZEE, test, bias=5.0), **kw)
    w0, w5 = r0["rows"]["e+ py"]["simulate"]["W"], r5["rows"]["e+ py"]["simulate"]["W"]
    # shifting one sample by b: W -> W + b² + 2 b (mean_pred - mean_truth) (up to acceptance)
    o = r0["all_observables"]["simulate"]["e+_py"]
    d = o["mean_pred"] - o["mean_truth"]
    assert w5 == pytest.approx(w0 + 25.0 + 10.0 * d, rel=0.1)
    assert w5 > 10 * w0
    g0, g5 = r0["global"]["simulate"], r5["global"]["simulate"]
    # a 5 GeV shift of one of 8 coordinates adds about 5² / 8 to the sliced W2²
    assert g5["sliced_w2"] - g0["sliced_w2"] > 0.5 * 25.0 / 8
    assert g5["sliced_w2_std"] > 1.5 * g0["sliced_w2_std"]
    assert r5["rows"]["e+ py"]["unfold"] == r0["rows"]["e+ py"]["unfold"]


def test_ttbar_rows_and_published_cells() -> None:
    rng = np.random.default_rng(4)
    n = 1200
    z = np.abs(rng.normal(30, 10, (n, 24)))
    z[:, 3::4] = np.linalg.norm(z.reshape(n, 6, 4)[..., :3], axis=-1) + 5.0
    x = z * (1 + 0.05 * rng.standard_normal((n, 1)))
    x_pass = np.asarray(acceptance(TTBAR, x)) & (rng.uniform(size=n) > 0.3)
    x[~x_pass] = np.nan
    test = Events(TTBAR, z=z.astype(np.float32), x=x.astype(np.float32), x_pass=x_pass)
    r = fid.fidelity(test, LookupSurrogate(TTBAR, test), n_projections=20, auc=False)
    assert set(r["rows"]["leading-jet E"]) == {"autoencode", "simulate"}
    assert set(r["rows"]["b-quark E"]) == {"unfold"}
    assert set(r["rows"]["hadronic M_t"]) == set(fid.KEYS)
    md = fid.markdown([r], {"command": "c", "machine": "m", "date": "d"})
    assert "1110, 161, 0.235" in md and "–, 31.2, –" in md


def test_markdown_side_by_side() -> None:
    test = _zee_test(2000, seed=2)
    r = fid.fidelity(test, LookupSurrogate(ZEE, test), n_projections=20, auc=False)
    md = fid.markdown(
        [r], {"command": "python -m experiments.fidelity --zee-run R", "machine": "m", "date": "d"}
    )
    assert "1.05, 37.6, 0.012" in md  # published x̃′ e+ py
    assert "| M_ee |" in md and "--zee-run R" in md and "arXiv:2101.08944" in md
    assert "0.98" in md  # published global SW z vs z̃


def test_plots(tmp_path: Path) -> None:
    test = _zee_test(1500, seed=3)

    @dataclass
    class Noisy(LookupSurrogate):
        def simulate(
            self, z: np.ndarray, *, seed: int, repeats: int = 1, with_pass: bool = False
        ) -> Any:
            rng = np.random.default_rng(seed)
            x = np.repeat(z, repeats, axis=0)
            x = x * (1 + 0.03 * rng.standard_normal((len(x), 1)))
            return (x, np.ones(len(x), bool)) if with_pass else x

    out = fid.fidelity_plots(test, Noisy(ZEE, test), tmp_path / "p", repeats=50)
    names = {p.name for p in out}
    assert {"zee_spread_eplus_E.png", "zee_simulated_m_ee.png", "zee_transport_E.png"} <= names
    assert all(p.stat().st_size > 5000 for p in out)


def test_bad_inputs() -> None:
    test = _zee_test(200)
    with pytest.raises(OtusError, match="the model is for ttbar"):
        fid.fidelity(test, LookupSurrogate(TTBAR, test))
    with pytest.raises(OtusError, match="paired z and x"):
        fid.fidelity(Events(ZEE, z=test.z), LookupSurrogate(ZEE, test))
    assert fid.main([]) == 2
