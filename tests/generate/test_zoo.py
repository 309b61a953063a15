"""The detector zoo (``otus generate --detector NAME``): each detector's efficiency, resolution
and non-Gaussian parts recovered from generated samples against its formulas, the registry,
the command line and the knobs on every detector."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from otus.cli import main
from otus.errors import OtusError
from otus.generate import detector as det
from otus.generate.reconstruct import dress, reconstruct
from otus.generate.validate import fit_response
from otus.generate.zoo import CMS, DETECTORS, get_detector

pytest.importorskip("fastjet")  # the reconstruction clusters jets

NAMES = ("cms", "atlas", "cms_radiative", "crystalball")


def _single(n: int, pid: int, pt: float, eta: float, *extra: tuple[int, float, float, float]):
    """n copies of one event: a particle ``pid`` (charge −sign(pid)) with ``pt`` at ``eta``,
    φ = 0, plus ``extra`` particles (id, pT, η, φ) of charge 0 (photons, neutral hadrons)."""
    rows = [(pid, -float(np.sign(pid)), pt, eta, 0.0)] + [(i, 0.0, p, e, f) for i, p, e, f in extra]
    ids, q, pts, etas, phis = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    px, py, pz = pts * np.cos(phis), pts * np.sin(phis), pts * np.sinh(etas)
    one = {
        "id": ids.astype(np.int64),
        "charge": q,
        "px": px,
        "py": py,
        "pz": pz,
        "e": np.sqrt(px**2 + py**2 + pz**2),
    }
    return ak.unflatten(ak.zip({k: np.tile(v, n) for k, v in one.items()}), np.full(n, len(rows)))


# --------------------------------------------------------------------------- registry, CLI


def test_registry_names_and_descriptions():
    assert tuple(DETECTORS) == NAMES
    for name, d in DETECTORS.items():
        assert d.name == name and d.summary and d.source
        assert get_detector(name) is d and get_detector(d) is d
    assert CMS.electron_resolution is det.electron_resolution  # cms is the card, unchanged
    assert DETECTORS["atlas"].jet_r == 0.6 and DETECTORS["atlas"].towers
    with pytest.raises(OtusError, match=r"unknown detector 'delphes'; choose one of: cms, atlas"):
        get_detector("delphes")


def test_cli_unknown_detector_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "out"
    argv = ["generate", "zee", "--events", "5", "--out", str(out), "--detector", "cmss"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("otus generate: error: unknown detector 'cmss'") and "\n" not in err
    assert all(name in err for name in NAMES)
    assert not out.exists()


def test_cli_help_lists_the_detectors(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--detector NAME" in text and all(f"{name}:" in text for name in NAMES)


# --------------------------------------------------------------------------- generated samples


@pytest.mark.generate
def test_generate_records_the_detector_and_keeps_the_parton_level(tmp_path: Path):
    pytest.importorskip("pythia8mc")
    from otus.generate import generate
    from otus.io.h5 import read_events

    for name in ("cms", "crystalball"):
        s = generate("zee", 300, seed=8, out_dir=tmp_path / name, detector=name, progress=False)
        assert s["detector"] == name
    a, b = (read_events(tmp_path / k / "events.h5") for k in ("cms", "crystalball"))
    assert (a.provenance["detector"], b.provenance["detector"]) == ("cms", "crystalball")
    assert b.provenance["settings"]["detector"] == "crystalball"
    assert "crystalball" in b.provenance["generator"]
    np.testing.assert_array_equal(a.z, b.z)  # same seed, same Pythia events
    assert not np.array_equal(a.x, b.x)


@pytest.fixture(scope="module")
def zee_particles() -> ak.Array:
    pytest.importorskip("pythia8mc")
    from otus.generate.pythia import PythiaSource
    from otus.processes import ZEE

    return PythiaSource(ZEE, 21).next_batch(4000)[2]


@pytest.mark.generate
@pytest.mark.parametrize("name", NAMES)
def test_electron_efficiency_resolution_and_tails_follow_the_formulas(zee_particles, name):
    """Z → ee through each detector: efficiency and the core resolution within 10 % of the
    formulas, the scale within 1 %, and the non-Gaussian parts (Bethe-Heitler tail,
    Crystal-Ball tail, the crack, charge mis-identification) recovered."""
    from otus.generate.validate import card_closure, electron_response

    d = get_detector(name)
    reco = reconstruct(zee_particles, np.random.default_rng(3), detector=d)
    rows = card_closure(electron_response(zee_particles, reco, d), d)
    kinds = {str(r["quantity"]).split(" (")[0].split(" σ")[0] for r in rows}
    assert {"efficiency", "resolution", "scale pT_reco/pT_true"} <= kinds
    for row in rows:
        q, n = str(row["quantity"]), int(row["n"])
        measured, card = float(row["measured"]), float(row["card"])
        if q == "charge mis-identification":  # a few per mille: Poisson errors
            assert abs(measured - card) * n < 3.5 * np.sqrt(card * n) + 1, row
        elif q.startswith("scale"):
            assert measured == pytest.approx(card, abs=0.01), row
        elif row["eta"] == (1.37, 1.52):  # the crack: a few hundred electrons, binomial errors
            assert abs(measured - card) < 3.5 * np.sqrt(card * (1 - card) / n), row
        else:
            assert n > 500, row
            assert measured == pytest.approx(card, rel=0.1), row
    extra = {str(r["quantity"]) for r in rows} - {"efficiency (isolated)", "efficiency (all)"}
    if name == "cms_radiative":
        (tail,) = (r for r in rows if str(r["quantity"]).startswith("tail fraction"))
        assert float(tail["measured"]) > 0.25
    if name == "crystalball":
        assert any(r["eta"] == (1.37, 1.52) for r in rows)  # the crack has its rows
        assert {"charge mis-identification", "tail fraction P(t < -1.2)"} <= extra
        assert sum(1 for r in rows if "pt" in r and str(r["quantity"]).startswith("scale")) == 3


@pytest.mark.generate
def test_the_zoo_is_really_different(zee_particles):
    """The response pT_reco/pT_true of central electrons: the non-Gaussian detectors have
    tails the CMS card has not, and the calorimetric one a core three times narrower."""
    from otus.generate.validate import electron_response

    def ratio(name: str) -> np.ndarray:
        reco = reconstruct(zee_particles, np.random.default_rng(3), detector=name)
        resp = electron_response(zee_particles, reco, name)
        ok = np.isfinite(resp["reco_pt"]) & (resp["pt"] > 25) & (np.abs(resp["eta"]) < 0.5)
        return resp["reco_pt"][ok] / resp["pt"][ok]

    cms, rad, cb = ratio("cms"), ratio("cms_radiative"), ratio("crystalball")
    q = {k: np.percentile(v, [2, 16, 50, 84]) for k, v in (("cms", cms), ("rad", rad), ("cb", cb))}
    assert np.mean(rad < 0.8) > 3 * np.mean(cms < 0.8)  # the radiative low-side tail
    assert q["cb"][3] - q["cb"][1] < (q["cms"][3] - q["cms"][1]) / 3  # a narrow core ...
    assert q["cb"][2] - q["cb"][0] > 2 * (q["cb"][3] - q["cb"][2])  # ... with a low tail


@pytest.mark.generate
def test_atlas_muons_follow_the_card():
    """Z → μμ through the ATLAS card: its muon identification (0.85 beyond |η| = 1.5, not
    the CMS card's 0.95) and resolution within 10 %."""
    pytest.importorskip("pythia8mc")
    from otus.generate.pythia import PythiaSource
    from otus.generate.validate import card_closure, lepton_response
    from otus.processes import load_card

    card = Path(__file__).resolve().parents[2] / "examples" / "cards" / "zmumu.yaml"
    _, _, particles = PythiaSource(load_card(card), 21).next_batch(1500)
    reco = reconstruct(particles, np.random.default_rng(3), detector="atlas")
    rows = card_closure(lepton_response(particles, reco, pdg=13, detector="atlas"), "atlas")
    for row in rows:
        tol = {"abs": 0.01} if str(row["quantity"]).startswith("scale") else {"rel": 0.1}
        assert row["measured"] == pytest.approx(row["card"], **tol), row
    endcap = next(r for r in rows if r["quantity"] == "efficiency (isolated)" and r["eta"][0] > 1)
    assert float(endcap["measured"]) < 0.88  # the CMS card: 0.98 × 0.95 = 0.93


# --------------------------------------------------------------------------- by hand


def test_atlas_jets_are_wider_and_its_missing_et_ignores_muons():
    # two pions 0.55 apart in η: one R = 0.6 jet (ATLAS), two R = 0.5 jets (CMS)
    ev = _single(200, 211, 40.0, 0.0, (130, 40.0, 0.55, 0.0))
    jets = {
        n: ak.num(reconstruct(ev, np.random.default_rng(1), detector=n)["Jet"]) for n in NAMES[:2]
    }
    assert np.mean(jets["atlas"] == 1) > 0.95 and np.mean(jets["cms"] == 2) > 0.95
    # a lone muon: the CMS energy flow measures it (MET = its pT), the ATLAS towers do not
    mu = _single(200, 13, 30.0, 0.2)
    met = {
        n: ak.to_numpy(
            ak.flatten(reconstruct(mu, np.random.default_rng(1), detector=n)["MissingET"].MET)
        )
        for n in NAMES[:2]
    }
    assert np.median(met["cms"]) == pytest.approx(30.0, rel=0.02) and np.all(met["atlas"] == 0)


def test_crystalball_draws_follow_the_crystal_ball():
    cb = get_detector("crystalball").electron_core
    assert cb is not None
    sigma = np.full(200_000, 0.03)
    t = (cb.draw(sigma, np.random.default_rng(0)) - 1.0) / 0.03
    for x in (-8.0, -1.2, 0.0, 1.0):
        assert np.mean(t <= x) == pytest.approx(cb.cdf(np.array(x), np.array(0.03)), rel=0.02)
    assert np.mean(t < -1.2) == pytest.approx(cb.tail_probability(np.array(0.03)), rel=0.02)


def test_bethe_heitler_kept_fraction_on_single_electrons():
    """With the track resolution switched (almost) off, pT_reco/pT_true of ``cms_radiative``
    electrons is the Bethe-Heitler kept fraction: its distribution and ⟨z⟩ = e^(−t)."""
    d = get_detector("cms_radiative")
    assert d.electron_radiation is not None
    ev = _single(40_000, 11, 200.0, 1.4)
    reco = reconstruct(ev, np.random.default_rng(2), det.DetectorOptions(1e-6), d)
    z = ak.to_numpy(ak.flatten(reco["Electron"].PT)) / 200.0
    for z0 in (0.5, 0.9, 0.99):
        want = d.electron_radiation.cdf(np.array(z0), np.array(1.4))
        assert np.mean(z <= z0) == pytest.approx(want, rel=0.1)
    # identification (pT > 10 GeV) keeps z > 0.05: the mean of the rest is e^(−t) to 1 %
    assert z.mean() == pytest.approx(
        np.exp(-d.electron_radiation.thickness(np.array(1.4))), rel=0.01
    )


@pytest.mark.parametrize(("eta", "crack"), [(0.3, False), (1.45, True), (2.2, False)])
def test_crystalball_crack_and_charge_flip_on_single_electrons(eta: float, crack: bool):
    """40 GeV electrons at fixed η: the efficiency (the crack included) within 10 % of the
    formula, the charge mis-identification rate within its Poisson error (and within 10 %
    where it is largest and has the statistics: |η| = 2.2)."""
    d = get_detector("crystalball")
    assert d.electron_charge_flip is not None
    n = 100_000
    reco = reconstruct(_single(n, 11, 40.0, eta), np.random.default_rng(5), detector=d)
    q = ak.to_numpy(ak.flatten(reco["Electron"].Charge))
    pt, at = np.array([40.0]), np.array([eta])
    assert len(q) / n == pytest.approx(d.electron_efficiency(pt, at)[0], rel=0.1)
    assert (len(q) / n < 0.3) == crack
    flips, want = np.sum(q == 1), d.electron_charge_flip(pt, at)[0] * len(q)
    assert abs(flips - want) < 3.5 * np.sqrt(want)
    if eta == 2.2:
        assert flips == pytest.approx(want, rel=0.1)


def test_dressing_adds_nearby_photons_to_the_nearest_electron():
    # (η, φ): e1 (0.3, 0), γ1 (0.35, 0) 0.05 from e1 but 0.042 from e2 (0.38, 0.03),
    # γ2 (0.5, 0) 0.12 from e2 (outside), γ3 (0.25, 0) 0.05 from e1
    pid = np.array([11, 22, -11, 22, 22])
    pt = np.array([40.0, 5.0, 20.0, 3.0, 2.0])
    eta = np.array([0.3, 0.35, 0.38, 0.5, 0.25])
    phi = np.array([0.0, 0.0, 0.03, 0.0, 0.0])
    p4 = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)], 1)
    one = (np.zeros(5, dtype=int), np.array([5]))
    out = dress(pid, p4, *one, 0.1)
    np.testing.assert_allclose(out[0], p4[0] + p4[4])
    np.testing.assert_allclose(out[2], p4[2] + p4[1])  # γ1 goes to the nearer electron only
    np.testing.assert_allclose(out[[1, 4]], np.zeros((2, 4)))
    np.testing.assert_allclose(out[3], p4[3])
    np.testing.assert_allclose(dress(pid, p4, *one, 0.0), p4)


