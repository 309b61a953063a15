"""Built-in per-process behaviour that a card can name: observables and LHE records that need
more than the card's declarative language.

``ttbar_semileptonic`` (observables and LHE record) expects the parton list
[lepton, neutrino, b, b̄, q, q̄′] (t → W⁺ b, W⁺ → q q̄′; t̄ → W⁻ b̄, W⁻ → ℓ⁻ ν̄) and a detector
list with one lepton, one ``met`` and at least four jets. Jet assignment at detector level
(jets carry no flavour tag in x): the hadronic W is the pair of the first four jets whose
mass is closest to M_W; of the two remaining jets, the one that with that W gives a mass
closest to M_t is the hadronic b, the other the leptonic b. The leptonic W is lepton +
neutrino, the neutrino pz solved from the W-mass constraint (the smaller-|pz| root; the
real part when the discriminant is negative). At parton level the assignment is known:
W = q + q̄′, hadronic top = b + W, leptonic top = ℓ + ν̄ + b̄.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from otus.physics import fourvec as fv
from otus.physics.observables import M_TOP, M_W, neutrino_pz

if TYPE_CHECKING:
    from otus.processes.process import Process

_LEPTONS = ("electron", "muon")


def _ttbar_roles(process: Process, level: str) -> tuple[int, int, list[int]]:
    """(lepton, neutrino or met, jets) indices of a level, for the ttbar assignment."""
    if level == "z":
        return 0, 1, [2, 3, 4, 5]
    types = process.x_types
    lep = next(i for i, t in enumerate(types) if t in _LEPTONS)
    met = types.index("met")
    jets = [i for i, t in enumerate(types) if t == "jet"][:4]
    return lep, met, jets


def _ttbar_observables(process: Process, p: np.ndarray, level: str) -> dict[str, np.ndarray]:
    lep_i, nu_i, jet_i = _ttbar_roles(process, level)
    if level == "z":
        e, nu, b, bbar, q, qbar = (p[:, i] for i in (lep_i, nu_i, *jet_i))
        w = q + qbar
        t_had, t_lep = w + b, e + nu + bbar
    else:
        e, met, jets = p[:, lep_i], p[:, nu_i], p[:, jet_i]
        pairs = list(combinations(range(4), 2))
        mw = np.stack([fv.invariant_mass(jets[:, i], jets[:, j]) for i, j in pairs], axis=1)
        best = np.nanargmin(np.where(np.isnan(mw), np.inf, np.abs(mw - M_W)), axis=1)
        rows = np.arange(len(p))
        ij = np.array(pairs)[best]
        w = jets[rows, ij[:, 0]] + jets[rows, ij[:, 1]]
        rest = np.array([[k for k in range(4) if k not in pr] for pr in pairs])[best]
        b1, b2 = jets[rows, rest[:, 0]], jets[rows, rest[:, 1]]
        t1, t2 = fv.mass(w + b1), fv.mass(w + b2)
        first = np.abs(t1 - M_TOP) <= np.abs(t2 - M_TOP)
        b_had = np.where(first[:, None], b1, b2)
        b_lep = np.where(first[:, None], b2, b1)
        nu = met.copy()
        nu[:, 2] = neutrino_pz(e, met)
        nu[:, 3] = fv.p3(nu)
        t_had, t_lep = w + b_had, e + nu + b_lep
    return {
        "m_W_had": fv.mass(w),
        "m_t_had": fv.mass(t_had),
        "m_t_lep": fv.mass(t_lep),
        "m_tt": fv.mass(t_had + t_lep),
    }


def _ttbar_combos(process: Process, level: str) -> list[tuple[int, ...]]:
    if level == "z":  # lepton, neutrino, b, bbar, q, qbar: W_had, t_had, t_lep
        return [(4, 5), (2, 4, 5), (0, 1, 3)]
    _, _, jets = _ttbar_roles(process, level)
    return list(combinations(jets, 2)) + list(combinations(jets, 3))


def _ttbar_check(process: Process, where: str) -> None:
    from otus.processes.card import CardError

    kinds = [p.kind for p in process.parton]
    ok_z = (
        len(kinds) == 6
        and kinds[0] in _LEPTONS
        and kinds[1] == "met"
        and all(k == "jet" for k in kinds[2:])
    )
    types = process.x_types
    ok_x = any(t in _LEPTONS for t in types) and "met" in types and types.count("jet") >= 4
    if not (ok_z and ok_x):
        raise CardError(
            f"{where}: ttbar_semileptonic needs partons [lepton, neutrino, b, bbar, q, qbar] "
            "and detector objects with one lepton, a met and at least four jets"
        )


# name -> (observables of rows, mass combos of the `masses` loss block, card check)
_Obs = Callable[["Process", np.ndarray, str], dict[str, np.ndarray]]
_Combos = Callable[["Process", str], list[tuple[int, ...]]]
_Check = Callable[["Process", str], None]
BUILTIN_OBSERVABLES: dict[str, tuple[_Obs, _Combos, _Check]] = {
    "ttbar_semileptonic": (_ttbar_observables, _ttbar_combos, _ttbar_check),
}
_NAMES = {"ttbar_semileptonic": ("m_W_had", "m_t_had", "m_t_lep", "m_tt")}
# Named LHE records (otus.io.lhe writes them).
BUILTIN_RECORDS = ("ttbar_semileptonic",)


def builtin_observables(
    name: str, process: Process, p: np.ndarray, level: str
) -> dict[str, np.ndarray]:
    """Observables of the built-in ``name`` from object four-momenta ``p`` [N, n, 4]."""
    return BUILTIN_OBSERVABLES[name][0](process, p, level)


def builtin_mass_combos(name: str, process: Process, level: str) -> list[tuple[int, ...]]:
    """Object index groups of the built-in's invariant masses at ``level``."""
    return BUILTIN_OBSERVABLES[name][1](process, level)


def builtin_names(name: str) -> tuple[str, ...]:
    """Names of the observables that the built-in ``name`` computes."""
    return _NAMES[name]


def check_builtins(process: Process, where: str) -> None:
    """Raise a card error when a named built-in does not fit the card's object lists."""
    for ob in process.observable_defs:
        if ob.kind == "builtin":
            BUILTIN_OBSERVABLES[ob.builtin or ""][2](process, where)
    if process.lhe.builtin == "ttbar_semileptonic":
        _ttbar_check(process, where)
