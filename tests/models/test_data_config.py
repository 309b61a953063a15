from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import zee_events

from otus.errors import ConfigError, InputFileError
from otus.io.h5 import Events, write_events
from otus.models.config import config_from_dict, load_config
from otus.models.coords import Coordinates
from otus.models.data import OtusDataModule
from otus.processes import ZEE

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["zee", "zee_fast", "ttbar"])
def test_experiment_configs_load(name: str) -> None:
    process = name.split("_")[0]
    cfg = load_config(ROOT / "experiments" / f"{name}.yaml", process=process)
    assert cfg.process == process
    assert config_from_dict(cfg.to_dict()) == cfg
    assert (cfg.loss.paired > 0) == (name == "zee_fast")


def test_a_config_file_replaces_only_the_keys_it_sets(tmp_path: Path) -> None:
    """A partial config is the package default with some keys replaced, not the dataclass
    defaults (which are not a trained recipe)."""
    partial = tmp_path / "p.yaml"
    partial.write_text("net: {hidden: 64}\nloss: {paired: 0}\n")
    cfg, default = load_config(partial, process="zee"), load_config(None, process="zee")
    assert cfg.net.hidden == 64 and cfg.loss.paired == 0
    assert cfg.net.depth == default.net.depth and cfg.data == default.data
    assert (
        cfg.loss.features
        == default.loss.features
        != config_from_dict({}, process="zee").loss.features
    )


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'width'"):
        config_from_dict({"net": {"width": 3}}, process="zee")
    with pytest.raises(ConfigError, match="expected an integer"):
        config_from_dict({"net": {"hidden": 1.5}}, process="zee")
    with pytest.raises(ConfigError, match=r"loss\.features"):
        config_from_dict({"loss": {"features": ["mass"]}}, process="zee")
    with pytest.raises(ConfigError, match="val_fraction"):
        config_from_dict({"data": {"val_fraction": 0.9}}, process="zee")
    bad = tmp_path / "b.yaml"
    bad.write_text("net: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, process="zee")
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "nope.yaml", process="zee")


def test_unpaired_streams_and_training_split_statistics(tmp_path: Path) -> None:
    ev = zee_events(3000, seed=2)
    zf = write_events(tmp_path / "z.h5", Events(ZEE, z=ev.z[:1500]))
    xf = write_events(tmp_path / "x.h5", Events(ZEE, x=ev.x, x_pass=ev.x_pass))
    cfg = config_from_dict({"data": {"batch_size": 200, "chunk_size": 700}}, process="zee")
    dm = OtusDataModule(ZEE, xf, zf, cfg=cfg.data, seed=0)
    assert dm.ranges("z", "train") == (0, 1350) and dm.ranges("x", "val") == (2700, 3000)
    st = dm.fit_statistics("ptetaphi", ("p4",))
    c = Coordinates(ZEE, "z", "ptetaphi").encode(torch.from_numpy(ev.z[:1350]).double())
    np.testing.assert_allclose(st["cz_mu"].numpy(), c.mean(0).numpy(), rtol=1e-5, atol=1e-5)
    xt = ev.x[:2700][ev.x_pass[:2700]]
    np.testing.assert_allclose(st["fx_mu"].numpy(), xt.mean(0), rtol=1e-4, atol=1e-3)
    batches = list(dm.train_dataloader())
    n_x_pass = int(ev.x_pass[:2700].sum())
    assert len(batches) == n_x_pass // 200  # the longer stream (x) read once
    for z, wz, zp, x, wx in batches:
        assert z.shape == (200, 8) and x.shape == (200, 8) and len(wz) == len(wx) == 200
        assert torch.isfinite(x).all()
        assert torch.isnan(zp).all()  # the z file has no detector level: flags unknown
    # shuffled differently in the next epoch, same content overall
    again = list(dm.train_dataloader())
    assert not torch.equal(batches[0][3], again[0][3])
    # A paired file carries each z event's pass flag, aligned with its row.
    pf = write_events(tmp_path / "p.h5", ev)
    dmp = OtusDataModule(ZEE, pf, cfg=cfg.data, seed=0)
    assert dmp.z_has_flags and not dm.z_has_flags
    lookup = {
        tuple(r): bool(f) for r, f in zip(ev.z[:2700].tolist(), ev.x_pass[:2700], strict=True)
    }
    for z, _, zp, _, _ in list(dmp.train_dataloader())[:3]:
        got = [bool(f) for f in zp.tolist()]
        assert got == [lookup[tuple(r)] for r in z.tolist()]
    val = list(dm.val_dataloader())
    assert sum(len(b[0]) for b in val) == 150  # the shorter validation stream (z) bounds it


def test_data_module_bad_files(tmp_path: Path) -> None:
    ev = zee_events(100)
    zonly = write_events(tmp_path / "z.h5", Events(ZEE, z=ev.z))
    with pytest.raises(InputFileError, match="holds no detector-level x"):
        OtusDataModule(ZEE, zonly)
    tiny = write_events(tmp_path / "t.h5", ev.subset(slice(0, 2)))
    with pytest.raises(InputFileError, match="too few to train"):
        OtusDataModule(ZEE, tiny)


def test_z_passing_only(tmp_path: Path) -> None:
    ev = zee_events(2000, seed=3)
    f = write_events(tmp_path / "p.h5", ev)
    cfg = config_from_dict(
        {"net": {"efficiency": False}, "data": {"batch_size": 100, "z_passing_only": True}},
        process="zee",
    )
    dm = OtusDataModule(ZEE, f, cfg=cfg.data)
    passing = {tuple(r) for r in ev.z[ev.x_pass]}
    zs = torch.cat([b[0] for b in dm.train_dataloader()])
    assert all(tuple(r) in passing for r in zs.numpy())
    zonly = write_events(tmp_path / "z.h5", Events(ZEE, z=ev.z))
    with pytest.raises(ConfigError, match="needs a paired file"):
        OtusDataModule(ZEE, f, zonly, cfg=cfg.data)
