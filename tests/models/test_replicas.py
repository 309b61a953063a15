"""Bootstrap ensembles: otus fit --replicas, otus unfold --replicas, and their evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import cli_fails, zee_events

from otus.cli import main
from otus.io.h5 import read_events, write_events
from otus.models.api import load_replicas
from otus.models.config import DataConfig
from otus.models.data import OtusDataModule
from otus.processes import ZEE


def _state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.ckpt", weights_only=True)["state_dict"]


def _same(a: Path, b: Path) -> bool:
    sa, sb = _state(a), _state(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_members_are_run_folders_with_their_own_seed_and_bootstrap(
    ensemble: tuple[Path, Path, Path],
) -> None:
    run, _, _ = ensemble
    for k in range(2):
        m = run / "replicas" / f"{k:03d}"
        for name in ("last.ckpt", "config.yaml", "provenance.json"):
            assert (m / name).is_file(), (m, name)
        cfg = yaml.safe_load((m / "config.yaml").read_text())
        assert cfg["seed"] == 3 + 1 + k and cfg["data"]["bootstrap"] == k
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["bootstrap"] is None
    a, b = run / "replicas" / "000", run / "replicas" / "001"
    assert not _same(a, b) and not _same(run, a)
    assert len(load_replicas(run)) == 2 and len(load_replicas(run, 1)) == 1


def test_bootstrap_statistics_are_reproducible_and_chunk_invariant(tmp_path: Path) -> None:
    data = write_events(tmp_path / "zee.h5", zee_events(3000, seed=1))

    def stats(seed: int, member: int | None, chunk: int = 1000) -> dict[str, torch.Tensor]:
        cfg = DataConfig(batch_size=256, chunk_size=chunk, bootstrap=member)
        return OtusDataModule(ZEE, data, cfg=cfg, seed=seed).fit_statistics("ptetaphi", ("p4",))

    a = stats(4, 0)
    b, c = stats(4, 0, chunk=700), stats(4, 0)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
        assert torch.equal(a[k], c[k])
    nominal = stats(4, None)
    for other in (stats(4, 1), stats(5, 0), nominal):
        assert not torch.equal(a["cz_mu"], other["cz_mu"])
    # A bootstrap resample moves the mean by about its standard error, not more.
    se = nominal["cz_sd"] / np.sqrt(2700)
    assert torch.all((a["cz_mu"] - nominal["cz_mu"]).abs() < 6 * se)


def test_resume_trains_missing_members_reproducibly_and_keeps_finished_ones(
    ensemble: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    run, data, _ = ensemble
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("replicas"))
    base = ["fit", "zee", "--data", str(data), "--out", str(copy), "--resume"]
    assert main([*base, "--replicas", "1"]) == 0
    # Same seed, same member: the same network as the original ensemble's member 0.
    assert _same(copy / "replicas" / "000", run / "replicas" / "000")
    before = _state(copy / "replicas" / "000")
    assert main([*base, "--replicas", "2"]) == 0
    after = _state(copy / "replicas" / "000")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert _same(copy / "replicas" / "001", run / "replicas" / "001")


def test_unfold_replicas_file(ensemble: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run, data, _ = ensemble
    src = read_events(data)
    n = int(src.x_pass.sum())

    def unfold(out: Path, seed: int) -> object:
        argv = ["unfold", str(run), "--input", str(data), "--out", str(out), "--replicas", "2"]
        assert main([*argv, "--seed", str(seed)]) == 0
        return read_events(out, "zee")

    ev, again, other = (unfold(tmp_path / f"{i}.h5", s) for i, s in enumerate((1, 1, 2)))
    assert len(ev) == 2 * n  # type: ignore[arg-type]
    r = ev.replica  # type: ignore[attr-defined]
    assert sorted(np.unique(r).tolist()) == [0, 1] and np.sum(r == 0) == n
    for k in range(2):
        np.testing.assert_array_equal(ev.x[r == k], src.x[src.x_pass])  # type: ignore[attr-defined]
    z, w = ev.z, ev.weight  # type: ignore[attr-defined]
    assert not np.array_equal(z[r == 0], z[r == 1])
    # Unit input weights × Poisson(1) counts: integers, mean 1, different per replica.
    assert np.all(w == np.round(w)) and abs(w.mean() - 1) < 0.1
    assert not np.array_equal(w[r == 0], w[r == 1])
    np.testing.assert_array_equal(z, again.z)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(w, again.weight)  # type: ignore[attr-defined]
    assert not np.array_equal(w, other.weight)  # type: ignore[attr-defined]

    # otus evaluate: replica 0 for the metrics, the replicas for the band and the coverage.
    out = tmp_path / "eval"
    argv = ["evaluate", "--truth", str(data), "--pred", str(tmp_path / "0.h5"), "--out", str(out)]
    assert main([*argv, "--no-auc"]) == 0
    rep = json.loads((out / "metrics.json").read_text())
    assert rep["replicas"] == 2 and rep["n_pred"] == n
    covs = [m["coverage"] for m in rep["observables"].values()]
    assert covs and all(0 <= c <= 1 for c in covs)
    assert "coverage" in (out / "metrics.md").read_text()
    assert (out / "plots" / "m_ee.png").is_file()


def test_unfold_with_too_few_members_fails_and_writes_nothing(
    ensemble: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, data, _ = ensemble
    out = tmp_path / "u.h5"
    base = ["unfold", str(run), "--input", str(data), "--out"]
    cli_fails(capsys, [*base, str(out), "--replicas", "3"], "holds 2 bootstrap replica(s), 3")
    assert not out.exists() and not list(tmp_path.iterdir())
    cli_fails(
        capsys,
        ["fit", "zee", "--data", str(data), "--out", str(tmp_path / "r"), "--replicas", "-1"],
        "--replicas must be >= 0",
    )


def test_unfolded_lhe_keeps_replicas_and_weights_and_showers(
    ensemble: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Unfolded events with replicas as LHE: every event once per replica, its replica index
    on an information line and its bootstrap weight as XWGTUP; pylhe reads the file and
    Pythia 8 showers its events."""
    import gzip

    import pylhe

    run, data, _ = ensemble
    h5, lhe = tmp_path / "u.h5", tmp_path / "u.lhe.gz"
    for out in (h5, lhe):
        argv = ["unfold", str(run), "--input", str(data), "--out", str(out), "--seed", "2"]
        assert main([*argv, "--replicas", "2"]) == 0
    ref = read_events(h5)
    assert ref.replica is not None
    text = gzip.open(lhe, "rt").read()
    reps = [int(line.split()[-1]) for line in text.splitlines() if line.startswith("#otus replica")]
    np.testing.assert_array_equal(reps, ref.replica)
    events = list(pylhe.LHEFile.fromfile(str(lhe)).events)
    assert len(events) == len(ref)
    np.testing.assert_allclose([e.eventinfo.weight for e in events], ref.weight, rtol=1e-12)
    p8 = pytest.importorskip("pythia8mc")
    py = p8.Pythia("", False)
    for cmd in (
        f"Beams:LHEF = {lhe}",
        "Beams:frameType = 4",
        "HadronLevel:all = off",
        "PartonLevel:MPI = off",
        "Print:quiet = on",
    ):
        py.readString(cmd)
    assert py.init()
    showered = sum(bool(py.next()) for _ in range(10))
    assert showered == 10
