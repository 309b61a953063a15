"""GPU throughput of otus simulate/unfold vs batch size (issue 7), written to
experiments/results/speed_gpu.md. Needs a CUDA device; uses ``bench_speed.throughput``.

    python experiments/bench_gpu.py RUN --test zee_test/events.h5 [--events 2000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from experiments.bench_speed import _machine, throughput  # noqa: E402
from otus.io.h5 import read_events  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--test", type=Path, required=True, help="paired zee event file")
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--batch-sizes", default="16384,65536,262144,1048576")
    ap.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "speed_gpu.md")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device", file=sys.stderr)
        return 2
    ev = read_events(a.test)
    n = a.events
    z = ev.z[np.arange(n) % len(ev.z)]
    xp = ev.x[ev.x_pass]
    x = xp[np.arange(n) % len(xp)]
    bs = [int(b) for b in a.batch_sizes.split(",")]
    rows = throughput(a.run, z, x, bs, [1], device="cuda")
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# Speed on a GPU",
        "",
        f"- command: `python experiments/bench_gpu.py {a.run} --test {a.test} --events {n}`",
        f"- machine: {_machine()}",
        f"- date: {date}",
        f"- {n:,} zee events per pass, one CUDA stream, input from and output to host "
        "memory (numpy), best of the passes of `bench_speed.throughput`",
        "",
        "| direction | batch | events/s |",
        "|---|---|---|",
    ]
    lines += [f"| {r[0]} | {r[3]} | {r[4]:,.0f} |" for r in rows]
    a.out.write_text("\n".join(lines) + "\n")
    if a.json:
        a.json.write_text(json.dumps({"machine": _machine(), "date": date, "rows": rows}))
    print(f"bench_gpu: wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
