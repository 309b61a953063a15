from __future__ import annotations

import gzip
import re
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from otus.cli import main
from otus.io.delphes import collections_from_x, read_delphes, write_delphes
from otus.io.h5 import info, read_events
from otus.io.lhe import select_lhe, write_lhe
from otus.io.nanoaod import lhepart_from_z, write_nanoaod
from otus.physics import fourvec as fv
from otus.physics.selection import acceptance, build_x
from otus.processes import TTBAR, ZEE

DATA = Path(__file__).resolve().parents[2] / "data"
LHE = "lhe/pylhe-testfile-madgraph-2.2.1-Z-mlm.lhe.gz"
POWHEG = "lhe/pylhe-testfile-powheg-box-v2-Z.lhe"
JJ = "lhe/pylhe-testfile-madgraph5-3.5.8-pp_to_jj.lhe.gz"


def _convert(capsys, *args: str) -> tuple[int, str]:
    rc = main(["convert", *map(str, args)])
    return rc, capsys.readouterr().err


def _fails(capsys, out: Path, *args: str, match: str) -> None:
    rc, err = _convert(capsys, *args, "--out", out)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("otus convert: error: ")
    assert re.search(match, lines[0]), lines[0]
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}*"))  # no temporary file left


def _delphes_like(tmp_path: Path, sel, *, n: int | None = None, passing: bool = True) -> Path:
    """A Delphes file aligned with an LHE selection: the electrons of row i are the
    parton-level electrons of LHE event i (unselected rows and every 3rd row fail)."""
    n = len(sel.selected) if n is None else n
    x = np.full((n, 8), np.nan, dtype=np.float32)
    ok = sel.selected[:n].copy()
    ok[::3] = False
    if not passing:
        ok[:] = False
    x[ok] = sel.z[:n][ok]
    path = tmp_path / "delphes.root"
    write_delphes(path, collections_from_x(ZEE, x, ok), np.arange(n, dtype=np.float64))
    return path


