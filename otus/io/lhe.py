"""Les Houches Event files (hep-ph/0609017, arXiv:1405.1067): read parton objects, write events.

Reading goes through pylhe 2.x (``pylhe.LHEFile.fromfile`` + ``pylhe.to_awkward``) and selects
the SPEC §5 parton objects with vectorised awkward operations:

- **zee**: the status-1 ``e-`` (pdg 11) and ``e+`` (pdg −11); an event needs exactly one of
  each. Events with other content (e.g. μμ in a Z+jets sample) are skipped and counted.
- **ttbar** (semileptonic, electron channel): status-1 particles found through their first
  mother: ``e-`` (11) and ``ν̄e`` (−12) from a W− (−24); ``b`` (5) from t (6), ``b̄`` (−5)
  from t̄ (−6); ``q`` (pdg 1..4) and ``q̄′`` (−1..−5) from a W+ (24). Exactly one of each,
  otherwise the event is skipped (dileptonic, fully hadronic, e+ channel, records without
  the W and top resonances).

The file's momenta are kept as they are; they are *not* put on the process mass shell (that
is the consumer's job, e.g. the model's decoder). The largest deviation from the process
masses is reported in the provenance (``lhe.max_mass_offshell_GeV``).

Writing produces a Les Houches v3 file (gzip'd when the name ends in ``.gz``) whose events
hold the incoming partons, the intermediate resonances and the z objects; see :func:`write_lhe`.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import logging
import os
import warnings
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from otus.errors import InputFileError, OtusError
from otus.io.atomic import atomic_path
from otus.io.h5 import Events
from otus.physics import fourvec as fv
from otus.processes import Process, get_process

log = logging.getLogger(__name__)

# Default couplings written in the event line (LHE needs them; showers mostly ignore them).
ALPHA_QED = 0.0078186
ALPHA_QCD = 0.118

# (pdg id, required first-mother pdg id or None) of every z object, per process.
_TTBAR_RULE = {
    "e-": ((11,), (-24,)),
    "nuebar": ((-12,), (-24,)),
    "b": ((5,), (6,)),
    "bbar": ((-5,), (-6,)),
    "q": ((1, 2, 3, 4), (24,)),
    "qbar": ((-1, -2, -3, -4, -5), (24,)),
}
_ZEE_RULE = {"e-": ((11,), None), "e+": ((-11,), None)}


@dataclass
class LHESelection:
    """All events of an LHE file, with the rows holding the process marked by ``selected``.

    ``z`` is [N, Dz] float32 (NaN in rows not selected), ``weight`` [N] float64 (XWGTUP).
    """

    process: Process
    path: Path
    z: np.ndarray
    weight: np.ndarray
    selected: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def events(self) -> Events:
        """The selected rows as :class:`otus.io.h5.Events`."""
        m = self.selected
        return Events(
            self.process,
            z=self.z[m],
            weight=self.weight[m],
            provenance={"source": "lhe", "lhe": dict(self.info)},
        )


def _load(path: Path, max_events: int | None) -> ak.Array:
    """pylhe's awkward view of the file; every reading problem becomes InputFileError."""
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder, expected an LHE file")
    import pylhe

    gen = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lhef = pylhe.LHEFile.fromfile(path, with_attributes=False)
            gen = lhef.events
            events = gen if max_events is None else itertools.islice(gen, max_events)
            arr = pylhe.to_awkward(events)
    except (
        ValueError,
        EOFError,
        OSError,
        zlib.error,
        ET.ParseError,
        IndexError,
        KeyError,
        TypeError,
        UnicodeDecodeError,
        OverflowError,
    ) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputFileError(f"{path}: not a readable LHE file ({msg})") from None
    finally:
        if gen is not None and hasattr(gen, "close"):
            gen.close()
    for w in caught:
        if issubclass(w.category, RuntimeWarning) and "Parse Error" in str(w.message):
            raise InputFileError(f"{path}: malformed LHE XML ({w.message})")
        warnings.warn(w.message, w.category, stacklevel=2)
    if len(arr) == 0:
        raise InputFileError(f"{path}: holds no events")
    return arr


