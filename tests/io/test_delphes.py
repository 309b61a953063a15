from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from otus.errors import InputFileError, OtusError
from otus.io.delphes import (
    DelphesWriter,
    _leaf_map,
    collections_from_x,
    iter_delphes,
    read_delphes,
    write_delphes,
)
from otus.physics import fourvec as fv
from otus.physics.selection import build_x
from otus.processes import ELECTRON_MASS, TTBAR, ZEE


def _x(process, n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random x rows that build_x could have made (jets above threshold, pT-ordered)."""
    rng = np.random.default_rng(seed)
    k = len(process.x_objects)
    pt = rng.uniform(21, 150, (n, k))
    eta = rng.uniform(-2.4, 2.4, (n, k))
    phi = rng.uniform(-np.pi, np.pi, (n, k))
    if process.name == "zee":
        m = np.full((n, k), ELECTRON_MASS)
    else:
        m = np.concatenate([np.zeros((n, 2)), rng.uniform(0, 15, (n, 4))], 1)
        pt[:, 2:] = -np.sort(-pt[:, 2:], axis=1)
        eta[:, 1] = 0.0  # MET: massless with pz = 0
    x = fv.from_ptetaphim(pt, eta, phi, m).reshape(n, -1).astype(np.float32)
    x_pass = rng.random(n) > 0.25
    x[~x_pass] = np.nan
    return x, x_pass


@pytest.mark.parametrize("process", [ZEE, TTBAR])
def test_collections_from_x_inverts_build_x(process) -> None:
    x, x_pass = _x(process)
    reco = collections_from_x(process, x, x_pass)
    assert set(reco) == {"Electron", "Muon", "Jet", "MissingET"}
    assert ak.all(ak.num(reco["Electron"])[~x_pass] == 0)
    assert ak.all(ak.num(reco["Muon"]) == 0)
    x2, pass2 = build_x(process, reco)
    np.testing.assert_array_equal(pass2, x_pass)
    np.testing.assert_allclose(x2, x, rtol=2e-6, atol=1e-4)


def test_zee_met_is_minus_visible_sum() -> None:
    x, x_pass = _x(ZEE, 50)
    met = collections_from_x(ZEE, x, x_pass)["MissingET"]
    o = fv.objects(x[x_pass].astype(np.float64), 2).sum(1)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(met.MET)), fv.pt(o), rtol=1e-6)
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(met.Phi)), np.arctan2(-o[:, 1], -o[:, 0]), atol=1e-6
    )


def test_collections_from_x_bad_input() -> None:
    x, x_pass = _x(ZEE, 10)
    with pytest.raises(OtusError, match=r"expected \[N, 8\]"):
        collections_from_x(ZEE, x[:, :4], x_pass)
    x[0] = np.nan
    x_pass[0] = True
    with pytest.raises(OtusError, match="NaN or inf in passing rows"):
        collections_from_x(ZEE, x, x_pass)


@pytest.mark.parametrize("process", [ZEE, TTBAR])
def test_write_read_round_trip(tmp_path: Path, process) -> None:
    x, x_pass = _x(process, seed=3)
    w = np.random.default_rng(3).normal(1.0, 2.0, len(x))
    reco = collections_from_x(process, x, x_pass)
    out = write_delphes(tmp_path / "d.root", reco, w, provenance={"seed": 3})
    back, w2 = read_delphes(out)
    np.testing.assert_array_equal(w2, w)
    assert set(back) == set(reco)
    x2, pass2 = build_x(process, back)
    np.testing.assert_array_equal(pass2, x_pass)
    np.testing.assert_allclose(x2, x, rtol=1e-5, atol=1e-3)
    with uproot.open(out) as f:
        t = f["Delphes"]
        keys = set(t.keys())
        assert {
            "Electron_size",
            "Electron.PT",
            "Electron.Eta",
            "Electron.Phi",
            "Electron.Charge",
            "Muon.PT",
            "Jet.Mass",
            "MissingET.MET",
            "MissingET.Eta",
            "MissingET.Phi",
            "Event.Weight",
            "Event_size",
        } <= keys
        assert t["Electron.PT"].interpretation.content.from_dtype == np.dtype(">f4")
        assert t["Electron.Charge"].interpretation.content.from_dtype == np.dtype(">i4")
        np.testing.assert_array_equal(
            t["Jet_size"].array(library="np"), np.where(x_pass, 4 if process is TTBAR else 0, 0)
        )
        assert '"seed": 3' in str(f["otus_provenance"])
    part, w3 = read_delphes(out, entry_stop=7)
    assert len(w3) == 7 and len(part["Jet"]) == 7


def _real_layout(path: Path, n: int = 30, *, nan: bool = False, drop: str = "") -> None:
    """A file with the layout Delphes writes: TObject leaves, extra fields and collections,
    float32 Event.Weight, a 'Weight' collection and ScalarHT."""
    rng = np.random.default_rng(5)

    def coll(counts, fields):
        tot = int(np.sum(counts))
        data = {f: ak.unflatten(make(tot), counts) for f, make in fields.items() if f != drop}
        return ak.zip(data)

    def u32(k):
        return np.zeros(k, dtype=np.uint32)

    def f32(lo, hi):
        return lambda k: rng.uniform(lo, hi, k).astype(np.float32)

    def i32(k):
        return rng.choice(np.array([-1, 1], dtype=np.int32), k)

    ne = rng.integers(0, 3, n)
    nj = rng.integers(0, 7, n)
    one = np.ones(n, dtype=np.int64)
    ele = {
        "fUniqueID": u32,
        "fBits": u32,
        "PT": f32(10, 90),
        "Eta": f32(-2.4, 2.4),
        "Phi": f32(-3, 3),
        "T": f32(0, 1),
        "Charge": i32,
        "EhadOverEem": f32(0, 1),
        "IsolationVar": f32(0, 1),
    }
    data = {
        "Event": coll(
            one,
            {
                "fUniqueID": u32,
                "fBits": u32,
                "Number": (lambda k: np.arange(k, dtype=np.int64)),
                "Weight": f32(0.5, 2),
                "CrossSection": f32(1, 2),
            },
        ),
        "Weight": coll(one, {"fUniqueID": u32, "fBits": u32, "Weight": f32(0.5, 2)}),
        "Electron": coll(ne, ele),
        "Photon": coll(
            rng.integers(0, 2, n),
            {
                "fUniqueID": u32,
                "fBits": u32,
                "PT": f32(10, 50),
                "Eta": f32(-3, 3),
                "Phi": f32(-3, 3),
                "E": f32(10, 50),
            },
        ),
        "Muon": coll(rng.integers(0, 2, n), ele),
        "Jet": coll(
            nj,
            {
                "fUniqueID": u32,
                "fBits": u32,
                "PT": f32(15, 200),
                "Eta": f32(-3, 3),
                "Phi": f32(-3, 3),
                "T": f32(0, 1),
                "Mass": f32(0, 20),
                "BTag": (lambda k: np.zeros(k, np.uint32)),
                "Flavor": (lambda k: np.zeros(k, np.uint32)),
            },
        ),
        "MissingET": coll(
            one,
            {
                "fUniqueID": u32,
                "fBits": u32,
                "MET": f32(0, 100),
                "Eta": f32(-1, 1),
                "Phi": f32(-3, 3),
            },
        ),
        "ScalarHT": coll(one, {"fUniqueID": u32, "fBits": u32, "HT": f32(0, 500)}),
    }
    if nan:
        pt = ak.to_numpy(ak.flatten(data["Electron"].PT)).copy()
        pt[0] = np.nan
        data["Electron"] = ak.with_field(data["Electron"], ak.unflatten(pt, ne), "PT")
    with uproot.recreate(path) as f:
        t = f.mktree(
            "Delphes",
            {k: v.type.content for k, v in data.items()},
            counter_name=lambda c: f"{c}_size",
            field_name=lambda o, i: f"{o}.{i}",
        )
        t.extend(data)
    return data


def test_reads_real_delphes_layout(tmp_path: Path) -> None:
    data = _real_layout(tmp_path / "real.root")
    reco, w = read_delphes(tmp_path / "real.root")
    assert set(reco) == {"Electron", "Muon", "Photon", "Jet", "MissingET"}
    assert ak.fields(reco["Jet"]) == ["PT", "Eta", "Phi", "Mass"]
    assert ak.fields(reco["Electron"]) == ["PT", "Eta", "Phi", "Charge"]
    assert ak.to_list(reco["Jet"].PT) == ak.to_list(data["Jet"].PT)
    np.testing.assert_array_equal(w, ak.to_numpy(ak.flatten(data["Event"].Weight)))
    assert w.dtype == np.float64
    for proc in (ZEE, TTBAR):
        x, x_pass = build_x(proc, reco)
        assert x.shape == (30, proc.dx) and x_pass.dtype == bool


def test_leaf_map_finds_split_tclonesarray_leaves() -> None:
    class Tree:  # the keys uproot reports for a file written by Delphes itself
        def keys(self, recursive: bool = True) -> list[str]:
            return [
                "Event",
                "Event/Event.fUniqueID",
                "Event/Event.Weight",
                "Event_size",
                "Electron",
                "Electron/Electron.fBits",
                "Electron/Electron.PT",
                "Electron_size",
            ]

    m = _leaf_map(Tree())
    assert m["Electron.PT"] == "Electron/Electron.PT"
    assert m["Event.Weight"] == "Event/Event.Weight"
    assert m["Electron_size"] == "Electron_size"


def test_read_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nope\.root: no such file"):
        read_delphes(tmp_path / "nope.root")
    with pytest.raises(InputFileError, match="is a folder"):
        read_delphes(tmp_path)
    text = tmp_path / "text.root"
    text.write_text("not a ROOT file\n" * 50)
    with pytest.raises(InputFileError, match=r"text\.root: not a readable ROOT file"):
        read_delphes(text)
    other = tmp_path / "other.root"
    with uproot.recreate(other) as f:
        f.mktree("Events", {"x": np.float64}).extend({"x": np.arange(3.0)})
    with pytest.raises(InputFileError, match=r"other\.root: no 'Delphes' tree \(trees: Events"):
        read_delphes(other)
    none = tmp_path / "none.root"
    with uproot.recreate(none) as f:
        f.mktree("Delphes", {"x": np.float64}).extend({"x": np.arange(3.0)})
    with pytest.raises(InputFileError, match="holds none of the collections"):
        read_delphes(none)


def test_read_missing_field_nan_and_empty(tmp_path: Path) -> None:
    _real_layout(tmp_path / "a.root", drop="Charge")
    with pytest.raises(
        InputFileError,
        match=r"a\.root: the 'Delphes' tree lacks branch "
        r"Electron\.Charge",
    ):
        read_delphes(tmp_path / "a.root")
    _real_layout(tmp_path / "b.root", nan=True)
    with pytest.raises(InputFileError, match=r"b\.root: Electron\.PT holds NaN or inf in 1 "):
        read_delphes(tmp_path / "b.root")
    _real_layout(tmp_path / "c.root", n=0)
    with pytest.raises(InputFileError, match=r"c\.root: the 'Delphes' tree holds no events"):
        read_delphes(tmp_path / "c.root")
    with pytest.raises(OtusError, match="unknown collection 'Tower'"):
        read_delphes(tmp_path / "c.root", collections=("Tower",))


def test_write_bad_inputs_leave_no_file(tmp_path: Path) -> None:
    x, x_pass = _x(ZEE, 20)
    reco = collections_from_x(ZEE, x, x_pass)
    out = tmp_path / "d.root"
    with pytest.raises(OtusError, match="unknown collections"):
        write_delphes(out, {**reco, "Tower": reco["Jet"]}, np.ones(20))
    with pytest.raises(OtusError, match="Electron has 20 events, weight has 19"):
        write_delphes(out, reco, np.ones(19))
    with pytest.raises(OtusError, match="lacks fields"):
        write_delphes(out, {"Electron": reco["Electron"][["PT", "Eta"]]}, np.ones(20))
    with pytest.raises(OtusError, match="no collections"):
        write_delphes(out, {}, np.ones(20))
    assert list(tmp_path.iterdir()) == []


def test_chunked_writer_and_reader(tmp_path: Path) -> None:
    x, x_pass = _x(TTBAR, 100, seed=7)
    w = np.random.default_rng(7).normal(1.0, 1.0, 100)
    reco = collections_from_x(TTBAR, x, x_pass)
    write_delphes(tmp_path / "one.root", reco, w)
    with DelphesWriter(tmp_path / "chunks.root", provenance={"seed": 7}) as wr:
        for a, b in ((0, 30), (30, 31), (31, 100)):
            wr.append({k: v[a:b] for k, v in reco.items()}, w[a:b])
    assert wr.n == 100
    one, w1 = read_delphes(tmp_path / "one.root")
    for path in (tmp_path / "one.root", tmp_path / "chunks.root"):
        chunks = list(iter_delphes(path, step_size=33))
        assert [len(c[1]) for c in chunks] == [33, 33, 33, 1]
        np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), w1)
        for name in one:
            got = ak.concatenate([c[0][name] for c in chunks])
            assert ak.to_list(got) == ak.to_list(one[name])
    with pytest.raises(OtusError, match="chunk holds collections"):
        with DelphesWriter(tmp_path / "bad.root") as wr:
            wr.append(reco, w)
            wr.append({"Electron": reco["Electron"]}, w)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunks.root", "one.root"]
