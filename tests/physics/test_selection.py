from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch

from otus.physics import fourvec as fv
from otus.physics.observables import neutrino_pz, observables
from otus.physics.selection import acceptance, build_x, build_z
from otus.processes import TTBAR, ZEE


def _ele(pt, eta, phi, q):
    return ak.zip({"PT": pt, "Eta": eta, "Phi": phi, "Charge": q})


def test_zee_selection() -> None:
    ele = _ele(
        [[40.0, 30.0], [40.0], [40.0, 30.0], [20.0, 25.0, 30.0]],
        [[0.1, -0.5], [0.0], [1.0, 1.0], [0, 0, 0]],
        [[0.0, 3.0], [0.0], [0.0, 1.0], [0, 1, 2]],
        [[1, -1], [-1], [-1, -1], [1, -1, 1]],
    )
    x, ok = build_x(ZEE, {"Electron": ele})
    assert ok.tolist() == [True, False, False, False]
    # e- comes first in x even when it is second in the collection.
    assert fv.pt(x[0, :4]) == np.float32(30.0)
    assert np.isnan(x[1]).all()


def _ttbar_reco(jet_pts):
    n = len(jet_pts)
    return {
        "Electron": _ele([[50.0]] * n, [[0.0]] * n, [[0.0]] * n, [[-1]] * n),
        "Muon": _ele([[]] * n, [[]] * n, [[]] * n, [[]] * n),
        "Jet": ak.zip(
            {
                "PT": jet_pts,
                "Eta": [[0.5] * len(j) for j in jet_pts],
                "Phi": [[float(i) for i in range(len(j))] for j in jet_pts],
                "Mass": [[5.0] * len(j) for j in jet_pts],
            }
        ),
        "MissingET": ak.zip({"MET": [[30.0]] * n, "Eta": [[0.0]] * n, "Phi": [[1.0]] * n}),
    }


def test_ttbar_selection_orders_jets() -> None:
    x, ok = build_x(
        TTBAR,
        _ttbar_reco([[30.0, 80.0, 60.0, 25.0], [30.0, 80.0, 60.0], [30.0, 80.0, 60.0, 25.0, 22.0]]),
    )
    assert ok.tolist() == [True, False, False]
    jets = fv.objects(x[:1], 6)[0, 2:]
    np.testing.assert_allclose(fv.pt(jets), [80, 60, 30, 25], rtol=1e-5)
    np.testing.assert_allclose(fv.mass(jets), 5.0, rtol=1e-3)
    met = fv.objects(x[:1], 6)[0, 1]
    assert met[2] == 0 and met[3] == np.float32(30.0)


def test_acceptance_numpy_and_torch() -> None:
    x = np.concatenate(
        [
            fv.from_ptetaphim(np.array([40.0, 5.0]), np.zeros(2), np.zeros(2), 0.0),
            fv.from_ptetaphim(np.array([40.0, 40.0]), np.array([0.0, 0.0]), np.ones(2), 0.0),
        ],
        axis=1,
    )
    assert acceptance(ZEE, x).tolist() == [True, False]
    assert acceptance(ZEE, torch.tensor(x)).tolist() == [True, False]


def test_neutrino_pz_solves_w_mass() -> None:
    rng = np.random.default_rng(3)
    lep = fv.from_ptetaphim(
        rng.uniform(20, 60, 50), rng.uniform(-2, 2, 50), rng.uniform(-3, 3, 50), 0.0
    )
    # Build W decays: neutrino such that m(l nu) = 80.4 exists when discriminant >= 0.
    nu = fv.from_ptetaphim(
        rng.uniform(20, 60, 50), rng.uniform(-2, 2, 50), rng.uniform(-3, 3, 50), 0.0
    )
    met = nu.copy()
    met[:, 2] = 0
    m_true = fv.invariant_mass(lep, nu)
    pz = neutrino_pz(lep, met, m_w=m_true)
    sol = met.copy()
    sol[:, 2] = pz
    sol[:, 3] = fv.p3(sol)
    np.testing.assert_allclose(fv.invariant_mass(lep, sol), m_true, rtol=1e-6)


def test_parton_observables_ttbar() -> None:
    # t -> W b at rest-ish: build from known masses and check the parton assignment.
    z = np.zeros((1, 24))
    w1 = fv.from_ptetaphim(np.array([40.0]), np.array([0.0]), np.array([0.0]), 0.0)
    w2 = fv.from_ptetaphim(np.array([40.0]), np.array([0.0]), np.array([np.pi]), 0.0)
    z[0, 16:20], z[0, 20:24] = w1[0], w2[0]
    obs = observables(TTBAR, z, "z")
    assert obs["m_W_had"][0] == pytest.approx(80.0)


