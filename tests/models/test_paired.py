"""The supervised paired term loss.paired: energy scores of (z, x) pairs (otus/models/module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import zee_events

from otus.errors import ConfigError
from otus.io.h5 import Events, write_events
from otus.models.config import config_from_dict
from otus.models.data import OtusDataModule
from otus.models.module import OtusModule
from otus.processes import ZEE


def _module(paired: float = 1.0) -> OtusModule:
    cfg = config_from_dict(
        {
            "net": {"hidden": 16, "noise_dim": 2},
            "loss": {"n_projections": 8, "paired": paired, "paired_unfold": paired},
        },
        process="zee",
    )
    return OtusModule(cfg.to_dict())


def test_paired_batches_carry_each_z_events_own_x(tmp_path: Path) -> None:
    ev = zee_events(2000, seed=5)
    f = write_events(tmp_path / "p.h5", ev)
    cfg = config_from_dict({"data": {"batch_size": 200, "chunk_size": 700}}, process="zee")
    dm = OtusDataModule(ZEE, f, cfg=cfg.data, seed=0, paired=True)
    partner = {
        tuple(r): (bool(p), x) for r, p, x in zip(ev.z.tolist(), ev.x_pass, ev.x, strict=True)
    }
    batches = list(dm.train_dataloader())
    assert batches and all(len(b) == 6 for b in batches)
    for z, _, zp, _, _, zx in batches[:3]:
        for r, flag, row in zip(z.tolist(), zp.tolist(), zx.numpy(), strict=True):
            ok, x = partner[tuple(r)]
            assert bool(flag) == ok
            if ok:
                np.testing.assert_array_equal(row, x)
    # unpaired by default: five tensors, no partner rows
    assert all(len(b) == 5 for b in OtusDataModule(ZEE, f, cfg=cfg.data).train_dataloader())
    zonly = write_events(tmp_path / "z.h5", Events(ZEE, z=ev.z))
    with pytest.raises(ConfigError, match="needs a paired file"):
        OtusDataModule(ZEE, f, zonly, cfg=cfg.data, paired=True)


def test_energy_score_trains_both_maps_and_prefers_the_true_partner() -> None:
    ev = zee_events(400, seed=6)
    p = torch.from_numpy(ev.x_pass)
    z, zx = torch.from_numpy(ev.z), torch.from_numpy(np.nan_to_num(ev.x))
    x = zx[p]
    m = _module()
    gen = torch.Generator().manual_seed(0)
    t = m.losses(
        z,
        torch.ones(len(z)),
        x,
        torch.ones(len(x)),
        generator=gen,
        n_projections=8,
        z_pass=p.float(),
        zx=zx,
    )
    for term, net in (("paired", m.decoder), ("paired_unfold", m.encoder)):
        assert torch.isfinite(t[term])
        m.zero_grad()
        t[term].backward(retain_graph=True)
        assert any(q.grad is not None and float(q.grad.abs().sum()) > 0 for q in net.parameters())
    # A wrong pairing (x of other events) scores worse than the true one.
    with torch.no_grad():
        good = m.losses(
            z,
            torch.ones(len(z)),
            x,
            torch.ones(len(x)),
            n_projections=8,
            generator=torch.Generator().manual_seed(1),
            z_pass=p.float(),
            zx=zx,
        )
        perm = torch.roll(torch.arange(len(z)), 7)
        bad = m.losses(
            z,
            torch.ones(len(z)),
            x,
            torch.ones(len(x)),
            n_projections=8,
            generator=torch.Generator().manual_seed(1),
            z_pass=(p & p[perm]).float(),
            zx=zx[perm],
        )
    assert float(bad["paired"]) > 2 * float(good["paired"])
    assert float(bad["paired_unfold"]) > 2 * float(good["paired_unfold"])
    # weight 0 (the default): no paired term in the loss
    m0 = _module(0.0)
    t0 = m0.losses(
        z,
        torch.ones(len(z)),
        x,
        torch.ones(len(x)),
        generator=gen,
        n_projections=8,
        z_pass=p.float(),
        zx=zx,
    )
    assert "paired" not in t0 and "paired_unfold" not in t0


def test_paired_config_checks_and_unpaired_fallback(tmp_path: Path, tiny_config: Path) -> None:
    from otus.cli import main

    with pytest.raises(ConfigError, match=r"loss\.paired "):
        config_from_dict({"loss": {"paired": -1}}, process="zee")
    with pytest.raises(ConfigError, match=r"loss\.paired_unfold"):
        config_from_dict({"loss": {"paired_unfold": -0.5}}, process="zee")
    ev = zee_events(1500, seed=7)
    zf = write_events(tmp_path / "z.h5", Events(ZEE, z=ev.z))
    xf = write_events(tmp_path / "x.h5", ev)
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["loss"]["paired"] = 1.0
    cf = tmp_path / "c.yaml"
    cf.write_text(yaml.safe_dump(cfg))
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
                str(cf),
                "--out",
                str(run),
                "--max-epochs",
                "1",
            ]
        )
        == 0
    )
    assert yaml.safe_load((run / "config.yaml").read_text())["loss"]["paired"] == 0.0
    run2 = tmp_path / "run2"
    assert (
        main(
            [
                "fit",
                "zee",
                "--data",
                str(xf),
                "--config",
                str(cf),
                "--out",
                str(run2),
                "--max-epochs",
                "1",
            ]
        )
        == 0
    )
    got = np.genfromtxt(run2 / "metrics.csv", delimiter=",", names=True)
    assert np.isfinite(got["trainpaired_epoch"]).any()
