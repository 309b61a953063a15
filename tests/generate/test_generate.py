"""``otus generate``: reproducibility, physics acceptance (SPEC §5) and bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

from otus.cli import main
from otus.errors import OtusError
from otus.generate import generate
from otus.generate.pythia import PythiaSource
from otus.generate.reconstruct import reconstruct
from otus.generate.validate import card_closure, electron_response, fit_breit_wigner
from otus.io.h5 import read_events
from otus.physics import fourvec as fv
from otus.physics.observables import M_TOP, M_W, observables
from otus.physics.selection import build_x
from otus.processes import TTBAR, ZEE

M_Z, GAMMA_Z = 91.1876, 2.4952


@pytest.fixture(scope="module")
def zee_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zee") / "sample"
    generate("zee", 2000, seed=11, out_dir=out, progress=False)
    return out


def test_outputs_exist_and_are_paired(zee_dir: Path):
    names = sorted(p.name for p in zee_dir.iterdir())
    assert names == ["delphes.root", "events.h5", "parton.lhe.gz"]
    ev = read_events(zee_dir / "events.h5", "zee")
    assert len(ev) == 2000
    assert ev.provenance["seed"] == 11
    assert "pythia8mc" in ev.provenance["generator"]
    # z on the electron mass shell (to float32 precision)
    p = fv.objects(ev.z.astype(np.float64), 2)
    np.testing.assert_allclose(p[..., 3], np.sqrt(fv.p3(p) ** 2 + 0.000511**2), rtol=1e-6)


def test_lhe_and_root_give_back_events_h5(zee_dir: Path):
    from otus.io.delphes import read_delphes
    from otus.io.lhe import read_lhe

    ev = read_events(zee_dir / "events.h5")
    lhe = read_lhe(zee_dir / "parton.lhe.gz", "zee")
    np.testing.assert_array_equal(lhe.z, ev.z)
    reco, weight = read_delphes(zee_dir / "delphes.root")
    x, x_pass = build_x(ZEE, reco)
    np.testing.assert_array_equal(x_pass, ev.x_pass)
    np.testing.assert_array_equal(x, ev.x)
    np.testing.assert_array_equal(weight, ev.weight)
    # The paired file carries the LHE init block's cross-section (a z sample for a yield).
    from otus.io.h5 import info
    from otus.io.lhe import select_lhe

    xsec = select_lhe(zee_dir / "parton.lhe.gz", "zee").info["cross_section_pb"]
    assert info(zee_dir / "events.h5").cross_section_pb == pytest.approx(xsec)


def test_same_seed_same_events_other_seed_other_events(tmp_path: Path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate("zee", 200, seed=seed, out_dir=tmp_path / name, progress=False)
    a, b, c = (read_events(tmp_path / k / "events.h5") for k in "abc")
    np.testing.assert_array_equal(a.z, b.z)
    np.testing.assert_array_equal(a.x, b.x)
    lhe = "parton.lhe.gz"
    assert (tmp_path / "a" / lhe).read_bytes() == (tmp_path / "b" / lhe).read_bytes()
    assert not np.array_equal(a.z, c.z)


def test_energy_scale_knob_scales_reconstructed_momenta(tmp_path: Path):
    generate("zee", 200, seed=5, out_dir=tmp_path / "nominal", progress=False)
    generate("zee", 200, seed=5, out_dir=tmp_path / "scaled", energy_scale=1.05, progress=False)
    a, b = (read_events(tmp_path / k / "events.h5") for k in ("nominal", "scaled"))
    np.testing.assert_array_equal(a.z, b.z)  # parton level untouched
    both = a.x_pass & b.x_pass
    assert both.mean() > 0.4
    ratio = fv.pt(fv.objects(b.x[both], 2)) / fv.pt(fv.objects(a.x[both], 2))
    np.testing.assert_allclose(ratio, 1.05, rtol=1e-5)
    assert b.provenance["settings"]["energy_scale"] == 1.05


def test_parton_z_peak(zee_dir: Path):
    z = read_events(zee_dir / "events.h5").z.astype(np.float64)
    p = fv.objects(z, 2)
    m = fv.invariant_mass(p[:, 0], p[:, 1])
    assert m.min() > 60 and m.max() < 120
    mass, width = fit_breit_wigner(m)
    assert mass == pytest.approx(M_Z, abs=0.3)
    assert width == pytest.approx(GAMMA_Z, rel=0.2)
    # the γ* continuum: events far from the peak exist
    assert np.mean(m < 80) > 0.01


def test_isr_recoil_only_at_detector_level(zee_dir: Path):
    ev = read_events(zee_dir / "events.h5")
    pz = fv.objects(ev.z.astype(np.float64), 2)
    assert np.abs(fv.pt(pz[:, 0] + pz[:, 1])).max() < 1e-3
    px = fv.objects(ev.x[ev.x_pass].astype(np.float64), 2)
    pair_pt = fv.pt(px[:, 0] + px[:, 1])
    assert np.median(pair_pt) > 2.0
    assert 0.3 < ev.x_pass.mean() < 0.9


def test_electron_efficiency_and_resolution_follow_the_card():
    """Fit efficiency and pT resolution from a generated sample against the card (10%)."""
    src = PythiaSource(ZEE, 21)
    _, _, particles = src.next_batch(1500)
    reco = reconstruct(particles, np.random.default_rng(3))
    rows = card_closure(electron_response(particles, reco))
    assert len(rows) == 2 * 2 + 3 * 2
    for row in rows:
        assert row["n"] > 100, row
        if row["quantity"] == "efficiency (all)":  # isolation losses (FSR photons) enter
            assert row["measured"] == pytest.approx(row["card"], rel=0.15), row
        else:
            assert row["measured"] == pytest.approx(row["card"], rel=0.1), row


def test_ttbar_mass_peaks_at_detector_level(tmp_path: Path):
    s = generate("ttbar", 200, seed=3, out_dir=tmp_path / "tt", progress=False)
    ev = read_events(tmp_path / "tt" / "events.h5", "ttbar")
    assert s["pass_rate"] == pytest.approx(ev.x_pass.mean())
    assert ev.x_pass.mean() > 0.05
    o = observables(TTBAR, ev.x[ev.x_pass], "x")
    w, t = o["m_W_had"], o["m_t_had"]
    assert abs(np.median(w) - M_W) < 10 and np.mean(np.abs(w - M_W) < 20) > 0.5
    assert abs(np.median(t) - M_TOP) < 20 and np.mean(np.abs(t - M_TOP) < 40) > 0.5
    zo = observables(TTBAR, ev.z, "z")
    np.testing.assert_allclose(np.median(zo["m_W_had"]), M_W, atol=1.5)
    np.testing.assert_allclose(
        fv.mass(fv.objects(ev.z.astype(np.float64), 6))[:, 2], 4.7, atol=0.01
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--events", "0"], "positive integer"),
        (["--events", "10", "--seed", "-1"], "seed must be"),
        (["--events", "10", "--resolution-scale", "-2"], "resolution_scale"),
    ],
)
def test_cli_bad_values(tmp_path: Path, capsys: pytest.CaptureFixture[str], args, message):
    out = tmp_path / "out"
    assert main(["generate", "zee", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("otus generate: error:") and message in err and "\n" not in err
    assert not out.exists()


def test_cli_unwritable_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["generate", "zee", "--events", "5", "--out", str(afile)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["generate", "zee", "--events", "5", "--out", str(tmp_path / "no" / "dir")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import otus.generate.generator as g

    def broken(*a, **k):
        raise OtusError("detector exploded")

    monkeypatch.setattr(g, "reconstruct", broken)
    with pytest.raises(OtusError, match="exploded"):
        generate("zee", 20, seed=1, out_dir=tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    with pytest.raises(OtusError, match="exploded"):
        generate("zee", 20, seed=1, out_dir=tmp_path / "old", progress=False)
    assert list((tmp_path / "old").iterdir()) == []


def test_cli_generates_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "run"
    assert main(["generate", "zee", "--events", "30", "--seed", "4", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("otus generate: 30 zee events") and "pass rate" in line
    assert "events/s" in line and "\n" not in line
    assert sorted(p.name for p in out.iterdir()) == ["delphes.root", "events.h5", "parton.lhe.gz"]
