"""Flat ntuples and NumPy files → plain named features (otus.io.ntuple)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from otus.errors import OtusError
from otus.io.h5 import read_events
from otus.io.ntuple import open_ntuple, read_ntuple, write_ntuple

N = 1000


@pytest.fixture
def root_file(tmp_path):
    rng = np.random.default_rng(0)
    cols = {
        "mjj": rng.exponential(300, N),
        "njet": rng.integers(0, 5, N).astype(np.int32),
        "ok": rng.random(N) > 0.5,
        "w": rng.normal(1, 0.1, N).astype(np.float32),
        "jet_pt": ak.Array([[1.0] * (i % 3) for i in range(N)]),
    }
    path = tmp_path / "nt.root"
    with uproot.recreate(path) as f:
        f.mktree(
            "events", {k: ("var * float64" if k == "jet_pt" else v.dtype) for k, v in cols.items()}
        )
        f["events"].extend(cols)
    return path, cols


def test_root_chunks_match_the_tree(root_file) -> None:
    path, cols = root_file
    nt = open_ntuple(path, weight="w")
    assert nt.tree == "events" and nt.n == N
    assert nt.names == ("mjj", "njet", "ok", "njet_pt") and nt.skipped == ("jet_pt",)
    parts = list(nt.chunks(step=300))
    assert [len(x) for x, _ in parts] == [300, 300, 300, 100]
    x, names, w = read_ntuple(path, branches=["mjj", "njet"], weight="w")
    assert names == ("mjj", "njet") and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], cols["mjj"].astype(np.float32))
    np.testing.assert_array_equal(x[:, 1], cols["njet"])
    np.testing.assert_allclose(w, cols["w"])


def test_write_streams_into_a_generic_file(root_file, tmp_path) -> None:
    path, cols = root_file
    n = write_ntuple(path, tmp_path / "f.h5", branches=["mjj", "njet"], weight="w", max_events=700)
    ev = read_events(tmp_path / "f.h5")
    assert n == 700 and ev.process.name == "generic" and ev.process.x_features == ("mjj", "njet")
    np.testing.assert_allclose(ev.weight, cols["w"][:700])


def test_numpy_inputs(tmp_path) -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 3))
    np.save(tmp_path / "plain.npy", a)
    x, names, w = read_ntuple(tmp_path / "plain.npy", branches=["u", "v", "wt"], weight="wt")
    assert names == ("u", "v") and w is not None
    np.testing.assert_allclose(x, a[:, :2].astype(np.float32))
    np.testing.assert_allclose(w, a[:, 2])
    rec = np.zeros(50, dtype=[("p", "f8"), ("q", "i4")])
    rec["p"] = a[:, 0]
    np.save(tmp_path / "rec.npy", rec)
    x, names, _ = read_ntuple(tmp_path / "rec.npy")
    assert names == ("p", "q") and x.shape == (50, 2)
    np.savez(tmp_path / "cols.npz", p=a[:, 0], q=a[:, 1], img=np.zeros((50, 2)))
    x, names, _ = read_ntuple(tmp_path / "cols.npz")
    assert names == ("p", "q")
    np.testing.assert_allclose(x[:, 1], a[:, 1].astype(np.float32))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"tree": "nope"}, "no tree 'nope'; it holds events"),
        ({"branches": ["mjj", "x"]}, "no column 'x'"),
        ({"branches": ["jet_pt"]}, "'jet_pt' holds more than one number per event"),
    ],
)
def test_bad_root_input(root_file, tmp_path, kw, match) -> None:
    path, _ = root_file
    with pytest.raises(OtusError, match=match):
        write_ntuple(path, tmp_path / "f.h5", **kw)
    assert not (tmp_path / "f.h5").exists()


def test_bad_numpy_input(tmp_path) -> None:
    np.save(tmp_path / "plain.npy", np.zeros((5, 3)))
    with pytest.raises(OtusError, match="3 columns has no names; give --branches"):
        read_ntuple(tmp_path / "plain.npy")
    with pytest.raises(OtusError, match="--tree applies to ROOT files only"):
        read_ntuple(tmp_path / "plain.npy", tree="t", branches=["a", "b", "c"])
    (tmp_path / "bad.npy").write_text("not numpy")
    with pytest.raises(OtusError, match="not a readable NumPy file"):
        read_ntuple(tmp_path / "bad.npy", branches=["a"])
    (tmp_path / "x.csv").write_text("a")
    with pytest.raises(OtusError, match="unsupported input"):
        read_ntuple(tmp_path / "x.csv")
    np.savez(tmp_path / "kw.npz", **{"and": np.zeros(5)})
    with pytest.raises(OtusError, match="name 'and' is not usable"):
        write_ntuple(tmp_path / "kw.npz", tmp_path / "f.h5")
