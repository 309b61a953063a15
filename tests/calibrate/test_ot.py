from __future__ import annotations

from dataclasses import replace

import numpy as np
import ot
import pytest
import torch

from otus.calibrate.ot.config import DualConfig
from otus.calibrate.ot.fit import fit_ot_map
from otus.calibrate.ot.map import OTMap
from otus.errors import ConfigError, InputFileError, OtusError

torch.set_num_threads(1)

# one isotropic scale: the fitted map is then the Euclidean OT map (the closed forms below)
SMALL = DualConfig(
    hidden=(16, 16), batch_size=256, inner_steps=3, val_every=50, per_feature_scale=False
)


def _fit(x: torch.Tensor, y: torch.Tensor, **kw) -> OTMap:
    """fit_ot_map with SMALL's options, ``kw`` overriding options or giving cx, cy."""
    data = {k: kw.pop(k) for k in ("cx", "cy") if k in kw}
    return fit_ot_map(x, y, **data, config=replace(SMALL, **kw))


def _gaussians(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    a = torch.tensor([[1.6, 0.4], [0.4, 0.6]])  # symmetric positive definite
    b = torch.tensor([0.8, -1.5])
    x = torch.randn(n, 2, generator=gen)
    return x, x @ a + b, a, b  # x ~ N(0, I): the OT map is y = A x + b exactly


def _uvp(pred: torch.Tensor, true: torch.Tensor) -> float:
    return float(100 * ((pred - true) ** 2).sum(1).mean() / true.var(0).sum())


def test_gaussian_map_matches_closed_form_from_identity_init() -> None:
    """Training from ∇g = id recovers the closed-form linear OT map between Gaussians."""
    x, y, a, b = _gaussians(6000, 0)
    m = _fit(x, y, init="identity", steps=300, lr=3e-2, seed=0)
    xt = torch.randn(3000, 2, generator=torch.Generator().manual_seed(9))
    assert _uvp(m.transport(xt), xt @ a + b) < 2.0
    # and the duality gap closed: the two W2 estimates agree within 10 %
    best = m.info["best"]
    assert abs(best["duality_gap"]) < 0.1 * best["w2_primal"]
    for net in (m.f, m.g):
        assert all(float(w.min()) >= 0 for w in net.positive_weights())


def test_gaussian_init_equals_pot_linear_transport() -> None:
    """0 training steps: the Gaussian initialisation is POT's closed-form linear map."""
    gen = np.random.default_rng(1)
    xs = gen.normal(size=(4000, 3)) @ gen.normal(size=(3, 3))
    yt = gen.normal(size=(3000, 3)) * [1.0, 2.0, 0.5] + [3.0, 0.0, -1.0]
    m = _fit(torch.tensor(xs), torch.tensor(yt), steps=1, lr=1e-9, val_fraction=0.0)
    lt = ot.da.LinearTransport().fit(Xs=xs, Xt=yt)
    ref = lt.transform(Xs=xs)
    pred = m.transport(torch.tensor(xs)).double().numpy()
    assert np.abs(pred - ref).max() < 0.02 * np.abs(ref).max()


def test_sample_to_itself_is_identity() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.cat(
        [torch.randn(3000, 2, generator=gen) + 2, torch.randn(3000, 2, generator=gen) - 2]
    )
    m = _fit(x, x, init="identity", steps=100, seed=1)
    assert _uvp(m.transport(x), x) < 0.5


def test_conditional_map_learns_condition_dependent_shift() -> None:
    """y = x + 2c given c: a partially input-convex map must shift by the condition."""
    gen = torch.Generator().manual_seed(3)
    c = torch.rand(6000, 1, generator=gen)
    x = torch.randn(6000, 1, generator=gen)
    y = torch.randn(6000, 1, generator=gen) + 2 * c
    m = _fit(x, y, cx=c, cy=c, steps=300, lr=5e-3, seed=0)
    cg = torch.tensor([[0.1], [0.9]]).repeat_interleave(2000, 0)
    xg = torch.randn(4000, 1, generator=gen)
    t = m.transport(xg, cg)
    shift_lo, shift_hi = float((t - xg)[:2000].mean()), float((t - xg)[2000:].mean())
    assert abs(shift_lo - 0.2) < 0.15
    assert abs(shift_hi - 1.8) < 0.15


def test_save_load_roundtrip(tmp_path) -> None:
    x, y, _, _ = _gaussians(1000, 4)
    m = _fit(x, y, steps=20)
    path = m.save(tmp_path / "map.pt")
    m2 = OTMap.load(path)
    assert torch.equal(m.transport(x), m2.transport(x))
    assert m2.info["best_step"] == m.info["best_step"]


def test_load_bad_file(tmp_path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_text("not a map")
    with pytest.raises(InputFileError, match=r"bad\.pt: not an otus OT map"):
        OTMap.load(bad)
    with pytest.raises(InputFileError, match=r"missing\.pt: no such file"):
        OTMap.load(tmp_path / "missing.pt")


def test_bad_inputs() -> None:
    x = torch.randn(100, 2)
    with pytest.raises(OtusError, match="dimension mismatch: source has 2 features, target has 3"):
        fit_ot_map(x, torch.randn(100, 3))
    xn = x.clone()
    xn[5, 1] = float("nan")
    with pytest.raises(OtusError, match="source features hold NaN or inf in 1 rows"):
        fit_ot_map(xn, x)
    with pytest.raises(ConfigError, match="init must be one of gaussian, identity, got 'zero'"):
        DualConfig(init="zero")
    m = _fit(x, x, steps=1)
    with pytest.raises(OtusError, match="transports 2 features"):
        m.transport(torch.zeros(3, 4))
    with pytest.raises(OtusError, match="conditioning variables"):
        m.transport(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(OtusError, match="NaN"):
        m.transport(xn)


def test_minmax_solver_with_cycle_and_clipping_runs_and_stays_convex() -> None:
    x, y, _, _ = _gaussians(1000, 5)
    m = _fit(x, y, steps=20, solver="minmax", cycle=0.1, clip_grad=1.0)
    assert m.info["solver"] == "minmax" and m.info["steps_done"] == 20
    for net in (m.f, m.g):
        assert all(float(w.min()) >= 0 for w in net.positive_weights())
    with pytest.raises(ConfigError, match="solver must be one of minmax, conjugate, got 'adam'"):
        DualConfig(solver="adam")


def test_refined_transport_matches_plain_map_for_gaussians() -> None:
    """With the Gaussian init, ∇g is the conjugate map of f: refining changes nothing."""
    x, y, _, _ = _gaussians(2000, 6)
    m = _fit(x, y, steps=1, lr=1e-9, val_fraction=0.0)
    assert torch.allclose(m.transport(x, refine=10), m.transport(x), atol=1e-3)


def test_stochastic_map_save_load_and_seeded_draws(tmp_path) -> None:
    """A map with one noise input and one condition: the caller passes the condition only;
    draws are reproducible from the generator and survive save/load; old files (no
    ``noise_dims`` entry) load as deterministic maps."""
    from otus.transport.icnn import ICNN

    g = ICNN(2, (8, 8), cond_dim=2, seed=0)
    with torch.no_grad():
        g.cond_lin.weight.normal_(generator=torch.Generator().manual_seed(1))  # u moves x
    sh, sc = torch.zeros(2), torch.ones(2)
    m = OTMap(g, ICNN(2, (8, 8), cond_dim=2), sh, sc, torch.zeros(1), torch.ones(1), {}, 1)
    assert m.n_conditions == 1
    x, c = torch.randn(50, 2), torch.randn(50, 1)

    def draw(mm: OTMap, seed: int) -> torch.Tensor:
        return mm.transport(x, c, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(m, 5), draw(m, 5)) and not torch.allclose(draw(m, 5), draw(m, 6))
    m2 = OTMap.load(m.save(tmp_path / "map.pt"))
    assert m2.noise_dims == 1 and torch.equal(draw(m, 5), draw(m2, 5))
    with pytest.raises(OtusError, match="needs 1 conditioning variables"):
        m.transport(x, torch.randn(50, 2))
    with pytest.raises(OtusError, match="a stochastic map has none"):
        m.transport(x, c, refine=2)
    state = torch.load(tmp_path / "map.pt", weights_only=True)
    del state["noise_dims"]
    state["cond_dim"] = 2
    torch.save(state, tmp_path / "old.pt")
    assert OTMap.load(tmp_path / "old.pt").noise_dims == 0
