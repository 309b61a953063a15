"""The built-in processes give the same arrays as before process cards, bit for bit.

The hashes were taken from `otus generate` before zee and ttbar became cards (the same
Pythia build and detector model); the committed samples were made then too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from otus.io.delphes import read_delphes
from otus.io.h5 import read_events
from otus.io.lhe import read_lhe
from otus.physics.selection import build_x

ROOT = Path(__file__).resolve().parents[2]


def _h(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


@pytest.mark.parametrize("process", ["zee", "ttbar"])
def test_committed_samples_convert_bit_for_bit(process: str) -> None:
    ref = read_events(ROOT / "data" / process / "events.h5")
    ev = read_lhe(ROOT / "data" / process / "parton.lhe.gz", process)
    reco, w = read_delphes(ROOT / "data" / process / "delphes.root")
    x, x_pass = build_x(ev.process, reco)
    np.testing.assert_array_equal(ev.z, ref.z)
    np.testing.assert_array_equal(ev.weight, ref.weight)
    np.testing.assert_array_equal(x, ref.x)  # NaN rows compare equal
    np.testing.assert_array_equal(x_pass, ref.x_pass)
    np.testing.assert_array_equal(w, ref.weight)


@pytest.mark.parametrize(
    ("name", "process", "n", "z", "w"),
    [
        (
            "pylhe-testfile-madgraph-2.2.1-Z-mlm.lhe.gz",
            "zee",
            5006,
            "81cb216745224c63",
            "474fac20e39855c2",
        ),
        ("pylhe-testfile-powheg-box-v2-Z.lhe", "zee", 100, "f309c4d9cadb00ec", "9269f2cc49055919"),
        (
            "pylhe-testfile-pythia-6.413-ttbar.lhe",
            "ttbar",
            12,
            "0924412a3ab5fae3",
            "cf966f1001f07510",
        ),
    ],
)
def test_shared_lhe_files_read_as_before(
    testdata: Path, name: str, process: str, n: int, z: str, w: str
) -> None:
    ev = read_lhe(testdata / "lhe" / name, process)
    assert (len(ev), _h(ev.z), _h(ev.weight)) == (n, z, w)


@pytest.mark.generate
@pytest.mark.parametrize(
    ("process", "n", "hashes"),
    [
        (
            "zee",
            300,
            ("fa07cb402c536bdb", "67d9b4dc160913b7", "75e60138a24af65f", "5b638086c129ee32"),
        ),
        (
            "ttbar",
            40,
            ("07c1a2a9c325d6ec", "9eaa749739c8df5d", "35f91bc2413539c7", "bf4d5ee2759a3c5f"),
        ),
    ],
)
def test_generate_as_before(tmp_path: Path, process: str, n: int, hashes: tuple[str, ...]) -> None:
    pytest.importorskip("pythia8mc")
    from otus.generate.generator import generate

    generate(process, n, seed=3, out_dir=tmp_path / "g", progress=False)
    ev = read_events(tmp_path / "g" / "events.h5")
    assert (_h(ev.z), _h(ev.x), _h(ev.x_pass), _h(ev.weight)) == hashes
