"""Network coordinates of events and the loss-space features, as differentiable maps.

The networks see and predict each object in *coordinates* chosen so that outputs are
physical by construction (OTUS, arXiv:2101.08944, §2: "decoders that respect particle
masses"):

* ``ptetaphi`` (default): per object (log pT, η, φ); objects of known mass m get
  E = sqrt(|p|² + m²) (exactly on shell); objects of free mass (jets, NaN mass in
  :mod:`otus.processes`) get a fourth coordinate log(1 + m), so m ≥ 0 always.
* ``cartesian``: per object (px, py, pz), E from the known mass; free-mass objects predict E
  as well and a Minkowski penalty relu(|p|² − E²) keeps them physical.

Transverse objects (MET, stored with pz = 0 and E = pT) have two coordinates only.

Loss-space features (:func:`loss_features`) are what the data term and the sliced
Wasserstein terms compare: the four-momenta (``p4``), per-object log pT and η (``pteta``),
the event's recoil (``recoil``: log(1 + pT/GeV) of the sum of all objects; exactly 0 for
leading-order partons, ≈ 14 GeV for zee after the shower and detector, so an unfolder must
remove it), the recoil's components along and across the axis of a two-object final state
(``aco``: asinh(a_L/GeV), asinh(a_T/GeV) with the thrust-like axis t = p̂T1 − p̂T2, the
variables of Z-pT precision measurements, e.g. D0 arXiv:1010.0262: a_T sets the
acoplanarity, a_L the pT imbalance of the two objects; two-object final states) and the process's
invariant masses (``masses``: those of the process card, e.g. m_ee; for ttbar the
hadronic W and top candidates; then the card's transverse masses, e.g. mt(e, MET)), so
physics peaks are explicit sliced directions; ``peaks`` adds the invariant masses once more,
each mapped through arctan((m − c)/h) with c, h the training sample's median and half
interquartile range (:func:`peak_columns`; for a Breit-Wigner line c = M and h = Γ/2, so the
map is its cumulative distribution and the line becomes flat): a distance such as W₂ on m
itself is dominated by the resonance's far tails, on the flattened mass every quantile of
the line counts alike, so a peak too wide or too narrow costs as much as a shifted tail. The
blocks come in this order whatever the order in the config (the mass block, then the peak
block, last).
"""

from __future__ import annotations

import math

import torch

from otus.errors import ConfigError
from otus.physics import fourvec as fv
from otus.processes import Process

Tensor = torch.Tensor
COORDS = ("ptetaphi", "cartesian")
FEATURES = ("p4", "pteta", "recoil", "aco", "masses", "peaks")
RECOIL_SD_MIN = 1.0  # recoil and aco: LO partons have none, so their spread is 0
_PT_MIN = 1e-3
# Decoded objects have pT ≥ 1 MeV: below it (a reconstruction the acceptance throws away)
# px² + py² underflows to 0 in float32 and √ at 0 has no finite gradient, so one such row
# made the whole step's gradient NaN.
_LOG_PT_MIN = math.log(_PT_MIN)
_LOG_PT_MAX = 12.0


def _kinds(process: Process, level: str) -> list[tuple[str, float]]:
    masses = process.z_masses if level == "z" else process.x_masses
    out = []
    for m, transverse in zip(masses, process.transverse(level), strict=True):
        if transverse:
            out.append(("transverse", 0.0))
        elif m != m:  # NaN: free mass
            out.append(("free", 0.0))
        else:
            out.append(("fixed", float(m)))
    return out


