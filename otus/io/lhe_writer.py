"""Write Les Houches Event files (hep-ph/0609017, arXiv:1405.1067): :func:`write_lhe` for
events in memory, :class:`LHEWriter` chunk by chunk (files larger than memory).

Each event holds (status −1) two incoming partons along the beams with
:math:`x_{1,2} = (E \\pm p_z)/(2 E_\\text{beam})` of the final state's total four-momentum;
(status 2) the resonances — the card's ``lhe.resonance`` (zee: Z/γ*, 23) for a colourless
final state, or those of a named record (``ttbar_semileptonic``: t, t̄, W+, W− with their
mothers) — and (status 1) the z objects with the invariant masses of their four-momenta,
each with the first PDG id of its card entry. Flavours of the incoming partons come from
``incoming_pdg`` [N, 2]; the default is the card's ``lhe.incoming`` (u ū unless given; g g
for ttbar). The hadronic W decays of ttbar are written as u d̄ (z carries no flavour). When
the z objects carry net transverse momentum (relative imbalance above 1e-5), a massless
recoil gluon (status 1) at the rapidity of the z system balances it, so four-momentum is
conserved and showers (Pythia's checks) accept the event; readers ignore it. The weight goes
to XWGTUP (IDWTUP = −4: weighted events of either sign); momenta are written with 11
significant digits (exact for float32), weights with 17. Provenance is an XML comment.
Unfolded events of a bootstrap ensemble carry their replica index as a last line of the
event block, ``#otus replica K`` (the LHE standard's optional information lines, which
Pythia and pylhe skip); each replica is one complete unfolding with its own weights.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from otus.errors import OtusError
from otus.io.atomic import AtomicWriter
from otus.physics import fourvec as fv
from otus.processes import Process, get_process

# Default couplings written in the event line (LHE needs them; showers mostly ignore them).
ALPHA_QED = 0.0078186
ALPHA_QCD = 0.118

_PART = " %8d %2d %4d %4d %4d %4d %+.10e %+.10e %+.10e %+.10e %.10e 0.0 9.0\n"
_BLOCK = 10_000
_RECOIL_MIN = 1e-5  # relative pT imbalance above which a recoil gluon is added
_INFO = " %d 1 %+.16e %.8e %.7e %.7e\n"


def _charge3(pdg: np.ndarray) -> np.ndarray:
    """Three times the electric charge of quarks and leptons by PDG id (0 for others)."""
    a = np.abs(pdg)
    q = np.select(
        [np.isin(a, (1, 3, 5)), np.isin(a, (2, 4, 6)), np.isin(a, (11, 13, 15))], [-1, 2, -3], 0
    )
    return np.sign(pdg) * q


def _colour_incoming(pdg: np.ndarray, gluons_ok: bool, where: Path, final_charge3: int = 0) -> None:
    """Incoming partons the colour flow can carry: a quark and an antiquark (pdg ±1..±5);
    of one flavour with ``gluons_ok`` (QCD production, which also allows g g); otherwise
    (a colourless final state) of any flavours whose charge is the final state's
    ``final_charge3``/3 (u ū → Z, u d̄ → W+)."""
    a, b = pdg[:, 0], pdg[:, 1]
    pair = (np.abs(a) >= 1) & (np.abs(a) <= 5) & (np.abs(b) >= 1) & (np.abs(b) <= 5)
    pair &= np.sign(a) == -np.sign(b)
    if gluons_ok:
        quark = pair & (b == -a)
    else:
        quark = pair & (_charge3(a) + _charge3(b) == final_charge3)
    ok = quark | ((a == 21) & (b == 21)) if gluons_ok else quark
    if not np.all(ok):
        bad = np.argmax(~ok)
        allowed = (
            "q q̄ of one flavour (pdg ±1..±5) or g g (21 21)"
            if gluons_ok
            else f"a quark and an antiquark (pdg ±1..±5) of total charge {final_charge3 / 3:+g}"
        )
        raise OtusError(
            f"{where}: incoming_pdg row {bad} is {pdg[bad].tolist()}; allowed: {allowed}"
        )


def _check_writable(process: Process, where: Path) -> None:
    """Colourless final states get a generic record; coloured ones need a named record."""
    coloured = [p.name for p in process.parton if p.kind == "jet"]
    if process.lhe.builtin is None and coloured:
        raise OtusError(
            f"{where}: cannot write {process.name} as LHE: its partons {coloured} carry colour, "
            "and only colourless final states (or a card's lhe.builtin record) have a colour flow"
        )


def _in_colours(pid: np.ndarray, side: int, glu: np.ndarray, abar: Any) -> tuple[Any, Any]:
    """(colour, anticolour) of an incoming parton: g g as (501, 502) (502, 503); a quark
    (501, 0), an antiquark (0, ``abar``)."""
    col = np.where(glu, 501 + side, np.where(pid > 0, 501, 0))
    acol = np.where(glu, 502 + side, np.where(pid > 0, 0, abar))
    return col, acol


def _table(
    process: Process, z: np.ndarray, pdg: np.ndarray, beam_energy: float, where: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Particle table [N, P, 11] (id, status, mother1, mother2, col1, col2, px, py, pz, E, m)
    whose last particle is the recoil gluon, the mask of events that need it, and SCALUP [N]."""
    n = len(z)
    obj = fv.objects(z.astype(np.float64), len(process.z_objects))
    fin = obj.sum(axis=1)
    # A final state with transverse momentum gets a massless recoil gluon at its rapidity,
    # so that incoming partons along the beams conserve four-momentum (showers check it).
    need = fv.pt(fin) > _RECOIL_MIN * np.abs(fin[:, 3])
    y = fv.rapidity(fin)
    ptr = np.where(need, fv.pt(fin), 0.0)
    recoil = np.stack(
        [
            np.where(need, -fin[:, 0], 0.0),
            np.where(need, -fin[:, 1], 0.0),
            ptr * np.sinh(y),
            ptr * np.cosh(y),
        ],
        -1,
    )
    tot = fin + recoil
    ep, em = tot[:, 3] + tot[:, 2], tot[:, 3] - tot[:, 2]
    if np.any(ep <= 0) or np.any(em <= 0):
        raise OtusError(
            f"{where}: {int(np.sum((ep <= 0) | (em <= 0)))} events have "
            "E <= |pz| in total, so no incoming partons can make them"
        )
    if np.any(np.maximum(ep, em) > 2 * beam_energy):
        raise OtusError(f"{where}: events need more than the beam energy {beam_energy} GeV")
    zero = np.zeros(n)
    in1 = np.stack([zero, zero, ep / 2, ep / 2], -1)
    in2 = np.stack([zero, zero, -em / 2, em / 2], -1)
    a, b = pdg[:, 0], pdg[:, 1]
    glu = a == 21
    rows: list[tuple[Any, ...]]
    if process.lhe.builtin is None:
        # Colourless final state: q q̄ → [resonance →] objects. q (501, 0), q̄ (0, 501); with
        # the recoil q̄ (0, 502), g (501, 502).
        abar = np.where(need, 502, 501)
        rows = [
            (a, -1, 0, 0, *_in_colours(a, 0, glu, abar), in1),
            (b, -1, 0, 0, *_in_colours(b, 1, glu, abar), in2),
        ]
        moth = 1
        if process.lhe.resonance is not None:
            rows.append((process.lhe.resonance, 2, 1, 2, 0, 0, fin))
            moth = 3
        for i, entry in enumerate(process.parton):
            rows.append((entry.pdg[0], 1, moth, moth if moth == 3 else 2, 0, 0, obj[:, i]))
        rows.append((21, 1, 1, 2, 501, 502, recoil))
        scale = fv.mass(fin)
    else:
        e, nu, bq, bb, q, qb = (obj[:, i] for i in range(6))
        wp, wm = q + qb, e + nu
        t, tb = bq + wp, bb + wm
        # g g → t t̄: g (501, 502) g (502, 503) → t (501, 0) t̄ (0, 503); q q̄ → t t̄:
        # q (501, 0) q̄ (0, 502) → t (501, 0) t̄ (0, 502). With the recoil gluon (501, 504)
        # the top carries 504. b inherits the top's colour, W+ → q (505, 0) q̄′ (0, 505).
        tcol = np.where(need, 504, 501)
        tbar = np.where(glu, 503, 502)
        rows = [
            (a, -1, 0, 0, *_in_colours(a, 0, glu, 502), in1),
            (b, -1, 0, 0, *_in_colours(b, 1, glu, 502), in2),
            (6, 2, 1, 2, tcol, 0, t),
            (-6, 2, 1, 2, 0, tbar, tb),
            (24, 2, 3, 3, 0, 0, wp),
            (-24, 2, 4, 4, 0, 0, wm),
            (5, 1, 3, 3, tcol, 0, bq),
            (2, 1, 5, 5, 505, 0, q),
            (-1, 1, 5, 5, 0, 505, qb),
            (-5, 1, 4, 4, 0, tbar, bb),
            (11, 1, 6, 6, 0, 0, e),
            (-12, 1, 6, 6, 0, 0, nu),
            (21, 1, 1, 2, 501, 504, recoil),
        ]
        mt = np.sqrt(fv.mass(t) ** 2 + fv.pt(t) ** 2) + np.sqrt(fv.mass(tb) ** 2 + fv.pt(tb) ** 2)
        scale = mt / 2
    table = np.empty((n, len(rows), 11))
    for i, (pid, st, m1, m2, c1, c2, p4) in enumerate(rows):
        table[:, i, 0], table[:, i, 1], table[:, i, 2], table[:, i, 3] = pid, st, m1, m2
        table[:, i, 4], table[:, i, 5] = c1, c2
        table[:, i, 6:10] = p4
        table[:, i, 10] = fv.mass(p4)
    table[:, -1, 10] = 0.0  # the recoil gluon is massless by construction
    return table, need, scale


