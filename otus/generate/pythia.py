"""Parton-level events and their showers from Pythia 8 (``pythia8mc``), 13 TeV.

The hard process plays the role of MadGraph: its outgoing leptons and partons are z (each
matched to the first free entry of the process card by PDG id and mother), put exactly on the
process mass shell (E recomputed from p with the card's masses). The process and its shower
settings are the card's ``pythia`` block. Events failing the generator cuts are vetoed at process level
(before the shower, so they cost almost nothing) and regenerated, like MadGraph's run-card
cuts. The cuts are MadGraph 5's default run card: charged leptons (e, μ) pT > 10 GeV,
|η| < 2.5; light quarks and gluons (MadGraph's "j") pT > 20 GeV, |η| < 5; ΔR(l, l), ΔR(j, j),
ΔR(j, l) > 0.4; none on b, τ or neutrinos (the default run card has no missing-ET cut, so a
W → e ν sample keeps its low-pT neutrinos and the full transverse-mass spectrum).

* **zee** — ``WeakSingleBoson:ffbar2gmZ`` (full Z/γ* interference), Z → e⁺e⁻ only,
  60 < m̂ < 120 GeV. Shower: ISR and FSR (QCD and QED); no multiparton interactions and no
  hadronisation: electrons need neither, and this is what makes ≥ 1000 events/s per core
  (for the same reason photon emission off quarks is off; off the electrons it is on).
* **ttbar** — ``Top:gg2ttbar``, ``Top:qqbar2ttbar``; t → W⁺b with W⁺ → q q̄′ (q = u, c;
  q̄′ = d̄, s̄), t̄ → W⁻b̄ with W⁻ → e⁻ν̄ₑ; m_b = 4.7 GeV, m_t = 172.5 GeV. Full shower
  (ISR, FSR) and hadronisation; multiparton interactions (the underlying event) are off:
  they made generation about 4× slower and spoil lepton isolation with no pile-up model
  to match.

Pythia is seeded with ``Random:seed = seed + 1`` (Pythia's seed 0 would mean "use the clock")
and prints nothing.
"""

from __future__ import annotations

import math
from typing import Any

import awkward as ak
import numpy as np

from otus.errors import OtusError
from otus.processes import Process

SEED_MAX = 899_999_999

_COMMON = (
    "Beams:eCM = 13000.",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Check:event = off",  # skip Pythia's per-event consistency checks (speed)
    "Random:setSeed = on",
)

# MadGraph 5 default run card.
PTL_MIN, ETAL_MAX, PTJ_MIN, ETAJ_MAX, DR_MIN = 10.0, 2.5, 20.0, 5.0, 0.4


def settings(process: Process, seed: int) -> list[str]:
    """The Pythia settings strings for ``process`` and ``seed``."""
    check_seed(seed)
    if not process.pythia:
        raise OtusError(
            f"process {process.name!r}: its card has no 'pythia' block, so otus generate "
            "cannot make it; add the Pythia settings of its hard process to the card"
        )
    return [*_COMMON, f"Random:seed = {seed + 1}", *process.pythia]


def hadronises(process: Process) -> bool:
    """Whether the card's Pythia set-up hadronises (large event records: small batches)."""
    return any(
        s.replace(" ", "").lower() in ("hadronlevel:all=on", "hadronlevel:all=true")
        for s in process.pythia
    )


def _slot_of(process: Process, pid: int, mother: int, taken: set[int]) -> int:
    """The first card entry not yet ``taken`` that a hard-process particle matches (-1: none)."""
    for k, p in enumerate(process.parton):
        if k not in taken and pid in p.pdg and (p.mother is None or mother in p.mother):
            return k
    return -1


def check_seed(seed: int) -> None:
    if not (isinstance(seed, (int, np.integer)) and 0 <= seed <= SEED_MAX):
        raise OtusError(f"seed must be an integer in [0, {SEED_MAX}], got {seed!r}")


def _passes_cuts(objs: list[tuple[int, float, float, float]]) -> bool:
    """MadGraph-style generator cuts on (id, px, py, pz) of the outgoing hard partons:
    e and μ, light quarks and gluons are cut; b, τ and neutrinos pass as they are."""
    leptons: list[tuple[float, float]] = []
    jets: list[tuple[float, float]] = []
    for pid, px, py, pz in objs:
        apid = abs(pid)
        pt = math.hypot(px, py)
        eta = math.asinh(pz / pt) if pt > 0 else math.inf
        if apid in (11, 13):
            if pt <= PTL_MIN or abs(eta) >= ETAL_MAX:
                return False
            leptons.append((eta, math.atan2(py, px)))
        elif apid <= 4 or pid == 21:
            if pt <= PTJ_MIN or abs(eta) >= ETAJ_MAX:
                return False
            jets.append((eta, math.atan2(py, px)))
    pairs = [
        *((a, b) for i, a in enumerate(leptons) for b in leptons[i + 1 :]),
        *((a, b) for i, a in enumerate(jets) for b in jets[i + 1 :]),
        *((a, b) for a in jets for b in leptons),
    ]
    for a, b in pairs:
        dphi = (a[1] - b[1] + math.pi) % (2 * math.pi) - math.pi
        if (a[0] - b[0]) ** 2 + dphi**2 <= DR_MIN**2:
            return False
    return True


