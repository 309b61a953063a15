from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pylhe
import pytest

from otus.errors import InputFileError, OtusError
from otus.io.lhe import LHEWriter, iter_lhe, read_lhe, select_lhe, summarize, write_lhe
from otus.physics import fourvec as fv
from otus.processes import TTBAR, ZEE

MG_Z = "pylhe-testfile-madgraph-2.2.1-Z-mlm.lhe.gz"
POWHEG_Z = "pylhe-testfile-powheg-box-v2-Z.lhe"
PY6_TT = "pylhe-testfile-pythia-6.413-ttbar.lhe"
JJ = "pylhe-testfile-madgraph5-3.5.8-pp_to_jj.lhe.gz"
PR29 = "pylhe-testfile-pr29.lhe"
WBJ = "pylhe-testfile-madgraph-2.0.0-wbj.lhe"


def _text(path: Path) -> str:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as f:
        return f.read()


def _count_ee(path: Path) -> tuple[int, int]:
    """Events with exactly one status-1 e- and one e+, counted from the raw text (no pylhe)."""
    events = re.findall(r"<event[^>]*>(.*?)</event>", _text(path), flags=re.S)
    n_ee = 0
    for ev in events:
        rows = [
            line.split()
            for line in ev.strip().splitlines()[1:]
            if line.strip() and line.split()[0].lstrip("-").isdigit()
        ]
        c = Counter((int(r[0]), int(r[1])) for r in rows if len(r) >= 13)
        n_ee += c[(11, 1)] == 1 and c[(-11, 1)] == 1
    return len(events), n_ee


@pytest.fixture(scope="module")
def mg_z():
    """The MadGraph Z+jets file read once (testdata is function-scoped)."""
    path = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "lhe" / MG_Z
    if not path.is_file():
        pytest.skip("../shared/testdata is not present")
    return select_lhe(path, "zee")


@pytest.mark.parametrize("name", [MG_Z, POWHEG_Z])
def test_real_z_files(testdata: Path, name: str, mg_z) -> None:
    path = testdata / "lhe" / name
    n_all, n_ee = _count_ee(path)
    sel = mg_z if name == MG_Z else select_lhe(path, "zee")
    assert sel.info["n_events"] == n_all and sel.info["n_selected"] == n_ee
    assert sel.info["n_skipped"] == n_all - n_ee
    ev = sel.events()
    assert ev.z.shape == (n_ee, 8) and ev.z.dtype == np.float32
    assert ev.weight.shape == (n_ee,) and ev.weight.dtype == np.float64
    # read_lhe is the selected rows of select_lhe, also when reading only a prefix.
    head = read_lhe(path, ZEE, max_events=60)
    np.testing.assert_array_equal(head.z, sel.z[:60][sel.selected[:60]])
    m_ee = fv.invariant_mass(ev.z[:, :4].astype(np.float64), ev.z[:, 4:].astype(np.float64))
    # Both files are Z/γ* samples around the Z pole.
    assert 85 < np.median(m_ee) < 97
    # Electrons are light: the file's momenta are kept, with masses near 0.
    assert ev.provenance["lhe"]["max_mass_offshell_GeV"] < 0.05


def test_madgraph_z_is_half_ee(mg_z) -> None:
    assert mg_z.info["n_events"] == 10000
    assert 0.4 < mg_z.info["n_selected"] / mg_z.info["n_events"] < 0.6
    assert not np.isfinite(mg_z.z[~mg_z.selected]).any()


def test_real_ttbar_file(testdata: Path) -> None:
    path = testdata / "lhe" / PY6_TT
    sel = select_lhe(path, TTBAR)
    k = sel.info["n_selected"]
    assert 0 < k < sel.info["n_events"]  # only the semileptonic e- events
    o = fv.objects(sel.z[sel.selected].astype(np.float64), 6)
    e, nu, b, bb, q, qb = (o[:, i] for i in range(6))
    # The chosen objects rebuild the record's resonances exactly (masses from the file).
    records = [ev for ev, s in zip(_parse(path), sel.selected, strict=True) if s]
    mass_of = {
        pid: np.array([next(p.m for p in ev.particles if p.id == pid) for ev in records])
        for pid in (24, -24, 6, -6)
    }
    np.testing.assert_allclose(fv.invariant_mass(e, nu), mass_of[-24], rtol=1e-4)
    np.testing.assert_allclose(fv.invariant_mass(q, qb), mass_of[24], rtol=1e-4)
    np.testing.assert_allclose(fv.invariant_mass(b, q, qb), mass_of[6], rtol=1e-4)
    np.testing.assert_allclose(fv.invariant_mass(bb, e, nu), mass_of[-6], rtol=1e-4)
    np.testing.assert_allclose(fv.mass(b), 4.8, atol=1e-3)  # pythia-6 b mass, kept as is


