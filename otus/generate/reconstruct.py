"""Detector simulation of showered events: final-state particles in, Delphes collections out.

The chain follows the module order of Delphes' CMS card (see :mod:`otus.generate.detector`
for the formulas and the reference), vectorised over a batch of events:

1. **Energy flow.** Each visible final-state particle with |η| < 5 becomes one energy-flow
   object. Charged particles inside the tracker (|η| ≤ 2.5) are tracks, kept with the card's
   tracking efficiency and smeared with its log-normal momentum resolution; an electron or
   charged hadron whose track is lost is measured by the calorimeter instead. Photons and
   electrons outside the tracker are ECAL deposits; all other visible particles (neutral
   hadrons, and in showers without hadronisation the final partons) are HCAL deposits; both
   get the card's log-normal energy resolution. Muons outside the tracker and neutrinos are
   invisible. Simplification: one deposit per particle, no tower merging or thresholds.
2. **Electrons, muons.** Tracked leptons pass the identification efficiency (on the smeared
   pT) and the isolation requirement (Σ pT of other energy-flow objects with pT > 0.5 GeV
   within ΔR < 0.5, divided by the lepton pT, at most 0.12 for electrons, 0.25 for muons).
3. **Jets.** anti-kT, R = 0.5 (fastjet) on the energy flow minus the isolated leptons;
   pT > 20 GeV, then the card's jet energy scale. Their resolution is that of their
   constituents (tracks and calorimeter deposits), as in Delphes' energy-flow jets.
4. **Missing ET.** Minus the vector sum of all energy-flow transverse momenta.

Output: ``{"Electron", "Muon", "Jet", "MissingET"}`` awkward records with Delphes field
names, as consumed by :func:`otus.physics.selection.build_x`; objects sorted by decreasing pT.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from otus.generate import detector as det

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
) -> dict[str, np.ndarray]:
    """Step 1 on flat particle arrays: returns reconstructed four-momenta ``p4`` [M, 4]
    (zero rows for invisible particles), ``visible`` [M] and ``tracked`` [M] masks."""
    px, py, pz, e = p4.T
    pt, eta, _ = _pt_eta_phi(px, py, pz)
    apid = np.abs(pid)
    aeta = np.abs(eta)
    in_calo = (aeta < det.CALO_ETA_MAX) & (pt > 1e-9) & ~np.isin(apid, NEUTRINOS)
    charged = np.abs(charge) > 0.9
    in_tracker = in_calo & charged & (aeta <= det.TRACKER_ETA_MAX)
    is_e, is_mu = apid == 11, apid == 13
    # Tracking efficiencies (ElectronTrackingEfficiency, MuonTrackingEfficiency,
    # ChargedHadronTrackingEfficiency); one uniform draw per particle, in particle order.
    eff = np.select(
        [is_e, is_mu],
        [det.electron_tracking_efficiency(pt, eta), det.muon_tracking_efficiency(pt, eta)],
        det.charged_hadron_tracking_efficiency(pt, eta),
    )
    tracked = in_tracker & det.accept(eff, rng)
    # Track momentum resolution (…MomentumSmearing), relative σ/pT.
    res = (
        np.select(
            [is_e, is_mu],
            [det.electron_resolution(pt, eta), det.muon_resolution(pt, eta)],
            det.charged_hadron_resolution(pt, eta),
        )
        * opts.resolution_scale
    )
    pt_track = det.log_normal(np.where(tracked, pt, 0.0), res * pt, rng)
    # Calorimeter deposits: lost electron tracks, photons and forward electrons in ECAL;
    # lost hadron tracks and every other visible non-muon particle in HCAL.
    in_ecal = in_calo & ~tracked & ((apid == 22) | is_e)
    in_hcal = in_calo & ~tracked & ~in_ecal & ~is_mu
    sigma_e = np.where(in_ecal, det.ecal_resolution(e, eta), det.hcal_resolution(e, eta))
    e_calo = det.log_normal(
        np.where(in_ecal | in_hcal, e, 0.0), sigma_e * opts.resolution_scale, rng
    )
    factor = np.where(
        tracked,
        pt_track / np.maximum(pt, 1e-12),
        np.where(in_ecal | in_hcal, e_calo / np.maximum(e, 1e-12), 0.0),
    )
    visible = tracked | in_ecal | in_hcal
    return {
        "p4": p4 * (factor * opts.energy_scale)[:, None],
        "visible": visible,
        "tracked": tracked,
    }


def isolation_ratio(
    cand: np.ndarray,
    evt: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    counts: np.ndarray,
) -> np.ndarray:
    """Module ``Isolation``: for the candidates with flat indices ``cand``, the scalar pT sum
    of the other objects of their event with pT > 0.5 GeV within ΔR < 0.5, over their pT.

    ``evt``, ``pt``, ``eta``, ``phi`` are flat per-object arrays of events with ``counts``
    objects each (objects of one event contiguous, events in order).
    """
    if len(cand) == 0:
        return np.zeros(0, dtype=np.float64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_per = counts[evt[cand]]
    rep = np.repeat(np.arange(len(cand)), n_per)
    first = np.concatenate([[0], np.cumsum(n_per)[:-1]])
    other = np.repeat(starts[evt[cand]] - first, n_per) + np.arange(len(rep))
    dphi = (phi[other] - phi[cand[rep]] + np.pi) % (2 * np.pi) - np.pi
    near = (eta[other] - eta[cand[rep]]) ** 2 + dphi**2 < det.ISO_DR_MAX**2
    use = near & (pt[other] > det.ISO_PT_MIN) & (other != cand[rep])
    iso_sum = np.bincount(rep, weights=np.where(use, pt[other], 0.0), minlength=len(cand))
    return iso_sum / np.maximum(pt[cand], 1e-12)


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


def _jets(p4: np.ndarray, evt: np.ndarray, n: int) -> ak.Array:
    import fastjet
    import fastjet._swig

    fastjet._swig.ClusterSequence.set_fastjet_banner_stream(None)  # keep stdout clean
    counts = np.bincount(evt, minlength=n)
    parts = ak.unflatten(
        ak.zip({"px": p4[:, 0], "py": p4[:, 1], "pz": p4[:, 2], "E": p4[:, 3]}), counts
    )
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, det.JET_R)
    jets = fastjet.ClusterSequence(parts, jetdef).inclusive_jets(min_pt=det.JET_PT_MIN)
    jn = ak.num(jets)
    jevt = np.repeat(np.arange(n), ak.to_numpy(jn))
    j = np.stack([ak.to_numpy(ak.flatten(jets[c])) for c in ("px", "py", "pz", "E")], axis=-1)
    j = j.reshape(-1, 4)
    pt, eta, phi = _pt_eta_phi(j[:, 0], j[:, 1], j[:, 2])
    j = j * det.jet_energy_scale(pt, eta)[:, None]  # JetEnergyScale
    m = np.sqrt(np.maximum(j[:, 3] ** 2 - (j[:, :3] ** 2).sum(-1), 0.0))
    return _collection(
        jevt, n, {"PT": np.hypot(j[:, 0], j[:, 1]), "Eta": eta, "Phi": phi, "Mass": m}
    )


def reconstruct(
    particles: ak.Array,
    rng: np.random.Generator,
    opts: det.DetectorOptions | None = None,
) -> dict[str, ak.Array]:
    """Run the detector on final-state ``particles`` ([N, var] records with ``id``,
    ``charge``, ``px``, ``py``, ``pz``, ``e``) and return Delphes-named collections."""
    opts = opts or det.DetectorOptions()
    n = len(particles)
    counts = ak.to_numpy(ak.num(particles)).astype(np.int64)
    evt = np.repeat(np.arange(n), counts)
    flat = ak.flatten(particles)
    pid = ak.to_numpy(flat.id).astype(np.int64)
    charge = ak.to_numpy(flat.charge).astype(np.float64)
    p4 = np.stack(
        [ak.to_numpy(flat[c]).astype(np.float64) for c in ("px", "py", "pz", "e")], axis=-1
    ).reshape(-1, 4)
    flow = energy_flow(pid, charge, p4, rng, opts)
    q, vis = flow["p4"], flow["visible"]
    pt, eta, phi = _pt_eta_phi(q[:, 0], q[:, 1], q[:, 2])
    pt = np.where(vis, pt, 0.0)
    out: dict[str, ak.Array] = {}
    lepton = np.zeros(len(pid), dtype=bool)
    for name, code, eff_fn, ratio in (
        ("Electron", 11, det.electron_id_efficiency, det.ELECTRON_ISO_RATIO_MAX),
        ("Muon", 13, det.muon_id_efficiency, det.MUON_ISO_RATIO_MAX),
    ):
        cand = np.flatnonzero(flow["tracked"] & (np.abs(pid) == code))
        ok = det.accept(eff_fn(pt[cand], eta[cand]) * opts.efficiency_scale, rng)
        cand = cand[ok]
        cand = cand[isolation_ratio(cand, evt, pt, eta, phi, counts) <= ratio]
        lepton[cand] = True
        out[name] = _collection(
            evt[cand],
            n,
            {
                "PT": pt[cand],
                "Eta": eta[cand],
                "Phi": phi[cand],
                "Charge": -np.sign(pid[cand]).astype(np.int32),
            },
        )
    jet_in = vis & ~lepton
    out["Jet"] = _jets(q[jet_in], evt[jet_in], n)
    mpx = -np.bincount(evt, weights=np.where(vis, q[:, 0], 0.0), minlength=n)
    mpy = -np.bincount(evt, weights=np.where(vis, q[:, 1], 0.0), minlength=n)
    mpz = -np.bincount(evt, weights=np.where(vis, q[:, 2], 0.0), minlength=n)
    met, met_eta, met_phi = _pt_eta_phi(mpx, mpy, mpz)
    out["MissingET"] = _collection(
        np.arange(n), n, {"MET": met, "Eta": met_eta, "Phi": met_phi}, sort_by="MET"
    )
    return out