def _comment(provenance: dict[str, Any] | None) -> str:
    # "--" cannot appear in an XML comment; in JSON it only occurs inside strings, where
    # "\u002d" is the same character.
    text = json.dumps(provenance or {}, sort_keys=True, default=str).replace("--", "-\\u002d")
    return f"<!-- otus provenance: {text} -->\n"


def _checked(
    out: Path, process: Process, z: Any, weight: Any, incoming_pdg: Any, *, empty_ok: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z, weight and incoming PDG ids as arrays, or OtusError naming what is wrong."""
    z = np.asarray(z)
    weight = np.asarray(weight, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != process.dz:
        raise OtusError(f"{out}: z has shape {z.shape}, expected [N, {process.dz}]")
    n = len(z)
    if n == 0 and not empty_ok:
        raise OtusError(f"{out}: no events to write")
    if weight.shape != (n,):
        raise OtusError(f"{out}: weight has shape {weight.shape}, expected ({n},)")
    if not (np.all(np.isfinite(z)) and np.all(np.isfinite(weight))):
        raise OtusError(f"{out}: z or weight holds NaN or inf")
    default = process.lhe.incoming
    pdg = np.tile(np.asarray(default), (n, 1)) if incoming_pdg is None else np.asarray(incoming_pdg)
    if pdg.shape != (n, 2):
        raise OtusError(f"{out}: incoming_pdg has shape {pdg.shape}, expected ({n}, 2)")
    pdg = pdg.astype(np.int64)
    final = int(sum(_charge3(np.asarray(p.pdg[0])) for p in process.parton))
    _colour_incoming(pdg, process.lhe.builtin is not None, out, final)
    return z, weight, pdg


class LHEWriter(AtomicWriter):
    """Append events to a Les Houches v3 file (gzip'd when ``path`` ends in ``.gz``),
    atomically: the file appears on ``close``, and a failed write leaves none.

    The init block precedes the events, so its ``cross_section`` — (cross-section [pb], its
    error, largest |weight|) — is given up front. Event records: module docstring. Example::

        with LHEWriter("big.lhe.gz", process, cross_section=(xs, err, w_max)) as w:
            for z, weight in chunks:
                w.append(z, weight)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        process: Process | str,
        *,
        cross_section: tuple[float, float, float] = (1.0, 0.0, 1.0),
        provenance: dict[str, Any] | None = None,
        beam_energy: float = 6500.0,
    ) -> None:
        self.path = Path(path)
        self.process = process if isinstance(process, Process) else get_process(str(process))
        self.beam_energy = beam_energy
        _check_writable(self.process, self.path)
        xsec, err, w_max = (float(v) for v in cross_section)
        head = (
            '<LesHouchesEvents version="3.0">\n'
            + _comment(provenance)
            + "<init>\n"
            + f" 2212 2212 {beam_energy:.8e} {beam_energy:.8e} 0 0 0 0 -4 1\n"
            + f" {xsec:+.10e} {err:.10e} {w_max:.10e} 1\n"
            + "</init>\n"
        )
        super().__init__(self.path)
        with self._opening():
            self._raw = open(self.tmp, "wb")
            stream: Any = (
                gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6)
                if self.path.name.endswith(".gz")
                else self._raw
            )
            # Closing the text layer closes the gzip layer (which leaves ``raw`` open).
            self._text = io.TextIOWrapper(stream, encoding="ascii", newline="\n")
            self._text.write(head)
        self.n = 0

    def append(
        self,
        z: np.ndarray,
        weight: np.ndarray,
        *,
        incoming_pdg: np.ndarray | None = None,
        replica: np.ndarray | None = None,
    ) -> None:
        """Write events z [N, Dz] with weights [N] (and incoming PDG ids [N, 2], replica
        indices [N])."""
        z, weight, pdg = _checked(self.path, self.process, z, weight, incoming_pdg, empty_ok=True)
        if replica is not None and np.shape(replica) != (len(z),):
            raise OtusError(
                f"{self.path}: replica has shape {np.shape(replica)}, expected ({len(z)},)"
            )
        tails = [f"#otus replica {int(k)}\n" for k in replica] if replica is not None else None
        for a in range(0, len(z), _BLOCK):
            sl = slice(a, a + _BLOCK)
            table, need, scale = _table(self.process, z[sl], pdg[sl], self.beam_energy, self.path)
            n_part = table.shape[1]
            full, short = _INFO + _PART * n_part, _INFO + _PART * (n_part - 1)
            k_short = 5 + 11 * (n_part - 1)
            m = len(table)
            vals = np.concatenate(
                [
                    np.where(need, n_part, n_part - 1)[:, None],
                    weight[sl, None],
                    scale[:, None],
                    np.full((m, 1), ALPHA_QED),
                    np.full((m, 1), ALPHA_QCD),
                    table.reshape(m, n_part * 11),
                ],
                axis=1,
            )
            self._text.write(
                "".join(
                    "<event>\n"
                    + (full % tuple(r) if r[0] == n_part else short % tuple(r[:k_short]))
                    + (tails[a + i] if tails is not None else "")
                    + "</event>\n"
                    for i, r in enumerate(vals.tolist())
                )
            )
        self.n += len(z)

    def _finish(self) -> None:
        self._text.write("</LesHouchesEvents>\n")

    def _release(self) -> None:
        try:
            self._text.close()
        finally:
            self._raw.close()

    def __enter__(self) -> LHEWriter:
        return self


def write_lhe(
    path: str | os.PathLike[str],
    process: Process,
    z: np.ndarray,
    weight: np.ndarray,
    *,
    incoming_pdg: np.ndarray | None = None,
    provenance: dict[str, Any] | None = None,
    beam_energy: float = 6500.0,
    replica: np.ndarray | None = None,
) -> Path:
    """Write events as a Les Houches v3 file (gzip'd when ``path`` ends in ``.gz``), atomically.

    Event records: module docstring (``replica``: the replica index of each event). The init
    block's cross-section is the mean weight (pb), its error the standard error of the mean;
    for a file of K replicas, each of the whole sample, that is the mean over replicas.
    """
    out = Path(path)
    if not isinstance(process, Process):
        process = get_process(str(process))
    z, weight, pdg = _checked(out, process, z, weight, incoming_pdg, empty_ok=False)
    n = len(z)
    xsec = (float(weight.mean()), float(weight.std() / np.sqrt(n)), float(np.abs(weight).max()))
    with LHEWriter(
        out, process, cross_section=xsec, provenance=provenance, beam_energy=beam_energy
    ) as w:
        w.append(z, weight, incoming_pdg=pdg, replica=replica)
    return out