class Coordinates:
    """Bijection-like map between four-momenta rows [N, 4n] and network coordinates [N, k]."""

    def __init__(self, process: Process, level: str, kind: str = "ptetaphi") -> None:
        if kind not in COORDS:
            raise ConfigError(f"coordinates {kind!r} unknown; choose one of {', '.join(COORDS)}")
        self.kind = kind
        self.objects = _kinds(process, level)
        per = {
            "ptetaphi": {"fixed": 3, "free": 4, "transverse": 2},
            "cartesian": {"fixed": 3, "free": 4, "transverse": 2},
        }[kind]
        self.sizes = [per[k] for k, _ in self.objects]
        self.dim = sum(self.sizes)
        # Index of the φ coordinate of each object (for wrapping), and of the η coordinate of
        # each object that has one (where detectors put their geometry: cracks, edges).
        self.phi_index = []
        self.eta_index = []
        i = 0
        for (k, _), s in zip(self.objects, self.sizes, strict=True):
            if kind == "ptetaphi":
                self.phi_index.append(i + (1 if k == "transverse" else 2))
                if k != "transverse":
                    self.eta_index.append(i + 1)
            i += s

    @property
    def has_free_energy(self) -> bool:
        return self.kind == "cartesian" and any(k == "free" for k, _ in self.objects)

    def encode(self, p4: Tensor) -> Tensor:
        """Coordinates of four-momenta rows [N, 4n]."""
        p = fv.objects(p4)
        cols: list[Tensor] = []
        for i, (k, _) in enumerate(self.objects):
            q = p[:, i]
            if self.kind == "ptetaphi":
                lpt = torch.log(fv.pt(q).clamp_min(_PT_MIN))
                if k == "transverse":
                    cols += [lpt, fv.phi(q)]
                    continue
                cols += [lpt, fv.eta(q), fv.phi(q)]
                if k == "free":
                    # clamp inside the root: finite gradient for massless inputs
                    cols.append(torch.log1p(torch.sqrt(fv.mass2(q).clamp_min(1e-8))))
            else:
                if k == "transverse":
                    cols += [q[:, 0], q[:, 1]]
                elif k == "free":
                    cols += [q[:, 0], q[:, 1], q[:, 2], q[:, 3]]
                else:
                    cols += [q[:, 0], q[:, 1], q[:, 2]]
        return torch.stack(cols, dim=-1)

    def decode(self, c: Tensor) -> Tensor:
        """Four-momenta rows [N, 4n] from coordinates; on shell where the mass is known."""
        out: list[Tensor] = []
        i = 0
        for (k, m), s in zip(self.objects, self.sizes, strict=True):
            u = c[:, i : i + s]
            i += s
            if self.kind == "ptetaphi":
                pt = torch.exp(u[:, 0].clamp(_LOG_PT_MIN, _LOG_PT_MAX))
                if k == "transverse":
                    z = torch.zeros_like(pt)
                    out.append(
                        torch.stack([pt * torch.cos(u[:, 1]), pt * torch.sin(u[:, 1]), z, pt], -1)
                    )
                    continue
                eta = u[:, 1].clamp(-10.0, 10.0)
                mass = torch.expm1(u[:, 3].clamp(0.0, 10.0)) if k == "free" else m
                out.append(fv.from_ptetaphim(pt, eta, u[:, 2], mass))
            else:
                if k == "transverse":
                    pt = torch.sqrt(u[:, 0] ** 2 + u[:, 1] ** 2 + 1e-12)
                    out.append(torch.stack([u[:, 0], u[:, 1], torch.zeros_like(pt), pt], -1))
                elif k == "free":
                    out.append(u)
                else:
                    out.append(fv.on_shell(u, m))
        return torch.cat(out, dim=-1)

    # -- inference fast path: feature-major [k, N] layout (contiguous rows, vectorised) -----
    def encode_t(self, pt: Tensor) -> Tensor:
        """:meth:`encode` for feature-major four-momenta [4n, N] (rows px, py, pz, E per
        object), returning feature-major coordinates [k, N]; ``ptetaphi`` only. Every
        elementwise op runs on contiguous rows (strided columns are not vectorised)."""
        out = pt.new_empty(self.dim, pt.shape[1])
        i = 0
        for j, ((k, _), s) in enumerate(zip(self.objects, self.sizes, strict=True)):
            px, py, pz, e = pt[4 * j], pt[4 * j + 1], pt[4 * j + 2], pt[4 * j + 3]
            ptv = torch.hypot(px, py)
            torch.log(ptv.clamp_min(_PT_MIN), out=out[i])
            if k == "transverse":
                torch.atan2(py, px, out=out[i + 1])
            else:
                _asinh(pz / ptv.clamp_min_(1e-12), out=out[i + 1])
                torch.atan2(py, px, out=out[i + 2])
                if k == "free":
                    m2 = (e * e - px * px - py * py - pz * pz).clamp_min_(1e-8)
                    torch.log1p(m2.sqrt_(), out=out[i + 3])
            i += s
        return out

    def decode_t(self, c: Tensor) -> Tensor:
        """:meth:`decode` for feature-major coordinates [k, N]: four-momenta [4n, N]."""
        out = c.new_empty(4 * len(self.objects), c.shape[1])
        i = 0
        for j, ((k, m), s) in enumerate(zip(self.objects, self.sizes, strict=True)):
            px, py, pz, e = out[4 * j], out[4 * j + 1], out[4 * j + 2], out[4 * j + 3]
            pt = torch.exp(c[i].clamp(_LOG_PT_MIN, _LOG_PT_MAX))
            phi = c[i + 1] if k == "transverse" else c[i + 2]
            torch.mul(pt, torch.cos(phi), out=px)
            torch.mul(pt, torch.sin(phi), out=py)
            if k == "transverse":
                pz.zero_()
                e.copy_(pt)
            else:
                torch.mul(pt, torch.sinh(c[i + 1].clamp(-10.0, 10.0)), out=pz)
                m2 = torch.expm1(c[i + 3].clamp(0.0, 10.0)).square_() if k == "free" else m * m
                torch.sqrt(px * px + py * py + pz * pz + m2, out=e)
            i += s
        return out

    def wrap_(self, c: Tensor) -> Tensor:
        """Wrap the φ rows of feature-major coordinates [k, N] into [-π, π), in place."""
        for i in self.phi_index:
            c[i].add_(torch.pi).remainder_(2 * torch.pi).sub_(torch.pi)
        return c

    def wrap(self, c: Tensor) -> Tensor:
        """Wrap φ coordinates into [-π, π)."""
        if not self.phi_index:
            return c
        c = c.clone()
        idx = torch.tensor(self.phi_index, device=c.device)
        c[:, idx] = torch.remainder(c[:, idx] + torch.pi, 2 * torch.pi) - torch.pi
        return c