def _pick(
    parts: ak.Array, mother_id: ak.Array, ids: tuple[int, ...], mothers: tuple[int, ...] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Four-momenta [N, 4] of the one status-1 particle with an id in ``ids`` (and a first
    mother in ``mothers``), and a mask of events that have exactly one such particle."""
    m = (parts.status == 1) & _isin(parts.id, ids)
    if mothers is not None:
        m = m & _isin(mother_id, mothers)
    one = ak.to_numpy(ak.sum(m, axis=1) == 1)
    vec = parts.vector[m]
    cols = [
        ak.to_numpy(ak.fill_none(ak.firsts(vec[c]), np.nan)).astype(np.float64)
        for c in ("px", "py", "pz", "e")
    ]
    return np.stack(cols, axis=-1), one


def _isin(a: ak.Array, values: tuple[int, ...]) -> ak.Array:
    out = a == values[0]
    for v in values[1:]:
        out = out | (a == v)
    return out


def select_lhe(
    path: str | os.PathLike[str], process: Process | str, *, max_events: int | None = None
) -> LHESelection:
    """Read an LHE file and mark the events that hold ``process`` (rules: module docstring).

    Raises InputFileError when the file cannot be read, holds NaN momenta, or no event
    holds the process.
    """
    proc = get_process(process) if isinstance(process, str) else process
    p = Path(path)
    arr = _load(p, max_events)
    parts = arr.particles
    nup = ak.to_numpy(arr.eventinfo.nparticles)
    held = ak.to_numpy(ak.num(parts.id, axis=1))
    if np.any(nup != held):
        i = int(np.argmax(nup != held))
        raise InputFileError(
            f"{p}: event {i} declares {int(nup[i])} particles (NUP) but "
            f"holds {int(held[i])}; the file is truncated or malformed"
        )
    try:
        n_in = ak.num(parts.id, axis=1)
        m1 = parts.mother1
        ok_idx = (m1 >= 1) & (m1 <= n_in)
        mother_id = ak.where(ok_idx, parts.id[ak.where(ok_idx, m1 - 1, 0)], 0)
    except (ValueError, IndexError) as err:
        raise InputFileError(f"{p}: inconsistent mother indices ({err})") from None
    rule = _ZEE_RULE if proc.name == "zee" else _TTBAR_RULE
    moms, ones = [], []
    for obj in proc.z_objects:
        ids, mothers = rule[obj]
        mom, one = _pick(parts, mother_id, ids, mothers)
        moms.append(mom)
        ones.append(one)
    selected = np.logical_and.reduce(ones)
    z = np.concatenate(moms, axis=-1)
    weight = ak.to_numpy(arr.eventinfo.weight).astype(np.float64)
    n, k = len(selected), int(selected.sum())
    if k == 0:
        raise InputFileError(
            f"{p}: none of its {n} events holds {_describe(proc)} (see otus.io.lhe for the rule)"
        )
    zs = z[selected]
    if not np.all(np.isfinite(zs)) or not np.all(np.isfinite(weight[selected])):
        bad = int(np.sum(~np.all(np.isfinite(zs), axis=1) | ~np.isfinite(weight[selected])))
        raise InputFileError(f"{p}: NaN or inf momenta or weights in {bad} selected events")
    offshell = np.abs(fv.mass(fv.objects(zs, len(proc.z_objects))) - np.asarray(proc.z_masses))
    z[~selected] = np.nan
    info = {
        "file": str(p),
        "n_events": n,
        "n_selected": k,
        "n_skipped": n - k,
        "max_mass_offshell_GeV": float(offshell.max()),
    }
    if n - k:
        log.info("%s: kept %d of %d events holding %s, skipped %d", p, k, n, _describe(proc), n - k)
    return LHESelection(proc, p, z.astype(np.float32), weight, selected, info)


def _describe(proc: Process) -> str:
    return (
        "exactly one status-1 e- and e+"
        if proc.name == "zee"
        else "a semileptonic ttbar decay with an e- (t̄ → b̄ W−, W− → e− ν̄e; t → b W+, W+ → q q̄′)"
    )


def read_lhe(
    path: str | os.PathLike[str], process: Process | str, *, max_events: int | None = None
) -> Events:
    """The ``process`` events of an LHE file as :class:`Events` with ``z`` and ``weight``.

    Events without the process are skipped; their count is in
    ``provenance["lhe"]["n_skipped"]``. Example::

        ev = read_lhe("unweighted_events.lhe.gz", "zee")
    """
    return select_lhe(path, process, max_events=max_events).events()


# --------------------------------------------------------------------------- writing

_PART = " %8d %2d %4d %4d %4d %4d %+.10e %+.10e %+.10e %+.10e %.10e 0.0 9.0\n"
_BLOCK = 10_000
_RECOIL_MIN = 1e-5  # relative pT imbalance above which a recoil gluon is added
_INFO = " %d 1 %+.16e %.8e %.7e %.7e\n"


def _colour_incoming(pdg: np.ndarray, gluons_ok: bool, where: Path) -> None:
    a, b = pdg[:, 0], pdg[:, 1]
    quark = (np.abs(a) >= 1) & (np.abs(a) <= 5) & (b == -a)
    ok = quark | ((a == 21) & (b == 21)) if gluons_ok else quark
    if not np.all(ok):
        bad = np.argmax(~ok)
        allowed = "q q̄ of one flavour (pdg ±1..±5)" + (" or g g (21 21)" if gluons_ok else "")
        raise OtusError(
            f"{where}: incoming_pdg row {bad} is {pdg[bad].tolist()}; allowed: {allowed}"
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
    if process.name == "zee":
        # q q̄ → Z: q (501, 0), q̄ (0, 501); with the recoil q̄ (0, 502), g (501, 502).
        abar = np.where(need, 502, 501)
        rows = [
            (a, -1, 0, 0, *_in_colours(a, 0, glu, abar), in1),
            (b, -1, 0, 0, *_in_colours(b, 1, glu, abar), in2),
            (23, 2, 1, 2, 0, 0, fin),
            (11, 1, 3, 3, 0, 0, obj[:, 0]),
            (-11, 1, 3, 3, 0, 0, obj[:, 1]),
            (21, 1, 1, 2, 501, 502, recoil),
        ]
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


def write_lhe(
    path: str | os.PathLike[str],
    process: Process,
    z: np.ndarray,
    weight: np.ndarray,
    *,
    incoming_pdg: np.ndarray | None = None,
    provenance: dict[str, Any] | None = None,
    beam_energy: float = 6500.0,
) -> Path:
    """Write events as a Les Houches v3 file (gzip'd when ``path`` ends in ``.gz``), atomically.

    Each event holds (status −1) two incoming partons along the beams with
    :math:`x_{1,2} = (E \\pm p_z)/(2 E_\\text{beam})` of the final state's total four-momentum;
    (status 2) the resonances — zee: Z/γ* (23); ttbar: t, t̄, W+, W− with their mothers — and
    (status 1) the z objects with the invariant masses of their four-momenta. Flavours of the
    incoming partons come from ``incoming_pdg`` [N, 2]; the default is u ū for zee and g g for
    ttbar. The hadronic W decays are written as u d̄ (z carries no flavour). When the z objects
    carry net transverse momentum (relative imbalance above 1e-5), a massless recoil gluon
    (status 1) at the rapidity of the z system balances it, so four-momentum is conserved
    and showers (Pythia's checks) accept the event; readers ignore it. The weight goes to
    XWGTUP (IDWTUP = −4: weighted events of either sign); momenta are written with 11
    significant digits (exact for float32), weights with 17. Provenance is an XML comment.
    """
    out = Path(path)
    if not isinstance(process, Process):
        process = get_process(str(process))
    z = np.asarray(z)
    weight = np.asarray(weight, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != process.dz:
        raise OtusError(f"{out}: z has shape {z.shape}, expected [N, {process.dz}]")
    n = len(z)
    if n == 0:
        raise OtusError(f"{out}: no events to write")
    if weight.shape != (n,):
        raise OtusError(f"{out}: weight has shape {weight.shape}, expected ({n},)")
    if not (np.all(np.isfinite(z)) and np.all(np.isfinite(weight))):
        raise OtusError(f"{out}: z or weight holds NaN or inf")
    default = (2, -2) if process.name == "zee" else (21, 21)
    pdg = np.tile(np.asarray(default), (n, 1)) if incoming_pdg is None else np.asarray(incoming_pdg)
    if pdg.shape != (n, 2):
        raise OtusError(f"{out}: incoming_pdg has shape {pdg.shape}, expected ({n}, 2)")
    pdg = pdg.astype(np.int64)
    _colour_incoming(pdg, process.name == "ttbar", out)
    table, need, scale = _table(process, z, pdg, beam_energy, out)
    n_part = table.shape[1]
    full, short = _INFO + _PART * n_part, _INFO + _PART * (n_part - 1)
    k_short = 5 + 11 * (n_part - 1)
    xsec, err = float(weight.mean()), float(weight.std() / np.sqrt(n))
    head = (
        '<LesHouchesEvents version="3.0">\n'
        + _comment(provenance)
        + "<init>\n"
        + f" 2212 2212 {beam_energy:.8e} {beam_energy:.8e} 0 0 0 0 -4 1\n"
        + f" {xsec:+.10e} {err:.10e} {float(np.abs(weight).max()):.10e} 1\n"
        + "</init>\n"
    )
    with atomic_path(out) as tmp, open(tmp, "wb") as raw:
        stream: Any = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
            if out.name.endswith(".gz")
            else raw
        )
        # Closing the text layer closes the gzip layer (which leaves ``raw`` open).
        with io.TextIOWrapper(stream, encoding="ascii", newline="\n") as text:
            text.write(head)
            for a in range(0, n, _BLOCK):
                sl = slice(a, a + _BLOCK)
                blk = table[sl].reshape(-1, n_part * 11)
                m = len(blk)
                vals = np.concatenate(
                    [
                        np.where(need[sl], n_part, n_part - 1)[:, None],
                        weight[sl, None],
                        scale[sl, None],
                        np.full((m, 1), ALPHA_QED),
                        np.full((m, 1), ALPHA_QCD),
                        blk,
                    ],
                    axis=1,
                )
                text.write(
                    "".join(
                        "<event>\n"
                        + (full % tuple(r) if r[0] == n_part else short % tuple(r[:k_short]))
                        + "</event>\n"
                        for r in vals.tolist()
                    )
                )
            text.write("</LesHouchesEvents>\n")
    return out
