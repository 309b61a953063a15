"""Benchmark ``otus generate``: events per second on one core, and pass rates.

Usage::

    PYTHONPATH=. python experiments/bench_generate.py [--zee N] [--ttbar N] [--out FILE]

Runs each process once in this single process (one core: numpy/BLAS threads pinned to 1)
and writes a Markdown report (default ``experiments/results/generate.md``). The rate is
given per CPU second of this process (``time.process_time``, the per-core rate, robust to
other jobs sharing the machine) and per wall-clock second; both include Pythia's
initialisation and writing all three output files.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

from otus.generate import generate  # noqa: E402
from otus.generate.pythia import PTJ_MIN, PTL_MIN  # noqa: E402


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def bench(process: str, n: int, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        s = generate(process, n, seed=seed, out_dir=Path(tmp) / "out", progress=False)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "n": n,
        "cpu_s": cpu,
        "wall_s": wall,
        "rate_cpu": n / cpu,
        "rate_wall": n / wall,
        "pass_rate": s["pass_rate"],
        "cut_eff": n / s["tries"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zee", type=int, default=20_000)
    ap.add_argument("--ttbar", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="experiments/results/generate.md")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    rows = {p: bench(p, n, args.seed) for p, n in (("zee", args.zee), ("ttbar", args.ttbar))}
    load1 = os.getloadavg()[0]
    cmd = "PYTHONPATH=. python experiments/bench_generate.py " + " ".join(sys.argv[1:])
    lines = [
        "# `otus generate` benchmark",
        "",
        f"- command: `{cmd.strip()}`",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {_cpu_model()}, {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}",
        f"- load average (1 min) before / after: {load0:.1f} / {load1:.1f} "
        "(a shared machine: wall-clock rates are lower than CPU rates when it is busy)",
        "- one process, one thread; times include Pythia initialisation and writing "
        "`events.h5`, `parton.lhe.gz`, `delphes.root`",
        "",
        "| process | events | CPU s | wall s | events / CPU s | events / wall s | "
        "generator-cut efficiency | detector pass rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p, r in rows.items():
        lines.append(
            f"| {p} | {r['n']} | {r['cpu_s']:.1f} | {r['wall_s']:.1f} | {r['rate_cpu']:.0f} | "
            f"{r['rate_wall']:.0f} | {r['cut_eff']:.3f} | {r['pass_rate']:.3f} |"
        )
    lines += [
        "",
        f"Generator-cut efficiency: accepted / generated hard processes (MadGraph default run "
        f"card: leptons pT > {PTL_MIN:g} GeV, |η| < 2.5; light quarks pT > {PTJ_MIN:g} GeV, "
        "|η| < 5; ΔR > 0.4); vetoed events are never showered.",
        "Detector pass rate: SPEC §5 selection (zee: exactly one e⁻ and one e⁺; ttbar: exactly "
        "one electron, no muon, exactly four jets with pT > 20 GeV, |η| < 2.5).",
        "zee: ISR + FSR shower, no MPI, no hadronisation. ttbar: ISR + FSR shower and "
        "hadronisation, no MPI (see otus/generate/pythia.py).",
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
