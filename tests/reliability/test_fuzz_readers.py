"""Property-based fuzzing of the readers: mutated bytes or lines of small valid files must
either read as valid events or raise the library's own error type, never anything else.
Each read records its outcome as a ``fuzz`` property (``python -m
experiments.reliability_table`` counts them)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rel_samples import Samples, samples_fixture  # noqa: F401 (fixture)

from otus.errors import OtusError
from otus.io.delphes import read_delphes
from otus.io.h5 import Events, iter_chunks, read_events
from otus.io.lhe import read_lhe

FUZZ = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# A mutation: ("flip", [(relative position, byte)...]) | ("head", [(position in the first
# 4 KiB, where HDF5 and ROOT keep their metadata, byte)...]) | ("cut", relative length) |
# ("insert", relative position, bytes).
FLIPS = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=12)
MUTATION = st.one_of(
    st.tuples(st.just("flip"), FLIPS),
    st.tuples(st.just("head"), FLIPS),
    st.tuples(st.just("cut"), st.floats(0, 1)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=32)),
)
TOKEN_LIST = [
    "nan",
    "inf",
    "-inf",
    "",
    "abc",
    "1e999",
    "-1",
    "0",
    "99999999999",
    "<event>",
    "</event>",
    "<init>",
    "&",
    "<",
    "1.2.3",
    "\x00",
    "é",
    "-0",
    "1e-320",
]
TOKENS = st.sampled_from(TOKEN_LIST)
LINE_EDIT = st.tuples(
    st.sampled_from(["token", "delete", "duplicate", "swap"]),
    st.floats(0, 1),
    st.floats(0, 1),
    TOKENS,
)


def mutate(data: bytes, m: tuple) -> bytes:
    b = bytearray(data)
    n = len(b)
    if m[0] in ("flip", "head"):
        span = n if m[0] == "flip" else min(n, 4096)
        for pos, val in m[1]:
            b[min(int(pos * span), n - 1)] = val
    elif m[0] == "cut":
        b = b[: int(m[1] * n)]
    else:
        i = int(m[1] * n)
        b[i:i] = m[2]
    return bytes(b)


def edit_lines(text: str, edits: list[tuple]) -> str:
    lines = text.splitlines(keepends=True)
    for op, a, b, tok in edits:
        if not lines:
            break
        i, j = min(int(a * len(lines)), len(lines) - 1), min(int(b * len(lines)), len(lines) - 1)
        if op == "token":
            t = lines[i].split(" ")
            t[min(int(b * len(t)), len(t) - 1)] = tok
            lines[i] = " ".join(t)
        elif op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[j])
        else:
            lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines)


def _valid(ev: Events, process: str) -> None:
    """What a successful read must give: events of the process with finite z or weights."""
    assert len(ev) > 0 and ev.process.name == process
    if ev.z is not None:
        assert np.all(np.isfinite(ev.z))
    assert ev.weight is not None and np.all(np.isfinite(ev.weight))


def _try(fn, *args) -> str:
    """Run one read; return its outcome."""
    try:
        fn(*args)
    except OtusError as err:
        assert "\n" not in str(err), f"multi-line message: {err!r}"
        return "refused, one line"
    return "read as valid events"


@pytest.mark.parametrize(("process", "kind"), [("zee", "lhe"), ("zee", "lhe_gz"), ("ttbar", "lhe")])
@FUZZ
@given(m=MUTATION)
def test_read_lhe_mutated_bytes(
    samples: Samples, process: str, kind: str, m: tuple, record_property
) -> None:
    src = samples.path(process, kind)
    with tempfile.TemporaryDirectory() as d:
        q = Path(d) / src.name
        q.write_bytes(mutate(src.read_bytes(), m))
        record_property("fuzz", _try(lambda: _valid(read_lhe(q, process), process)))


@pytest.mark.parametrize("process", ["zee", "ttbar"])
@FUZZ
@given(edits=st.lists(LINE_EDIT, min_size=1, max_size=4))
def test_read_lhe_mutated_lines(
    samples: Samples, process: str, edits: list, record_property
) -> None:
    text = samples.path(process, "lhe").read_text()
    with tempfile.TemporaryDirectory() as d:
        q = Path(d) / "f.lhe"
        q.write_text(edit_lines(text, edits), encoding="utf-8")
        record_property("fuzz", _try(lambda: _valid(read_lhe(q, process), process)))


@pytest.mark.parametrize("kind", ["h5", "h5_x"])
@FUZZ
@given(m=MUTATION)
def test_read_events_mutated_bytes(samples: Samples, kind: str, m: tuple, record_property) -> None:
    src = samples.path("zee", kind)
    with tempfile.TemporaryDirectory() as d:
        q = Path(d) / src.name
        q.write_bytes(mutate(src.read_bytes(), m))
        record_property("fuzz", _try(lambda: _valid(read_events(q, "zee"), "zee")))
        record_property("fuzz", _try(lambda: [_valid(c, "zee") for c in iter_chunks(q, 7, "zee")]))


@FUZZ
@given(m=MUTATION)
def test_read_delphes_mutated_bytes(samples: Samples, m: tuple, record_property) -> None:
    src = samples.path("ttbar", "root")
    with tempfile.TemporaryDirectory() as d:
        q = Path(d) / src.name
        q.write_bytes(mutate(src.read_bytes(), m))
        record_property("fuzz", _try(read_delphes, q))