@pytest.mark.parametrize("proc", [ZEE, TTBAR])
def test_acceptance_equals_the_pt_and_eta_cuts(proc: object) -> None:
    # SPEC §5, independent of the built-in cards that implement it.
    ELECTRON_PT_MIN, ELECTRON_ETA_MAX, JET_PT_MIN, JET_ETA_MAX = 10.0, 2.5, 20.0, 2.5

    rng = np.random.default_rng(3)
    n, k = 20000, len(proc.x_objects)  # type: ignore[attr-defined]
    p = fv.from_ptetaphim(
        rng.uniform(0, 60, (n, k)), rng.uniform(-4, 4, (n, k)), rng.uniform(-3, 3, (n, k)), 0.0
    ).reshape(n, 4 * k)
    o = fv.objects(p)
    pts, ae = fv.pt(o), np.abs(fv.eta(o))
    if proc is ZEE:
        ref = ((pts > ELECTRON_PT_MIN) & (ae < ELECTRON_ETA_MAX)).all(-1)
    else:
        ref = (
            (pts[:, 0] > ELECTRON_PT_MIN)
            & (ae[:, 0] < ELECTRON_ETA_MAX)
            & ((pts[:, 2:] > JET_PT_MIN) & (ae[:, 2:] < JET_ETA_MAX)).all(-1)
        )
    assert 0.01 < ref.mean() < 0.99
    np.testing.assert_array_equal(acceptance(proc, p), ref)  # type: ignore[arg-type]
    np.testing.assert_array_equal(acceptance(proc, torch.tensor(p)).numpy(), ref)  # type: ignore[arg-type]


def _record(rows: list[list[tuple]]) -> ak.Array:
    """Hard-process records from (pdg, outgoing, mother, px, py, pz, E) rows per event."""
    names = ("pdg", "outgoing", "mother", "px", "py", "pz", "E")
    return ak.Array([[dict(zip(names, r, strict=True)) for r in ev] for ev in rows])


def test_build_z_takes_the_highest_pt_match_not_yet_taken() -> None:
    """The one parton-level rule (LHE and NanoAOD): per card entry in order, the highest-pT
    outgoing particle with its PDG id (and mother) that no earlier entry took."""
    e1 = (11, True, 23, 30.0, 0.0, 5.0, 30.5)
    e2 = (11, True, 23, 0.0, 45.0, 1.0, 45.1)
    pos = (-11, True, 23, -20.0, 0.0, 2.0, 20.2)
    z, sel = build_z(
        ZEE,
        _record(
            [
                [e1, e2, pos],  # two e-: the harder (e2) is taken
                [(11, False, 0, 0.0, 60.0, 0.0, 60.0), e1, pos],  # incoming: not outgoing
                [e1, e2],  # no e+: not selected
                [],
            ]
        ),
    )
    np.testing.assert_array_equal(sel, [True, True, False, False])
    np.testing.assert_array_equal(z[0], [*e2[3:], *pos[3:]])
    np.testing.assert_array_equal(z[1], [*e1[3:], *pos[3:]])
    assert np.isnan(z[2:]).all()
    # ttbar: q and q̄′ come from the W+ only; an entry never takes what an earlier one took.
    wq = [(2, True, 24, 10.0, 0, 0, 10.0), (-1, True, 24, 20.0, 0, 0, 20.0)]
    top = [
        (11, True, -24, 1.0, 0, 0, 1.0),
        (-12, True, -24, 2.0, 0, 0, 2.0),
        (5, True, 6, 3.0, 0, 0, 3.0),
        (-5, True, -6, 4.0, 0, 0, 4.0),
    ]
    other_w = [(3, True, 21, 90.0, 0, 0, 90.0)]  # a harder quark, but from a gluon
    z, sel = build_z(TTBAR, _record([top + wq + other_w, top + wq[:1]]))
    np.testing.assert_array_equal(sel, [True, False])
    np.testing.assert_array_equal(z[0, 16:], [10.0, 0, 0, 10.0, 20.0, 0, 0, 20.0])


def test_build_z_lets_nan_through() -> None:
    """A particle with NaN momentum is chosen, not passed over, so readers see the NaN."""
    nan = (11, True, 0, np.nan, 1.0, 1.0, 2.0)
    z, sel = build_z(
        ZEE, _record([[(11, True, 0, 5.0, 0, 0, 5.0), nan, (-11, True, 0, 1.0, 0, 0, 1.0)]])
    )
    assert sel[0] and np.isnan(z[0, 0])
