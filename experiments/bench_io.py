"""Event-file I/O: selection counts on the shared real LHE files and read/write throughput.

Run: PYTHONPATH=. python experiments/bench_io.py [--events N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from otus.errors import InputFileError
from otus.io.delphes import collections_from_x, read_delphes, write_delphes
from otus.io.lhe import read_lhe, select_lhe, write_lhe
from otus.physics.selection import build_x
from otus.processes import ZEE

LHE_DIR = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "lhe"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    args = ap.parse_args()
    if LHE_DIR.is_dir():
        for f in sorted(LHE_DIR.iterdir()):
            for proc in ("zee", "ttbar"):
                try:
                    info = select_lhe(f, proc).info
                    print(
                        f"{f.name:50s} {proc:6s} {info['n_selected']:6d} of "
                        f"{info['n_events']:6d} events"
                    )
                except InputFileError as err:
                    print(f"{f.name:50s} {proc:6s} error: {str(err).split(': ', 1)[1][:60]}")
    z = read_lhe(LHE_DIR / "pylhe-testfile-madgraph-2.2.1-Z-mlm.lhe.gz", "zee").z
    reps = -(-args.events // len(z))
    z = np.tile(z, (reps, 1))[: args.events]
    w = np.ones(len(z))
    with tempfile.TemporaryDirectory() as d:
        for name, fn in (
            ("write_lhe (.lhe.gz)", lambda: write_lhe(Path(d) / "a.lhe.gz", ZEE, z, w)),
            ("read_lhe (.lhe.gz)", lambda: read_lhe(Path(d) / "a.lhe.gz", "zee")),
            (
                "write_delphes",
                lambda: write_delphes(
                    Path(d) / "a.root", collections_from_x(ZEE, z, np.ones(len(z), bool)), w
                ),
            ),
            ("read_delphes + build_x", lambda: build_x(ZEE, read_delphes(Path(d) / "a.root")[0])),
        ):
            t = time.perf_counter()
            fn()
            dt = time.perf_counter() - t
            print(f"{name:25s} {len(z)} events in {dt:6.2f} s = {len(z) / dt:9.0f} events/s")


if __name__ == "__main__":
    main()
