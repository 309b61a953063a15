"""The efficiency model ε(z) and acceptance-conditioned simulation (otus/models/efficiency)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import random_zee_z

from otus.errors import ConfigError
from otus.models.api import Surrogate, load_run
from otus.models.config import config_from_dict
from otus.models.efficiency import draw_accepted
from otus.models.module import OtusModule
from otus.physics import fourvec as fv
from otus.physics.selection import acceptance
from otus.processes import ZEE


def _zee(n: int, seed: int = 0) -> torch.Tensor:
    return random_zee_z(n, seed)


def _module(**net: object) -> OtusModule:
    cfg = config_from_dict(
        {"net": {"hidden": 16, **net}, "loss": {"n_projections": 8}}, process="zee"
    )
    return OtusModule(cfg.to_dict())


def test_efficiency_learns_an_eta_dependent_pass_probability() -> None:
    torch.manual_seed(0)
    m = _module()
    z = _zee(4000)
    eta = fv.eta(fv.objects(z)[:, 0])
    truth = torch.where(eta.abs() < 1.5, 0.9, 0.2)  # a two-region efficiency
    flags = (torch.rand(len(z), generator=torch.Generator().manual_seed(1)) < truth).float()
    assert m.efficiency is not None
    opt = torch.optim.Adam(m.efficiency.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(m.efficiency_logit(z), flags)
        loss.backward()
        opt.step()
    with torch.no_grad():
        eps = torch.sigmoid(m.efficiency_logit(z))
    central, forward = eta.abs() < 1.2, eta.abs() > 1.8
    assert abs(float(eps[central].mean()) - 0.9) < 0.05
    assert abs(float(eps[forward].mean()) - 0.2) < 0.05
    # Simulated pass flags follow ε(z) × acceptance, not the acceptance alone.
    with torch.no_grad():
        x, x_pass = m.simulate_with_pass(z, generator=torch.Generator().manual_seed(2))
    acc_only = acceptance(ZEE, m.simulate(z, generator=torch.Generator().manual_seed(2)))
    assert float(x_pass[forward].float().mean()) < 0.3 < float(acc_only[forward].float().mean())
    assert not bool((x_pass & ~acceptance(ZEE, x)).any())  # passing rows lie inside it


def test_redraws_raise_the_accepted_fraction_and_keep_gradients() -> None:
    m = _module(efficiency=False)
    with torch.no_grad():  # a noisy decoder, so redraws change the outcome
        m.decoder.net.out.weight.normal_(0, 0.5)
    z = _zee(2000)
    g = torch.Generator().manual_seed(3)
    x0, a0 = draw_accepted(ZEE, lambda t: m.simulate(t, generator=g), z, None, 0)
    g = torch.Generator().manual_seed(3)
    x3, a3 = draw_accepted(ZEE, lambda t: m.simulate(t, generator=g), z, None, 3)
    assert float(a3.float().mean()) > float(a0.float().mean()) + 0.02
    assert torch.equal(x3[a0], x0[a0])  # accepted rows are never redrawn
    x3[a3].sum().backward()
    assert m.decoder.net.out.weight.grad is not None
    # Rows outside ``want`` are left as drawn.
    want = torch.zeros(len(z), dtype=torch.bool)
    g = torch.Generator().manual_seed(3)
    xw, aw = draw_accepted(ZEE, lambda t: m.simulate(t, generator=g), z, want, 3)
    assert torch.equal(aw, a0) and torch.equal(xw.detach(), x0.detach())


def test_prior_target_is_the_passing_z_and_flags_are_weighted() -> None:
    m = _module()  # fresh: the encoder is the identity bias, E(x) = x
    z = torch.cat([_zee(128, seed=1), _zee(128, seed=2) * 4.0])  # failing events: harder
    flags = torch.cat([torch.ones(128), torch.zeros(128)])
    x = z[:128].clone()  # the detector level of the passing events only
    w = torch.ones(256)

    def prior(fl: torch.Tensor | None) -> float:
        t = m.losses(
            z,
            w,
            x,
            torch.ones(128),
            generator=torch.Generator().manual_seed(1),
            n_projections=8,
            z_pass=fl,
        )
        if fl is not None:
            assert float(t["pass_rate_true"]) == pytest.approx(0.5)
            assert float(t["efficiency"].detach()) == pytest.approx(np.log(2.0), abs=0.1)
        return float(t["prior"].detach())

    assert prior(flags) < 1e-4 < 0.1 < prior(None)


def test_efficiency_and_z_passing_only_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="z_passing_only"):
        config_from_dict({"data": {"z_passing_only": True}}, process="zee")
    cfg = config_from_dict(
        {"net": {"efficiency": False}, "data": {"z_passing_only": True}}, process="zee"
    )
    assert OtusModule(cfg.to_dict()).efficiency is None


def test_surrogate_with_pass_is_seeded(tmp_path: object) -> None:
    m = _module().eval()
    sur = Surrogate(ZEE, m, tmp_path)  # type: ignore[arg-type]
    z = _zee(500).numpy()
    x1, p1 = sur.simulate(z, seed=4, with_pass=True)
    x2, p2 = sur.simulate(z, seed=4, with_pass=True)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(p1, p2)
    assert p1.dtype == bool and 0 < p1.mean() < 1


def test_balance_pt_puts_unfolded_events_at_zero_recoil() -> None:
    z = _zee(300)
    x = z * torch.tensor([1.05, 0.97, 1.0, 1.0] * 2)  # some recoil at detector level
    for bal in (False, True):
        m = _module(balance_pt=bal)
        with torch.no_grad():
            u = fv.objects(m.unfold(x, generator=torch.Generator().manual_seed(0)))
        total = fv.pt(u.sum(1))
        assert bool((total < 1e-3).all()) == bal


def _crack_fit(fourier: int, steps: int = 400) -> tuple[float, float]:
    """ε(z) trained on a toy detector that keeps 90 % of events but 27 % where the e-
    falls in a crack 1.37 < |η| < 1.52; (mean ε in the crack, outside it)."""
    torch.manual_seed(0)
    m = _module(efficiency_fourier=fourier)
    z = _zee(20000)
    eta = fv.eta(fv.objects(z)[:, 0]).abs()
    crack = (eta > 1.37) & (eta < 1.52)
    truth = torch.where(crack, 0.27, 0.9)
    flags = (torch.rand(len(z), generator=torch.Generator().manual_seed(1)) < truth).float()
    assert m.efficiency is not None
    opt = torch.optim.Adam(m.efficiency.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(2)
    for _ in range(steps):
        i = torch.randint(0, len(z), (512,), generator=gen)
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            m.efficiency_logit(z[i]), flags[i]
        )
        loss.backward()
        opt.step()
    with torch.no_grad():
        eps = torch.sigmoid(m.efficiency_logit(z))
    return float(eps[crack].mean()), float(eps[~crack].mean())


def test_fourier_eta_features_resolve_a_narrow_eta_crack() -> None:
    # the same steps: the plain MLP smooths the 0.15-wide crack away, the η features do not
    plain, fourier = _crack_fit(0), _crack_fit(3)
    assert fourier[0] < 0.45 < plain[0]
    assert abs(fourier[1] - 0.9) < 0.03


def test_fourier_features_embed_only_the_eta_coordinates() -> None:
    m = _module(efficiency_fourier=3)
    assert m.efficiency is not None
    assert m.efficiency.columns == m.decoder.c_in.eta_index == [1, 4]  # (log pT, η, φ) × 2
    assert m.efficiency.embed(torch.zeros(5, 6)).shape == (5, 6 + 2 * 3 * 2)
    # fixed by the option, not stored: runs saved without it load as before
    assert not any("freq" in k for k in m.state_dict())


@pytest.mark.parametrize("fourier", [0, 3])
def test_efficiency_logit_inference_path_matches_the_training_path(fourier: int) -> None:
    m = _module(efficiency_fourier=fourier)
    z = _zee(300)
    with torch.no_grad():
        fast = m.efficiency_logit(z)
    with torch.enable_grad():
        ref = m.efficiency_logit(z).detach()
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)


def test_fit_without_pass_flags_trains_without_efficiency(
    tmp_path: Path, tiny_config: Path
) -> None:
    from conftest import zee_events

    from otus.cli import main
    from otus.io.h5 import Events, write_events

    ev = zee_events(1500, seed=4)
    zf = write_events(tmp_path / "z.h5", Events(ZEE, z=ev.z))  # parton level only: no flags
    xf = write_events(tmp_path / "x.h5", ev)
    run = tmp_path / "run"
    assert (
        main(
            [
                "fit",
                "zee",
                "--data",
                str(xf),
                "--z-data",
                str(zf),
                "--config",
                str(tiny_config),
                "--out",
                str(run),
                "--max-epochs",
                "1",
            ]
        )
        == 0
    )
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["net"]["efficiency"] is False
    sur = load_run(run)
    assert sur.module.efficiency is None
    x, x_pass = sur.simulate(ev.z[:200], seed=1, with_pass=True)
    np.testing.assert_array_equal(x_pass, acceptance(ZEE, x))  # the acceptance alone


def test_a_run_with_fourier_eta_features_saves_loads_and_simulates(
    zee_file: Path, tmp_path: Path
) -> None:
    from otus.cli import main

    cfg = tmp_path / "f.yaml"
    cfg.write_text(
        "net: {hidden: 16, depth: 1, noise_dim: 2, efficiency_fourier: 3}\n"
        "trainer: {max_epochs: 1}\ndata: {batch_size: 512}\n"
    )
    run = tmp_path / "run"
    argv = ["fit", "zee", "--data", str(zee_file), "--config", str(cfg), "--out", str(run)]
    assert main(argv) == 0
    sur = load_run(run)
    assert sur.module.efficiency is not None and sur.module.efficiency.fourier == 3
    z = _zee(400).numpy()
    x1, p1 = sur.simulate(z, seed=1, with_pass=True)
    x2, p2 = load_run(run).simulate(z, seed=1, with_pass=True)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(x1, x2)
