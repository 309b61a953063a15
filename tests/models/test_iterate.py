"""Prior-independent unfolding (otus.models.iterate) on a Gaussian toy with a known answer:
z ~ N(0, 1) in the training sample, the detector x = z + N(0, 1) (passing when x > -2.5), an
encoder that samples the training posterior N(x/2, 1/2); the data's z ~ N(0.5, 1.2), whose
plain unfolding is pulled toward the training spectrum."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from otus.models.iterate import IterationReport, iterate_unfolding

N = 6000


def _unfolder(x: np.ndarray, seed: int, r: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    xr = np.repeat(x, r, axis=0)
    return xr / 2 + g.normal(0, np.sqrt(0.5), xr.shape)


def _detector(z: np.ndarray, seed: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    x = np.repeat(z, r, axis=0) + g.normal(0, 1, (len(z) * r, 1))
    return x, x[:, 0] > -2.5


@pytest.fixture(scope="module")
def toy() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    z = rng.normal(0.5, 1.2, (3 * N, 1))
    x = z + rng.normal(0, 1, z.shape)
    ok = x[:, 0] > -2.5
    return {"z_data": z[ok][:N], "x": x[ok][:N]}


def _unfold(
    toy: dict[str, np.ndarray], iterations: int, seed: int = 3, acceleration: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    rep = IterationReport()
    z, w = iterate_unfolding(
        _unfolder,
        _detector,
        toy["x"],
        np.ones(N),
        lambda x: x,
        iterations=iterations,
        seed=seed,
        report=rep,
        acceleration=acceleration,
    )
    assert len(rep.max_log_ratio) == iterations
    return z[:, 0], w


def test_iterations_remove_most_of_the_prior_bias(toy: dict[str, np.ndarray]) -> None:
    truth = toy["z_data"][:, 0]
    z0, w0 = _unfold(toy, 0)
    z4, w4 = _unfold(toy, 4)
    np.testing.assert_array_equal(z0, z4)  # the same draws, new weights
    assert np.allclose(w0, 1.0) and w4.sum() == pytest.approx(N) and w4.std() > 0.05
    bias0 = abs(z0.mean() - truth.mean())
    bias4 = abs(np.average(z4, weights=w4) - truth.mean())
    # The plain answer sits about halfway between the training spectrum's mean (0) and the
    # truth's (≈ 0.5): the posterior mean is x/2. Four iterations recover most of the rest.
    assert bias0 > 0.18
    assert bias4 < 0.5 * bias0
    # ... and the width moves toward the truth's (plain ≈ 1.05, truth ≈ 1.2).
    sd4 = np.sqrt(np.average((z4 - np.average(z4, weights=w4)) ** 2, weights=w4))
    assert abs(sd4 - truth.std()) < abs(z0.std() - truth.std())


def test_acceleration_moves_further_per_iteration(toy: dict[str, np.ndarray]) -> None:
    """Two accelerated iterations (exponent 2) remove more of the prior bias than two plain
    EM ones, about as much as four plain ones."""
    truth = toy["z_data"][:, 0].mean()

    def bias(iterations: int, acceleration: float) -> float:
        z, w = _unfold(toy, iterations, acceleration=acceleration)
        return abs(float(np.average(z, weights=w)) - truth)

    plain2, plain4, fast2 = bias(2, 1.0), bias(4, 1.0), bias(2, 2.0)
    assert fast2 < 0.8 * plain2
    assert abs(fast2 - plain4) < 0.5 * (plain2 - plain4)


def test_iterations_are_seeded(toy: dict[str, np.ndarray]) -> None:
    a, b = _unfold(toy, 1, seed=5), _unfold(toy, 1, seed=5)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], _unfold(toy, 1, seed=6)[1])


def test_zero_iterations_is_the_plain_encoder(toy: dict[str, np.ndarray]) -> None:
    z, w = iterate_unfolding(
        _unfolder, _detector, toy["x"], np.full(N, 2.0), lambda x: x,
        iterations=0, seed=9, repeats=2,
    )  # fmt: skip
    np.testing.assert_array_equal(z, _unfolder(toy["x"], 9, 2))
    np.testing.assert_array_equal(w, np.ones(2 * N))  # w / repeats


# ------------------------------------------------------------------ otus unfold --iterations
def test_unfold_iterations_cli(ensemble: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from otus.cli import main
    from otus.io.h5 import read_events

    run, data, _ = ensemble
    n_pass = int(read_events(data).x_pass.sum())  # type: ignore[union-attr]
    outs = []
    for name in ("a.h5", "b.h5"):
        out = tmp_path / name
        argv = ["unfold", str(run), "--input", str(data), "--out", str(out)]
        assert main([*argv, "--iterations", "1", "--seed", "4"]) == 0
        outs.append(read_events(out))
    assert len(outs[0]) == n_pass
    np.testing.assert_array_equal(outs[0].weight, outs[1].weight)  # seeded
    settings = outs[0].provenance["settings"]
    assert settings["iterations"] == 1 and settings["acceleration"] == 2.0
    slow = tmp_path / "slow.h5"
    argv = ["unfold", str(run), "--input", str(data), "--out", str(slow), "--seed", "4"]
    assert main([*argv, "--iterations", "1", "--acceleration", "1"]) == 0
    # one update, exponent 1 instead of 2: the weights are the square roots (normalised)
    w1, w2 = read_events(slow).weight, outs[0].weight
    np.testing.assert_allclose(w1**2 / np.sum(w1**2), w2 / np.sum(w2), rtol=1e-4)
    plain = tmp_path / "plain.h5"
    assert main(["unfold", str(run), "--input", str(data), "--out", str(plain), "--seed", "4"]) == 0
    np.testing.assert_array_equal(read_events(plain).z, outs[0].z)  # the same draws ...
    assert np.ptp(outs[0].weight) > 0  # ... with the iteration's weights
    rep = tmp_path / "rep.h5"
    argv = ["unfold", str(run), "--input", str(data), "--out", str(rep)]
    assert main([*argv, "--iterations", "1", "--replicas", "2"]) == 0
    ev = read_events(rep)
    assert ev.replica is not None and np.bincount(ev.replica).tolist() == [n_pass, n_pass]
    w = ev.weight.reshape(2, n_pass)  # type: ignore[union-attr]
    assert not np.array_equal(w[0], w[1])  # each replica its own bootstrap of the input


def test_unfold_iterations_bad_option(
    ensemble: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import cli_fails

    run, data, _ = ensemble
    out = tmp_path / "v.h5"
    argv = ["unfold", str(run), "--input", str(data), "--out", str(out)]
    cli_fails(capsys, [*argv, "--iterations", "-1"], "--iterations")
    cli_fails(capsys, [*argv, "--iterations", "2", "--acceleration", "5"], "--acceleration")
    assert not out.exists()


def test_unfold_full_phase_space_weights_by_the_efficiency(
    ensemble: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """--full-phase-space divides each unfolded event's weight by the run's ε(z) (clipped
    at EPS_MIN) and says so in the provenance; the default is the passing events'."""
    from otus.cli import main
    from otus.io.h5 import read_events
    from otus.models.api import load_run
    from otus.models.apply import EPS_MIN

    run, data, _ = ensemble
    outs = {}
    for flag in ("", "--full-phase-space"):
        out = tmp_path / f"u{len(flag)}.h5"
        argv = ["unfold", str(run), "--input", str(data), "--out", str(out), "--seed", "1"]
        assert main([*argv, *([flag] if flag else [])]) == 0
        outs[flag] = read_events(out)
    plain, full = outs[""], outs["--full-phase-space"]
    assert plain.provenance["settings"]["phase_space"] == "passing"
    assert full.provenance["settings"]["phase_space"] == "full"
    np.testing.assert_array_equal(plain.z, full.z)
    eps = load_run(run).efficiency(plain.z)
    np.testing.assert_allclose(full.weight, plain.weight / np.maximum(eps, EPS_MIN), rtol=1e-6)
    assert full.weight.sum() > plain.weight.sum()  # type: ignore[union-attr]