@pytest.mark.parametrize(
    ("name", "process", "match"),
    [
        (JJ, "zee", "none of its 300 events holds the zee partons e- (pdg 11), e+ (pdg -11)"),
        (JJ, "ttbar", "none of its 300 events holds the ttbar partons e- (pdg 11 from -24)"),
        (PR29, "zee", "none of its 300 events"),
        (WBJ, "ttbar", "none of its 59 events"),
        (WBJ, "zee", "none of its 59 events"),
        (POWHEG_Z, "ttbar", "none of its 100 events"),
    ],
)
def test_files_without_the_process(testdata: Path, name: str, process: str, match: str) -> None:
    path = testdata / "lhe" / name
    with pytest.raises(InputFileError, match=re.escape(str(path)) + ".*" + re.escape(match)):
        read_lhe(path, process, max_events=300)


def test_max_events(testdata: Path) -> None:
    sel = select_lhe(testdata / "lhe" / MG_Z, "zee", max_events=50)
    assert sel.info["n_events"] == 50 and len(sel.selected) == 50


def test_truncated_gzip(testdata: Path, tmp_path: Path) -> None:
    data = (testdata / "lhe" / MG_Z).read_bytes()
    bad = tmp_path / "cut.lhe.gz"
    bad.write_bytes(data[:100_000])
    with pytest.raises(InputFileError, match=r"cut\.lhe\.gz: not a readable LHE file"):
        read_lhe(bad, "zee")


def test_corrupt_gzip(testdata: Path, tmp_path: Path) -> None:
    data = bytearray((testdata / "lhe" / MG_Z).read_bytes())
    data[5000:5100] = b"\x00" * 100
    bad = tmp_path / "bad.lhe.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match=r"bad\.lhe\.gz: not a readable LHE file"):
        read_lhe(bad, "zee")


_EVENT = """<event>
 5 1 1.0 91.0 0.0078 0.118
 2 -1 0 0 501 0 0 0 50 50 0 0 9
 -2 -1 0 0 0 501 0 0 -40 40 0 0 9
 23 2 1 2 0 0 0 0 10 90 89.4 0 9
 11 1 3 3 0 0 30 {px} 5 {e} 0 0 9
 -11 1 3 3 0 0 -30 -{px} 5 {e} 0 0 9
</event>
"""
_HEAD = (
    '<LesHouchesEvents version="3.0">\n<init>\n2212 2212 6500 6500 0 0 0 0 3 1\n1 0 1 1\n</init>\n'
)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (_HEAD + _EVENT.format(px=20, e=45) + "<event>\n 5 1 1.0", "malformed LHE XML"),
        (
            _HEAD.replace("<init>", "<init>\n<oops") + "</LesHouchesEvents>",
            "malformed LHE XML|not a readable",
        ),
        ("<html><body>no events</body></html>", "not a readable LHE file"),
        (_HEAD + "</LesHouchesEvents>\n", "holds no events"),
        (_HEAD + _EVENT.format(px="nan", e=45) + "</LesHouchesEvents>\n", "NaN or inf"),
        (
            _HEAD + _EVENT.format(px=20, e="abc") + "</LesHouchesEvents>\n",
            "not a readable LHE file",
        ),
    ],
)
def test_malformed_files(tmp_path: Path, body: str, match: str) -> None:
    bad = tmp_path / "bad.lhe"
    bad.write_text(body)
    with pytest.raises(InputFileError, match=r"bad\.lhe: .*(" + match + ")"):
        read_lhe(bad, "zee")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nope\.lhe: no such file"):
        read_lhe(tmp_path / "nope.lhe", "zee")
    with pytest.raises(InputFileError, match="is a folder"):
        read_lhe(tmp_path, "zee")
    with pytest.raises(OtusError, match="unknown process 'wz'"):
        read_lhe(tmp_path / "nope.lhe", "wz")


def _parse(path: Path) -> list[pylhe.LHEEvent]:
    return list(pylhe.LHEFile.fromfile(path).events)


