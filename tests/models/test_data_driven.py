"""Data-driven training: the efficiency from the data yield (``--luminosity``) and fine-tuning
a trained simulator on data in a control region (``--init RUN --region EXPR``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import cli_fails, random_zee_z

from otus.cli import main
from otus.io.h5 import Events, write_events
from otus.models.api import load_run
from otus.models.config import config_from_dict
from otus.models.coords import loss_features
from otus.models.module import OtusModule
from otus.physics import fourvec as fv
from otus.physics.observables import observables
from otus.physics.selection import acceptance
from otus.processes import ZEE

_fail = cli_fails


def _zee_z(n: int, seed: int) -> torch.Tensor:
    return random_zee_z(n, seed, eta_max=2.4)


def test_efficiency_mean_and_shape_are_learnt_from_the_yield_alone() -> None:
    """A toy with a known ε(z): the "data" are the decoder's own reconstructions, kept with
    probability 0.9 where the e− has |η| < 1.2 and 0.2 elsewhere. Without pass flags, the
    yield term fixes the mean of ε and the sliced-Wasserstein match of the ε-weighted D(z) to
    the data its shape: ε(z) is recovered (only ε trains; the decoder is fixed)."""
    torch.manual_seed(0)
    d = {"net": {"hidden": 16}, "loss": {"n_projections": 32}, "data": {"pass_rate": 0.5}}
    m = OtusModule(config_from_dict(d, process="zee").to_dict())
    z = _zee_z(10000, seed=0)
    eta = fv.eta(fv.objects(z)[:, 0])
    truth = torch.where(eta.abs() < 1.2, 0.9, 0.2)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        x = m.simulate(z, generator=g)
    keep = (torch.rand(len(z), generator=g) < truth) & acceptance(ZEE, x)
    rate = float(keep.float().mean())
    d["data"]["pass_rate"] = rate
    state = m.state_dict()
    m = OtusModule(config_from_dict(d, process="zee").to_dict())
    m.load_state_dict(state)  # the same decoder; ε restarts at its initial weights
    x_data = x[keep]
    for level, rows in (("x", x_data), ("z", z)):
        f = loss_features(ZEE, level, rows, m.cfg.loss.features)
        getattr(m, f"f{level}_mu").copy_(f.mean(0))
        getattr(m, f"f{level}_sd").copy_(f.std(0))
    assert m.efficiency is not None and m.learns_yield
    opt = torch.optim.Adam(m.efficiency.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(5)
    ones = torch.ones(1024)
    for _ in range(300):
        i = torch.randint(0, len(z), (1024,), generator=gen)
        j = torch.randint(0, len(x_data), (1024,), generator=gen)
        x_sim, acc, w_sim, _, logit = m._simulated_batch(z[i], ones, gen, 2, shape_grad=True)
        assert logit is not None
        loss = m._sw(
            m.features("x", x_sim[acc]), m.features("x", x_data[j]), w_sim[acc], ones, 32, gen
        ) + m._yield_term(logit, acc, ones)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        eps = torch.sigmoid(m.efficiency_logit(z))
        _, sim_pass = m.simulate_with_pass(z, generator=torch.Generator().manual_seed(7))
    assert float(eps[eta.abs() < 1.0].mean()) > 0.7
    assert float(eps[eta.abs() > 1.5].mean()) < 0.35
    assert abs(float(sim_pass.float().mean()) / rate - 1) < 0.05


def test_yield_term_is_zero_at_the_target_and_grows_away_from_it() -> None:
    m = OtusModule(config_from_dict({"data": {"pass_rate": 0.3}}, process="zee").to_dict())
    acc, w = torch.ones(4, dtype=torch.bool), torch.ones(4)
    at = m._yield_term(torch.logit(torch.full((4,), 0.3)), acc, w)
    near = m._yield_term(torch.logit(torch.full((4,), 0.35)), acc, w)
    far = m._yield_term(torch.logit(torch.full((4,), 0.6)), acc, w)
    assert abs(float(at)) < 1e-6 < float(near) < float(far)


def _unpaired_files(tmp_path: Path, n: int = 1500) -> tuple[Path, Path, int]:
    from conftest import zee_events

    ev = zee_events(n, seed=4)
    zf = write_events(tmp_path / "z.h5", Events(ZEE, z=ev.z))  # parton level only: no flags
    xf = write_events(tmp_path / "x.h5", Events(ZEE, x=ev.x, x_pass=ev.x_pass))
    assert ev.x_pass is not None
    return zf, xf, int(ev.x_pass.sum())


def test_fit_with_luminosity_keeps_the_efficiency_model(tmp_path: Path, tiny_config: Path) -> None:
    zf, xf, n_pass = _unpaired_files(tmp_path)
    run = tmp_path / "run"
    argv = ["fit", "zee", "--data", str(xf), "--z-data", str(zf), "--config", str(tiny_config)]
    # 1500 z events of 2 pb stand for L = 750 pb^-1 of data.
    extra = ["--luminosity", "750", "--cross-section", "2", "--max-epochs", "1"]
    assert main([*argv, *extra, "--out", str(run)]) == 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["net"]["efficiency"] is True
    assert cfg["data"]["pass_rate"] == pytest.approx(n_pass / 1500)
    sur = load_run(run)
    assert sur.module.efficiency is not None and sur.module.learns_yield
    metrics = (run / "metrics.csv").read_text().splitlines()[0]
    assert "train/efficiency_yield" in metrics


def test_bad_luminosity_options_are_one_line_errors(
    tmp_path: Path, tiny_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zf, xf, _ = _unpaired_files(tmp_path, 1200)
    base = ["fit", "zee", "--data", str(xf), "--z-data", str(zf), "--config", str(tiny_config)]
    _fail(capsys, [*base, "--luminosity", "100", "--out", str(tmp_path / "a")], "cross_section")
    # More passing events than L·σ = 10 events predicts.
    _fail(
        capsys,
        [*base, "--luminosity", "10", "--cross-section", "1", "--out", str(tmp_path / "b")],
        "must be in (0, 1]",
    )
    _fail(capsys, [*base, "--luminosity", "-1", "--out", str(tmp_path / "c")], "data.luminosity")
    assert not any((tmp_path / k).exists() for k in "abc")


def _shifted(data: Path, out: Path, scale: float) -> Path:
    """The detector-level events of ``data`` with every momentum scaled: "data" from a
    detector whose energy scale differs from the simulation's."""
    from otus.io.h5 import read_events

    ev = read_events(data, ZEE)
    assert ev.x is not None
    return write_events(out, Events(ZEE, x=ev.x * scale, x_pass=ev.x_pass))


