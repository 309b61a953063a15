from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from otus.errors import ConfigError
from otus.models.config import config_from_dict
from otus.models.coords import Coordinates, loss_features, minkowski_penalty
from otus.models.module import OtusModule
from otus.physics import fourvec as fv
from otus.processes import TTBAR, ZEE


def _module(process: str, **net: object) -> OtusModule:
    cfg = config_from_dict(
        {"net": {"hidden": 16, "depth": 2, **net}, "loss": {"n_projections": 8}}, process=process
    )
    m = OtusModule(cfg.to_dict())
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # leave the identity start so every path is exercised
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return m


def _ttbar_rows(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = np.random.default_rng(seed)
    pt = g.uniform(25, 120, (n, 6))
    eta = g.uniform(-2, 2, (n, 6))
    phi = g.uniform(-np.pi, np.pi, (n, 6))
    z = fv.from_ptetaphim(pt, eta, phi, np.array(TTBAR.z_masses))
    xm = np.array([0.0, 0.0, 8.0, 6.0, 5.0, 4.0])
    eta_x = eta.copy()
    eta_x[:, 1] = 0.0  # MET is transverse
    x = fv.from_ptetaphim(pt, eta_x, phi, xm)
    return (
        torch.tensor(z.reshape(n, 24), dtype=torch.float32),
        torch.tensor(x.reshape(n, 24), dtype=torch.float32),
    )


def _zee_rows(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = np.random.default_rng(1)
    z = fv.from_ptetaphim(
        g.uniform(20, 60, (n, 2)),
        g.uniform(-2, 2, (n, 2)),
        g.uniform(-3, 3, (n, 2)),
        ZEE.z_masses[0],
    ).reshape(n, 8)
    z = torch.tensor(z, dtype=torch.float32)
    return z, z * 1.01


@pytest.mark.parametrize(
    "process,coords",
    [("zee", "ptetaphi"), ("zee", "cartesian"), ("ttbar", "ptetaphi"), ("ttbar", "cartesian")],
)
def test_every_parameter_gets_a_gradient(process: str, coords: str) -> None:
    m = _module(process, coords=coords)
    z, x = _zee_rows(256) if process == "zee" else _ttbar_rows(256)
    w = torch.ones(len(z))
    flags = (torch.arange(len(z)) % 2).float()  # pass flags train the efficiency ε(z)
    terms = m.losses(
        z, w, x, w, generator=torch.Generator().manual_seed(1), n_projections=8, z_pass=flags
    )
    assert {"data", "prior", "sim", "anchor", "efficiency", "loss"} <= set(terms)
    terms["loss"].backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_decoder_outputs_are_on_mass_shell() -> None:
    for process in ("zee", "ttbar"):
        m = _module(process)
        z, x = _zee_rows(500) if process == "zee" else _ttbar_rows(500)
        with torch.no_grad():
            out = m.simulate(z.double().float(), generator=torch.Generator().manual_seed(2))
            unf = m.unfold(x, generator=torch.Generator().manual_seed(2))
        proc = ZEE if process == "zee" else TTBAR
        for rows, masses in ((out, proc.x_masses), (unf, proc.z_masses)):
            p = fv.objects(rows.double())
            p3 = fv.p3(p)
            for i, mass in enumerate(masses):
                if mass != mass:  # free mass (jets): physical, E >= |p|
                    assert bool((p[:, i, 3] >= p3[:, i] * (1 - 1e-6)).all())
                    continue
                e_shell = torch.sqrt(p3[:, i] ** 2 + mass**2)
                torch.testing.assert_close(p[:, i, 3], e_shell, rtol=1e-6, atol=1e-4)


def test_met_output_is_transverse_and_identity_start() -> None:
    cfg = config_from_dict({"net": {"hidden": 8}}, process="ttbar")
    m = OtusModule(cfg.to_dict())  # fresh: zero output layer, so D(z) = identity bias
    z, _ = _ttbar_rows(50)
    with torch.no_grad():
        out = fv.objects(m.simulate(z, generator=torch.Generator().manual_seed(0)))
    assert torch.all(out[:, 1, 2] == 0)
    zs = fv.objects(z)
    torch.testing.assert_close(fv.pt(out[:, 0]), fv.pt(zs[:, 0]), rtol=1e-4, atol=1e-4)
    # jets are the pT-ordered quarks (b, bbar, q, qbar) at the start
    qpt = torch.sort(fv.pt(zs[:, 2:]), dim=1, descending=True).values
    torch.testing.assert_close(fv.pt(out[:, 2:]), qpt, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("level", ["z", "x"])
def test_coordinates_round_trip(level: str) -> None:
    z, x = _ttbar_rows(100)
    rows = (z if level == "z" else x).double()
    for kind in ("ptetaphi", "cartesian"):
        c = Coordinates(TTBAR, level, kind)
        back = c.decode(c.encode(rows))
        torch.testing.assert_close(back, rows, rtol=1e-6, atol=1e-6)


def test_a_degenerate_reconstruction_keeps_every_gradient_finite() -> None:
    # A decoder output far below any threshold (log pT → −16, as a diverging ttbar
    # reconstruction gave: px ~ 1e-26 GeV, whose square underflows in float32) must not turn
    # the step's gradient into NaN although the acceptance drops the row.
    c = Coordinates(TTBAR, "x")
    _, x = _ttbar_rows(8)
    u = c.encode(x).clone()
    for i in range(0, c.dim, 3):
        u[3, i] = -60.0  # every object of row 3
    u.requires_grad_(True)
    p4 = c.decode(u)
    assert float(fv.pt(fv.objects(p4.detach())[3]).min()) >= 0.9e-3  # pT ≥ 1 MeV
    keep = torch.ones(len(x), dtype=torch.bool)
    keep[3] = False  # the acceptance drops it
    feats = loss_features(TTBAR, "x", p4, ("p4", "pteta", "masses"))
    feats[keep].square().sum().backward()
    assert u.grad is not None and bool(torch.isfinite(u.grad).all())


def test_minkowski_penalty_and_features() -> None:
    good = torch.tensor([[1.0, 2.0, 2.0, 3.5]])
    bad = torch.tensor([[1.0, 2.0, 2.0, 1.0]])
    assert float(minkowski_penalty(good)) == 0.0 and float(minkowski_penalty(bad)) > 0
    z, _ = _zee_rows(10)
    f = loss_features(ZEE, "z", z.double(), ("masses",))
    np.testing.assert_allclose(
        f[:, 0].numpy(),
        fv.invariant_mass(fv.objects(z.double())[:, 0], fv.objects(z.double())[:, 1]).numpy(),
        rtol=1e-6,
    )


def test_noise_depends_on_generator() -> None:
    m = _module("zee")
    z, _ = _zee_rows(100)
    with torch.no_grad():
        a = m.simulate(z, generator=torch.Generator().manual_seed(5))
        b = m.simulate(z, generator=torch.Generator().manual_seed(5))
        c = m.simulate(z, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_axis_projections_include_every_feature_axis() -> None:
    cfg = config_from_dict(
        {"net": {"hidden": 8}, "loss": {"axis_projections": True}}, process="zee"
    )
    m = OtusModule(cfg.to_dict())
    theta = m._projections(5, 3, torch.Generator().manual_seed(0), torch.zeros(1))
    assert theta.shape == (5, 8)
    torch.testing.assert_close(theta[:, :5], torch.eye(5))
    z, x = _zee_rows(64)
    w = torch.ones(64)
    terms = m.losses(z, w, x, w, generator=torch.Generator().manual_seed(1), n_projections=4)
    assert torch.isfinite(terms["loss"]) and float(terms["sim"].detach()) > 0


def test_axis_weight_adds_the_marginal_term() -> None:
    z, x = _zee_rows(64)
    w = torch.ones(64)
    vals = []
    for aw in (0.0, 2.0):
        cfg = config_from_dict({"net": {"hidden": 8}, "loss": {"axis_weight": aw}}, process="zee")
        m = OtusModule(cfg.to_dict())
        t = m.losses(z, w, x, w, generator=torch.Generator().manual_seed(1), n_projections=4)
        vals.append(float(t["sim"].detach()))
    assert vals[1] > vals[0] > 0


def test_mass_scale_scales_only_the_mass_features() -> None:
    out = []
    for ms in (1.0, 3.0):
        cfg = config_from_dict({"net": {"hidden": 8}, "loss": {"mass_scale": ms}}, process="ttbar")
        out.append(OtusModule(cfg.to_dict()).features("x", _ttbar_rows(20)[1]))
    torch.testing.assert_close(out[1][:, :-10], out[0][:, :-10])
    torch.testing.assert_close(out[1][:, -10:], 3.0 * out[0][:, -10:])


def test_recoil_feature_is_zero_for_back_to_back_pairs_and_floored_in_statistics(
    tmp_path: object,
) -> None:
    from otus.io.h5 import Events, write_events
    from otus.models.coords import RECOIL_SD_MIN, recoil_columns
    from otus.models.data import OtusDataModule

    n = 200
    g = np.random.default_rng(4)
    pt, eta, phi = g.uniform(20, 60, n), g.uniform(-2, 2, (n, 2)), g.uniform(-3, 3, n)
    e1 = fv.from_ptetaphim(pt, eta[:, 0], phi, ZEE.z_masses[0])
    e2 = fv.from_ptetaphim(pt, eta[:, 1], phi + np.pi, ZEE.z_masses[0])
    z = np.concatenate([e1, e2], 1)
    feats = ("p4", "recoil", "aco", "masses")
    f = loss_features(ZEE, "z", torch.tensor(z), feats)
    rc, al, at = recoil_columns(ZEE, "z", feats)
    assert (rc, al, at) == (-4, -3, -2) and f.shape[1] == 12
    assert recoil_columns(ZEE, "z", ("p4", "recoil", "masses")) == [-2]
    # 0 up to the 0.01 GeV smoothing of pT at zero (log1p(0.01) ≈ 0.00995)
    torch.testing.assert_close(f[:, rc], torch.zeros(n, dtype=f.dtype), atol=0.0101, rtol=0)
    torch.testing.assert_close(f[:, [al, at]], torch.zeros(n, 2, dtype=f.dtype), atol=1e-5, rtol=0)
    kick = z.copy()
    kick[:, 0] += 10.0  # 10 GeV of px on e-: recoil log(1 + ~10)
    fk = loss_features(ZEE, "x", torch.tensor(kick), feats)
    assert bool((fk[:, rc] > 2.0).all())
    # a_L and a_T are the recoil's components on an orthonormal pair of axes
    a = torch.sinh(fk[:, [al, at]])
    torch.testing.assert_close(
        (a**2).sum(-1), torch.full((n,), 100.0, dtype=a.dtype), rtol=1e-4, atol=1e-3
    )
    with pytest.raises(ConfigError, match="two-object"):
        loss_features(TTBAR, "x", torch.ones(3, TTBAR.dx), ("p4", "aco"))
    path = write_events(
        tmp_path / "p.h5",
        Events(
            ZEE,
            z=z.astype("f4"),
            x=kick.astype("f4"),  # type: ignore[operator]
            x_pass=np.ones(n, bool),
        ),
    )
    cfg = config_from_dict({"loss": {"features": list(feats)}}, process="zee")
    st = OtusDataModule(ZEE, path, cfg=cfg.data).fit_statistics("ptetaphi", feats)
    for c in (rc, al, at):  # zero spread at LO: floored, not ÷0
        assert float(st["fz_sd"][c]) == RECOIL_SD_MIN


@pytest.mark.parametrize(
    "process,identity_bias,act",
    [
        ("zee", True, "silu"),
        ("zee", False, "silu"),
        ("ttbar", True, "silu"),
        ("ttbar", False, "silu"),
        ("zee", True, "relu"),
    ],
)
def test_inference_fast_path_equals_the_autograd_path(
    process: str, identity_bias: bool, act: str
) -> None:
    m = _module(process, identity_bias=identity_bias, depth=3, decoder_activation=act)
    assert isinstance(
        m.decoder.net.blocks[0].f[1], torch.nn.ReLU if act == "relu" else torch.nn.SiLU
    )
    z, x = _zee_rows(300) if process == "zee" else _ttbar_rows(300)
    g = torch.Generator().manual_seed(0)
    for t in (m.decoder, m.encoder):  # non-trivial standardisation, folded on the fast path
        d_in, d_out = t.c_in.dim, t.c_out.dim
        t.set_standardisation(
            torch.randn(d_in, generator=g),
            torch.rand(d_in, generator=g) + 0.5,
            torch.randn(d_out, generator=g),
            torch.rand(d_out, generator=g) + 0.5,
        )
    for t, rows in ((m.decoder, z), (m.encoder, x)):
        ref = t(rows, generator=torch.Generator().manual_seed(4)).detach()  # grad enabled
        with torch.inference_mode():
            fast = t(rows, generator=torch.Generator().manual_seed(4))
            tiled = t._forward_fast(rows, generator=torch.Generator().manual_seed(4), tile=64)
        assert fast.is_contiguous()
        torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(tiled, fast)  # row tiles smaller than the batch: same rows


def test_feature_major_coordinates_match_and_asinh_is_accurate() -> None:
    z, x = _ttbar_rows(200)
    for level, rows in (("z", z), ("x", x)):
        c = Coordinates(TTBAR, level)
        enc = c.encode_t(rows.t().contiguous())
        torch.testing.assert_close(enc.t(), c.encode(rows), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(c.decode_t(enc).t(), c.decode(enc.t()), rtol=1e-5, atol=1e-4)
    v = torch.tensor([-1e30, -1e5, -3.0, -1e-9, 0.0, 1e-20, 0.5, 7.0, 1e5, 1e30])
    out = torch.empty_like(v)
    from otus.models.coords import _asinh

    torch.testing.assert_close(_asinh(v, out=out)[1:-1], torch.asinh(v)[1:-1], rtol=1e-6, atol=0)
    assert torch.isfinite(out).all() and out[0] < -40 and out[-1] > 40


def test_decoder_may_be_smaller_than_the_encoder() -> None:
    old = OtusModule(config_from_dict({"net": {"hidden": 16, "depth": 3}}, process="zee").to_dict())
    assert old.decoder.net.inp.out_features == 16 and len(old.decoder.net.blocks) == 2
    cfg = config_from_dict(
        {"net": {"hidden": 16, "depth": 3, "decoder_hidden": 8, "decoder_depth": 1}}, process="zee"
    )
    m = OtusModule(cfg.to_dict())
    assert m.decoder.net.inp.out_features == 8 and len(m.decoder.net.blocks) == 0
    assert m.encoder.net.inp.out_features == 16 and len(m.encoder.net.blocks) == 2
    with pytest.raises(ConfigError, match="decoder_hidden"):
        config_from_dict({"net": {"decoder_hidden": -1}}, process="zee")


def test_a_cards_transverse_masses_join_the_mass_block() -> None:
    """mt(e, MET) of a W → eν card is a loss feature (after the invariant masses), equal to
    the card's observable, so an unpaired loss sees the lepton-MET correlation."""
    from pathlib import Path

    from otus.models.coords import n_masses
    from otus.physics.observables import observables
    from otus.processes import get_process

    wenu = get_process(str(Path(__file__).parents[2] / "examples" / "cards" / "wenu.yaml"))
    assert n_masses(wenu, "x") == n_masses(wenu, "z") == 1 and n_masses(ZEE, "x") == 1
    g = np.random.default_rng(3)
    e = fv.from_ptetaphim(g.uniform(20, 50, 200), g.uniform(-2, 2, 200), g.uniform(-3, 3, 200), 0)
    met = fv.from_ptetaphim(g.uniform(5, 60, 200), 0.0, g.uniform(-3, 3, 200), 0)
    met[:, 2], met[:, 3] = 0.0, fv.pt(met)
    x = np.concatenate([e, met], 1)
    f = loss_features(wenu, "x", torch.tensor(x), ("pteta", "masses"))
    np.testing.assert_allclose(f[:, -1].numpy(), observables(wenu, x, "x")["mt_emet"], rtol=1e-9)


def test_peak_feature_flattens_the_line_with_its_median_and_half_iqr(tmp_path: Path) -> None:
    """``peaks``: the masses once more, centred on the sample's median, scaled by its half
    interquartile range and mapped through arctan, so a Breit-Wigner line comes out flat."""
    from conftest import TINY, zee_events

    from otus.io.h5 import write_events
    from otus.models.config import load_config
    from otus.models.coords import recoil_columns
    from otus.models.data import OtusDataModule
    from otus.models.module import OtusModule

    feats = ("p4", "recoil", "aco", "masses", "peaks")
    assert recoil_columns(ZEE, "z", feats) == [-5, -4, -3]  # the peak block is last
    ev = zee_events(4000, seed=3)
    path = write_events(tmp_path / "zee.h5", ev)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(
        TINY.replace("loss: {", "loss: {features: [p4, recoil, aco, masses, peaks], ")
    )
    cfg = load_config(str(cfg_path), process="zee")
    dm = OtusDataModule(ZEE, path, None, cfg=cfg.data, seed=0)
    st = dm.fit_statistics(cfg.net.coords, cfg.loss.features)
    m = fv.mass(fv.objects(ev.z).sum(1))
    assert float(st["fz_mu"][-1]) == pytest.approx(float(np.median(m)), abs=0.3)
    iqr = np.subtract(*np.quantile(m, [0.75, 0.25]))
    assert float(st["fz_sd"][-1]) == pytest.approx(iqr / 2, rel=0.1)  # the line's Γ/2
    module = OtusModule(cfg.to_dict())
    module.set_statistics(st)
    f = module.features("z", torch.tensor(ev.z))
    peak = f[:, -1] / cfg.loss.mass_scale
    assert float(peak.abs().max()) < np.pi / 2
    # Flat: each quarter of the line's range holds about a quarter of the events.
    counts = np.histogram(peak.numpy(), bins=4, range=(-np.pi / 2, np.pi / 2))[0] / len(m)
    assert np.all(np.abs(counts - 0.25) < 0.08), counts