def _check_event(ev: pylhe.LHEEvent) -> None:
    """Four-momentum and colour conservation, mothers inside the record."""
    parts = ev.particles
    p_in = sum(np.array([p.px, p.py, p.pz, p.e]) for p in parts if p.status == -1)
    p_out = sum(np.array([p.px, p.py, p.pz, p.e]) for p in parts if p.status == 1)
    np.testing.assert_allclose(p_in, p_out, atol=1e-6 * p_in[3])
    col = Counter()
    for p in parts:
        if p.status == 2:
            continue
        sign = 1 if p.status == 1 else -1
        col[p.color1] += sign
        col[p.color2] -= sign
    assert all(v == 0 for k, v in col.items() if k)
    for i, p in enumerate(parts):
        assert 0 <= p.mother1 <= i and 0 <= p.mother2 <= i
        assert np.isclose(
            p.m, np.sqrt(max(p.e**2 - p.px**2 - p.py**2 - p.pz**2, 0)), atol=1e-3 * p.e
        )


@pytest.mark.parametrize("suffix", [".lhe", ".lhe.gz"])
def test_write_read_round_trip_zee(testdata: Path, tmp_path: Path, suffix: str) -> None:
    ev = read_lhe(testdata / "lhe" / POWHEG_Z, "zee")
    out = write_lhe(
        tmp_path / f"z{suffix}", ZEE, ev.z, ev.weight, provenance={"note": "a--b", "seed": 3}
    )
    assert (out.read_bytes()[:2] == b"\x1f\x8b") == suffix.endswith(".gz")
    back = read_lhe(out, "zee")
    np.testing.assert_array_equal(back.z, ev.z)
    np.testing.assert_array_equal(back.weight, ev.weight)
    lhef = pylhe.LHEFile.fromfile(out)
    assert json.loads(lhef.comment.removeprefix("otus provenance:")) == {"note": "a--b", "seed": 3}
    assert lhef.init.initInfo.beamA == 2212 and lhef.init.initInfo.energyA == 6500
    events = _parse(out)
    assert len(events) == len(ev)
    for e in events:
        _check_event(e)
        ids = [p.id for p in e.particles]
        assert ids[:5] == [2, -2, 23, 11, -11]  # u ū → Z/γ* → e- e+ (+ recoil g)
        assert ids[5:] in ([], [21])
    # POWHEG events have a jet, so the ee system carries pT and a recoil gluon balances it.
    assert sum(len(e.particles) == 6 for e in events) > 50


def test_write_read_round_trip_ttbar(testdata: Path, tmp_path: Path) -> None:
    ev = read_lhe(testdata / "lhe" / PY6_TT, "ttbar")
    n = len(ev)
    pdg = np.tile([[21, 21]], (n, 1))
    pdg[::2] = [-1, 1]  # d̄ d
    out = write_lhe(tmp_path / "tt.lhe.gz", TTBAR, ev.z, ev.weight, incoming_pdg=pdg)
    back = read_lhe(out, TTBAR)
    np.testing.assert_array_equal(back.z, ev.z)
    np.testing.assert_array_equal(back.weight, ev.weight)
    for e, row in zip(_parse(out), pdg, strict=True):
        _check_event(e)
        assert [p.id for p in e.particles[:2]] == row.tolist()
        assert [p.id for p in e.particles[2:6]] == [6, -6, 24, -24]


