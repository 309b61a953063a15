from __future__ import annotations

import h5py
import numpy as np
import pytest

from otus.errors import InputFileError, OtusError
from otus.io.h5 import Events, EventWriter, info, iter_chunks, read_events, write_events
from otus.processes import TTBAR, ZEE


def _events(n: int = 50, seed: int = 0) -> Events:
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 30, (n, 8)).astype(np.float32)
    x = rng.normal(0, 30, (n, 8)).astype(np.float32)
    x_pass = rng.random(n) > 0.3
    x[~x_pass] = np.nan
    w = rng.normal(1, 0.5, n)
    return Events(ZEE, z, x, x_pass, w, {"seed": seed})


def test_round_trip_and_schema(tmp_path) -> None:
    ev = _events()
    path = write_events(tmp_path / "ev.h5", ev)
    back = read_events(path, process="zee")
    np.testing.assert_array_equal(back.z, ev.z)
    np.testing.assert_array_equal(back.x_pass, ev.x_pass)
    np.testing.assert_array_equal(back.weight, ev.weight)
    assert back.provenance == {"seed": 0}
    with h5py.File(path) as f:
        assert f["z"].dtype == np.float32 and f["weight"].dtype == np.float64
        # Fixed-length (UTF-8) strings: variable-length ones live in HDF5's unchecksummed
        # global heap, whose damaged copies hang the library.
        assert [s.decode() for s in f.attrs["x_features"]][:4] == [
            "e-_px",
            "e-_py",
            "e-_pz",
            "e-_E",
        ]
        assert f.attrs["process"].decode() == "zee"
        assert "otus_version" in f.attrs


def test_chunks_cover_file(tmp_path) -> None:
    ev = _events(1000)
    write_events(tmp_path / "ev.h5", ev)
    got = list(iter_chunks(tmp_path / "ev.h5", chunk_size=300))
    assert [len(c) for c in got] == [300, 300, 300, 100]
    np.testing.assert_array_equal(np.concatenate([c.z for c in got]), ev.z)


def test_only_x(tmp_path) -> None:
    ev = _events()
    write_events(tmp_path / "x.h5", Events(ZEE, x=ev.x, x_pass=ev.x_pass))
    fi = info(tmp_path / "x.h5")
    assert fi.has_x and not fi.has_z and fi.n == 50


def test_failed_write_leaves_nothing(tmp_path) -> None:
    ev = _events()
    with (
        pytest.raises(RuntimeError),
        EventWriter(tmp_path / "o.h5", ZEE, has_z=True, has_x=True) as w,
    ):
        w.append(ev)
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs(tmp_path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        read_events(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputFileError, match="not a readable HDF5"):
        read_events(tmp_path / "junk.h5")
    write_events(tmp_path / "ev.h5", _events())
    with pytest.raises(InputFileError, match="holds zee events, expected ttbar"):
        read_events(tmp_path / "ev.h5", process="ttbar")
    z = np.zeros((3, 8), np.float32)
    z[1, 2] = np.nan
    with pytest.raises(OtusError, match="NaN"):
        write_events(tmp_path / "nan.h5", Events(ZEE, z=z))
    assert not (tmp_path / "nan.h5").exists()
    with pytest.raises(OtusError, match="expected \\[N, 24\\]"):
        write_events(tmp_path / "dim.h5", Events(TTBAR, z=np.zeros((3, 8), np.float32)))
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.attrs["process"] = "zee"
        f.create_dataset("z", (0, 8), "f4")
    with pytest.raises(InputFileError, match="holds no events"):
        read_events(tmp_path / "empty.h5")
