from __future__ import annotations

import gzip
import re
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from otus.cli import main
from otus.io.delphes import collections_from_x, read_delphes, write_delphes
from otus.io.h5 import read_events
from otus.io.lhe import select_lhe, write_lhe
from otus.physics import fourvec as fv
from otus.physics.selection import build_x
from otus.processes import TTBAR, ZEE

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
    x_pass = np.arange(len(z)) % 4 != 0
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
        match=r"ele\.root: detector collections lack 'Muon'",
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
