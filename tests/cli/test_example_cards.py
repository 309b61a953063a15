"""The example process cards (examples/cards) end to end on their committed samples (data/):
``otus fit CARD`` with the project defaults for one epoch, then simulate and unfold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from otus.cli import main
from otus.io.h5 import read_events
from otus.io.lhe import read_lhe
from otus.physics.observables import observables

ROOT = Path(__file__).resolve().parents[2]
MASS = {"zmumu": "m_mumu", "wenu": "mt_emet"}


def _card(name: str) -> Path:
    return ROOT / "examples" / "cards" / f"{name}.yaml"


def _data(name: str) -> Path:
    return ROOT / "data" / name / "events.h5"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``otus fit CARD --data data/NAME/events.h5 --max-epochs 1``, once per card."""
    runs: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in runs:
            run = tmp_path_factory.mktemp(name) / "run"
            argv = ["fit", str(_card(name)), "--data", str(_data(name)), "--out", str(run)]
            assert main([*argv, "--max-epochs", "1"]) == 0
            runs[name] = run
        return runs[name]

    return get


@pytest.mark.parametrize("name", ["zmumu", "wenu"])
def test_fit_simulate_unfold_with_an_example_card(
    trained: Callable[[str], Path], tmp_path: Path, name: str
) -> None:
    run, data = trained(name), _data(name)
    sim, unf = tmp_path / "sim.h5", tmp_path / "unf.h5"
    assert main(["simulate", str(run), "--input", str(data), "--out", str(sim)]) == 0
    assert main(["unfold", str(run), "--input", str(data), "--out", str(unf)]) == 0

    truth = read_events(data)
    ev = read_events(sim)
    assert ev.process.name == name and ev.process == truth.process
    np.testing.assert_array_equal(ev.z, truth.z)
    x = ev.x[ev.x_pass]
    assert 0.1 < ev.x_pass.mean() <= 1.0 and np.all(np.isfinite(x))
    assert np.all(np.isfinite(observables(ev.process, x, "x")[MASS[name]]))

    u = read_events(unf)
    assert u.process.name == name and len(u) == int(truth.x_pass.sum())
    assert np.all(np.isfinite(u.z))


def test_wenu_parton_level_writes_as_lhe(tmp_path: Path) -> None:
    """u d̄ → W+ → e+ νe records round-trip (the colourless record with q q̄′ incoming)."""
    from otus.io.lhe import write_lhe

    ev = read_events(_data("wenu"))
    lhe = write_lhe(tmp_path / "w.lhe.gz", ev.process, ev.z[:200], ev.weight[:200])
    np.testing.assert_allclose(read_lhe(lhe, ev.process).z, ev.z[:200], rtol=1e-6, atol=1e-4)


# Only zmumu: a one-epoch W model's unfolded neutrinos can carry |pz| beyond what the beams
# can supply, which the LHE writer rightly refuses.
@pytest.mark.parametrize("name", ["zmumu"])
def test_unfolded_events_write_as_lhe(
    trained: Callable[[str], Path], tmp_path: Path, name: str
) -> None:
    run, data = trained(name), _data(name)
    unf, lhe = tmp_path / "unf.h5", tmp_path / "unf.lhe.gz"
    assert main(["unfold", str(run), "--input", str(data), "--out", str(unf)]) == 0
    assert main(["unfold", str(run), "--input", str(data), "--out", str(lhe)]) == 0
    u = read_events(unf)
    np.testing.assert_allclose(read_lhe(lhe, u.process).z, u.z, rtol=1e-4, atol=1e-3)
