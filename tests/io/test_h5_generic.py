"""Event files of plain named features (process ``generic``, SPEC §4)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from otus.errors import InputFileError, OtusError
from otus.io.h5 import Events, info, iter_chunks, read_events, write_events, write_features
from otus.processes import generic


def test_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    x[5, 1] = np.nan  # a failing event
    z = rng.normal(size=(300, 2))
    w = rng.normal(1, 0.5, 300)
    path = write_features(tmp_path / "f.h5", x, ["a", "b", "c"], weight=w, z=z, z_names=["u", "v"])
    ev = read_events(path)
    assert ev.process == generic(["a", "b", "c"], ["u", "v"])
    np.testing.assert_array_equal(ev.x, x)
    np.testing.assert_allclose(ev.z, z.astype(np.float32))
    np.testing.assert_array_equal(ev.weight, w)
    assert ev.x_pass.sum() == 299 and not ev.x_pass[5]
    with h5py.File(path) as f:
        assert f.attrs["process"].decode() == "generic"
        assert [s.decode() for s in f.attrs["x_features"]] == ["a", "b", "c"]
        assert [s.decode() for s in f.attrs["z_features"]] == ["u", "v"]
    fi = info(path, "generic")
    assert (fi.n, fi.has_z, fi.has_x) == (300, True, True)
    assert sum(len(c) for c in iter_chunks(path, chunk_size=128)) == 300
    # Events + write_events with a generic process: the same file
    again = write_events(tmp_path / "g.h5", Events(generic(["a", "b", "c"]), x=x))
    assert read_events(again).process.x_features == ("a", "b", "c")


def test_one_column_and_x_only(tmp_path) -> None:
    path = write_features(tmp_path / "f.h5", np.arange(10.0), ["m"])
    ev = read_events(path)
    assert ev.z is None and ev.x.shape == (10, 1) and ev.process.z_features == ()


@pytest.mark.parametrize(
    ("x", "names", "kw", "match"),
    [
        (np.zeros((5, 2)), ["a"], {}, r"x has shape \(5, 2\) but 1 x feature names"),
        (np.zeros((5, 2)), ["a", "a"], {}, "'a' is used twice"),
        (np.zeros((5, 1)), ["a"], {"weight": np.ones(4)}, "weight has 4 rows, expected 5"),
        (np.zeros((5, 1)), ["a"], {"z": np.zeros((4, 1)), "z_names": ["b"]}, "different numbers"),
        ([["x"]], ["a"], {}, "not numbers"),
    ],
)
def test_bad_input(tmp_path, x, names, kw, match) -> None:
    with pytest.raises(OtusError, match=match):
        write_features(tmp_path / "f.h5", x, names, **kw)
    assert not (tmp_path / "f.h5").exists()


def test_physics_reader_refuses_plain_features(tmp_path) -> None:
    path = write_features(tmp_path / "f.h5", np.zeros((5, 2)), ["a", "b"])
    with pytest.raises(
        InputFileError, match=r"holds plain named features .* need a physics process"
    ):
        info(path, "zee")
    with pytest.raises(InputFileError, match="holds the features a, b, not those given"):
        info(path, generic(["a"]))
