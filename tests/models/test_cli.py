from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
import yaml
from conftest import cli_fails, zee_events

from otus.cli import main
from otus.errors import InputFileError, OtusError
from otus.io.h5 import Events, read_events, write_events
from otus.models.api import load_run
from otus.processes import TTBAR

_fail = cli_fails


def test_fit_writes_a_complete_run(zee_run: tuple[Path, Path]) -> None:
    run, _ = zee_run
    for name in ("last.ckpt", "config.yaml", "provenance.json", "metrics.csv"):
        assert (run / name).is_file(), name
    assert list(run.glob("epoch*.ckpt"))
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["process"] == "zee" and cfg["seed"] == 3 and cfg["net"]["hidden"] == 16
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    for col in (
        "train/data_step",
        "train/prior_step",
        "train/sim_step",
        "train/anchor_step",
        "val/sw_sim",
        "val/sw_unfold",
        "train/anchor_weight",
    ):
        assert col in header, col
    # The standardisation travelled in the checkpoint (not the identity defaults).
    ck = torch.load(run / "last.ckpt", weights_only=True)
    assert not torch.all(ck["state_dict"]["decoder.sd_in"] == 1)


def test_simulate_and_unfold_files_read_back(zee_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = zee_run
    sim, unf = tmp_path / "sim.h5", tmp_path / "unf.h5"
    assert (
        main(
            [
                "simulate",
                str(run),
                "--input",
                str(data),
                "--out",
                str(sim),
                "--repeats",
                "3",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    ev = read_events(sim, "zee")
    src = read_events(data)
    assert len(ev) == 3 * len(src)
    np.testing.assert_array_equal(ev.z[::3], src.z)
    np.testing.assert_allclose(ev.weight.sum(), src.weight.sum())
    # Pass flags come from the learnt efficiency × acceptance: a fraction, neither 0 nor 1
    # (the sample's true pass rate is 0.53; this model trained for a few steps only).
    assert 0.2 < ev.x_pass.mean() < 0.95
    assert np.all(np.isnan(ev.x[~ev.x_pass])) and np.all(np.isfinite(ev.x[ev.x_pass]))
    assert main(["unfold", str(run), "--input", str(data), "--out", str(unf)]) == 0
    back = read_events(unf, "zee")
    assert len(back) == int(src.x_pass.sum())
    np.testing.assert_array_equal(back.x, src.x[src.x_pass])


def test_seeds_make_stochastic_but_reproducible_samples(zee_run: tuple[Path, Path]) -> None:
    run, data = zee_run
    sur = load_run(run, process="zee")
    z = read_events(data).z[:200]
    a, b, c = (sur.simulate(z, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    r = sur.simulate(z, seed=1, repeats=2)
    assert r.shape == (400, 8) and not np.array_equal(r[0::2], r[1::2])
    x = read_events(data).x
    u = sur.unfold(x[np.all(np.isfinite(x), 1)][:100], seed=4)
    assert u.shape == (100, 8) and np.all(np.isfinite(u))


def test_save_load_gives_same_outputs(zee_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = zee_run
    z = read_events(data).z[:100]
    first = load_run(run).simulate(z, seed=9)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "last.ckpt").write_bytes((run / "last.ckpt").read_bytes())
    np.testing.assert_array_equal(load_run(copy).simulate(z, seed=9), first)


def test_resume_continues(zee_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = zee_run
    copy = tmp_path / "run"
    copy.mkdir()
    for f in run.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    assert (
        main(
            ["fit", "zee", "--data", str(data), "--out", str(copy), "--resume", "--max-epochs", "3"]
        )
        == 0
    )
    epochs = {
        int(line.split(",")[0]) for line in (copy / "metrics.csv").read_text().splitlines()[1:]
    }
    assert max(epochs) == 2
    assert yaml.safe_load((copy / "config.yaml").read_text())["trainer"]["max_epochs"] == 3


def _ttbar_file(path: Path, n: int = 50) -> Path:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 50, (n, 24)).astype(np.float32)
    return write_events(path, Events(TTBAR, z=z, x=z.copy()))


def test_bad_inputs_give_one_line_and_no_output(
    zee_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, data = zee_run
    out = tmp_path / "o.h5"
    tt = _ttbar_file(tmp_path / "tt.h5")
    _fail(
        capsys,
        ["simulate", str(run), "--input", str(tt), "--out", str(out)],
        "holds ttbar events, expected zee",
    )
    # wrong dimension: a zee-labelled file with 24 columns
    with h5py.File(tmp_path / "dim.h5", "w") as f:
        f.attrs["process"] = "zee"
        f["z"] = np.zeros((10, 24), np.float32)
    _fail(
        capsys,
        ["simulate", str(run), "--input", str(tmp_path / "dim.h5"), "--out", str(out)],
        "expected [N, 8]",
    )
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.attrs["process"] = "zee"
        f["z"] = np.zeros((0, 8), np.float32)
    _fail(
        capsys,
        ["simulate", str(run), "--input", str(tmp_path / "empty.h5"), "--out", str(out)],
        "holds no events",
    )
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f.attrs["process"] = "zee"
        z = zee_events(20).z
        z[3, 2] = np.nan
        f["z"] = z
    _fail(
        capsys,
        ["simulate", str(run), "--input", str(tmp_path / "nan.h5"), "--out", str(out)],
        "NaN",
    )
    _fail(
        capsys,
        ["unfold", str(run), "--input", str(tmp_path / "nan.h5"), "--out", str(out)],
        "no detector-level x",
    )
    _fail(
        capsys,
        ["simulate", str(tmp_path), "--input", str(data), "--out", str(out)],
        "no such checkpoint",
    )
    _fail(
        capsys,
        ["simulate", str(run), "--input", str(data), "--out", str(tmp_path / "o.csv")],
        "unsupported output format",
    )
    _fail(
        capsys,
        ["fit", "ttbar", "--data", str(data), "--out", str(tmp_path / "r")],
        "holds zee events, expected ttbar",
    )
    _fail(capsys, ["fit", "zee", "--data", str(data), "--out", str(run)], "already holds")
    assert not out.exists() and not (tmp_path / "r" / "last.ckpt").exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_checkpoint_of_another_process_is_refused(zee_run: tuple[Path, Path]) -> None:
    run, _ = zee_run
    with pytest.raises(InputFileError, match="is a zee model, not ttbar"):
        load_run(run, process="ttbar")
    sur = load_run(run)
    with pytest.raises(OtusError, match=r"expected \[N, 8\]"):
        sur.simulate(np.zeros((3, 24), np.float32), seed=0)
    with pytest.raises(OtusError, match="NaN"):
        sur.simulate(np.full((3, 8), np.nan, np.float32), seed=0)


def test_bad_config(
    tmp_path: Path, zee_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, data = zee_run
    cfg = tmp_path / "c.yaml"
    cfg.write_text("net: {hiden: 3}\n")
    _fail(
        capsys,
        ["fit", "zee", "--data", str(data), "--config", str(cfg), "--out", str(tmp_path / "r")],
        "unknown key 'hiden'",
    )
    cfg.write_text("process: ttbar\n")
    _fail(
        capsys,
        ["fit", "zee", "--data", str(data), "--config", str(cfg), "--out", str(tmp_path / "r")],
        "is for process 'ttbar'",
    )
    cfg.write_text("optim: {lr: fast}\n")
    _fail(
        capsys,
        ["fit", "zee", "--data", str(data), "--config", str(cfg), "--out", str(tmp_path / "r")],
        "expected a number",
    )


def test_failed_fit_leaves_no_run_folder(
    tmp_path: Path, tiny_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "run"

    def argv(data: Path) -> list[str]:
        return ["fit", "zee", "--data", str(data), "--config", str(tiny_config), "--out", str(out)]

    bad = tmp_path / "bad.h5"
    bad.write_text("not an HDF5 file\n")
    _fail(capsys, argv(bad), "not a readable HDF5 event file")
    assert not (tmp_path / "new").exists()
    # A valid header with a NaN in the events: found while reading, after the fit began.
    nan = write_events(tmp_path / "nan.h5", zee_events(300, seed=1))
    with h5py.File(nan, "r+") as f:
        f["z"][5, 1] = np.nan
    _fail(capsys, argv(nan), "NaN")
    assert not (tmp_path / "new").exists()
    # A folder that was there before the command stays, with what it held.
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine\n")
    _fail(capsys, argv(nan), "NaN")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_fit_prints_no_lightning_advertisement(
    zee_run: tuple[Path, Path], tiny_config: Path, tmp_path: Path
) -> None:
    # A fresh interpreter, as on the command line: Lightning is imported by the fit itself.
    _, data = zee_run
    out = tmp_path / "run"
    argv = ["fit", "zee", "--data", str(data), "--config", str(tiny_config), "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "otus", *argv, "--max-epochs", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "last.ckpt").is_file()
    text = proc.stdout + proc.stderr
    for ad in ("Tip:", "litlogger", "litmodels", "LitLogger"):
        assert ad not in text, text


def _poison(monkeypatch: pytest.MonkeyPatch, when: Callable[[Any], bool], term: str) -> None:
    """Make the loss term ``term`` (and so the loss) NaN in the training steps ``when``
    (a predicate of the module) selects."""
    from otus.models.module import OtusModule

    orig = OtusModule.losses

    def poisoned(self: OtusModule, *a: object, **k: object) -> dict[str, torch.Tensor]:
        out = orig(self, *a, **k)
        if self.training and when(self):
            out[term] = out[term] * float("nan")
            if term != "loss":
                out["loss"] = out["loss"] + out[term]
        return out

    monkeypatch.setattr(OtusModule, "losses", poisoned)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(
    zee_run: tuple[Path, Path],
    tiny_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, data = zee_run
    _poison(monkeypatch, lambda m: m.current_epoch >= 1, "loss")
    run = tmp_path / "run"
    line = _fail(
        capsys,
        ["fit", "zee", "--data", str(data), "--config", str(tiny_config), "--out", str(run)],
        "the loss became nan at epoch 1",
    )
    assert "last good checkpoint" in line
    ck = torch.load(run / "last.ckpt", weights_only=True)
    assert ck["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ck["state_dict"].values())


def test_a_rare_non_finite_step_is_skipped_and_training_goes_on(
    zee_run: tuple[Path, Path],
    tiny_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, data = zee_run
    _poison(monkeypatch, lambda m: m.global_step == 3, "sim")
    run = tmp_path / "run"
    argv = ["fit", "zee", "--data", str(data), "--config", str(tiny_config), "--out", str(run)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "the loss became nan (sim, loss) at epoch 0, step 3; that step is skipped" in err
    ck = torch.load(run / "last.ckpt", weights_only=True)
    assert ck["epoch"] == 1  # both epochs ran
    assert all(torch.isfinite(v).all() for v in ck["state_dict"].values())
    rows = (run / "metrics.csv").read_text().splitlines()
    col = rows[0].split(",").index("train/skipped_steps")
    assert [float(r.split(",")[col]) for r in rows[1:] if r.split(",")[col]] == [1.0, 1.0]


def test_last_checkpoint_every_epoch_with_periodic_every_second(
    zee_run: tuple[Path, Path], tiny_config: Path, tmp_path: Path
) -> None:
    _, data = zee_run
    cfg = tmp_path / "c.yaml"
    cfg.write_text(tiny_config.read_text().replace("max_epochs: 2", "max_epochs: 1"))
    assert (
        main(
            ["fit", "zee", "--data", str(data), "--config", str(cfg), "--out", str(tmp_path / "r")]
        )
        == 0
    )
    assert (tmp_path / "r" / "last.ckpt").is_file()
    assert not list((tmp_path / "r").glob("epoch*.ckpt"))
    assert torch.load(tmp_path / "r" / "last.ckpt", weights_only=True)["epoch"] == 0


def test_lhe_and_delphes_formats(zee_run: tuple[Path, Path], tmp_path: Path) -> None:
    from otus.io.delphes import collections_from_x, write_delphes
    from otus.io.formats import read_input
    from otus.io.lhe import write_lhe
    from otus.processes import ZEE

    run, _ = zee_run
    ev = zee_events(300, seed=8)
    lhe = write_lhe(tmp_path / "in.lhe.gz", ZEE, ev.z, ev.weight)
    root = write_delphes(tmp_path / "in.root", collections_from_x(ZEE, ev.x, ev.x_pass), ev.weight)
    assert (
        main(["simulate", str(run), "--input", str(lhe), "--out", str(tmp_path / "sim.root")]) == 0
    )
    sim = read_input(tmp_path / "sim.root", "zee")
    assert len(sim) == 300 and sim.x_pass.mean() > 0.5
    assert (
        main(
            [
                "unfold",
                str(run),
                "--input",
                str(root),
                "--out",
                str(tmp_path / "unf.lhe.gz"),
                "--repeats",
                "2",
            ]
        )
        == 0
    )
    unf = read_input(tmp_path / "unf.lhe.gz", "zee")
    # Every event passing the card's selection in the file, twice (synthetic x rows need
    # not all pass it).
    n_pass = int(read_input(root, "zee").x_pass.sum())
    assert len(unf) == 2 * n_pass and np.all(np.isfinite(unf.z))
    # A NanoAOD file of the same detector-level events unfolds to the same events.
    from otus.io.nanoaod import write_nanoaod

    nano = write_nanoaod(
        tmp_path / "nano.root", collections_from_x(ZEE, ev.x, ev.x_pass), ev.weight
    )
    outs = []
    for name, inp in (("delphes", root), ("nanoaod", nano)):
        out = tmp_path / f"unf_{name}.h5"
        assert main(["unfold", str(run), "--input", str(inp), "--out", str(out)]) == 0
        outs.append(read_events(out, "zee"))
    for k in ("z", "x", "weight"):
        np.testing.assert_array_equal(getattr(outs[0], k), getattr(outs[1], k))


def test_plain_features_need_a_physics_process(
    zee_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from otus.io.h5 import write_features

    run, _ = zee_run
    plain = write_features(tmp_path / "g.h5", np.zeros((10, 8)), [f"c{i}" for i in range(8)])
    out = tmp_path / "o.h5"
    for cmd in ("simulate", "unfold"):
        _fail(capsys, [cmd, str(run), "--input", str(plain), "--out", str(out)], "physics process")
    assert not out.exists()