def test_lhe_only(testdata: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ev.h5"
    rc, err = _convert(capsys, "zee", "--lhe", testdata / POWHEG, "--out", out)
    assert rc == 0 and "wrote 100 zee events" in err
    ev = read_events(out, "zee")
    sel = select_lhe(testdata / POWHEG, "zee")
    np.testing.assert_array_equal(ev.z, sel.z)
    np.testing.assert_array_equal(ev.weight, sel.weight)
    assert ev.x is None
    assert ev.provenance["settings"]["lhe"]["n_selected"] == 100
    assert str(testdata / POWHEG) in ev.provenance["inputs"]


def test_paired_keeps_aligned_rows(testdata: Path, tmp_path: Path, capsys) -> None:
    sel = select_lhe(testdata / LHE, "zee", max_events=150)
    assert 0 < sel.selected.sum() < 150  # the file mixes ee and μμ events
    delphes = _delphes_like(tmp_path, sel)
    out = tmp_path / "ev.h5"
    rc, err = _convert(
        capsys,
        "zee",
        "--lhe",
        testdata / LHE,
        "--delphes",
        delphes,
        "--max-events",
        150,
        "--out",
        out,
    )
    assert rc == 0, err
    assert f"skipped {150 - sel.selected.sum()} LHE events" in err
    ev = read_events(out, "zee")
    keep = sel.selected
    assert len(ev) == keep.sum()
    np.testing.assert_array_equal(ev.z, sel.z[keep])
    np.testing.assert_array_equal(ev.weight, sel.weight[keep])  # the LHE weights
    # x of a row is the same event as z of the row (here x was made from z).
    x_exp, pass_exp = build_x(ZEE, read_delphes(delphes)[0])
    np.testing.assert_array_equal(ev.x_pass, pass_exp[keep])
    np.testing.assert_array_equal(ev.x, x_exp[keep])
    np.testing.assert_allclose(ev.x[ev.x_pass], ev.z[ev.x_pass], rtol=1e-5, atol=1e-3)


def test_round_trip_through_written_files(testdata: Path, tmp_path: Path, capsys) -> None:
    """events.h5 → LHE + ROOT (otus writers) → convert gives back the same numbers."""
    sel = select_lhe(testdata / POWHEG, "zee")
    z, w = sel.z, sel.weight
    x = z.copy()
    # Every fourth event fails, and so do those outside the card's cuts (pT > 10, |η| < 2.5).
    x_pass = (np.arange(len(z)) % 4 != 0) & acceptance(ZEE, z)
    x[~x_pass] = np.nan
    reco = collections_from_x(ZEE, x, x_pass)
    x_ref, _ = build_x(ZEE, reco)
    write_lhe(tmp_path / "p.lhe.gz", ZEE, z, w)
    write_delphes(tmp_path / "d.root", reco, w)
    out = tmp_path / "ev.h5"
    rc, err = _convert(
        capsys,
        "zee",
        "--lhe",
        tmp_path / "p.lhe.gz",
        "--delphes",
        tmp_path / "d.root",
        "--out",
        out,
    )
    assert rc == 0, err
    ev = read_events(out, "zee")
    np.testing.assert_array_equal(ev.z, z)
    np.testing.assert_array_equal(ev.weight, w)
    np.testing.assert_array_equal(ev.x_pass, x_pass)
    np.testing.assert_allclose(ev.x, x_ref, rtol=1e-5, atol=1e-3, equal_nan=True)
    assert ev.provenance["settings"]["weights_agree"] is True


def test_delphes_only_ttbar(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(2)
    n = 40
    pt = rng.uniform(25, 120, (n, 6))
    pt[:, 2:] = -np.sort(-pt[:, 2:], axis=1)
    eta = rng.uniform(-2, 2, (n, 6))
    eta[:, 1] = 0
    x = fv.from_ptetaphim(pt, eta, rng.uniform(-3, 3, (n, 6)), 0.0).reshape(n, 24)
    x = x.astype(np.float32)
    x_pass = rng.random(n) > 0.5
    x[~x_pass] = np.nan
    write_delphes(tmp_path / "d.root", collections_from_x(TTBAR, x, x_pass), np.ones(n))
    out = tmp_path / "ev.h5"
    rc, err = _convert(capsys, "ttbar", "--delphes", tmp_path / "d.root", "--out", out)
    assert rc == 0, err
    assert f"{x_pass.sum()} pass the detector selection" in err
    ev = read_events(out, "ttbar")
    assert ev.z is None
    np.testing.assert_array_equal(ev.x_pass, x_pass)
    np.testing.assert_allclose(ev.x, x, rtol=1e-5, atol=1e-3, equal_nan=True)


def test_bad_inputs_exit_2_without_output(testdata: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ev.h5"
    _fails(capsys, out, "zee", match="give --lhe, --delphes or both")
    _fails(capsys, out, "zee", "--lhe", tmp_path / "missing.lhe", match=r"missing\.lhe: no such")
    _fails(
        capsys,
        out,
        "zee",
        "--lhe",
        testdata / JJ,
        "--max-events",
        100,
        match=r"pp_to_jj.*none of its 100 events",
    )
    cut = tmp_path / "cut.lhe.gz"
    cut.write_bytes((testdata / LHE).read_bytes()[:50_000])
    _fails(capsys, out, "zee", "--lhe", cut, match=r"cut\.lhe\.gz: not a readable LHE file")
    other = tmp_path / "other.root"
    with uproot.recreate(other) as f:
        f.mktree("Events", {"x": np.float64}).extend({"x": np.arange(3.0)})
    _fails(capsys, out, "zee", "--delphes", other, match=r"other\.root: no 'Delphes' tree")
    _fails(
        capsys,
        out,
        "zee",
        "--lhe",
        testdata / POWHEG,
        "--max-events",
        0,
        match="--max-events must be positive",
    )
    with gzip.open(tmp_path / "nan.lhe.gz", "wt") as f:
        f.write((testdata / POWHEG).read_text().replace("4.332302359E+01", "nan", 1))
    _fails(capsys, out, "zee", "--lhe", tmp_path / "nan.lhe.gz", match="NaN or inf")


def test_bad_delphes_content(testdata: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ev.h5"
    sel = select_lhe(testdata / POWHEG, "zee")
    d = _delphes_like(tmp_path, sel, n=60)
    _fails(
        capsys,
        out,
        "zee",
        "--lhe",
        testdata / POWHEG,
        "--delphes",
        d,
        match=r"holds 100 events but .*delphes\.root holds 60; paired",
    )
    d = _delphes_like(tmp_path, sel, passing=False)
    _fails(
        capsys,
        out,
        "zee",
        "--delphes",
        d,
        match=r"delphes\.root: none of its 100 events passes the zee detector selection",
    )
    ele_only = tmp_path / "ele.root"
    reco = collections_from_x(ZEE, sel.z, np.ones(100, bool))
    write_delphes(ele_only, {"Electron": reco["Electron"]}, np.ones(100))
    _fails(
        capsys,
        out,
        "ttbar",
        "--delphes",
        ele_only,
        match=r"ele\.root: the 'Delphes' tree lacks the collections MissingET, Jet, Muon",
    )
    nan = tmp_path / "nan.root"
    bad = dict(reco)
    pt = bad["Electron"].PT
    flat = ak.to_numpy(ak.flatten(pt)).copy()
    flat[7] = np.nan
    bad["Electron"] = ak.with_field(bad["Electron"], ak.unflatten(flat, ak.num(pt)), "PT")
    write_delphes(nan, bad, np.ones(100))
    _fails(capsys, out, "zee", "--delphes", nan, match=r"nan\.root: Electron\.PT holds NaN")


def test_missing_output_folder(testdata: Path, tmp_path: Path, capsys) -> None:
    _fails(
        capsys,
        tmp_path / "no" / "ev.h5",
        "zee",
        "--lhe",
        testdata / POWHEG,
        match="output folder .* does not exist",
    )


# --------------------------------------------------------------------------- NanoAOD

NANO = "nanoaod/nano_dy.root"


def test_nanoaod_paired_counts_agree_with_uproot(testdata: Path, tmp_path: Path, capsys) -> None:
    """Converted counts against an independent count of the file's branches."""
    raw = uproot.open(testdata / NANO)["Events"].arrays(
        ["LHEPart_pdgId", "Electron_pt", "Electron_eta", "Electron_charge", "genWeight"]
    )
    n = len(raw)
    has_ee = ak.to_numpy(ak.any(raw.LHEPart_pdgId == 11, axis=1)) & ak.to_numpy(
        ak.any(raw.LHEPart_pdgId == -11, axis=1)
    )
    good = (raw.Electron_pt > 10) & (abs(raw.Electron_eta) < 2.5)
    q = raw.Electron_charge[good]
    passing = ak.to_numpy(
        (ak.num(q) == 2) & (ak.sum(q < 0, axis=1) == 1) & (ak.sum(q > 0, axis=1) == 1)
    )
    out = tmp_path / "ev.h5"
    rc, err = _convert(capsys, "zee", "--nanoaod", testdata / NANO, "--out", out)
    assert rc == 0, err
    k, p = int(has_ee.sum()), int((has_ee & passing).sum())
    assert f"wrote {k} zee events" in err
    assert f"skipped {n - k} events (parton level from LHEPart) without the process" in err
    assert f"{p} pass the detector selection" in err
    ev = read_events(out, "zee")
    assert len(ev) == k and int(ev.x_pass.sum()) == p
    assert 2 * int(ev.x_pass.sum()) == int(ak.sum(ak.num(q[has_ee & passing])))  # electrons
    np.testing.assert_array_equal(ev.weight, ak.to_numpy(raw.genWeight[has_ee]).astype(float))
    assert ev.provenance["settings"]["nanoaod"]["parton_level"] == "LHEPart"
    assert info(out).cross_section_pb is None  # no LHE init block in NanoAOD


def test_nanoaod_round_trip_and_collision_data(tmp_path: Path, capsys) -> None:
    """A NanoAOD file written by otus converts back to the same x, z and weights; without
    generator branches it is collision data: x alone."""
    rng = np.random.default_rng(8)
    n = 120
    pt, eta, phi = (
        rng.uniform(15, 70, (n, 2)),
        rng.uniform(-2.4, 2.4, (n, 2)),
        rng.uniform(-3, 3, (n, 2)),
    )
    z = fv.from_ptetaphim(pt, eta, phi, 0.000511).reshape(n, 8).astype(np.float32)
    x_pass = (rng.random(n) > 0.3) & acceptance(ZEE, z)
    x = np.where(x_pass[:, None], z, np.nan).astype(np.float32)
    reco = collections_from_x(ZEE, x, x_pass)
    w = rng.normal(1.0, 1.0, n)
    gen = {"LHEPart": lhepart_from_z(ZEE, z)}
    write_nanoaod(tmp_path / "sim.root", reco, w, generator=gen)
    write_nanoaod(tmp_path / "data.root", reco, None)
    write_delphes(tmp_path / "d.root", reco, w)
    for name in ("sim", "data", "delphes"):
        args = (
            ("--delphes", tmp_path / "d.root")
            if name == "delphes"
            else ("--nanoaod", tmp_path / f"{name}.root")
        )
        rc, err = _convert(
            capsys, "zee", *args, "--chunk-size", 17, "--out", tmp_path / f"{name}.h5"
        )
        assert rc == 0, err
    sim, data, ref = (read_events(tmp_path / f"{k}.h5", "zee") for k in ("sim", "data", "delphes"))
    np.testing.assert_allclose(sim.z, z, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(sim.weight, w)
    for ev in (sim, data):  # one selection for both formats: the same x, bit for bit
        np.testing.assert_array_equal(ev.x, ref.x)
        np.testing.assert_array_equal(ev.x_pass, x_pass)
    assert data.z is None
    np.testing.assert_array_equal(data.weight, np.ones(n))
    rc, err = _convert(
        capsys, "zee", "--nanoaod", tmp_path / "data.root", "--out", tmp_path / "again.h5"
    )
    assert "detector level only: " in err and "no generator branches (LHEPart, GenPart)" in err


def test_nanoaod_bad_inputs(testdata: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ev.h5"
    _fails(
        capsys,
        out,
        "zee",
        "--nanoaod",
        testdata / NANO,
        "--lhe",
        testdata / POWHEG,
        match="--nanoaod holds both levels; give it alone",
    )
    _fails(capsys, out, "zee", "--nanoaod", tmp_path / "no.root", match=r"no\.root: no such file")
    text = tmp_path / "t.root"
    text.write_text("no ROOT here\n" * 40)
    _fails(capsys, out, "zee", "--nanoaod", text, match=r"t\.root: not a readable ROOT file")
    sel = select_lhe(testdata / POWHEG, "zee")
    d = _delphes_like(tmp_path, sel)
    _fails(
        capsys, out, "zee", "--nanoaod", d, match=r"delphes\.root: no 'Events' tree .*use --delphes"
    )
    _fails(
        capsys, out, "zee", "--delphes", testdata / NANO, match=r"no 'Delphes' tree .*use --nanoaod"
    )
    _fails(
        capsys,
        out,
        "ttbar",
        "--nanoaod",
        testdata / NANO,
        match=r"nano_dy\.root: none of its 40 events holds the ttbar partons .* GenPart",
    )
    reco = collections_from_x(ZEE, sel.z, np.ones(100, bool))
    write_nanoaod(tmp_path / "ele.root", {"Electron": reco["Electron"]}, None)
    _fails(
        capsys,
        out,
        "ttbar",
        "--nanoaod",
        tmp_path / "ele.root",
        match=r"ele\.root: the 'Events' tree lacks branches MET_pt, MET_phi, Jet_pt",
    )


# --------------------------------------------------------------------------- streaming


def test_chunked_conversion_is_bit_identical(testdata: Path, tmp_path: Path, capsys) -> None:
    """Tiny chunks give the arrays of the in-memory readers, and files with different
    numbers of events are refused whatever the chunking."""
    sel = select_lhe(testdata / LHE, "zee", max_events=150)
    delphes = _delphes_like(tmp_path, sel)
    out = tmp_path / "ev.h5"
    rc, err = _convert(
        capsys,
        "zee",
        "--lhe",
        testdata / LHE,
        "--delphes",
        delphes,
        "--max-events",
        150,
        "--chunk-size",
        7,
        "--out",
        out,
    )
    assert rc == 0, err
    ev = read_events(out, "zee")
    keep = sel.selected
    x_ref, pass_ref = build_x(ZEE, read_delphes(delphes)[0])
    np.testing.assert_array_equal(ev.z, sel.z[keep])
    np.testing.assert_array_equal(ev.weight, sel.weight[keep])
    np.testing.assert_array_equal(ev.x, x_ref[keep])
    np.testing.assert_array_equal(ev.x_pass, pass_ref[keep])
    assert ev.provenance["settings"]["lhe"]["n_skipped"] == 150 - keep.sum()
    short = _delphes_like(tmp_path, sel, n=144)
    for chunk in (7, 48, 1000):
        _fails(
            capsys,
            tmp_path / "bad.h5",
            "zee",
            "--lhe",
            testdata / LHE,
            "--delphes",
            short,
            "--max-events",
            150,
            "--chunk-size",
            chunk,
            match=r"holds 150 events but .*delphes\.root holds 144; paired",
        )
    _fails(
        capsys,
        tmp_path / "bad.h5",
        "zee",
        "--lhe",
        testdata / LHE,
        "--chunk-size",
        0,
        match="chunk size must be positive, got 0",
    )


def _init_xsec(path: Path) -> float:
    """The init block's total cross-section, read from the text (no pylhe)."""
    with gzip.open(path, "rt") as f:
        text = f.read(200_000)
    lines = text.split("<init>")[1].split("</init>")[0].strip().splitlines()
    return sum(float(line.split()[0]) for line in lines[1:] if line.strip())


@pytest.mark.parametrize("name", ["zee", "ttbar"])
def test_committed_samples_convert_bit_for_bit(name: str, tmp_path: Path, capsys) -> None:
    d = DATA / name
    out = tmp_path / "ev.h5"
    rc, err = _convert(
        capsys,
        name,
        "--lhe",
        d / "parton.lhe.gz",
        "--delphes",
        d / "delphes.root",
        "--chunk-size",
        997,
        "--out",
        out,
    )
    assert rc == 0, err
    got, ref = read_events(out, name), read_events(d / "events.h5", name)
    for k in ("z", "x", "x_pass", "weight"):
        np.testing.assert_array_equal(getattr(got, k), getattr(ref, k), err_msg=k)
    assert info(out).cross_section_pb == pytest.approx(_init_xsec(d / "parton.lhe.gz"))


def test_cross_section_of_real_lhe(testdata: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ev.h5"
    rc, err = _convert(capsys, "zee", "--lhe", testdata / LHE, "--max-events", 40, "--out", out)
    assert rc == 0, err
    xs = _init_xsec(testdata / LHE)
    assert info(out).cross_section_pb == pytest.approx(xs, rel=1e-12)
    assert (
        read_events(out).provenance["settings"]["lhe"]["cross_section_pb"]
        == info(out).cross_section_pb
    )
