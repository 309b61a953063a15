"""Process cards: a final state declared in YAML, parsed and validated into a :class:`Process`.

Schema (unknown keys are errors; every error names the card, the key and the fix)::

    name: zmumu                  # [a-z0-9_]+
    parton:                      # z, in this order
      - {name: mu-, pdg: 13}     # pdg: an id or a list; optional mother (id or list), mass
      - {name: mu+, pdg: -13}
    detector:                    # x, in this order
      - {name: mu-, type: muon, charge: -1}   # electron | muon | photon | jet | met
      - {name: mu+, type: muon, charge: 1}    # optional charge; optional mass (GeV)
    selection:                   # per object type: pt_min, eta_max, count | min_count
      muon: {pt_min: 10, eta_max: 2.4, count: 2}
    anchor: mu+                  # reference particle of the anchoring loss (in both lists)
    observables:                 # mass | mt | pt of the sum of objects, or builtin: NAME
      m_mumu: {mass: [mu-, mu+]}
    pythia: ["WeakSingleBoson:ffbar2gmZ = on", ...]   # optional: `otus generate` set-up
    lhe: {incoming: [2, -2], resonance: 23}           # optional: how LHE output is written

Parton masses default to the PDG mass of the first id (from the ``particle`` package when it
knows the id; 0 for e, μ, neutrinos, u, d, s, g). Detector objects are massless unless the
type keeps a mass (jets: measured, a free output) or the slot gives ``mass``.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import yaml

from otus.errors import ConfigError
from otus.processes.process import (
    TYPES,
    Cut,
    LHERecord,
    Observable,
    Parton,
    Process,
    Slot,
)

NAME_RE = re.compile(r"^[a-z0-9_]+$")
OBJECT_RE = re.compile(r"^[A-Za-z0-9_+\-]+$")
_TOP = ("name", "parton", "detector", "selection", "anchor", "observables", "pythia", "lhe")
_REQUIRED = ("name", "parton", "detector", "selection", "anchor")
_PARTON_KEYS = ("name", "pdg", "mother", "mass")
_SLOT_KEYS = ("name", "type", "charge", "mass")
_CUT_KEYS = ("pt_min", "eta_max", "count", "min_count")
_OBS_KINDS = ("mass", "mt", "pt", "builtin")
_LHE_KEYS = ("incoming", "resonance", "builtin")
# Masses (GeV) used where the card gives none: massless light partons and leptons, as
# MadGraph's default model (sm) has them; heavier particles from the PDG tables.
_MASSLESS = frozenset({1, 2, 3, 11, 12, 13, 14, 16, 21, 22})
_FALLBACK_MASS = {4: 1.27, 5: 4.7, 6: 172.5, 15: 1.777, 23: 91.1876, 24: 80.379, 25: 125.0}


class CardError(ConfigError):
    """A process card is malformed or contradicts itself."""


def _err(where: str, key: str, msg: str) -> CardError:
    return CardError(f"{where}: {key}: {msg}")


def pdg_mass(pdg: int) -> float:
    """Mass (GeV) of a particle by PDG id, as the card's default."""
    a = abs(int(pdg))
    if a in _MASSLESS:
        return 0.0
    if a in _FALLBACK_MASS:
        return _FALLBACK_MASS[a]
    try:
        from particle import Particle

        m = Particle.from_pdgid(a).mass
        return 0.0 if m is None else float(m) / 1000.0
    except Exception:  # not installed, or an id it does not know
        return 0.0


def _ids(v: Any, where: str, key: str) -> tuple[int, ...]:
    vals = v if isinstance(v, list) else [v]
    if not vals or not all(isinstance(i, int) and not isinstance(i, bool) for i in vals):
        raise _err(where, key, f"must be a PDG id or a list of ids (integers), got {v!r}")
    if any(i == 0 for i in vals):
        raise _err(where, key, "0 is not a PDG id")
    return tuple(vals)


def _number(v: Any, where: str, key: str, *, minimum: float = 0.0) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= minimum:
        raise _err(where, key, f"must be a number >= {minimum}, got {v!r}")
    return float(v)


