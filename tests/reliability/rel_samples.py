"""Small valid input files, made in a few milliseconds without the generator or test data.

The reliability suite corrupts copies of these. Kinematics are toy but physical: objects with
pT in [20, 60] GeV, |η| < 2, their process masses, E from the mass shell.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from otus.io.delphes import collections_from_x, write_delphes
from otus.io.h5 import Events, write_events
from otus.io.lhe import write_lhe
from otus.processes import PROCESSES, Process


def toy_momenta(n_obj: int, masses: tuple[float, ...], n: int, seed: int) -> np.ndarray:
    """[n, 4·n_obj] on-shell (px, py, pz, E) with pT in [20, 60] GeV and |η| < 2."""
    rng = np.random.default_rng(seed)
    pt = rng.uniform(20, 60, (n, n_obj))
    eta = rng.uniform(-2, 2, (n, n_obj))
    phi = rng.uniform(-np.pi, np.pi, (n, n_obj))
    m = np.nan_to_num(np.asarray(masses, dtype=np.float64), nan=5.0)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + m**2)
    return np.stack([px, py, pz, e], -1).reshape(n, 4 * n_obj).astype(np.float32)


def toy_events(
    proc: Process, n: int = 40, seed: int = 0, *, z: bool = True, x: bool = True
) -> Events:
    """Paired toy events; every fifth event fails reconstruction (x NaN, x_pass False)."""
    zz = toy_momenta(len(proc.z_objects), proc.z_masses, n, seed) if z else None
    xx = x_pass = None
    if x:
        xx = toy_momenta(len(proc.x_objects), proc.x_masses, n, seed + 1)
        x_pass = np.arange(n) % 5 != 4
        xx[~x_pass] = np.nan
    w = np.random.default_rng(seed + 2).uniform(0.5, 1.5, n)
    return Events(proc, z=zz, x=xx, x_pass=x_pass, weight=w, provenance={"toy": seed})


@dataclass(frozen=True)
class Samples:
    """Paths of valid files per process: ``lhe``, ``lhe_gz``, ``h5`` (paired), ``h5_z``,
    ``h5_x``, ``root``."""

    root_dir: Path

    def path(self, process: str, kind: str) -> Path:
        return self.root_dir / process / _NAMES[kind]

    def copy(self, process: str, kind: str, dest: Path) -> Path:
        """A private copy (to corrupt) named like the original inside ``dest``."""
        src = self.path(process, kind)
        out = dest / src.name
        shutil.copyfile(src, out)
        return out


_NAMES = {
    "lhe": "parton.lhe",
    "lhe_gz": "parton.lhe.gz",
    "h5": "events.h5",
    "h5_z": "parton.h5",
    "h5_x": "detector.h5",
    "root": "delphes.root",
}


def make_samples(root_dir: Path, n: int = 40) -> Samples:
    """Write every kind of valid sample for both processes under ``root_dir``."""
    for name, proc in PROCESSES.items():
        d = root_dir / name
        d.mkdir(parents=True, exist_ok=True)
        ev = toy_events(proc, n, seed=len(name))
        assert ev.z is not None and ev.x is not None and ev.x_pass is not None
        write_lhe(d / _NAMES["lhe"], proc, ev.z, ev.weight)
        write_lhe(d / _NAMES["lhe_gz"], proc, ev.z, ev.weight)
        write_events(d / _NAMES["h5"], ev)
        write_events(d / _NAMES["h5_z"], Events(proc, z=ev.z, weight=ev.weight))
        write_events(d / _NAMES["h5_x"], Events(proc, x=ev.x, x_pass=ev.x_pass, weight=ev.weight))
        write_delphes(d / _NAMES["root"], collections_from_x(proc, ev.x, ev.x_pass), ev.weight)
    return Samples(root_dir)


TINY_CONFIG = """\
net: {hidden: 16, depth: 1, noise_dim: 2}
loss: {n_projections: 16, anchor_until_epoch: 1}
data: {batch_size: 256, chunk_size: 500}
trainer: {max_epochs: 2, checkpoint_every_n_epochs: 1, num_threads: 1}
"""


def tiny_config(dest: Path) -> Path:
    """A YAML config that trains a zee model in seconds."""
    p = dest / "tiny.yaml"
    if not p.is_file():
        p.write_text(TINY_CONFIG)
    return p


def training_file(s: Samples, n: int = 2000) -> Path:
    """A zee event file large enough for the tiny config (written once)."""
    p = s.root_dir / "train" / "zee_train.h5"
    if not p.is_file():
        p.parent.mkdir(exist_ok=True)
        write_events(p, toy_events(PROCESSES["zee"], n, seed=5))
    return p


def trained_run(s: Samples) -> Path:
    """A zee run trained for two tiny epochs with ``otus fit`` (trained once per session)."""
    run = s.root_dir / "train" / "run"
    if not (run / "last.ckpt").is_file():
        import contextlib
        import io

        from otus.cli import main

        data = training_file(s)
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            rc = main(
                [
                    "fit",
                    "zee",
                    "--data",
                    str(data),
                    "--config",
                    str(tiny_config(s.root_dir)),
                    "--out",
                    str(run),
                    "--seed",
                    "1",
                ]
            )
        if rc != 0:
            raise RuntimeError(f"training the sample run failed (exit {rc})")
    return run


@pytest.fixture(scope="session", name="samples")
def samples_fixture(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    """Valid zee and ttbar files of every kind, written once per session (read-only use).

    Test modules import this fixture (no conftest.py here: tests/models imports its own
    ``conftest`` by name, which a second conftest module on sys.path would shadow)."""
    return make_samples(Path(tmp_path_factory.mktemp("samples")))


def _quiet_main(argv: list[str]) -> int:
    import contextlib
    import io

    from otus.cli import main

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        return main(argv)


CALIBRATE_ARGS = (
    "--steps",
    "4",
    "--inner-steps",
    "2",
    "--hidden",
    "8",
    "--val-every",
    "2",
    "--batch-size",
    "256",
)
REWEIGHT_ARGS = ("--folds", "2", "--epochs", "2", "--hidden", "8", "--no-diagnostics")


def calibrated_model(s: Samples) -> Path:
    """An ICNN calibration map fitted in a few steps (once per session)."""
    out = s.root_dir / "train" / "calibrate"
    if not (out / "map.pt").is_file():
        data = training_file(s)
        rc = _quiet_main(
            [
                "calibrate",
                "fit",
                "--mc",
                str(data),
                "--data",
                str(s.path("zee", "h5")),
                "--out",
                str(out),
                *CALIBRATE_ARGS,
            ]
        )
        if rc != 0:
            raise RuntimeError(f"fitting the sample calibration failed (exit {rc})")
    return out


def reweight_model(s: Samples) -> Path:
    """A classifier reweighter fitted in two tiny epochs (once per session)."""
    out = s.root_dir / "train" / "reweight"
    if not (out / "model.pt").is_file():
        rc = _quiet_main(
            [
                "reweight",
                "fit",
                "--mc",
                str(training_file(s)),
                "--data",
                str(s.path("zee", "h5")),
                "--out",
                str(out),
                *REWEIGHT_ARGS,
            ]
        )
        if rc != 0:
            raise RuntimeError(f"fitting the sample reweighter failed (exit {rc})")
    return out