def _asinh(x: Tensor, *, out: Tensor) -> Tensor:
    """asinh(x) = sign(x) log1p(|x| + x² / (1 + sqrt(1 + x²))), from vectorised ops (torch's
    CPU asinh is a scalar loop, ≈20× slower); accurate near 0, finite for |x| ≤ 1e18."""
    a = x.abs().clamp_max_(1e18)
    a2 = a * a
    t = a2.add(1.0).sqrt_().add_(1.0)
    torch.log1p(a.add_(a2.div_(t)), out=out)
    return torch.copysign(out, x, out=out)


def minkowski_penalty(p4: Tensor) -> Tensor:
    """Mean over events of Σ_objects relu(|p|² − E²) / (|p|² + 1): zero for physical momenta."""
    p = fv.objects(p4)
    p2 = (p[..., :3] ** 2).sum(-1)
    return (torch.relu(p2 - p[..., 3] ** 2) / (p2 + 1.0)).sum(-1).mean()


def n_masses(process: Process, level: str) -> int:
    """Number of mass features of a level (the last block, ``masses``: the card's invariant
    masses, then its transverse masses)."""
    return len(process.mass_combos(level)) + len(process.mt_combos(level))


def n_peaks(process: Process, level: str, features: tuple[str, ...]) -> int:
    """Number of ``peaks`` features of a level (the very last block)."""
    return len(process.mass_combos(level)) if "peaks" in features else 0


