from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from otus.errors import InputFileError, OtusError
from otus.io.delphes import collections_from_x, write_delphes
from otus.io.formats import read_input, root_kind
from otus.io.nanoaod import (
    iter_nanoaod,
    layout,
    lhepart_from_z,
    read_nanoaod,
    write_nanoaod,
)
from otus.physics import fourvec as fv
from otus.physics.selection import build_x
from otus.processes import TTBAR, ZEE, load_card

NANO = "nanoaod/nano_dy.root"


def _events_with(pdg: ak.Array, ids: tuple[int, ...], mask: ak.Array | None = None) -> np.ndarray:
    """Events holding each of ``ids`` among the particles (``mask``: those allowed)."""
    ok = np.ones(len(pdg), dtype=bool)
    for i in ids:
        hit = pdg == i if mask is None else (pdg == i) & mask
        ok &= ak.to_numpy(ak.any(hit, axis=1))
    return ok


def _zee_pass(ele: dict[str, np.ndarray]) -> bool:
    """One event's zee selection, written out by hand: exactly two electrons with pT > 10,
    |η| < 2.5, one of each charge."""
    good = (ele["pt"] > 10) & (np.abs(ele["eta"]) < 2.5)
    q = ele["charge"][good]
    return good.sum() == 2 and (q < 0).sum() == 1 and (q > 0).sum() == 1


def test_real_file_counts_agree_with_uproot(testdata: Path) -> None:
    path = testdata / NANO
    raw = uproot.open(path)["Events"].arrays(
        ["LHEPart_pdgId", "Electron_pt", "Electron_eta", "Electron_charge", "genWeight"],
        library="ak",
    )
    n = len(raw)
    # LHEPart of this (older) NanoAOD holds the outgoing particles only: no status branch.
    selected = _events_with(raw.LHEPart_pdgId, (11, -11))
    passing = np.array(
        [
            _zee_pass({k: np.asarray(raw[f"Electron_{k}"][i]) for k in ("pt", "eta", "charge")})
            for i in range(n)
        ]
    )
    lay = layout(path, ZEE)
    assert (lay.n_events, lay.parton, lay.weighted) == (n, "LHEPart", True)
    got = read_nanoaod(path, ZEE)
    np.testing.assert_array_equal(got.selected, selected)
    assert int(ak.sum(ak.num(got.reco["Electron"]))) == int(ak.sum(ak.num(raw.Electron_pt)))
    np.testing.assert_array_equal(got.weight, ak.to_numpy(raw.genWeight).astype(np.float64))
    x, x_pass = build_x(ZEE, got.reco)
    np.testing.assert_array_equal(x_pass, passing)
    # The electrons in x are the file's: the e- slot holds the negative one's pT.
    for i in np.flatnonzero(passing):
        q, pt = np.asarray(raw.Electron_charge[i]), np.asarray(raw.Electron_pt[i])
        good = (pt > 10) & (np.abs(np.asarray(raw.Electron_eta[i])) < 2.5)
        assert fv.pt(x[i, :4].astype(np.float64)) == pytest.approx(pt[good & (q < 0)][0], 1e-6)
        assert fv.pt(x[i, 4:].astype(np.float64)) == pytest.approx(pt[good & (q > 0)][0], 1e-6)
    # z holds the LHE e- and e+: on the Z peak.
    zs = got.z[got.selected].astype(np.float64)
    assert 60 < np.median(fv.invariant_mass(zs[:, :4], zs[:, 4:])) < 120
    assert np.isnan(got.z[~got.selected]).all()


