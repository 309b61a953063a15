"""Detector simulation of showered events: final-state particles in, Delphes collections out.

The chain follows the module order of the Delphes cards (see :mod:`otus.generate.detector`
for what a detector is made of, :mod:`otus.generate.zoo` for the detectors), vectorised
over a batch of events; every number below is the detector's (the CMS card's by default):

0. **Dressing** (detectors with ``electron_dressing_dr`` > 0 only). Each photon within that
   ΔR of an electron is added to the nearest such electron and removed.
1. **Energy flow.** Each visible final-state particle with |η| < 5 becomes one energy-flow
   object. Charged particles inside the tracker (|η| ≤ 2.5) are tracks, kept with the card's
   tracking efficiency and smeared with its log-normal momentum resolution; an electron or
   charged hadron whose track is lost is measured by the calorimeter instead. Photons and
   electrons outside the tracker are ECAL deposits; all other visible particles (neutral
   hadrons, and in showers without hadronisation the final partons) are HCAL deposits; both
   get the card's log-normal energy resolution. Muons outside the tracker and neutrinos are
   invisible. Simplification: one deposit per particle, no tower merging or thresholds.
   Electrons may then get a Crystal-Ball response instead of the log-normal and a
   pT-dependent scale. Detectors with ``towers`` (the ATLAS card) also measure every visible
   particle but muons in the calorimeters (e, γ in ECAL, the rest in HCAL): the towers.
2. **Electrons, muons.** Tracked leptons pass the identification efficiency (on the measured
   pT) and the isolation requirement (Σ pT of other energy-flow objects with pT > 0.5 GeV
   within ΔR < 0.5, divided by the lepton pT, at most 0.12 for electrons, 0.25 for muons).
   An electron's measured momentum may first lose a bremsstrahlung (Bethe-Heitler) fraction
   (the radiated photon stays in the energy flow, outside the electron's isolation), and its
   charge may flip.
3. **Jets.** anti-kT, R = 0.5 (fastjet) on the energy flow (or the towers) minus the isolated
   leptons; pT > 20 GeV, then the card's jet energy scale. Their resolution is that of their
   constituents (tracks and calorimeter deposits), as in Delphes' energy-flow jets.
4. **Missing ET.** Minus the vector sum of all energy-flow (or tower) transverse momenta.

Random numbers are drawn in the order of the CMS card's chain; the steps that only other
detectors have draw after it, so ``cms`` events are the same as before the zoo existed.

Output: ``{"Electron", "Muon", "Jet", "MissingET"}`` awkward records with Delphes field
names, as consumed by :func:`otus.physics.selection.build_x`; objects sorted by decreasing pT.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from otus.generate import detector as det
from otus.generate.zoo import CMS, get_detector

NEUTRINOS = (12, 14, 16)


def _pt_eta_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, ...]:
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-12))
    return pt, eta, np.arctan2(py, px)


def energy_flow(
    pid: np.ndarray,
    charge: np.ndarray,
    p4: np.ndarray,
    rng: np.random.Generator,
    opts: det.DetectorOptions,
    detector: det.Detector = CMS,
) -> dict[str, np.ndarray]:
    """Step 1 on flat particle arrays: returns reconstructed four-momenta ``p4`` [M, 4]
    (zero rows for invisible particles), ``visible`` [M] and ``tracked`` [M] masks; with
    ``detector.electron_radiation`` the kept fractions ``kept`` [M] of the electrons' measured
    momenta (1 elsewhere); with ``detector.towers`` the calorimeter ``towers`` [M, 4]."""
    d = detector
    px, py, pz, e = p4.T
    pt, eta, _ = _pt_eta_phi(px, py, pz)
    apid = np.abs(pid)
    aeta = np.abs(eta)
    in_calo = (aeta < d.calo_eta_max) & (pt > 1e-9) & ~np.isin(apid, NEUTRINOS)
    charged = np.abs(charge) > 0.9
    in_tracker = in_calo & charged & (aeta <= d.tracker_eta_max)
    is_e, is_mu = apid == 11, apid == 13
    # Tracking efficiencies (ElectronTrackingEfficiency, MuonTrackingEfficiency,
    # ChargedHadronTrackingEfficiency); one uniform draw per particle, in particle order.
    eff = np.select(
        [is_e, is_mu],
        [d.electron_tracking_efficiency(pt, eta), d.muon_tracking_efficiency(pt, eta)],
        d.charged_hadron_tracking_efficiency(pt, eta),
    )
    tracked = in_tracker & det.accept(eff, rng)
    # Track momentum resolution (…MomentumSmearing), relative σ/pT.
    res = (
        np.select(
            [is_e, is_mu],
            [d.electron_resolution(pt, eta), d.muon_resolution(pt, eta)],
            d.charged_hadron_resolution(pt, eta),
        )
        * opts.resolution_scale
    )
    pt_track = det.log_normal(np.where(tracked, pt, 0.0), res * pt, rng)
    # Calorimeter deposits: lost electron tracks, photons and forward electrons in ECAL;
    # lost hadron tracks and every other visible non-muon particle in HCAL.
    in_ecal = in_calo & ~tracked & ((apid == 22) | is_e)
    in_hcal = in_calo & ~tracked & ~in_ecal & ~is_mu
    sigma_e = np.where(in_ecal, d.ecal_resolution(e, eta), d.hcal_resolution(e, eta))
    e_calo = det.log_normal(
        np.where(in_ecal | in_hcal, e, 0.0), sigma_e * opts.resolution_scale, rng
    )
    factor = np.where(
        tracked,
        pt_track / np.maximum(pt, 1e-12),
        np.where(in_ecal | in_hcal, e_calo / np.maximum(e, 1e-12), 0.0),
    )
    visible = tracked | in_ecal | in_hcal
    # Beyond the cards (electrons): these draw only for detectors that have them.
    electron = np.flatnonzero(tracked & is_e)
    if d.electron_core is not None:
        factor[electron] = d.electron_core.draw(res[electron], rng)
    if d.electron_scale is not None:
        factor[electron] *= d.electron_scale(pt[electron], eta[electron])
    out = {
        "p4": p4 * (factor * opts.energy_scale)[:, None],
        "visible": visible,
        "tracked": tracked,
    }
    if d.electron_radiation is not None:
        kept = np.ones(len(pid))
        kept[electron] = d.electron_radiation.draw(eta[electron], rng)
        out["kept"] = kept
    if d.towers:  # every visible non-muon particle in the calorimeters; muons unseen
        in_towers = in_calo & ~is_mu
        again = in_towers & tracked  # tracks are measured a second time, in the towers
        sigma_t = np.where(
            is_e | (apid == 22), d.ecal_resolution(e, eta), d.hcal_resolution(e, eta)
        )
        e_tower = det.log_normal(np.where(again, e, 0.0), sigma_t * opts.resolution_scale, rng)
        e_tower = np.where(again, e_tower, np.where(in_towers, e_calo, 0.0))
        out["towers"] = p4 * (e_tower / np.maximum(e, 1e-12) * opts.energy_scale)[:, None]
    return out


def _event_pairs(
    cand: np.ndarray, evt: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every (candidate, object of its event) pair of flat arrays: ``rep`` indexes ``cand``,
    ``other`` the objects (objects of one event contiguous, events in order)."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_per = counts[evt[cand]]
    rep = np.repeat(np.arange(len(cand)), n_per)
    first = np.concatenate([[0], np.cumsum(n_per)[:-1]])
    other = np.repeat(starts[evt[cand]] - first, n_per) + np.arange(len(rep))
    return rep, other


def isolation_ratio(
    cand: np.ndarray,
    evt: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    counts: np.ndarray,
    *,
    dr_max: float = CMS.iso_dr_max,
    pt_min: float = CMS.iso_pt_min,
) -> np.ndarray:
    """Module ``Isolation``: for the candidates with flat indices ``cand``, the scalar pT sum
    of the other objects of their event with pT > ``pt_min`` within ΔR < ``dr_max``, over
    their pT.

    ``evt``, ``pt``, ``eta``, ``phi`` are flat per-object arrays of events with ``counts``
    objects each (objects of one event contiguous, events in order).
    """
    if len(cand) == 0:
        return np.zeros(0, dtype=np.float64)
    rep, other = _event_pairs(cand, evt, counts)
    dphi = (phi[other] - phi[cand[rep]] + np.pi) % (2 * np.pi) - np.pi
    near = (eta[other] - eta[cand[rep]]) ** 2 + dphi**2 < dr_max**2
    use = near & (pt[other] > pt_min) & (other != cand[rep])
    iso_sum = np.bincount(rep, weights=np.where(use, pt[other], 0.0), minlength=len(cand))
    return iso_sum / np.maximum(pt[cand], 1e-12)


def dress(
    pid: np.ndarray, p4: np.ndarray, evt: np.ndarray, counts: np.ndarray, dr_max: float
) -> np.ndarray:
    """Photon dressing on flat particle arrays: every photon within ΔR < ``dr_max`` of an
    electron is added to the four-momentum of the nearest such electron of its event, and its
    own row set to zero (so that nothing measures it twice). Returns the new ``p4``."""
    out = np.array(p4, dtype=np.float64, copy=True)
    electrons = np.flatnonzero(np.abs(pid) == 11)
    if dr_max <= 0 or len(electrons) == 0:
        return out
    pt, eta, phi = _pt_eta_phi(out[:, 0], out[:, 1], out[:, 2])
    rep, other = _event_pairs(electrons, evt, counts)
    dphi = (phi[other] - phi[electrons[rep]] + np.pi) % (2 * np.pi) - np.pi
    dr2 = (eta[other] - eta[electrons[rep]]) ** 2 + dphi**2
    ok = (pid[other] == 22) & (pt[other] > 1e-9) & (dr2 < dr_max**2)
    rep, other, dr2 = rep[ok], other[ok], dr2[ok]
    order = np.lexsort((dr2, other))  # per photon, the nearest electron first
    _, first = np.unique(other[order], return_index=True)
    take = order[first]
    np.add.at(out, electrons[rep[take]], out[other[take]])
    out[other[take]] = 0.0
    return out


def _collection(
    evt: np.ndarray, n: int, fields: dict[str, np.ndarray], sort_by: str = "PT"
) -> ak.Array:
    """Jagged records sorted by decreasing PT; float32 kinematics, int32 charge (as Delphes
    stores them, so x built from these equals x built from the written ROOT file)."""
    order = np.lexsort((-fields[sort_by], evt))
    counts = np.bincount(evt, minlength=n)
    cols = {
        k: v[order].astype(np.int32 if k == "Charge" else np.float32) for k, v in fields.items()
    }
    return ak.unflatten(ak.zip(cols), counts)


def _jets(p4: np.ndarray, evt: np.ndarray, n: int, d: det.Detector) -> ak.Array:
    import fastjet
    import fastjet._swig

    fastjet._swig.ClusterSequence.set_fastjet_banner_stream(None)  # keep stdout clean
    counts = np.bincount(evt, minlength=n)
    parts = ak.unflatten(
        ak.zip({"px": p4[:, 0], "py": p4[:, 1], "pz": p4[:, 2], "E": p4[:, 3]}), counts
    )
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, d.jet_r)
    jets = fastjet.ClusterSequence(parts, jetdef).inclusive_jets(min_pt=d.jet_pt_min)
    jn = ak.num(jets)
    jevt = np.repeat(np.arange(n), ak.to_numpy(jn))
    j = np.stack([ak.to_numpy(ak.flatten(jets[c])) for c in ("px", "py", "pz", "E")], axis=-1)
    j = j.reshape(-1, 4)
    pt, eta, phi = _pt_eta_phi(j[:, 0], j[:, 1], j[:, 2])
    j = j * d.jet_energy_scale(pt, eta)[:, None]  # JetEnergyScale
    m = np.sqrt(np.maximum(j[:, 3] ** 2 - (j[:, :3] ** 2).sum(-1), 0.0))
    return _collection(
        jevt, n, {"PT": np.hypot(j[:, 0], j[:, 1]), "Eta": eta, "Phi": phi, "Mass": m}
    )


def reconstruct(
    particles: ak.Array,
    rng: np.random.Generator,
    opts: det.DetectorOptions | None = None,
    detector: str | det.Detector = CMS,
) -> dict[str, ak.Array]:
    """Run ``detector`` (a :class:`~otus.generate.detector.Detector` or the name of one in
    :data:`otus.generate.zoo.DETECTORS`; the CMS card by default) on final-state
    ``particles`` ([N, var] records with ``id``, ``charge``, ``px``, ``py``, ``pz``, ``e``)
    and return Delphes-named collections."""
    opts = opts or det.DetectorOptions()
    d = get_detector(detector)
    n = len(particles)
    counts = ak.to_numpy(ak.num(particles)).astype(np.int64)
    evt = np.repeat(np.arange(n), counts)
    flat = ak.flatten(particles)
    pid = ak.to_numpy(flat.id).astype(np.int64)
    charge = ak.to_numpy(flat.charge).astype(np.float64)
    p4 = np.stack(
        [ak.to_numpy(flat[c]).astype(np.float64) for c in ("px", "py", "pz", "e")], axis=-1
    ).reshape(-1, 4)
    if d.electron_dressing_dr > 0:
        p4 = dress(pid, p4, evt, counts, d.electron_dressing_dr)
    flow = energy_flow(pid, charge, p4, rng, opts, d)
    q, vis = flow["p4"], flow["visible"]
    pt, eta, phi = _pt_eta_phi(q[:, 0], q[:, 1], q[:, 2])
    pt = np.where(vis, pt, 0.0)
    out: dict[str, ak.Array] = {}
    lepton = np.zeros(len(pid), dtype=bool)
    for name, code, eff_fn, ratio in (
        ("Electron", 11, d.electron_identification, d.electron_iso_ratio_max),
        ("Muon", 13, d.muon_id_efficiency, d.muon_iso_ratio_max),
    ):
        cand = np.flatnonzero(flow["tracked"] & (np.abs(pid) == code))
        # the measured pT: an electron's track may have lost a bremsstrahlung fraction
        kept = flow["kept"][cand] if code == 11 and "kept" in flow else None
        cpt = pt[cand] if kept is None else pt[cand] * kept
        ok = det.accept(eff_fn(cpt, eta[cand]) * opts.efficiency_scale, rng)
        cand, cpt = cand[ok], cpt[ok]
        iso = isolation_ratio(
            cand, evt, pt, eta, phi, counts, dr_max=d.iso_dr_max, pt_min=d.iso_pt_min
        )
        if kept is not None:  # relative to the measured pT (the photon stays out of the sum)
            iso = iso * pt[cand] / np.maximum(cpt, 1e-12)
        isolated = iso <= ratio
        cand, cpt = cand[isolated], cpt[isolated]
        lepton[cand] = True
        lep_charge = -np.sign(pid[cand]).astype(np.int32)
        if code == 11 and d.electron_charge_flip is not None:
            flip = det.accept(d.electron_charge_flip(cpt, eta[cand]), rng)
            lep_charge = np.where(flip, -lep_charge, lep_charge).astype(np.int32)
        out[name] = _collection(
            evt[cand],
            n,
            {"PT": cpt, "Eta": eta[cand], "Phi": phi[cand], "Charge": lep_charge},
        )
    # Jets and missing ET: from the energy flow, or from the calorimeter towers.
    if d.towers:
        q = flow["towers"]
        vis = np.any(q != 0.0, axis=1)
    jet_in = vis & ~lepton
    out["Jet"] = _jets(q[jet_in], evt[jet_in], n, d)
    mpx = -np.bincount(evt, weights=np.where(vis, q[:, 0], 0.0), minlength=n)
    mpy = -np.bincount(evt, weights=np.where(vis, q[:, 1], 0.0), minlength=n)
    mpz = -np.bincount(evt, weights=np.where(vis, q[:, 2], 0.0), minlength=n)
    met, met_eta, met_phi = _pt_eta_phi(mpx, mpy, mpz)
    out["MissingET"] = _collection(
        np.arange(n), n, {"MET": met, "Eta": met_eta, "Phi": met_phi}, sort_by="MET"
    )
    return out
