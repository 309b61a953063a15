"""I/O: read and write throughput of the event formats (HDF5 event files, LHE, Delphes ROOT)
and the selection counts of the readers on real LHE files. Writes the ``io`` section of
``experiments/results/io.md``.

    python -m experiments.bench_io [--events 200000] [--lhe-dir DIR]

The events are data/zee tiled to ``--events``; each rate is the best of 3 passes, wall-clock.
``--lhe-dir`` (default ``shared/testdata/lhe`` beside the repository, skipped when missing)
holds third-party LHE files: per file and process, the events the LHE reader selects.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from experiments.common import (
    DATA,
    ROOT,
    command,
    header,
    machine,
    results_path,
    table,
    work_dir,
    write_section,
)
from otus.errors import InputFileError
from otus.io.delphes import collections_from_x, read_delphes, write_delphes
from otus.io.h5 import Events, read_events, write_events
from otus.io.lhe import read_lhe, select_lhe, write_lhe
from otus.physics.selection import build_x
from otus.processes import ZEE

LHE_DIR = ROOT.parent / "shared" / "testdata" / "lhe"


def sample(n: int) -> Events:
    """data/zee/events.h5 repeated to ``n`` events."""
    ev = read_events(DATA / "zee" / "events.h5", "zee")
    return ev.subset(np.resize(np.arange(len(ev)), n))


OPERATIONS = (
    "write_events (.h5)",
    "read_events (.h5)",
    "write_lhe (.lhe.gz)",
    "read_lhe (.lhe.gz)",
    "write_delphes (.root)",
    "read_delphes + build_x (.root)",
)


def operations(ev: Events, folder: Path) -> dict[str, Callable[[], object]]:
    """Each of :data:`OPERATIONS` on ``ev`` in ``folder``; a writer runs before its reader."""
    h5, lhe, root = folder / "a.h5", folder / "a.lhe.gz", folder / "a.root"
    w = np.ones(len(ev))
    reco = collections_from_x(ZEE, ev.x, ev.x_pass)
    fns = (
        lambda: write_events(h5, ev),
        lambda: read_events(h5, "zee"),
        lambda: write_lhe(lhe, ZEE, ev.z, w),
        lambda: read_lhe(lhe, "zee"),
        lambda: write_delphes(root, reco, w),
        lambda: build_x(ZEE, read_delphes(root)[0]),
    )
    return dict(zip(OPERATIONS, fns, strict=True))


def best_seconds(fn: Callable[[], object], passes: int = 3) -> float:
    """The shortest wall time of ``passes`` calls of ``fn``."""
    best = float("inf")
    for _ in range(passes):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def selections(lhe_dir: Path) -> list[list[str]]:
    """Per LHE file and process: events selected of events read, or the reader's error."""
    rows = []
    for f in sorted(lhe_dir.iterdir()):
        for proc in ("zee", "ttbar"):
            try:
                info = select_lhe(f, proc).info
                rows.append([f.name, proc, f"{info['n_selected']} of {info['n_events']}"])
            except InputFileError as err:
                m = re.search(r"none of its (\d+) events", str(err))
                what = f"0 of {m[1]}" if m else str(err).split(": ", 1)[-1][:60]
                rows.append([f.name, proc, f"{what} (refused with a message)"])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--lhe-dir", type=Path, default=LHE_DIR)
    ap.add_argument("--out", type=Path, default=results_path("io"))
    a = ap.parse_args(argv)
    ev = sample(a.events)
    rows = []
    with work_dir(None, "io") as d:
        for name, fn in operations(ev, d).items():
            s = best_seconds(fn)
            rows.append([name, f"{a.events:,}", f"{s:.2f}", f"{a.events / s:,.0f}"])
            print(" | ".join(rows[-1]), flush=True)
    lines = header(
        "Read and write throughput (zee events, one process)",
        command=command("bench_io", argv),
        machine=machine(),
    )
    lines += table("operation | events | seconds (best of 3) | events/s", rows)
    if a.lhe_dir.is_dir():
        lines += [
            "",
            f"### Selection on third-party LHE files (`{a.lhe_dir.name}/`)",
            "",
            *table("file | process | events selected", selections(a.lhe_dir)),
        ]
    write_section(a.out, "io", lines, title="I/O")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