def test_genpart_hard_process_matches_lhepart(testdata: Path, tmp_path: Path) -> None:
    """A card naming a mother reads GenPart's hard process; for Z → ee both records hold
    the same electron pair, boosted in GenPart by the recoil against initial-state radiation
    (so equal in invariant mass, up to NanoAOD's reduced float precision)."""
    path = testdata / NANO
    text = ZEE.card_text.replace("pdg: 11,", "pdg: 11, mother: 23,").replace(
        "pdg: -11,", "pdg: -11, mother: 23,"
    )
    card = tmp_path / "zee_gen.yaml"
    card.write_text(text.replace("name: zee", "name: zee_gen"))
    proc = load_card(card)
    assert layout(path, proc).parton == "GenPart"
    raw = uproot.open(path)["Events"].arrays(library="ak", filter_name="GenPart_*")
    hard = ((raw.GenPart_statusFlags >> 7) & 1) == 1
    out_hard = hard & (raw.GenPart_status != 21) & (raw.GenPart_status != 22)
    mom = raw.GenPart_genPartIdxMother
    mother_pdg = ak.where(mom >= 0, raw.GenPart_pdgId[ak.where(mom >= 0, mom, 0)], 0)
    expected = _events_with(raw.GenPart_pdgId, (11, -11), out_hard & (mother_pdg == 23))
    gen = read_nanoaod(path, proc)
    lhe = read_nanoaod(path, ZEE)
    np.testing.assert_array_equal(gen.selected, expected)
    np.testing.assert_array_equal(gen.selected, lhe.selected)
    zg, zl = (e.z[e.selected].astype(np.float64) for e in (gen, lhe))
    m_gen, m_lhe = (fv.invariant_mass(z[:, :4], z[:, 4:]) for z in (zg, zl))
    np.testing.assert_allclose(m_gen, m_lhe, rtol=0.01)
    assert np.abs(fv.pt(zg[:, :4] + zg[:, 4:]) - fv.pt(zl[:, :4] + zl[:, 4:])).max() > 1.0


def test_chunks_equal_whole_file(testdata: Path) -> None:
    whole = read_nanoaod(testdata / NANO, TTBAR)
    chunks = list(iter_nanoaod(testdata / NANO, TTBAR, step_size=13))
    assert [c.first for c in chunks] == [0, 13, 26, 39]
    for name in ("z", "selected", "weight"):
        got = np.concatenate([getattr(c, name) for c in chunks])
        np.testing.assert_array_equal(got, getattr(whole, name))
    x = np.concatenate([build_x(TTBAR, c.reco)[0] for c in chunks])
    np.testing.assert_array_equal(x, build_x(TTBAR, whole.reco)[0])


