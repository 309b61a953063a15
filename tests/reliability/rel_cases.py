"""The systematic bad-input table of the reliability suite (issue 8, part 1).

Each :class:`Case` names a category, builds one malformed input from the valid samples of
:mod:`rel_samples`, and says how the library must refuse it: a command through
``otus.cli.main`` (exit 2, one stderr line ``otus CMD: error: ...`` matching ``match``, no
output file and no temporary file left) or a reader (an :class:`~otus.errors.OtusError` with
a one-line message matching ``match``). :func:`run_case` is the harness of
``test_bad_inputs.py`` (``python -m experiments.reliability_table`` tabulates its outcomes).
``GOOD`` lists unusual but valid inputs (negative or zero weights, ...) that must be
*accepted*.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import h5py
import numpy as np
from rel_samples import Samples, toy_events

from otus.errors import OtusError
from otus.io.delphes import collections_from_x, read_delphes, write_delphes
from otus.io.h5 import Events, iter_chunks, read_events, write_events
from otus.io.lhe import read_lhe
from otus.processes import PROCESSES


@dataclass
class Run:
    """What a case runs: CLI ``argv`` (checking that ``outputs`` do not appear) or ``call``."""

    argv: list[str] | None = None
    call: Callable[[], Any] | None = None
    outputs: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    category: str
    name: str
    target: str  # the command or reader under test, for the report
    make: Callable[[Path, Samples], Run]
    match: str

    @property
    def id(self) -> str:
        return f"{self.category}/{self.name}"


@dataclass
class Outcome:
    ok: bool
    detail: str


# --------------------------------------------------------------------------- corruptions


def truncate(path: Path, frac: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * frac)])
    return path


def flip_bytes(path: Path, at: float | int, n: int = 64) -> Path:
    """Complement ``n`` bytes from ``at`` (a byte offset, or a float: relative position)."""
    data = bytearray(path.read_bytes())
    a = at if isinstance(at, int) else int(len(data) * at)
    for i in range(a, min(a + n, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def lhe_text(path: Path) -> str:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as f:
        return f.read()


def write_lhe_text(path: Path, text: str) -> Path:
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def edit_lhe(
    s: Samples, process: str, kind: str, dest: Path, edit: Callable[[list[str]], list[str]]
) -> Path:
    """A copy of a sample LHE file with its lines passed through ``edit``."""
    out = dest / s.path(process, kind).name
    lines = lhe_text(s.path(process, kind)).splitlines(keepends=True)
    return write_lhe_text(out, "".join(edit(lines)))


def _particle_rows(lines: list[str], pdg: int) -> list[int]:
    return [
        i
        for i, line in enumerate(lines)
        if len(t := line.split()) == 13 and t[0] == str(pdg) and t[1] == "1"
    ]


def _info_rows(lines: list[str]) -> list[int]:
    return [i + 1 for i, line in enumerate(lines) if line.startswith("<event>")]


def set_token(lines: list[str], row: int, col: int, value: str) -> list[str]:
    t = lines[row].split()
    t[col] = value
    lines[row] = " " + " ".join(t) + "\n"
    return lines


def edit_h5(
    s: Samples, process: str, kind: str, dest: Path, edit: Callable[[h5py.File], None]
) -> Path:
    out = s.copy(process, kind, dest)
    with h5py.File(out, "r+") as f:
        edit(f)
    return out


def damage_object(path: Path, key: str, n: int = 48) -> Path:
    """Overwrite the first ``n`` bytes of the HDF5 object header of ``key`` with 0xFF."""
    with h5py.File(path, "r") as f:
        addr = h5py.h5o.get_info(f[key].id).addr
    return flip_bytes(path, int(addr), n)


def damage_chunk(path: Path, key: str) -> Path:
    """Flip one byte inside the first stored data chunk of ``key`` (caught by fletcher32)."""
    with h5py.File(path, "r") as f:
        info = f[key].id.get_chunk_info(0)
    return flip_bytes(path, int(info.byte_offset + info.size // 2), 1)


def damage_attr(path: Path, text: bytes, after: bytes = b"") -> Path:
    """Flip one byte of the stored attribute text ``text`` (the first after ``after``)."""
    data = path.read_bytes()
    at = data.find(text, max(data.find(after), 0))
    assert at >= 0, "attribute text not found in the file"
    return flip_bytes(path, at + len(text) // 2, 1)


def replace_ds(f: h5py.File, key: str, value: Any) -> None:
    del f[key]
    f[key] = value


def delphes_with(
    dest: Path,
    name: str,
    process: str,
    *,
    n: int = 30,
    pt_edit: Callable[[np.ndarray], None] | None = None,
    edit: tuple[str, Callable[[np.ndarray], None]] | None = None,
    weight: np.ndarray | None = None,
    drop: tuple[str, ...] = (),
) -> Path:
    """A Delphes file of toy events with an electron field (``pt_edit``: PT; ``edit``:
    (field, function)) edited in place as a flat array, other weights, or collections dropped."""
    proc = PROCESSES[process]
    ev = toy_events(proc, n, seed=3)
    assert ev.x is not None and ev.x_pass is not None
    reco = collections_from_x(proc, ev.x, ev.x_pass)
    if pt_edit is not None:
        edit = ("PT", pt_edit)
    if edit is not None:
        col = reco["Electron"][edit[0]]
        flat = ak.to_numpy(ak.flatten(col)).copy()
        edit[1](flat)
        reco["Electron"] = ak.with_field(reco["Electron"], ak.unflatten(flat, ak.num(col)), edit[0])
    for c in drop:
        reco.pop(c)
    out = dest / name
    write_delphes(out, reco, ev.weight if weight is None else weight)
    return out


def unwritable_dir(tmp: Path) -> Path | None:
    """A folder this process cannot create files in, or None (root on a writable system)."""
    d = tmp / "readonly"
    d.mkdir(exist_ok=True)
    d.chmod(0o555)
    if not os.access(d, os.W_OK):
        return d
    d.chmod(0o755)  # root: os.access says yes; try a read-only file system instead
    sysfs = Path("/sys")
    if sysfs.is_dir():
        try:
            (sysfs / ".otus-probe").touch()
        except OSError:
            return sysfs
    return None


# --------------------------------------------------------------------------- the table


def _conv(process: str, *args: Any, out: Path) -> Run:
    return Run(argv=["convert", process, *map(str, args), "--out", str(out)], outputs=[out])


def _read(fn: Callable[..., Any], *args: Any, **kw: Any) -> Run:
    return Run(call=lambda: fn(*args, **kw))


def _chunks(path: Path, process: str | None = None) -> Run:
    return Run(call=lambda: list(iter_chunks(path, 7, process)))


CASES: list[Case] = []


def case(
    category: str, name: str, target: str, match: str
) -> Callable[[Callable[[Path, Samples], Run]], Callable[[Path, Samples], Run]]:
    """Register the decorated builder as a case."""

    def deco(fn: Callable[[Path, Samples], Run]) -> Callable[[Path, Samples], Run]:
        CASES.append(Case(category, name, target, fn, match))
        return fn

    return deco


def _simple(
    category: str, name: str, target: str, match: str, make: Callable[[Path, Samples], Run]
) -> None:
    CASES.append(Case(category, name, target, make, match))


# ---- missing and empty files
E = "missing or empty file"
_simple(
    E,
    "no such LHE",
    "otus convert",
    r"nope\.lhe: no such file",
    lambda t, s: _conv("zee", "--lhe", t / "nope.lhe", out=t / "o.h5"),
)
_simple(
    E,
    "LHE path is a folder",
    "otus convert",
    r"is a folder, expected an LHE file",
    lambda t, s: _conv("zee", "--lhe", t, out=t / "o.h5"),
)
_simple(
    E,
    "no such ROOT",
    "otus convert",
    r"nope\.root: no such file",
    lambda t, s: _conv("zee", "--delphes", t / "nope.root", out=t / "o.h5"),
)
_simple(
    E,
    "no such h5",
    "read_events",
    r"nope\.h5: no such file",
    lambda t, s: _read(read_events, t / "nope.h5"),
)
_simple(
    E,
    "h5 path is a folder",
    "read_events",
    r"is a folder, expected an HDF5 event file",
    lambda t, s: _read(read_events, t),
)


def _empty(name: str) -> Callable[[Path, Samples], Path]:
    def make(t: Path, s: Samples) -> Path:
        (t / name).write_bytes(b"")
        return t / name

    return make


_simple(
    E,
    "0-byte .lhe",
    "otus convert",
    r"empty\.lhe: not a readable LHE file",
    lambda t, s: _conv("zee", "--lhe", _empty("empty.lhe")(t, s), out=t / "o.h5"),
)
_simple(
    E,
    "0-byte .lhe.gz",
    "otus convert",
    r"empty\.lhe\.gz: not a readable LHE file",
    lambda t, s: _conv("zee", "--lhe", _empty("empty.lhe.gz")(t, s), out=t / "o.h5"),
)
_simple(
    E,
    "gzip of nothing",
    "read_lhe",
    r"void\.lhe\.gz: not a readable LHE file",
    lambda t, s: _read(read_lhe, write_lhe_text(t / "void.lhe.gz", ""), "zee"),
)
_simple(
    E,
    "LHE header without events",
    "otus convert",
    r"parton\.lhe: holds no events",
    lambda t, s: _conv(
        "zee",
        "--lhe",
        edit_lhe(
            s,
            "zee",
            "lhe",
            t,
            lambda ls: [ln for ln in ls[: _info_rows(ls)[0] - 1]] + ["</LesHouchesEvents>\n"],
        ),
        out=t / "o.h5",
    ),
)
_simple(
    E,
    "0-byte .root",
    "otus convert",
    r"empty\.root: not a readable ROOT file",
    lambda t, s: _conv("zee", "--delphes", _empty("empty.root")(t, s), out=t / "o.h5"),
)
_simple(
    E,
    "Delphes tree with 0 entries",
    "read_delphes",
    r"zero\.root: the 'Delphes' tree holds no events",
    lambda t, s: _read(read_delphes, delphes_with(t, "zero.root", "zee", n=0)),
)
_simple(
    E,
    "0-byte .h5",
    "read_events",
    r"empty\.h5: not a readable HDF5 event file",
    lambda t, s: _read(read_events, _empty("empty.h5")(t, s)),
)
_simple(
    E,
    "h5 with 0 rows",
    "read_events",
    r"events\.h5: holds no events",
    lambda t, s: _read(
        read_events,
        edit_h5(
            s,
            "zee",
            "h5",
            t,
            lambda f: [f[k].resize(0, axis=0) for k in ("z", "x", "x_pass", "weight")],
        ),
    ),
)

# ---- truncated or corrupted gzip
G = "truncated/corrupt gzip"
for frac in (0.1, 0.5, 0.95):
    _simple(
        G,
        f"LHE gzip cut at {frac:.0%}",
        "otus convert",
        r"parton\.lhe\.gz: not a readable LHE file",
        lambda t, s, frac=frac: _conv(
            "zee", "--lhe", truncate(s.copy("zee", "lhe_gz", t), frac), out=t / "o.h5"
        ),
    )
_simple(
    G,
    "LHE gzip with flipped bytes",
    "otus convert",
    r"parton\.lhe\.gz: not a readable LHE file",
    lambda t, s: _conv("zee", "--lhe", flip_bytes(s.copy("zee", "lhe_gz", t), 0.5), out=t / "o.h5"),
)
_simple(
    G,
    "gzip header only",
    "read_lhe",
    r"parton\.lhe\.gz: not a readable LHE file",
    lambda t, s: _read(read_lhe, truncate(s.copy("ttbar", "lhe_gz", t), 0.0005), "ttbar"),
)

# ---- malformed LHE
L = "malformed LHE"
_simple(
    L,
    "truncated plain LHE",
    "read_lhe",
    r"parton\.lhe: (malformed LHE XML|not a readable)",
    lambda t, s: _read(read_lhe, truncate(s.copy("zee", "lhe", t), 0.5), "zee"),
)
_simple(
    L,
    "non-numeric momentum",
    "read_lhe",
    r"parton\.lhe: not a readable LHE file",
    lambda t, s: _read(
        read_lhe,
        edit_lhe(s, "zee", "lhe", t, lambda ls: set_token(ls, _particle_rows(ls, 11)[3], 6, "abc")),
        "zee",
    ),
)
_simple(
    L,
    "particle line with a missing column",
    "read_lhe",
    r"parton\.lhe: not a readable LHE file",
    lambda t, s: _read(
        read_lhe,
        edit_lhe(
            s,
            "ttbar",
            "lhe",
            t,
            lambda ls: [
                " ".join(ln.split()[:-2]) + "\n" if i == _particle_rows(ls, 5)[0] else ln
                for i, ln in enumerate(ls)
            ],
        ),
        "ttbar",
    ),
)
_simple(
    L,
    "particle count above the lines",
    "read_lhe",
    r"parton\.lhe: event 0 declares 40 particles \(NUP\) but holds 6",
    lambda t, s: _read(
        read_lhe,
        edit_lhe(s, "zee", "lhe", t, lambda ls: set_token(ls, _info_rows(ls)[0], 0, "40")),
        "zee",
    ),
)
_simple(
    L,
    "infinite integer field",
    "read_lhe",
    r"parton\.lhe: not a readable LHE file",
    lambda t, s: _read(
        read_lhe,
        edit_lhe(s, "zee", "lhe", t, lambda ls: set_token(ls, _particle_rows(ls, 11)[0], 1, "inf")),
        "zee",
    ),
)
_simple(
    L,
    "unclosed event tag",
    "read_lhe",
    r"parton\.lhe: (malformed LHE XML|not a readable)",
    lambda t, s: _read(
        read_lhe,
        edit_lhe(s, "zee", "lhe", t, lambda ls: [ln for ln in ls if ln.strip() != "</event>"]),
        "zee",
    ),
)
_simple(
    L,
    "HTML page named .lhe",
    "read_lhe",
    r"page\.lhe: not a readable LHE file",
    lambda t, s: _read(
        read_lhe,
        Path(t / "page.lhe").write_text("<html><body>404</body></html>") and t / "page.lhe",
        "zee",
    ),
)
_simple(
    L,
    "binary garbage named .lhe",
    "read_lhe",
    r"junk\.lhe: (not a readable|malformed)",
    lambda t, s: _read(
        read_lhe, Path(t / "junk.lhe").write_bytes(bytes(range(256)) * 8) and t / "junk.lhe", "zee"
    ),
)

# ---- truncated or corrupted ROOT
R = "truncated/corrupt ROOT"
for frac in (0.05, 0.3, 0.6):
    _simple(
        R,
        f"ROOT cut at {frac:.0%}",
        "otus convert",
        r"delphes\.root: (not a readable ROOT file|cannot read the 'Delphes' tree|no 'Delphes')",
        lambda t, s, frac=frac: _conv(
            "zee", "--delphes", truncate(s.copy("zee", "root", t), frac), out=t / "o.h5"
        ),
    )
_simple(
    R,
    "ROOT with flipped bytes in the header",
    "read_delphes",
    r"delphes\.root: not a readable ROOT file",
    lambda t, s: _read(read_delphes, flip_bytes(s.copy("ttbar", "root", t), 0.0, 16)),
)
_simple(
    R,
    "text named .root",
    "read_delphes",
    r"text\.root: not a readable ROOT file",
    lambda t, s: _read(read_delphes, Path(t / "text.root").write_text("hello") and t / "text.root"),
)
_simple(
    R,
    "Delphes tree without the Jet branches",
    "otus convert",
    r"lack 'Jet'|lacks? .*Jet",
    lambda t, s: _conv(
        "ttbar", "--delphes", delphes_with(t, "nojet.root", "ttbar", drop=("Jet",)), out=t / "o.h5"
    ),
)

# ---- truncated or corrupted HDF5
H = "truncated/corrupt HDF5"
for frac in (0.1, 0.5, 0.9):
    _simple(
        H,
        f"h5 cut at {frac:.0%}",
        "read_events",
        r"events\.h5: (not a readable HDF5|corrupt event file)",
        lambda t, s, frac=frac: _read(read_events, truncate(s.copy("zee", "h5", t), frac)),
    )
_simple(
    H,
    "h5 superblock flipped",
    "iter_chunks",
    r"events\.h5: not a readable HDF5",
    lambda t, s: _chunks(flip_bytes(s.copy("ttbar", "h5", t), 0.0, 8)),
)
for key in ("z", "x", "weight"):
    _simple(
        H,
        f"{key} object header damaged",
        "read_events",
        r"events\.h5: corrupt event file",
        lambda t, s, key=key: _read(read_events, damage_object(s.copy("zee", "h5", t), key)),
    )
for key in ("z", "x", "weight"):
    _simple(
        H,
        f"one byte flipped in a {key} data chunk",
        "read_events",
        r"events\.h5: corrupt event file",
        lambda t, s, key=key: _read(read_events, damage_chunk(s.copy("zee", "h5", t), key)),
    )
# String attributes are fixed-length, inside the checksummed object header: a damaged
# process name makes the attributes unreadable.
_simple(
    H,
    "one byte flipped in the process attribute",
    "read_events",
    r"events\.h5: not an otus event file, or a damaged one",
    lambda t, s: _read(
        read_events, damage_attr(s.copy("ttbar", "h5", t), b"ttbar", after=b"process\x00")
    ),
)
_simple(
    H,
    "text named .h5",
    "read_events",
    r"text\.h5: not a readable HDF5",
    lambda t, s: _read(read_events, Path(t / "text.h5").write_text("z,x\n1,2\n") and t / "text.h5"),
)
_simple(
    H,
    "no process attribute",
    "read_events",
    r"no 'process' attribute",
    lambda t, s: _read(
        read_events, edit_h5(s, "zee", "h5", t, lambda f: f.attrs.__delitem__("process"))
    ),
)
_simple(
    H,
    "unknown process attribute",
    "read_events",
    r"unknown process 'wz'",
    lambda t, s: _read(
        read_events, edit_h5(s, "zee", "h5", t, lambda f: f.attrs.__setitem__("process", "wz"))
    ),
)
_simple(
    H,
    "z is a group",
    "read_events",
    r"parton\.h5: z is not a dataset",
    lambda t, s: _read(
        read_events,
        edit_h5(s, "zee", "h5_z", t, lambda f: (f.__delitem__("z"), f.create_group("z"))),
    ),
)
_simple(
    H,
    "neither z nor x",
    "read_events",
    r"holds neither z nor x",
    lambda t, s: _read(read_events, edit_h5(s, "zee", "h5_z", t, lambda f: f.__delitem__("z"))),
)
_simple(
    H,
    "z of strings",
    "read_events",
    r"parton\.h5: corrupt event file",
    lambda t, s: _read(
        read_events,
        edit_h5(
            s, "zee", "h5_z", t, lambda f: replace_ds(f, "z", np.full((40, 8), "a", dtype="S3"))
        ),
    ),
)

# ---- wrong process
P = "wrong process"
_simple(
    P,
    "zee LHE as ttbar",
    "otus convert",
    r"parton\.lhe: none of its 40 events holds the ttbar partons",
    lambda t, s: _conv("ttbar", "--lhe", s.path("zee", "lhe"), out=t / "o.h5"),
)
_simple(
    P,
    "ttbar LHE as zee",
    "otus convert",
    r"parton\.lhe\.gz: none of its 40 events holds the zee partons",
    lambda t, s: _conv("zee", "--lhe", s.path("ttbar", "lhe_gz"), out=t / "o.h5"),
)
_simple(
    P,
    "zee h5 read as ttbar",
    "read_events",
    r"events\.h5: holds zee events, expected ttbar",
    lambda t, s: _read(read_events, s.path("zee", "h5"), "ttbar"),
)
_simple(
    P,
    "ttbar h5 chunks as zee",
    "iter_chunks",
    r"holds ttbar events, expected zee",
    lambda t, s: _chunks(s.path("ttbar", "h5"), "zee"),
)

# ---- wrong dimensions
D = "wrong dimensions"
_simple(
    D,
    "z with 7 columns",
    "read_events",
    r"z has shape \(40, 7\), expected \[N, 8\]",
    lambda t, s: _read(
        read_events,
        edit_h5(s, "zee", "h5", t, lambda f: replace_ds(f, "z", np.ones((40, 7), "f4"))),
    ),
)
_simple(
    D,
    "ttbar-sized x in a zee file",
    "read_events",
    r"x has shape \(40, 24\), expected",
    lambda t, s: _read(
        read_events,
        edit_h5(s, "zee", "h5", t, lambda f: replace_ds(f, "x", np.ones((40, 24), "f4"))),
    ),
)
_simple(
    D,
    "1-D z",
    "iter_chunks",
    r"z has shape \(40,\)",
    lambda t, s: _chunks(
        edit_h5(s, "zee", "h5", t, lambda f: replace_ds(f, "z", np.ones(40, "f4")))
    ),
)
_simple(
    D,
    "z and x with different rows",
    "read_events",
    r"z and x have different numbers",
    lambda t, s: _read(
        read_events,
        edit_h5(s, "zee", "h5", t, lambda f: replace_ds(f, "x", np.ones((39, 8), "f4"))),
    ),
)
_simple(
    D,
    "weight too short",
    "read_events",
    r"weight has shape \(39,\), expected \(40,\)",
    lambda t, s: _read(
        read_events, edit_h5(s, "ttbar", "h5", t, lambda f: replace_ds(f, "weight", np.ones(39)))
    ),
)
_simple(
    D,
    "LHE and ROOT of different lengths",
    "otus convert",
    r"holds 40 events but .*short\.root holds 30; paired",
    lambda t, s: _conv(
        "zee",
        "--lhe",
        s.path("zee", "lhe"),
        "--delphes",
        delphes_with(t, "short.root", "zee"),
        out=t / "o.h5",
    ),
)


# ---- NaN / inf
N = "NaN/inf values"
_simple(
    N,
    "NaN momentum in LHE",
    "otus convert",
    r"parton\.lhe: NaN or inf momenta",
    lambda t, s: _conv(
        "zee",
        "--lhe",
        edit_lhe(s, "zee", "lhe", t, lambda ls: set_token(ls, _particle_rows(ls, 11)[2], 6, "nan")),
        out=t / "o.h5",
    ),
)
_simple(
    N,
    "inf momentum in gz LHE",
    "read_lhe",
    r"parton\.lhe\.gz: NaN or inf momenta",
    lambda t, s: _read(
        read_lhe,
        edit_lhe(
            s, "ttbar", "lhe_gz", t, lambda ls: set_token(ls, _particle_rows(ls, 5)[1], 8, "-inf")
        ),
        "ttbar",
    ),
)
_simple(
    N,
    "inf weight in LHE",
    "otus convert",
    r"parton\.lhe: NaN or inf momenta or weights",
    lambda t, s: _conv(
        "zee",
        "--lhe",
        edit_lhe(s, "zee", "lhe", t, lambda ls: set_token(ls, _info_rows(ls)[5], 2, "inf")),
        out=t / "o.h5",
    ),
)
_simple(
    N,
    "NaN in z of h5",
    "read_events",
    r"z holds NaN or inf in 1 events",
    lambda t, s: _read(
        read_events, edit_h5(s, "zee", "h5", t, lambda f: f["z"].__setitem__((3, 2), np.nan))
    ),
)
_simple(
    N,
    "inf in a passing x row",
    "iter_chunks",
    r"x holds NaN or inf in 1 passing",
    lambda t, s: _chunks(
        edit_h5(s, "ttbar", "h5", t, lambda f: f["x"].__setitem__((0, 5), np.inf))
    ),
)
_simple(
    N,
    "NaN weight in h5",
    "read_events",
    r"weight holds NaN or inf",
    lambda t, s: _read(
        read_events, edit_h5(s, "zee", "h5_x", t, lambda f: f["weight"].__setitem__(7, np.nan))
    ),
)
_simple(
    N,
    "NaN electron PT in ROOT",
    "otus convert",
    r"nanpt\.root: Electron\.PT holds NaN",
    lambda t, s: _conv(
        "zee",
        "--delphes",
        delphes_with(t, "nanpt.root", "zee", pt_edit=lambda a: a.__setitem__(3, np.nan)),
        out=t / "o.h5",
    ),
)
_simple(
    N,
    "inf Event.Weight in ROOT",
    "read_delphes",
    r"infw\.root: Event\.Weight .*NaN",
    lambda t, s: _read(
        read_delphes, delphes_with(t, "infw.root", "zee", weight=np.r_[np.ones(29), np.inf])
    ),
)

# ---- zero passing events
Z = "zero passing events"
_simple(
    Z,
    "ttbar detector file as zee",
    "otus convert",
    r"delphes\.root: none of its 40 events passes the zee detector selection",
    lambda t, s: _conv("zee", "--delphes", s.path("ttbar", "root"), out=t / "o.h5"),
)
_simple(
    Z,
    "all electrons of one charge",
    "otus convert",
    r"samesign\.root: none of its 30 events passes the zee",
    lambda t, s: _conv(
        "zee",
        "--delphes",
        delphes_with(
            t, "samesign.root", "zee", edit=("Charge", lambda a: a.__setitem__(slice(None), -1))
        ),
        out=t / "o.h5",
    ),
)
_simple(
    Z,
    "LHE without the process in its first events",
    "otus convert",
    r"none of its 5 events",
    lambda t, s: _conv("zee", "--lhe", s.path("ttbar", "lhe"), "--max-events", 5, out=t / "o.h5"),
)

# ---- bad options
OPT = "bad options"
_simple(
    OPT,
    "no input given",
    "otus convert",
    r"give --lhe, --delphes or both",
    lambda t, s: _conv("zee", out=t / "o.h5"),
)
_simple(
    OPT,
    "--max-events 0",
    "otus convert",
    r"--max-events must be positive",
    lambda t, s: _conv("zee", "--lhe", s.path("zee", "lhe"), "--max-events", 0, out=t / "o.h5"),
)
_simple(
    OPT,
    "unknown input suffix",
    "read_input",
    r"f\.csv: unknown event-file type",
    lambda t, s: _read(
        __import__("otus.io.formats", fromlist=["x"]).read_input, t / "f.csv", "zee"
    ),
)

# ---- unwritable outputs
U = "unwritable output"
_simple(
    U,
    "output folder missing",
    "otus convert",
    r"output folder .*missing does not exist",
    lambda t, s: _conv("zee", "--lhe", s.path("zee", "lhe"), out=t / "missing" / "o.h5"),
)
_simple(
    U,
    "output parent is a file",
    "otus convert",
    r"output folder .*afile.* does not exist",
    lambda t, s: (
        (t / "afile").write_text("x")
        and _conv("zee", "--lhe", s.path("zee", "lhe"), out=t / "afile" / "o.h5")
    ),
)
_simple(
    U,
    "output is a folder",
    "otus convert",
    r"outdir: is a folder; give a file name",
    lambda t, s: (
        (t / "outdir").mkdir()
        or Run(
            argv=["convert", "zee", "--lhe", str(s.path("zee", "lhe")), "--out", str(t / "outdir")],
            outputs=[],
        )
    ),
)


def _readonly(t: Path, s: Samples) -> Run:
    d = unwritable_dir(t)
    if d is None:
        import pytest

        pytest.skip("no unwritable folder available (root on a writable file system)")
    return _conv("zee", "--lhe", s.path("zee", "lhe"), out=d / "o.h5")


_simple(
    U, "output folder read-only", "otus convert", r"output folder .* is not writable", _readonly
)


# --------------------------------------------------------------------------- valid edge cases


@dataclass(frozen=True)
class Good:
    category: str
    name: str
    make: Callable[[Path, Samples], Callable[[], Events]]
    check: Callable[[Events], bool]


def _negate_first_10(lines: list[str]) -> list[str]:
    for r in _info_rows(lines)[:10]:
        set_token(lines, r, 2, "-" + lines[r].split()[2].lstrip("+-"))
    return lines


def _h5_weights(t: Path, s: Samples, w: np.ndarray) -> Path:
    ev = toy_events(PROCESSES["zee"], len(w), seed=9)
    ev.weight = w
    return write_events(t / "w.h5", ev)


GOOD: list[Good] = [
    Good(
        "negative or zero weights",
        "negative LHE weights",
        lambda t, s: lambda: read_lhe(edit_lhe(s, "zee", "lhe", t, _negate_first_10), "zee"),
        lambda ev: int(np.sum(ev.weight < 0)) == 10,
    ),
    Good(
        "negative or zero weights",
        "zero and negative h5 weights",
        lambda t, s: (
            lambda: read_events(_h5_weights(t, s, np.r_[np.zeros(5), -np.ones(5), np.ones(10)]))
        ),
        lambda ev: int(np.sum(ev.weight == 0)) == 5 and int(np.sum(ev.weight < 0)) == 5,
    ),
    Good(
        "negative or zero weights",
        "negative Delphes weights",
        lambda t, s: (
            lambda: Events(
                PROCESSES["zee"],
                x=np.zeros((30, 8)),
                weight=read_delphes(delphes_with(t, "neg.root", "zee", weight=-np.arange(30.0)))[1],
            )
        ),
        lambda ev: bool(np.all(ev.weight <= 0)),
    ),
    Good(
        "misnamed file",
        "plain text named .lhe.gz (pylhe sniffs gzip by content)",
        lambda t, s: (
            lambda: read_lhe(
                Path(t / "fake.lhe.gz").write_text(lhe_text(s.path("zee", "lhe")))
                and t / "fake.lhe.gz",
                "zee",
            )
        ),
        lambda ev: len(ev) == 40,
    ),
    Good(
        "failed reconstruction",
        "NaN x in failing rows",
        lambda t, s: lambda: read_events(s.path("ttbar", "h5_x")),
        lambda ev: ev.x_pass is not None and int((~ev.x_pass).sum()) == 8,
    ),
]


# --------------------------------------------------------------------------- the harness


@contextlib.contextmanager
def _capture_stderr() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        yield buf


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of atomic writes left in ``folder``."""
    return sorted(folder.glob(".*.tmp")) if folder.is_dir() else []