@pytest.mark.parametrize("name", NAMES)
def test_knobs_work_on_every_detector(name: str):
    """energy_scale multiplies every electron momentum; resolution_scale the fitted core
    width; efficiency_scale the fraction found."""
    d = get_detector(name)
    ev = _single(6000, 11, 40.0, 0.3)

    def run(**kw: float) -> ak.Array:
        return reconstruct(ev, np.random.default_rng(4), det.DetectorOptions(**kw), d)["Electron"]

    nominal, scaled = run(), run(energy_scale=1.05)
    both = (ak.num(nominal) == 1) & (ak.num(scaled) == 1)
    ratio = ak.to_numpy(ak.flatten(scaled[both].PT)) / ak.to_numpy(ak.flatten(nominal[both].PT))
    np.testing.assert_allclose(ratio, 1.05, rtol=1e-5)
    n_nom = ak.sum(ak.num(nominal))
    assert ak.sum(ak.num(run(efficiency_scale=0.5))) / n_nom == pytest.approx(0.5, abs=0.03)
    narrow = ak.to_numpy(ak.flatten(run(resolution_scale=0.5).PT)) / 40.0
    _, k = fit_response(narrow, np.full(len(narrow), 40.0), np.full(len(narrow), 0.3), detector=d)
    assert k == pytest.approx(0.5, rel=0.1)


@pytest.mark.generate
def test_electrons_arrive_with_their_fsr_photons(zee_particles):
    """Pythia's QED shower off leptons is on (no card switches it off): photons near the
    electrons, which ``crystalball`` dresses in and the Delphes cards do not."""
    from otus.processes import TTBAR, ZEE

    for proc in (ZEE, TTBAR):
        assert not any("QEDshowerByL" in s and "off" in s for s in proc.pythia)
    flat = ak.flatten(zee_particles)
    counts = ak.to_numpy(ak.num(zee_particles))
    pid = ak.to_numpy(flat.id)
    p4 = np.stack([ak.to_numpy(flat[c]) for c in ("px", "py", "pz", "e")], 1).astype(float)
    dressed = dress(pid, p4, np.repeat(np.arange(len(counts)), counts), counts, 0.1)
    e = np.abs(pid) == 11
    gain = dressed[e, 3] / p4[e, 3] - 1
    assert 0.1 < np.mean(gain > 0.001) < 0.9  # a fair share of electrons radiated nearby
    assert np.sum(dressed[pid == 22, 3] == 0) > 0.1 * e.sum()