def peak_columns(process: Process, level: str, features: tuple[str, ...], d: int) -> list[int]:
    """Columns of the ``peaks`` block among ``d`` loss features."""
    return list(range(d - n_peaks(process, level, features), d))


def recoil_columns(process: Process, level: str, features: tuple[str, ...]) -> list[int]:
    """Columns of the ``recoil`` and ``aco`` features in :func:`loss_features` (their
    standard deviation is floored at RECOIL_SD_MIN: zero for leading-order partons)."""
    end = -(n_masses(process, level) if "masses" in features else 0)
    end -= n_peaks(process, level, features)
    cols: list[int] = []
    if "aco" in features:
        cols = [end - 2, end - 1]
        end -= 2
    if "recoil" in features:
        cols = [end - 1, *cols]
    return cols


def _aco(p: Tensor) -> Tensor:
    """asinh of the pair recoil's components along (a_L) and across (a_T) the axis
    t = p̂T1 − p̂T2 of objects 0 and 1 [N, 2]."""
    u = [p[:, i, :2] / torch.sqrt((p[:, i, :2] ** 2).sum(-1, keepdim=True) + 1e-12) for i in (0, 1)]
    t = u[0] - u[1]
    t = t / torch.sqrt((t**2).sum(-1, keepdim=True) + 1e-12)
    q = p[:, 0, :2] + p[:, 1, :2]
    a_l = (q * t).sum(-1)
    a_t = q[:, 1] * t[:, 0] - q[:, 0] * t[:, 1]
    return torch.asinh(torch.stack([a_l, a_t], -1))


def loss_features(process: Process, level: str, p4: Tensor, features: tuple[str, ...]) -> Tensor:
    """Loss-space features [N, F] of four-momenta rows (see the module docstring)."""
    bad = [f for f in features if f not in FEATURES]
    if bad or not features:
        raise ConfigError(f"loss features {bad or '[]'} invalid; choose from {', '.join(FEATURES)}")
    p = fv.objects(p4)
    cols: list[Tensor] = []
    if "p4" in features:
        cols.append(p4)
    if "pteta" in features:
        for i, transverse in enumerate(process.transverse(level)):
            cols.append(torch.log(fv.pt(p[:, i]).clamp_min(_PT_MIN))[:, None])
            if not transverse:
                cols.append(fv.eta(p[:, i])[:, None])
    if "recoil" in features:
        total = p.sum(1)  # smoothed at 0 (LO partons): sqrt has no gradient there
        pt_sum = torch.sqrt(total[:, 0] ** 2 + total[:, 1] ** 2 + 1e-4)
        cols.append(torch.log1p(pt_sum)[:, None])
    if "aco" in features:
        if not process.two_body:
            raise ConfigError(
                f"loss feature 'aco' needs a two-object final state (e.g. zee), not {process.name}"
            )
        cols.append(_aco(p))
    if "masses" in features:
        for combo in process.mass_combos(level):
            total = p[:, combo[0]]
            for j in combo[1:]:
                total = total + p[:, j]
            cols.append(torch.sqrt(fv.mass2(total).clamp_min(1e-6))[:, None])
        # Transverse masses, sqrt((Σ pT)² − |Σ pT⃗|²) with massless E_T as the card's ``mt``:
        # without them nothing in an unpaired loss ties MET's direction to the lepton's.
        for combo in process.mt_combos(level):
            et = sum(fv.pt(p[:, j]) for j in combo)
            tot = p[:, list(combo)].sum(1)
            mt2 = et**2 - tot[:, 0] ** 2 - tot[:, 1] ** 2
            cols.append(torch.sqrt(mt2.clamp_min(1e-6))[:, None])
    if "peaks" in features:  # raw masses; the module flattens them (module docstring)
        for combo in process.mass_combos(level):
            total = p[:, list(combo)].sum(1)
            cols.append(torch.sqrt(fv.mass2(total).clamp_min(1e-6))[:, None])
    return torch.cat(cols, dim=-1)