def run_case(
    c: Case, tmp: Path, samples: Samples, stderr: Callable[[], str] | None = None
) -> Outcome:
    """Run one case; ``ok`` when the library refused it the promised way.

    ``stderr`` returns what the command printed (pytest's capsys); without it stderr is
    captured here.
    """
    from otus.cli import main

    r = c.make(tmp, samples)
    if r.argv is not None:
        if stderr is None:
            with _capture_stderr() as buf:
                rc = main(r.argv)
            err = buf.getvalue()
        else:
            rc = main(r.argv)
            err = stderr()
        lines = err.strip().splitlines()
        cmd = r.argv[0]
        if rc != 2:
            return Outcome(False, f"exit code {rc}, stderr {err!r}")
        if len(lines) != 1 or not lines[0].startswith(f"otus {cmd}: error: "):
            return Outcome(False, f"not one error line: {err!r}")
        if not re.search(c.match, lines[0]):
            return Outcome(False, f"message {lines[0]!r} does not match {c.match!r}")
        left = [p for p in r.outputs if p.exists()]
        left += [q for p in r.outputs for q in leftovers(p.parent)]
        if left:
            return Outcome(False, f"output left behind: {left}")
        return Outcome(True, lines[0])
    assert r.call is not None
    try:
        r.call()
    except OtusError as err:
        msg = str(err)
        if "\n" in msg:
            return Outcome(False, f"multi-line message {msg!r}")
        if not re.search(c.match, msg):
            return Outcome(False, f"message {msg!r} does not match {c.match!r}")
        return Outcome(True, msg)
    except Exception as err:
        return Outcome(False, f"raised {type(err).__name__}: {err}")
    return Outcome(False, "accepted the bad input")
