"""The ``replica`` dataset of unfolded files with replicas (SPEC §4) round-trips."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from otus.errors import InputFileError, OtusError
from otus.io.h5 import Events, EventWriter, info, iter_chunks, read_events, write_events
from otus.processes import ZEE


def _events(n: int, replica: np.ndarray | None) -> Events:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 30, (n, 8)).astype(np.float32)
    return Events(ZEE, z=z, weight=rng.poisson(1.0, n).astype(float), replica=replica)


def test_replica_dataset_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "rep.h5"
    with EventWriter(out, ZEE, has_z=True, has_x=False, replicas=True) as w:
        for r in range(3):
            w.append(_events(50, np.full(50, r, np.int32)))
    with h5py.File(out) as f:
        assert f["replica"].dtype.kind == "i" and f["replica"].shape == (150,)
    ev = read_events(out)
    np.testing.assert_array_equal(ev.replica, np.repeat(np.arange(3), 50))
    chunks = list(iter_chunks(out, 40))
    np.testing.assert_array_equal(np.concatenate([c.replica for c in chunks]), ev.replica)
    sub = ev.subset(ev.replica == 2)
    assert len(sub) == 50 and np.all(sub.replica == 2)
    np.testing.assert_array_equal(sub.z, ev.z[100:])
    # write_events keeps it; files without replicas read back None.
    again = write_events(tmp_path / "again.h5", ev)
    np.testing.assert_array_equal(read_events(again).replica, ev.replica)
    plain = write_events(tmp_path / "plain.h5", _events(10, None))
    assert read_events(plain).replica is None


def test_replica_must_match_the_file(tmp_path: Path) -> None:
    with EventWriter(tmp_path / "a.h5", ZEE, has_z=True, has_x=False, replicas=True) as w:
        with pytest.raises(OtusError, match="replica index"):
            w.append(_events(5, None))
        with pytest.raises(OtusError, match="replica has shape"):
            w.append(_events(5, np.zeros(4, np.int32)))
        w.append(_events(5, np.zeros(5, np.int32)))
    with EventWriter(tmp_path / "b.h5", ZEE, has_z=True, has_x=False) as w:
        with pytest.raises(OtusError, match="replica index"):
            w.append(_events(5, np.zeros(5, np.int32)))
        w.append(_events(5, None))


def test_bad_replica_dataset_is_refused(tmp_path: Path) -> None:
    path = write_events(tmp_path / "f.h5", _events(5, np.zeros(5, np.int32)))
    with h5py.File(path, "a") as f:
        del f["replica"]
        f["replica"] = np.zeros(5, np.float32)
    with pytest.raises(InputFileError, match="replica has type"):
        info(path)
    with h5py.File(path, "a") as f:
        del f["replica"]
        f["replica"] = np.zeros(4, np.int32)
    with pytest.raises(InputFileError, match="replica has shape"):
        info(path)