def _x(process, n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random x rows that build_x could have made (pT-ordered jets, massless MET)."""
    rng = np.random.default_rng(seed)
    k = len(process.x_objects)
    pt = rng.uniform(25, 150, (n, k))
    eta = rng.uniform(-2.4, 2.4, (n, k))
    m = np.zeros((n, k))
    if process is TTBAR:
        pt[:, 2:] = -np.sort(-pt[:, 2:], axis=1)
        eta[:, 1] = 0.0
        m[:, 2:] = rng.uniform(0, 15, (n, 4))
    x = fv.from_ptetaphim(pt, eta, rng.uniform(-np.pi, np.pi, (n, k)), m).reshape(n, -1)
    x = x.astype(np.float32)
    x_pass = rng.random(n) > 0.3
    x[~x_pass] = np.nan
    return x, x_pass


def test_write_read_round_trip_zee(tmp_path: Path) -> None:
    x, x_pass = _x(ZEE, seed=1)
    rng = np.random.default_rng(1)
    n = len(x)
    pt, eta, phi = (
        rng.uniform(20, 60, (n, 2)),
        rng.uniform(-3, 3, (n, 2)),
        rng.uniform(-3, 3, (n, 2)),
    )
    z = fv.from_ptetaphim(pt, eta, phi, 0.000511).reshape(n, 8).astype(np.float32)
    w = rng.normal(1.0, 2.0, len(x))
    reco = collections_from_x(ZEE, x, x_pass)
    out = write_nanoaod(tmp_path / "n.root", reco, w, generator={"LHEPart": lhepart_from_z(ZEE, z)})
    assert root_kind(out) == "nanoaod"
    got = read_nanoaod(out, ZEE)
    np.testing.assert_array_equal(got.weight, w)
    assert got.selected.all()
    np.testing.assert_allclose(got.z, z, rtol=1e-5, atol=1e-3)
    # x is what the same collections give through a Delphes file: one selection for both.
    write_delphes(tmp_path / "d.root", reco, w)
    ref = read_input(tmp_path / "d.root", ZEE)
    x2, pass2 = build_x(ZEE, got.reco)
    np.testing.assert_array_equal(pass2, x_pass)
    np.testing.assert_array_equal(x2, ref.x)
    with uproot.open(out) as f:
        keys = set(f["Events"].keys())
    assert {"nElectron", "Electron_pt", "Electron_charge", "MET_pt", "MET_phi"} <= keys
    assert {"nLHEPart", "LHEPart_pdgId", "LHEPart_status", "genWeight"} <= keys


def _genpart_ttbar(z: np.ndarray) -> ak.Array:
    """A GenPart record per event for semileptonic tt̄ z rows: g g → t t̄ (isHardProcess),
    the tops and Ws as intermediate (status 22) with a copy each (not hard), decay products
    outgoing (status 23) whose mothers are the copies; plus a showered e- copy (status 1,
    not hard) that must not be taken."""
    o = fv.objects(z.astype(np.float64), 6)
    e, nu, b, bb, q, qb = (o[:, i] for i in range(6))
    wp, wm = q + qb, e + nu
    t, tb = b + wp, bb + wm
    zero = np.zeros_like(t)
    hard, soft = 1 << 7, 1 << 13
    rows = [  # (pdg, mother index, status, flags, p4)
        (21, -1, 21, hard, zero),  # 0
        (21, -1, 21, hard, zero),  # 1
        (6, 0, 22, hard, t),  # 2
        (-6, 0, 22, hard, tb),  # 3
        (6, 2, 62, soft, t),  # 4: top copy
        (-6, 3, 62, soft, tb),  # 5
        (24, 4, 22, hard, wp),  # 6
        (-24, 5, 22, hard, wm),  # 7
        (5, 4, 23, hard, b),  # 8
        (-5, 5, 23, hard, bb),  # 9
        (2, 6, 23, hard, q),  # 10
        (-1, 6, 23, hard, qb),  # 11
        (11, 7, 23, hard, e),  # 12
        (-12, 7, 23, hard, nu),  # 13
        (11, 12, 1, soft, 1.5 * e),  # 14: after FSR, harder but not the hard process
    ]
    n, k = len(z), len(rows)
    p4 = np.stack([r[4] for r in rows], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pt, eta, phi, m = (fv.to_ptetaphim(p4)[..., i] for i in range(4))
    eta = np.where(pt > 0, eta, 0.0)
    counts = np.full(n, k)

    def col(a) -> ak.Array:
        return ak.unflatten(np.asarray(a).reshape(-1), counts)

    return ak.zip(
        {
            "pt": col(pt),
            "eta": col(eta),
            "phi": col(phi),
            "mass": col(np.nan_to_num(m)),
            "pdgId": col(np.tile([r[0] for r in rows], n)),
            "genPartIdxMother": col(np.tile([r[1] for r in rows], n)),
            "status": col(np.tile([r[2] for r in rows], n)),
            "statusFlags": col(np.tile([r[3] for r in rows], n)),
        }
    )


def test_genpart_round_trip_ttbar(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n = 50
    pt = rng.uniform(20, 80, (n, 6))
    eta = rng.uniform(-2, 2, (n, 6))
    phi = rng.uniform(-np.pi, np.pi, (n, 6))
    m = np.array([0.000511, 0, 4.7, 4.7, 0, 0])
    z = fv.from_ptetaphim(pt, eta, phi, m).reshape(n, 24).astype(np.float32)
    x, x_pass = _x(TTBAR, n, seed=5)
    out = write_nanoaod(
        tmp_path / "tt.root",
        collections_from_x(TTBAR, x, x_pass),
        np.ones(n),
        generator={"GenPart": _genpart_ttbar(z)},
    )
    got = read_nanoaod(out, TTBAR)
    assert layout(out, TTBAR).parton == "GenPart" and got.selected.all()
    np.testing.assert_allclose(got.z, z, rtol=1e-4, atol=1e-3)


def test_collision_data_has_detector_level_only(tmp_path: Path) -> None:
    x, x_pass = _x(TTBAR, seed=6)
    out = write_nanoaod(tmp_path / "data.root", collections_from_x(TTBAR, x, x_pass), None)
    assert layout(out, TTBAR) == layout(out, "ttbar")
    assert layout(out, TTBAR).parton is None and not layout(out, TTBAR).weighted
    got = read_nanoaod(out, TTBAR)
    assert got.z is None and got.selected is None
    np.testing.assert_array_equal(got.weight, np.ones(len(x)))
    ev = read_input(out, TTBAR)  # NanoAOD as detector-level input (otus unfold)
    np.testing.assert_array_equal(ev.x_pass, x_pass)
    np.testing.assert_allclose(ev.x, x, rtol=1e-5, atol=1e-3, equal_nan=True)
    assert ev.z is None and len(read_input(out, TTBAR, max_events=9)) == 9


def test_bad_inputs(testdata: Path, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nope\.root: no such file"):
        read_nanoaod(tmp_path / "nope.root", ZEE)
    text = tmp_path / "text.root"
    text.write_text("not a ROOT file\n" * 50)
    with pytest.raises(InputFileError, match=r"text\.root: not a readable ROOT file"):
        read_nanoaod(text, ZEE)
    x, x_pass = _x(ZEE, 20)
    reco = collections_from_x(ZEE, x, x_pass)
    write_delphes(tmp_path / "d.root", reco, np.ones(20))
    with pytest.raises(
        InputFileError, match=r"d\.root: no 'Events' tree \(trees: Delphes\); a Delphes file"
    ):
        read_nanoaod(tmp_path / "d.root", ZEE)
    ele = write_nanoaod(tmp_path / "ele.root", {"Electron": reco["Electron"]}, None)
    with pytest.raises(
        InputFileError, match=r"ele\.root: the 'Events' tree lacks branches MET_pt, MET_phi, Jet_pt"
    ):
        read_nanoaod(ele, TTBAR)
    bad = dict(reco)
    flat = ak.to_numpy(ak.flatten(reco["Electron"].PT)).copy()
    flat[3] = np.nan
    bad["Electron"] = ak.with_field(
        reco["Electron"], ak.unflatten(flat, ak.num(reco["Electron"])), "PT"
    )
    write_nanoaod(tmp_path / "nan.root", bad, np.ones(20))
    with pytest.raises(
        InputFileError, match=r"nan\.root: Electron_pt holds NaN or inf in 1 events"
    ):
        read_nanoaod(tmp_path / "nan.root", ZEE)
    write_nanoaod(tmp_path / "w.root", reco, np.where(np.arange(20) == 2, np.nan, 1.0))
    with pytest.raises(InputFileError, match=r"w\.root: genWeight holds NaN or inf in 1 events"):
        read_nanoaod(tmp_path / "w.root", ZEE)
    with uproot.recreate(tmp_path / "part.root") as f:
        f.mktree("Events", {"Electron_pt": "var * float32"})
    with pytest.raises(
        InputFileError, match=r"part\.root: the 'Events' tree lacks branches Electron_eta"
    ):
        read_nanoaod(tmp_path / "part.root", ZEE)
    write_nanoaod(tmp_path / "empty.root", collections_from_x(ZEE, x[:0], x_pass[:0]), None)
    with pytest.raises(InputFileError, match=r"empty\.root: the 'Events' tree holds no events"):
        read_nanoaod(tmp_path / "empty.root", ZEE)
    z = np.full((20, 8), 30.0, dtype=np.float32)
    write_nanoaod(
        tmp_path / "lhe.root", reco, np.ones(20), generator={"LHEPart": lhepart_from_z(ZEE, z)}
    )
    with pytest.raises(
        InputFileError, match=r"lhe\.root: the ttbar card names a mother for e-, nuebar"
    ):
        layout(tmp_path / "lhe.root", TTBAR)
    with pytest.raises(OtusError, match="unknown collections"):
        write_nanoaod(tmp_path / "x.root", {"Tower": reco["Jet"]}, None)
    with pytest.raises(OtusError, match="MissingET needs at most one entry"):
        met = ak.zip({"MET": reco["Electron"].PT, "Phi": reco["Electron"].Phi})
        write_nanoaod(tmp_path / "x.root", {"MissingET": met}, None)
    assert not (tmp_path / "x.root").exists()
