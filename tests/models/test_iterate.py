"""Prior-independent unfolding (otus.models.iterate) on a Gaussian toy with a known answer:
z ~ N(0, 1) in the training sample, x = z + N(0, 1), so the training posterior is
N(x/2, 1/2); the data's z ~ N(0.5, 1.2), whose plain unfolding is biased toward the prior."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from otus.models.iterate import IterationReport, iterate_unfolding

N = 6000


def _sample(x: np.ndarray, seed: int, r: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    xr = np.repeat(x, r, axis=0)
    return xr / 2 + g.normal(0, np.sqrt(0.5), xr.shape)


@pytest.fixture(scope="module")
def toy() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    z_data = rng.normal(0.5, 1.2, (N, 1))
    return {
        "z0": rng.normal(0, 1, (N, 1)),
        "z_data": z_data,
        "x": z_data + rng.normal(0, 1, (N, 1)),
    }


def _unfold(toy: dict[str, np.ndarray], iterations: int, seed: int = 3) -> np.ndarray:
    rep = IterationReport()
    u = iterate_unfolding(
        _sample,
        toy["x"],
        np.ones(N),
        toy["z0"],
        np.ones(N),
        lambda z: z,
        iterations=iterations,
        seed=seed,
        report=rep,
    )
    assert len(rep.max_log_ratio) == iterations
    return u


def test_iterations_remove_most_of_the_prior_bias(toy: dict[str, np.ndarray]) -> None:
    truth = toy["z_data"].mean()
    plain = _unfold(toy, 0)
    iterated = _unfold(toy, 3)
    assert plain.shape == iterated.shape == (N, 1)
    bias0, bias3 = abs(plain.mean() - truth), abs(iterated.mean() - truth)
    # The plain answer sits about halfway between the prior's mean and the truth's (0.25
    # against 0.5: the posterior mean is x/2); three iterations recover most of the rest.
    assert bias0 > 0.18
    assert bias3 < 0.5 * bias0
    # ... and the width moves toward the truth's too (plain ≈ 1.05, truth 1.2).
    assert abs(iterated.std() - toy["z_data"].std()) < abs(plain.std() - toy["z_data"].std())


def test_iterations_are_seeded(toy: dict[str, np.ndarray]) -> None:
    a, b = _unfold(toy, 1, seed=5), _unfold(toy, 1, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, _unfold(toy, 1, seed=6))


def test_zero_iterations_is_the_plain_encoder(toy: dict[str, np.ndarray]) -> None:
    u = iterate_unfolding(
        _sample, toy["x"], np.ones(N), toy["z0"], np.ones(N), lambda z: z,
        iterations=0, seed=9, repeats=2,
    )  # fmt: skip
    np.testing.assert_array_equal(u, _sample(toy["x"], 9, 2))


# ------------------------------------------------------------------ otus unfold --iterations
@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny zee run with 2 bootstrap members, and its (synthetic, paired) data file."""
    from conftest import TINY, zee_events

    from otus.cli import main
    from otus.io.h5 import write_events

    d = tmp_path_factory.mktemp("iter")
    data = write_events(d / "zee.h5", zee_events(3000, seed=2))
    cfg = d / "tiny.yaml"
    cfg.write_text(TINY.replace("max_epochs: 2", "max_epochs: 1"))
    run = d / "run"
    argv = ["fit", "zee", "--data", str(data), "--config", str(cfg), "--out", str(run)]
    assert main([*argv, "--replicas", "2"]) == 0
    return run, data


def test_unfold_iterations_cli(ensemble_run: tuple[Path, Path], tmp_path: Path) -> None:
    from otus.cli import main
    from otus.io.h5 import read_events

    run, data = ensemble_run
    n_pass = int(read_events(data).x_pass.sum())  # type: ignore[union-attr]
    outs = []
    for name in ("a.h5", "b.h5"):
        out = tmp_path / name
        argv = ["unfold", str(run), "--input", str(data), "--out", str(out)]
        assert main([*argv, "--iterations", "1", "--seed", "4"]) == 0
        outs.append(read_events(out))
    assert len(outs[0]) == n_pass
    np.testing.assert_array_equal(outs[0].z, outs[1].z)  # seeded
    plain = tmp_path / "plain.h5"
    assert main(["unfold", str(run), "--input", str(data), "--out", str(plain), "--seed", "4"]) == 0
    assert not np.array_equal(read_events(plain).z, outs[0].z)  # the draws were reweighted
    rep = tmp_path / "rep.h5"
    argv = ["unfold", str(run), "--input", str(data), "--out", str(rep)]
    assert main([*argv, "--iterations", "1", "--replicas", "2"]) == 0
    ev = read_events(rep)
    assert ev.replica is not None and np.bincount(ev.replica).tolist() == [n_pass, n_pass]
    w = ev.weight.reshape(2, n_pass)  # type: ignore[union-attr]
    assert not np.array_equal(w[0], w[1])  # each replica its own bootstrap of the input


def test_unfold_iterations_needs_the_training_prior(
    ensemble_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from conftest import cli_fails

    from otus.cli import main

    run, data = ensemble_run
    moved = tmp_path / "run"
    shutil.copytree(run, moved)
    (moved / "provenance.json").write_text('{"z_data": "/nonexistent/z.h5"}')
    out = tmp_path / "u.h5"
    argv = ["unfold", str(moved), "--input", str(data), "--out", str(out), "--iterations", "1"]
    cli_fails(capsys, argv, "--prior")
    assert not out.exists()
    assert main([*argv, "--prior", str(data)]) == 0 and out.is_file()
    argv = ["unfold", str(run), "--input", str(data), "--out", str(tmp_path / "v.h5")]
    cli_fails(capsys, [*argv, "--prior", str(data)], "--iterations")
    cli_fails(capsys, [*argv, "--iterations", "-1"], "--iterations")
