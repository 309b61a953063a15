"""Training peak memory as the dataset grows, to larger files than bench_speed.py's
(issue 7: memory must stay flat, SPEC §9). Each size: `otus fit zee` with the default config
for 60 s on a file tiled from data/zee/events.h5; peak RSS of the fit process.

    python experiments/bench_memory.py [--sizes 100000,1000000,10000000] [--config YAML]

What grows with the file and where it stops: the
standardisation statistics read at most ``data.stat_rows`` (200k) training rows, validation
at most ``data.val_max_rows`` (65536) rows in batches of max(batch size, 16384); training
batches come from a shuffle buffer of ``data.chunk_size`` rows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))
sys.path.insert(0, str(ROOT))

from bench_speed import _machine, training  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--config", type=Path, default=None, help="otus fit --config (default: none)")
    ap.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "memory.md")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    with tempfile.TemporaryDirectory() as d:
        extra = ("--config", str(a.config)) if a.config else ()
        rows = training(sizes, Path(d), a.seconds, extra)
    lines = [
        "# Training memory for growing datasets",
        "",
        f"- command: `python experiments/bench_memory.py --sizes {a.sizes}"
        + (f" --config {a.config}" if a.config else "")
        + f" --out {a.out}`",
        f"- machine: {_machine()}",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"`otus fit zee` ({a.config or 'default config'}) for {a.seconds} s per file; peak RSS "
        "of the fit "
        "process. " + __doc__.split("\n\n")[2].replace("\n", " ").strip(),
        "",
        "| file events | peak RSS [MB] | wall [s] | optimizer steps |",
        "|---|---|---|---|",
        *[f"| {n:,} | {rss:.0f} | {wall:.1f} | {steps} |" for n, rss, wall, steps in rows],
    ]
    a.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
