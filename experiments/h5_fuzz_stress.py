"""Stress the event-file reader with damaged files: does any byte flip hang h5py?

Writes a small toy zee event file, then in batches of child processes flips 1-4 random
bytes (mostly in the first 4 kB, where HDF5 keeps its metadata) and reads the file with
:func:`otus.io.h5.read_events`. A batch still running after ``--timeout`` seconds counts as
a hang. Prints the number of hanging batches.

    python -m experiments.h5_fuzz_stress [--batches 20] [--per-batch 100] [--timeout 20]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import tempfile
from pathlib import Path

import numpy as np


def _toy(path: Path) -> None:
    from otus.io.h5 import Events, write_events
    from otus.processes import ZEE

    rng = np.random.default_rng(5)
    z = rng.normal(0, 30, (40, ZEE.dz)).astype(np.float32)
    z[:, 3::4] = np.abs(z[:, 3::4]) + 100
    write_events(path, Events(ZEE, z=z, x=z.copy(), weight=np.ones(40)))


def _work(seed: int, src: str, n: int) -> None:
    from otus.errors import OtusError
    from otus.io.h5 import read_events

    data = Path(src).read_bytes()
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as d:
        q = Path(d) / "f.h5"
        for _ in range(n):
            b = bytearray(data)
            span = min(len(b), 4096) if rng.random() < 0.7 else len(b)
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(span)] = rng.randrange(256)
            q.write_bytes(bytes(b))
            try:
                read_events(q, "zee")
            except OtusError:
                pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--per-batch", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=20.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "toy.h5"
        _toy(src)
        hangs = 0
        for seed in range(a.batches):
            p = mp.Process(target=_work, args=(seed, str(src), a.per_batch))
            p.start()
            p.join(a.timeout)
            if p.is_alive():
                p.kill()
                hangs += 1
        print(f"{hangs} of {a.batches} batches of {a.per_batch} damaged files hung the reader")


if __name__ == "__main__":
    main()
