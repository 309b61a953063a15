from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from otus.errors import InputFileError, OtusError
from otus.io.delphes import read_delphes, write_delphes
from otus.io.formats import file_kind, read_input, write_output
from otus.io.h5 import Events
from otus.physics import fourvec as fv
from otus.processes import ZEE


def _events(n: int = 60) -> Events:
    rng = np.random.default_rng(4)
    pt, eta, phi = rng.uniform(20, 60, n), rng.uniform(-2, 2, (2, n)), rng.uniform(-3, 3, n)
    z = np.concatenate(
        [
            fv.from_ptetaphim(pt, eta[0], phi, 0.000511),
            fv.from_ptetaphim(pt, eta[1], phi + np.pi, 0.000511),
        ],
        1,
    )
    z = z.astype(np.float32)
    x = z.copy()
    x_pass = rng.random(n) > 0.3
    x[~x_pass] = np.nan
    return Events(ZEE, z=z, x=x, x_pass=x_pass, weight=rng.normal(1, 1, n))


def test_file_kind() -> None:
    assert [file_kind(p) for p in ("a.h5", "b.HDF5", "c.lhe", "d.lhe.gz", "e.root")] == [
        "h5",
        "h5",
        "lhe",
        "lhe",
        "root",
    ]
    with pytest.raises(OtusError, match=r"f\.csv: unknown event-file type"):
        file_kind("f.csv")


@pytest.mark.parametrize("name", ["ev.h5", "ev.lhe.gz", "ev.root"])
def test_write_then_read_each_format(tmp_path: Path, name: str) -> None:
    ev = _events()
    out = write_output(tmp_path / name, ev)
    back = read_input(out, "zee")
    np.testing.assert_array_equal(back.weight, ev.weight)
    if name != "ev.root":
        np.testing.assert_array_equal(back.z, ev.z)
    if name != "ev.lhe.gz":
        np.testing.assert_array_equal(back.x_pass, ev.x_pass)
        np.testing.assert_allclose(back.x, ev.x, rtol=1e-5, atol=1e-3, equal_nan=True)
    assert len(read_input(out, "zee", max_events=10)) == 10


def test_missing_levels(tmp_path: Path) -> None:
    ev = _events()
    with pytest.raises(OtusError, match="these have no z"):
        write_output(tmp_path / "a.lhe", Events(ZEE, x=ev.x, x_pass=ev.x_pass))
    with pytest.raises(OtusError, match="these have no x"):
        write_output(tmp_path / "a.root", Events(ZEE, z=ev.z))
    write_output(tmp_path / "e.root", Events(ZEE, x=ev.x, x_pass=ev.x_pass))
    reco, w = read_delphes(tmp_path / "e.root")
    write_delphes(tmp_path / "e.root", {"Electron": reco["Electron"]}, w)
    with pytest.raises(
        InputFileError,
        match=r"e\.root: the 'Delphes' tree lacks the collections MissingET, Jet, Muon",
    ):
        read_input(tmp_path / "e.root", "ttbar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.root"]