def _make_hook(process: Process) -> Any:
    import pythia8mc

    masses = process.z_masses
    n_obj = len(masses)

    class HardProcessCuts(pythia8mc.UserHooks):  # type: ignore[misc]
        """Veto events failing the generator cuts; remember z of the accepted ones."""

        def __init__(self) -> None:
            pythia8mc.UserHooks.__init__(self)
            self.accepted: list[tuple[float, float, int, int, list[float]]] = []
            self.tries = 0
            self.unexpected = 0

        def canVetoProcessLevel(self) -> bool:
            return True

        def doVetoProcessLevel(self, ev: Any) -> bool:
            self.tries += 1
            objs = []
            taken: set[int] = set()
            where: list[int] = []
            for i in range(5, ev.size()):
                prt = ev[i]
                if prt.status() == 23:
                    objs.append((prt.id(), prt.px(), prt.py(), prt.pz()))
                    k = _slot_of(process, prt.id(), ev[prt.mother1()].id(), taken)
                    taken.add(k)
                    where.append(k)
            if len(objs) != n_obj or -1 in where or len(taken) != n_obj:
                self.unexpected += 1  # not the expected final state: never written
                return True
            if not _passes_cuts(objs):
                return True
            z = [0.0] * (4 * n_obj)
            for k, (_, px, py, pz) in zip(where, objs, strict=True):
                z[4 * k : 4 * k + 4] = (
                    px,
                    py,
                    pz,
                    math.sqrt(px * px + py * py + pz * pz + masses[k] ** 2),
                )
            a, b = ev[3], ev[4]
            self.accepted.append((a.pz(), b.pz(), a.id(), b.id(), z))
            return False

    return HardProcessCuts()


class PythiaSource:
    """A seeded stream of events: z [n, Dz], incoming parton ids [n, 2] and the final-state
    particles after shower (and hadronisation) as awkward records
    (``id``, ``charge``, ``px``, ``py``, ``pz``, ``e``)."""

    def __init__(self, process: Process, seed: int) -> None:
        import pythia8mc

        self.process = process
        self.settings = settings(process, seed)
        self.version = f"pythia8mc {_pythia_version()}"
        self._pythia = pythia8mc.Pythia("", False)
        for s in self.settings:
            if not self._pythia.readString(s):
                raise OtusError(f"Pythia rejected the setting {s!r}")
        self._hook = _make_hook(process)
        self._pythia.setUserHooksPtr(self._hook)
        if not self._pythia.init():
            raise OtusError(f"Pythia failed to initialise for {process.name}")
        self._charge: dict[int, float] = {}

    @property
    def tries(self) -> int:
        """Hard-process events generated so far, including those vetoed by the cuts."""
        return int(self._hook.tries)

    def next_batch(self, n: int) -> tuple[np.ndarray, np.ndarray, ak.Array]:
        """The next ``n`` events (fewer only if Pythia failed on some, which it reports)."""
        self._hook.accepted.clear()
        batch = self._pythia.nextBatch(n, "skip")
        prt = batch.prt
        inc_pz = ak.to_numpy(prt.p.pz[:, 3:5])
        recs = self._hook.accepted
        z = np.empty((len(prt), self.process.dz))
        inc = np.empty((len(prt), 2), dtype=np.int64)
        j = 0
        for i in range(len(prt)):
            # An event that failed after the process level leaves an extra record: skip it.
            while j < len(recs) and (recs[j][0], recs[j][1]) != (inc_pz[i, 0], inc_pz[i, 1]):
                j += 1
            if j == len(recs):
                raise RuntimeError("lost track of the hard process of a Pythia event")
            z[i], inc[i] = recs[j][4], recs[j][2:4]
            j += 1
        fin = prt[prt.status > 0]
        ids = ak.to_numpy(ak.flatten(fin.id))
        charge = np.array([self._charge_of(int(k)) for k in np.unique(ids)])
        lookup = np.searchsorted(np.unique(ids), ids)
        flat_charge = charge[lookup] if len(ids) else np.zeros(0)
        counts = ak.num(fin)
        particles = ak.zip(
            {
                "id": fin.id,
                "charge": ak.unflatten(flat_charge, counts),
                "px": fin.p.px,
                "py": fin.p.py,
                "pz": fin.p.pz,
                "e": fin.p.e,
            }
        )
        return z, inc, particles

    def _charge_of(self, pid: int) -> float:
        if pid not in self._charge:
            self._charge[pid] = float(self._pythia.particleData.charge(pid))
        return self._charge[pid]


def _pythia_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pythia8mc")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"
