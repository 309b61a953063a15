"""A synthetic zee-like paired sample for fast tests (no generator needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from otus.io.h5 import Events
from otus.physics import fourvec as fv
from otus.processes import ELECTRON_MASS, ZEE


def zee_events(n: int = 2000, seed: int = 0) -> Events:
    """Z → ee-like events: Breit-Wigner mass, random decay angle and boost; x smeared by
    5 % in pT with 90 % efficiency, as a stand-in for the detector."""
    rng = np.random.default_rng(seed)
    m = np.clip(91.19 + 2.5 * rng.standard_cauchy(n), 60, 120)
    cos_t = rng.uniform(-1, 1, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    y = rng.normal(0, 1.0, n)
    k = m / 2
    sin_t = np.sqrt(1 - cos_t**2)
    pe = np.stack([k * sin_t * np.cos(phi), k * sin_t * np.sin(phi), k * cos_t, k], -1)
    pp = pe * np.array([-1, -1, -1, 1])
    ch, sh = np.cosh(y), np.sinh(y)

    def boost(p: np.ndarray) -> np.ndarray:
        return np.stack(
            [p[:, 0], p[:, 1], ch * p[:, 2] + sh * p[:, 3], sh * p[:, 2] + ch * p[:, 3]], -1
        )

    z = np.concatenate([boost(pe), boost(pp)], -1)
    zo = fv.objects(z)
    pts = fv.pt(zo) * rng.lognormal(0, 0.05, (n, 2))
    x = np.concatenate(
        [
            fv.from_ptetaphim(
                pts[:, i],
                fv.eta(zo[:, i]) + rng.normal(0, 0.01, n),
                fv.phi(zo[:, i]),
                ELECTRON_MASS,
            )
            for i in range(2)
        ],
        -1,
    )
    x_pass = (rng.random(n) < 0.9) & np.all((pts > 10) & (np.abs(fv.eta(zo)) < 2.5), -1)
    x = x.astype(np.float32)
    x[~x_pass] = np.nan
    return Events(ZEE, z.astype(np.float32), x, x_pass, np.ones(n), {"synthetic": seed})


def random_zee_z(n: int, seed: int = 0, eta_max: float = 3.0) -> torch.Tensor:
    """Parton-level zee rows with independent uniform electrons (pT 15-60 GeV, |η| <
    ``eta_max``): a broad z sample for tests of the efficiency model."""
    g = np.random.default_rng(seed)
    z = fv.from_ptetaphim(
        g.uniform(15, 60, (n, 2)),
        g.uniform(-eta_max, eta_max, (n, 2)),
        g.uniform(-3, 3, (n, 2)),
        ELECTRON_MASS,
    ).reshape(n, 8)
    return torch.tensor(z, dtype=torch.float32)


def cli_fails(capsys: pytest.CaptureFixture[str], argv: list[str], match: str) -> str:
    """Run ``otus ARGV``, which must fail with exit 2 and a one-line error containing
    ``match``; return that line."""
    from otus.cli import main

    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err and err[-1].startswith(f"otus {argv[0]}: error:"), err
    assert match in err[-1], err[-1]
    return err[-1]


@pytest.fixture
def zee_file(tmp_path: Path) -> Path:
    from otus.io.h5 import write_events

    return write_events(tmp_path / "zee.h5", zee_events(3000, seed=1))


TINY = """\
net: {hidden: 16, depth: 1, noise_dim: 2}
loss: {n_projections: 16, anchor_until_epoch: 1}
data: {batch_size: 512, chunk_size: 1000}
trainer: {max_epochs: 2, checkpoint_every_n_epochs: 2}
"""


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    p.write_text(TINY)
    return p


@pytest.fixture(scope="session")
def zee_run(tmp_path_factory: pytest.TempPathFactory, tiny_config: Path) -> tuple[Path, Path]:
    """A zee run trained for two short epochs by the CLI, and its (synthetic) data file."""
    from otus.cli import main
    from otus.io.h5 import write_events

    d = tmp_path_factory.mktemp("zee")
    data = write_events(d / "zee.h5", zee_events(3000, seed=1))
    run = d / "run"
    assert (
        main(
            [
                "fit",
                "zee",
                "--data",
                str(data),
                "--config",
                str(tiny_config),
                "--out",
                str(run),
                "--seed",
                "3",
            ]
        )
        == 0
    )
    return run, data


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A zee run with 2 bootstrap members (one short epoch each), its data and config."""
    from otus.cli import main
    from otus.io.h5 import write_events

    d = tmp_path_factory.mktemp("ens")
    data = write_events(d / "zee.h5", zee_events(3000, seed=1))
    cfg = d / "tiny.yaml"
    cfg.write_text(TINY.replace("max_epochs: 2", "max_epochs: 1"))
    run = d / "run"
    argv = ["fit", "zee", "--data", str(data), "--config", str(cfg), "--out", str(run)]
    assert main([*argv, "--seed", "3", "--replicas", "2"]) == 0
    return run, data, cfg
