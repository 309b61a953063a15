"""Peak memory as the dataset grows (SPEC §9: memory must stay flat), for training and for
conversion.

    python experiments/bench_memory.py [--sizes 100000,1000000,10000000] [--config YAML]
    python experiments/bench_memory.py --convert [--sizes 100000,1000000,10000000]

Training (default): `otus fit zee` with the default config for 60 s on a file tiled from
data/zee/events.h5; peak RSS of the fit process. What grows with the file and where it stops:
the standardisation statistics read at most ``data.stat_rows`` (200k) training rows,
validation at most ``data.val_max_rows`` (65536) rows in batches of max(batch size, 16384);
training batches come from a shuffle buffer of ``data.chunk_size`` rows.

Conversion (``--convert``): an LHE and a Delphes file of each size, tiled from
data/zee/parton.lhe.gz and data/zee/delphes.root (written chunk by chunk with
otus.io.lhe.LHEWriter and otus.io.delphes.DelphesWriter), converted by `otus convert zee
--lhe … --delphes …` in a subprocess; peak RSS and wall time of that process, with the
default chunk size and (up to 10⁶ events, for comparison) with one chunk holding the whole
file, as the in-memory readers do.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))
sys.path.insert(0, str(ROOT))

from bench_speed import _machine, training  # noqa: E402

# Peak RSS (kB) and wall time of a child command, measured from a wrapper process whose only
# child it is (RUSAGE_CHILDREN is a maximum over all children ever waited for).
PROBE = (
    "import resource, subprocess, sys, time; t=time.time(); "
    "r=subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.time()-t, r.returncode)"
)


# What `otus convert` imports before reading (torch comes with otus.physics.fourvec).
IMPORTS = "import otus.cli.convert, otus.io.convert, otus.io.lhe, otus.io.delphes, otus.provenance"


def _peak(cmd: list[str]) -> tuple[float, float, int]:
    """Peak RSS [MB], wall time [s] and exit code of ``cmd`` run in a fresh process."""
    res = subprocess.run(
        [sys.executable, "-c", PROBE, *cmd], capture_output=True, text=True, cwd=ROOT, check=False
    )
    rss_kb, wall, rc = res.stdout.split()[-3:]
    if int(rc) != 0:
        print(res.stderr[-2000:], file=sys.stderr)
    return int(rss_kb) / 1024, float(wall), int(rc)


def tiled_inputs(n: int, folder: Path) -> tuple[Path, Path]:
    """LHE and Delphes files of ``n`` events: the committed zee sample repeated, written
    chunk by chunk (memory stays that of one copy of the sample)."""
    from otus.io.delphes import DelphesWriter, read_delphes
    from otus.io.lhe import LHEWriter, select_lhe

    d = ROOT / "data" / "zee"
    sel = select_lhe(d / "parton.lhe.gz", "zee")
    reco, w_det = read_delphes(d / "delphes.root")
    if not sel.selected.all() or len(w_det) != len(sel.selected):
        raise SystemExit("data/zee: parton.lhe.gz and delphes.root are not aligned")
    k = len(w_det)
    lhe, root = folder / f"zee_{n}.lhe.gz", folder / f"zee_{n}.root"
    xs = (float(sel.weight.mean()), 0.0, float(abs(sel.weight).max()))
    with LHEWriter(lhe, sel.process, cross_section=xs) as wl, DelphesWriter(root) as wd:
        for a in range(0, n, k):
            m = min(k, n - a)
            wl.append(sel.z[:m], sel.weight[:m])
            wd.append({c: v[:m] for c, v in reco.items()}, w_det[:m])
    return lhe, root


def conversion(sizes: list[int], tmp: Path) -> list[tuple[int, str, float, float, float]]:
    """(events, chunking, peak RSS [MB], wall [s], input size [MB]) per conversion."""
    rss, wall, _ = _peak([sys.executable, "-c", IMPORTS])
    out = [(0, "imports only", rss, wall, 0.0)]
    for n in sizes:
        t = time.time()
        lhe, root = tiled_inputs(n, tmp)
        mb = (lhe.stat().st_size + root.stat().st_size) / 2**20
        print(f"wrote {n:,} events ({mb:.0f} MB) in {time.time() - t:.0f} s", flush=True)
        modes = [("default (50 000)", [])]
        if n <= 1_000_000:
            modes.append(("whole file", ["--chunk-size", str(n)]))
        for label, extra in modes:
            cmd = [sys.executable, "-m", "otus", "convert", "zee", "--lhe", str(lhe)]
            cmd += ["--delphes", str(root), "--out", str(tmp / "ev.h5"), *extra]
            rss, wall, rc = _peak(cmd)
            if rc != 0:
                raise SystemExit(f"otus convert failed on {n} events (exit {rc})")
            out.append((n, label, rss, wall, mb))
            print(
                f"convert {n:>10,d} events, chunks {label}: peak RSS {rss:.0f} MB, "
                f"wall {wall:.1f} s",
                flush=True,
            )
            (tmp / "ev.h5").unlink()
        lhe.unlink()
        root.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    ap.add_argument("--convert", action="store_true", help="measure otus convert, not otus fit")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--config", type=Path, default=None, help="otus fit --config (default: none)")
    ap.add_argument("--tmp", type=Path, default=None, help="folder for the tiled files")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    name = "memory_convert.md" if a.convert else "memory.md"
    a.out = a.out or ROOT / "experiments" / "results" / name
    head = [
        f"- machine: {_machine()}",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
    ]
    with tempfile.TemporaryDirectory(dir=a.tmp) as d:
        if a.convert:
            free = shutil.disk_usage(d).free / 2**30
            print(f"{free:.0f} GB free in {d}", flush=True)
            rows = conversion(sizes, Path(d))
            lines = [
                "# Conversion memory for growing inputs",
                "",
                f"- command: `python experiments/bench_memory.py --convert --sizes {a.sizes}`",
                *head,
                " ".join(__doc__.split("\n\n")[3].split()),
                "",
                "| events | chunks | input LHE + ROOT [MB] | peak RSS [MB] | wall [s] |",
                "|---|---|---|---|---|",
                *[
                    f"| {n:,} | {lab} | {mb:.0f} | {rss:.0f} | {wall:.1f} |"
                    for n, lab, rss, wall, mb in rows
                ],
            ]
        else:
            extra = ("--config", str(a.config)) if a.config else ()
            rows_fit = training(sizes, Path(d), a.seconds, extra)
            lines = [
                "# Training memory for growing datasets",
                "",
                f"- command: `python experiments/bench_memory.py --sizes {a.sizes}"
                + (f" --config {a.config}" if a.config else "")
                + f" --out {a.out}`",
                *head,
                f"`otus fit zee` ({a.config or 'default config'}) for {a.seconds} s per file; peak "
                "RSS of the fit process. " + " ".join(__doc__.split("\n\n")[2].split()),
                "",
                "| file events | peak RSS [MB] | wall [s] | optimizer steps |",
                "|---|---|---|---|",
                *[
                    f"| {n:,} | {rss:.0f} | {wall:.1f} | {steps} |"
                    for n, rss, wall, steps in rows_fit
                ],
            ]
    a.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