def test_write_synthetic_no_recoil(tmp_path: Path) -> None:
    # Back-to-back electrons: no recoil parton; weights of either sign survive exactly.
    rng = np.random.default_rng(1)
    n = 200
    pt, eta, phi = rng.uniform(20, 60, n), rng.uniform(-2, 2, (2, n)), rng.uniform(-3, 3, n)
    e1 = fv.from_ptetaphim(pt, eta[0], phi, 0.0)
    e2 = fv.from_ptetaphim(pt, eta[1], phi + np.pi, 0.0)
    z = np.concatenate([e1, e2], 1).astype(np.float32)
    w = rng.normal(0.5, 1.0, n)
    out = write_lhe(tmp_path / "s.lhe", ZEE, z, w)
    back = read_lhe(out, "zee")
    np.testing.assert_array_equal(back.z, z)
    np.testing.assert_array_equal(back.weight, w)
    assert all(len(e.particles) == 5 for e in _parse(out))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"z": np.zeros((3, 7))}, r"z has shape \(3, 7\)"),
        ({"z": np.zeros((0, 8))}, "no events to write"),
        ({"weight": np.ones(2)}, r"weight has shape \(2,\)"),
        ({"weight": np.array([1.0, np.nan, 1.0])}, "NaN or inf"),
        ({"incoming_pdg": np.array([[21, 21]] * 3)}, r"incoming_pdg row 0 is \[21, 21\]"),
        ({"incoming_pdg": np.array([[2, -1]] * 3)}, "incoming_pdg row 0"),
        ({"incoming_pdg": np.array([[2, -2]])}, r"incoming_pdg has shape \(1, 2\)"),
        ({"beam_energy": 10.0}, "more than the beam energy"),
    ],
)
def test_write_bad_input_leaves_no_file(tmp_path: Path, kw: dict, match: str) -> None:
    e1 = fv.from_ptetaphim(np.full(3, 40.0), np.zeros(3), np.zeros(3), 0.0)
    e2 = fv.from_ptetaphim(np.full(3, 40.0), np.zeros(3), np.full(3, np.pi), 0.0)
    args = {"z": np.concatenate([e1, e2], 1), "weight": np.ones(3)} | kw
    z, w = args.pop("z"), args.pop("weight")
    with pytest.raises(OtusError, match=match):
        write_lhe(tmp_path / "out.lhe.gz", ZEE, z, w, **args)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "process"), [(POWHEG_Z, ZEE), (PY6_TT, TTBAR)])
def test_pythia_accepts_written_events(testdata: Path, tmp_path: Path, name: str, process) -> None:
    """Pythia 8 showers every written event (its momentum/colour checks pass)."""
    p8 = pytest.importorskip("pythia8mc")
    ev = read_lhe(testdata / "lhe" / name, process, max_events=20)
    out = write_lhe(tmp_path / "ev.lhe.gz", process, ev.z, ev.weight)
    py = p8.Pythia("", False)
    for s in (
        f"Beams:LHEF = {out}",
        "Beams:frameType = 4",
        "HadronLevel:all = off",
        "PartonLevel:MPI = off",
        "Print:quiet = on",
    ):
        py.readString(s)
    assert py.init()
    ok = 0
    for _ in range(2 * len(ev) + 5):  # bounded, in case Pythia never reports the end
        if py.next():
            ok += 1
        elif py.infoPython().atEndOfFile():
            break
    assert ok == len(ev) > 0


def test_chunks_equal_whole_file(testdata: Path) -> None:
    path = testdata / "lhe" / MG_Z
    whole = select_lhe(path, "zee", max_events=300)
    chunks = list(iter_lhe(path, ZEE, chunk_size=7, max_events=300))
    assert [c.info["first_event"] for c in chunks] == list(range(0, 300, 7))
    for name in ("z", "weight", "selected"):
        got = np.concatenate([getattr(c, name) for c in chunks])
        np.testing.assert_array_equal(got, getattr(whole, name))
    assert summarize(path, ZEE, [c.info for c in chunks]) == whole.info
    assert whole.info["n_events"] == 300 and whole.info["cross_section_pb"] > 0
    with pytest.raises(InputFileError, match="none of its 0 events"):
        summarize(path, ZEE, [])


def test_chunked_writer_equals_write_lhe(testdata: Path, tmp_path: Path) -> None:
    ev = read_lhe(testdata / "lhe" / POWHEG_Z, "zee")
    n = len(ev)
    one = write_lhe(tmp_path / "one.lhe", ZEE, ev.z, ev.weight, provenance={"a": 1})
    xs = (ev.weight.mean(), ev.weight.std() / np.sqrt(n), np.abs(ev.weight).max())
    with LHEWriter(tmp_path / "chunks.lhe", ZEE, cross_section=xs, provenance={"a": 1}) as w:
        for a, b in ((0, 13), (13, 60), (60, n)):
            w.append(ev.z[a:b], ev.weight[a:b])
    assert w.n == n
    assert (tmp_path / "chunks.lhe").read_bytes() == one.read_bytes()
    with pytest.raises(OtusError, match="z has shape"):
        with LHEWriter(tmp_path / "bad.lhe", ZEE) as w:
            w.append(ev.z[:5], ev.weight[:5])
            w.append(ev.z[:5, :4], ev.weight[:5])
    assert not (tmp_path / "bad.lhe").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunks.lhe", "one.lhe"]