def _sim_mass(run: Path, z: np.ndarray, region: str | None = None) -> float:
    x, ok = load_run(run).simulate(z, seed=11, with_pass=True)
    m = observables(ZEE, x[ok].astype(np.float64), "x")["m_ee"]
    if region is not None:
        m = m[(m > 80) & (m < 100)]
    return float(np.median(m))


def test_fine_tuning_moves_the_simulator_toward_the_data(
    tmp_path: Path, zee_run: tuple[Path, Path]
) -> None:
    """Toy with a known answer: the data are the MC's detector level with a 4 % higher
    energy scale. Fine-tuning on the Z-peak region moves the simulated peak up, toward the
    data; fine-tuning on data identical to the MC moves it much less."""
    from otus.io.h5 import read_events

    run, mc = zee_run
    z = read_events(mc, ZEE).z
    assert z is not None
    region = "80 < m_ee < 100"
    # A few steps on 3000 events: a larger learning rate than the fine-tuning default (a
    # --config over the initial run's configuration).
    fast = tmp_path / "fast.yaml"
    fast.write_text("optim: {lr: 0.003}\n")
    moved = {}
    for name, scale in (("same", 1.0), ("shifted", 1.04)):
        data = _shifted(mc, tmp_path / f"{name}.h5", scale)
        out = tmp_path / f"ft_{name}"
        argv = ["fit", "zee", "--init", str(run), "--data", str(data), "--z-data", str(mc)]
        argv += ["--region", region, "--config", str(fast), "--max-epochs", "6"]
        assert main([*argv, "--out", str(out)]) == 0
        cfg = yaml.safe_load((out / "config.yaml").read_text())
        assert cfg["data"]["region"] == region and cfg["loss"]["paired"] == 0.0
        assert cfg["optim"]["lr"] == 0.003 and cfg["net"]["hidden"] == 16  # the run's net
        moved[name] = _sim_mass(out, z[:2000], region) - _sim_mass(run, z[:2000], region)
    print(moved)
    # The data's peak lies 4 % (≈ 3.6 GeV) above the MC's.
    assert moved["shifted"] > 1.0
    assert moved["shifted"] > abs(moved["same"]) + 0.8
    # A fine-tuned run is a run: it simulates and unfolds through the CLI.
    sim, unf = tmp_path / "sim.h5", tmp_path / "unf.h5"
    ft = str(tmp_path / "ft_shifted")
    assert main(["simulate", ft, "--input", str(mc), "--out", str(sim), "--seed", "1"]) == 0
    data = str(tmp_path / "shifted.h5")
    assert main(["unfold", ft, "--input", data, "--out", str(unf), "--seed", "1"]) == 0
    assert read_events(unf, ZEE).z is not None and read_events(sim, ZEE).x is not None