def _keys(d: Any, allowed: tuple[str, ...], where: str, key: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise _err(where, key, f"must be a mapping, got {type(d).__name__}")
    bad = [k for k in d if k not in allowed]
    if bad:
        raise _err(where, f"{key}.{bad[0]}", f"unknown key; allowed: {', '.join(allowed)}")
    return d


def _object_name(v: Any, where: str, key: str) -> str:
    if not isinstance(v, str) or not OBJECT_RE.match(v):
        raise _err(where, key, f"object names are letters, digits, _, + and -; got {v!r}")
    return v


def _parton(i: int, d: Any, where: str) -> Parton:
    key = f"parton[{i}]"
    d = _keys(d, _PARTON_KEYS, where, key)
    for k in ("name", "pdg"):
        if k not in d:
            raise _err(where, f"{key}.{k}", "missing; every parton needs a name and a pdg")
    pdg = _ids(d["pdg"], where, f"{key}.pdg")
    mother = _ids(d["mother"], where, f"{key}.mother") if "mother" in d else None
    mass = _number(d["mass"], where, f"{key}.mass") if "mass" in d else pdg_mass(pdg[0])
    return Parton(_object_name(d["name"], where, f"{key}.name"), pdg, mother, mass)


def _slot(i: int, d: Any, where: str) -> Slot:
    key = f"detector[{i}]"
    d = _keys(d, _SLOT_KEYS, where, key)
    for k in ("name", "type"):
        if k not in d:
            raise _err(
                where, f"{key}.{k}", "missing; every detector object needs a name and a type"
            )
    t = d["type"]
    if t not in TYPES:
        raise _err(where, f"{key}.type", f"unknown type {t!r}; choose one of {', '.join(TYPES)}")
    charge = d.get("charge")
    if charge is not None and charge not in (-1, 1):
        raise _err(where, f"{key}.charge", f"must be -1 or 1, got {charge!r}")
    if charge is not None and t in ("jet", "met", "photon"):
        raise _err(where, f"{key}.charge", f"a {t} has no charge; drop the key")
    if "mass" in d:
        if t in ("jet", "met"):
            raise _err(where, f"{key}.mass", f"a {t} has no fixed mass; drop the key")
        mass = _number(d["mass"], where, f"{key}.mass")
    else:
        mass = math.nan if t == "jet" else 0.0
    return Slot(_object_name(d["name"], where, f"{key}.name"), t, charge, mass)


def _cut(t: str, d: Any, where: str) -> Cut:
    key = f"selection.{t}"
    d = _keys(d, _CUT_KEYS, where, key)
    if ("count" in d) == ("min_count" in d):
        raise _err(where, key, "give exactly one of count (exactly N) and min_count (at least N)")
    for k in ("count", "min_count"):
        if k in d and (not isinstance(d[k], int) or isinstance(d[k], bool) or d[k] < 0):
            raise _err(where, f"{key}.{k}", f"must be a whole number >= 0, got {d[k]!r}")
    return Cut(
        pt_min=_number(d.get("pt_min", 0.0), where, f"{key}.pt_min"),
        eta_max=_number(d.get("eta_max", math.inf), where, f"{key}.eta_max", minimum=1e-9),
        count=d.get("count"),
        min_count=d.get("min_count"),
    )


def _observable(name: str, d: Any, where: str) -> Observable:
    key = f"observables.{name}"
    if not isinstance(name, str) or not OBJECT_RE.match(name):
        raise _err(where, key, "observable names are letters, digits, _, + and -")
    d = _keys(d, _OBS_KINDS, where, key)
    if len(d) != 1:
        raise _err(where, key, f"give exactly one of {', '.join(_OBS_KINDS)}")
    ((kind, val),) = d.items()
    if kind == "builtin":
        from otus.processes.named import BUILTIN_OBSERVABLES

        if val not in BUILTIN_OBSERVABLES:
            raise _err(
                where,
                f"{key}.builtin",
                f"unknown built-in {val!r}; choose one of {', '.join(BUILTIN_OBSERVABLES)}",
            )
        return Observable(name, "builtin", (), val)
    if not isinstance(val, list) or not val or not all(isinstance(o, str) for o in val):
        raise _err(where, f"{key}.{kind}", f"must be a list of object names, got {val!r}")
    return Observable(name, kind, tuple(val))


def _lhe(d: Any, where: str) -> LHERecord:
    d = _keys(d, _LHE_KEYS, where, "lhe")
    inc = d.get("incoming", [2, -2])
    if not (isinstance(inc, list) and len(inc) == 2 and all(isinstance(i, int) for i in inc)):
        raise _err(where, "lhe.incoming", f"must be two PDG ids, got {inc!r}")
    res = d.get("resonance")
    if res is not None and (not isinstance(res, int) or isinstance(res, bool)):
        raise _err(where, "lhe.resonance", f"must be a PDG id, got {res!r}")
    builtin = d.get("builtin")
    if builtin is not None:
        from otus.processes.named import BUILTIN_RECORDS

        if builtin not in BUILTIN_RECORDS:
            raise _err(
                where,
                "lhe.builtin",
                f"unknown built-in record {builtin!r}; choose one of {', '.join(BUILTIN_RECORDS)}",
            )
    return LHERecord(incoming=(inc[0], inc[1]), resonance=res, builtin=builtin)


def process_from_dict(d: Any, *, where: str = "card", text: str = "") -> Process:
    """Validate a parsed card and build its :class:`Process` (errors: :class:`CardError`)."""
    if not isinstance(d, dict):
        raise CardError(
            f"{where}: a process card is a YAML mapping with keys {', '.join(_REQUIRED)}"
        )
    d = _keys(d, _TOP, where, "card")
    for k in _REQUIRED:
        if k not in d:
            raise _err(where, k, f"missing; a card needs {', '.join(_REQUIRED)}")
    name = d["name"]
    if not isinstance(name, str) or not NAME_RE.match(name) or name == "generic":
        raise _err(where, "name", f"must match [a-z0-9_]+ (and not 'generic'), got {name!r}")
    for k in ("parton", "detector"):
        if not isinstance(d[k], list) or not d[k]:
            raise _err(where, k, "must be a non-empty list of objects")
    parton = tuple(_parton(i, p, where) for i, p in enumerate(d["parton"]))
    detector = tuple(_slot(i, s, where) for i, s in enumerate(d["detector"]))
    for key, objs in (("parton", parton), ("detector", detector)):
        names = [o.name for o in objs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise _err(where, key, f"object name {dup[0]!r} is used twice; names must be unique")
    sel = _keys(d["selection"], TYPES, where, "selection")
    if "met" in sel:
        raise _err(where, "selection.met", "missing ET is one object per event; drop the entry")
    selection = tuple((t, _cut(t, c, where)) for t, c in sel.items())
    cuts = dict(selection)
    for t in dict.fromkeys(s.type for s in detector):
        if t == "met":
            if sum(s.type == "met" for s in detector) > 1:
                raise _err(where, "detector", "at most one met object")
            continue
        if t not in cuts:
            raise _err(
                where,
                f"selection.{t}",
                f"missing; the detector list has {t} objects, so give "
                f"their count, e.g. selection: {{{t}: {{pt_min: 10, count: 2}}}}",
            )
        n_slots = sum(s.type == t for s in detector)
        c = cuts[t]
        need = c.count if c.count is not None else c.min_count
        if need is not None and need < n_slots:
            k = "count" if c.count is not None else "min_count"
            raise _err(
                where,
                f"selection.{t}.{k}",
                f"is {need} but the detector list has {n_slots} "
                f"{t} objects; raise it to at least {n_slots}",
            )
    anchor = d["anchor"]
    if anchor not in [p.name for p in parton] or anchor not in [s.name for s in detector]:
        raise _err(
            where,
            "anchor",
            f"{anchor!r} must name an object in both the parton and the "
            "detector lists (give both the same name)",
        )
    obs_d = d.get("observables") or {}
    if not isinstance(obs_d, dict):
        raise _err(where, "observables", "must be a mapping name: {mass|mt|pt|builtin: ...}")
    observables = tuple(_observable(k, v, where) for k, v in obs_d.items())
    known = {p.name for p in parton} | {s.name for s in detector}
    reserved = _reserved_names(parton, detector)
    for ob in observables:
        for o in ob.objects:
            if o not in known:
                raise _err(
                    where,
                    f"observables.{ob.name}",
                    f"names {o!r}, which is in neither the parton nor the detector list",
                )
        if ob.name in reserved:
            raise _err(where, f"observables.{ob.name}", "clashes with an object feature name")
    pythia = d.get("pythia") or []
    if not isinstance(pythia, list) or not all(isinstance(s, str) for s in pythia):
        raise _err(where, "pythia", "must be a list of Pythia setting strings")
    lhe = _lhe(d["lhe"], where) if "lhe" in d else LHERecord()
    proc = Process(
        name=name,
        parton=parton,
        detector=detector,
        selection=selection,
        anchor_name=anchor,
        observable_defs=observables,
        pythia=tuple(pythia),
        lhe=lhe,
        card_text=text,
        source=where,
    )
    from otus.processes.named import check_builtins

    check_builtins(proc, where)
    return proc


def _reserved_names(parton: tuple[Parton, ...], detector: tuple[Slot, ...]) -> set[str]:
    out: set[str] = set()
    for o in [p.name for p in parton] + [s.name for s in detector]:
        out |= {f"{o}_{c}" for c in ("px", "py", "pz", "E", "pt", "eta")}
    return out


def process_from_text(text: str, *, where: str = "card") -> Process:
    """Parse card YAML text (as stored in event files and run folders)."""
    try:
        d = yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "YAML error"
        raise CardError(f"{where}: not valid YAML ({first})") from None
    return process_from_dict(d, where=where, text=text)


def load_card(path: str | os.PathLike[str]) -> Process:
    """Read and validate a process card file."""
    p = Path(path)
    if not p.is_file():
        raise CardError(f"{p}: no such process card")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CardError(f"{p}: cannot read the process card ({err})") from None
    return process_from_text(text, where=str(p))
