"""Memory: peak RSS as the dataset grows (SPEC §9: memory must stay flat), for training and
for conversion. Writes the ``training`` or ``conversion`` section of
``experiments/results/memory.md`` (a ``--config`` run its own training section).

    python -m experiments.bench_memory [--sizes 100000,1000000,10000000] [--config YAML]
    python -m experiments.bench_memory --convert [--sizes 100000,1000000,10000000] [--work DIR]

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
import sys
import time
from pathlib import Path

from experiments.bench_speed import SAMPLE, tiled
from experiments.common import (
    DATA,
    command,
    header,
    machine,
    peak_rss,
    results_path,
    run_progress,
    table,
    work_dir,
    write_section,
)

# What `otus convert` imports before reading (torch comes with otus.physics.fourvec).
IMPORTS = "import otus.cli.convert, otus.io.convert, otus.io.lhe, otus.io.delphes, otus.provenance"


def training(
    sizes: list[int], tmp: Path, seconds: int, extra: tuple[str, ...] = ()
) -> list[tuple[int, float, float, int]]:
    """(events, peak RSS [MB], wall [s], optimizer steps) of `otus fit zee` (with ``extra``
    options) for ``seconds`` on files of growing size, tiled from data/zee."""
    from otus.io.h5 import read_events, write_events

    base = read_events(SAMPLE)
    out = []
    for n in sizes:
        f = tmp / f"train_{n}.h5"
        write_events(f, tiled(base, n))
        run = tmp / f"run_{n}"
        cmd = [sys.executable, "-m", "otus", "fit", "zee", "--data", str(f), "--out", str(run)]
        cmd += ["--max-epochs", "1000", "--max-time", f"00:00:00:{seconds:02d}", *extra]
        rss, wall, rc = peak_rss(cmd)
        steps = (run_progress(run) or (0, 0))[1]
        out.append((n, rss, wall, steps))
        print(
            f"fit on {n:>9,d} events: peak RSS {rss:.0f} MB, wall {wall:.1f} s (rc {rc}, "
            f"{steps} steps)",
            flush=True,
        )
        f.unlink()
    return out


def tiled_inputs(n: int, folder: Path) -> tuple[Path, Path]:
    """LHE and Delphes files of ``n`` events: the committed zee sample repeated, written
    chunk by chunk (memory stays that of one copy of the sample)."""
    from otus.io.delphes import DelphesWriter, read_delphes
    from otus.io.lhe import LHEWriter, select_lhe

    d = DATA / "zee"
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
    rss, wall, _ = peak_rss([sys.executable, "-c", IMPORTS])
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
            rss, wall, rc = peak_rss(cmd)
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    ap.add_argument("--convert", action="store_true", help="measure otus convert, not otus fit")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--config", type=Path, default=None, help="otus fit --config (default: none)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the tiled files")
    ap.add_argument("--out", type=Path, default=results_path("memory"))
    a = ap.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",")]
    paragraphs = __doc__.split("\n\n")
    with work_dir(a.work, "memory") as d:
        if a.convert:
            print(f"{shutil.disk_usage(d).free / 2**30:.0f} GB free in {d}", flush=True)
            rows = conversion(sizes, d)
        else:
            extra = ("--config", str(a.config)) if a.config else ()
            rows_fit = training(sizes, d, a.seconds, extra)
    if a.convert:
        key, title = "conversion", "Conversion: peak memory as the input grows"
        text = [
            " ".join(paragraphs[3].split()),
            "",
            *table(
                "events | chunks | input LHE + ROOT [MB] | peak RSS [MB] | wall [s]",
                (
                    [f"{n:,}", lab, f"{mb:.0f}", f"{rss:.0f}", f"{wall:.1f}"]
                    for n, lab, rss, wall, mb in rows
                ),
            ),
        ]
    else:
        key = "training" + (f" {a.config.name}" if a.config else "")
        title = "Training: peak memory as the dataset grows" + (
            f" (`{a.config.name}`)" if a.config else ""
        )
        text = [
            f"`otus fit zee` ({a.config or 'default config'}) for {a.seconds} s per file; peak "
            "RSS of the fit process. What grows "
            + " ".join(paragraphs[2].split("What grows", 1)[1].split()),
            "",
            *table(
                "file events | peak RSS [MB] | wall [s] | optimizer steps",
                (
                    [f"{n:,}", f"{rss:.0f}", f"{wall:.1f}", steps]
                    for n, rss, wall, steps in rows_fit
                ),
            ),
        ]
    lines = header(title, command=command("bench_memory", argv), machine=machine()) + text
    write_section(a.out, key, lines, title="Memory")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