def test_bad_fine_tuning_options_are_one_line_errors(
    tmp_path: Path, zee_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run, mc = zee_run
    base = ["fit", "zee", "--data", str(mc), "--z-data", str(mc)]
    _fail(
        capsys, [*base, "--init", str(run), "--out", str(tmp_path / "a")], "--init needs --region"
    )
    _fail(
        capsys,
        [
            "fit",
            "zee",
            "--data",
            str(mc),
            "--init",
            str(run),
            "--region",
            "m_ee > 80",
            "--out",
            str(tmp_path / "b"),
        ],
        "--init needs --z-data",
    )
    _fail(
        capsys,
        [*base, "--init", str(run), "--region", "m_ee > 5000", "--out", str(tmp_path / "c")],
        "no passing events inside region",
    )
    _fail(
        capsys,
        [*base, "--init", str(run), "--region", "m_mumu > 80", "--out", str(tmp_path / "d")],
        "unknown observable",
    )
    # A run of another process.
    other = tmp_path / "ttbar_run"
    other.mkdir()
    (other / "last.ckpt").write_bytes(b"")
    (other / "config.yaml").write_text(yaml.safe_dump({"process": "ttbar"}))
    _fail(
        capsys,
        [*base, "--init", str(other), "--region", "m_ee > 80", "--out", str(tmp_path / "e")],
        "is a ttbar run",
    )
    _fail(
        capsys,
        [*base, "--init", str(tmp_path), "--region", "m_ee > 80", "--out", str(tmp_path / "f")],
        "not a trained run folder",
    )
    assert not any((tmp_path / k).exists() for k in "abcdf")


def test_a_yield_replaces_the_z_samples_pass_flags_for_the_efficiency() -> None:
    """Fine-tuning on data with a luminosity: the MC's pass flags describe the MC detector, so
    ε learns from the data's yield (and the τ shape) instead of the flags."""
    z = _zee_z(600, seed=2)
    flags = torch.ones(600)
    g = torch.Generator().manual_seed(0)
    for rate, terms in ((None, {"efficiency"}), (0.4, {"efficiency_yield"})):
        d = {"net": {"hidden": 16}, "loss": {"n_projections": 8}, "data": {"pass_rate": rate}}
        m = OtusModule(config_from_dict(d, process="zee").to_dict())
        x = m.simulate(z[:300], generator=g).detach()
        out = m.losses(
            z, torch.ones(600), x, torch.ones(300), generator=g, n_projections=8, z_pass=flags
        )
        assert {"efficiency", "efficiency_yield"} & set(out) == terms
