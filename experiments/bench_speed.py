"""Speed benchmarks (issue 7): simulation/unfolding throughput vs batch size and threads
(each rate the best of up to 3 passes), otus vs the generator+detector chain it replaces,
training throughput, and training peak memory as the dataset grows. Writes
experiments/results/speed.md.

    python experiments/bench_speed.py [--run RUN] [--compare RUN ...] [--quick]

``--compare`` adds a table of decoder configurations: simulation events/s (1 thread) beside
the fidelity that ``experiments/evaluate_model.py RUN --out RUN/eval.json`` measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from otus.io.h5 import Events, read_events, write_events  # noqa: E402
from otus.models.api import load_run  # noqa: E402
from otus.models.config import load_config, replace  # noqa: E402
from otus.models.networks import Transport  # noqa: E402
from otus.models.train import fit  # noqa: E402

SAMPLE = ROOT / "data" / "zee" / "events.h5"


def _machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}"


def _tiled(ev: Events, n: int) -> Events:
    reps = -(-n // len(ev))
    idx = np.tile(np.arange(len(ev)), reps)[:n]
    return ev.subset(idx)


def _train_quick(tmp: Path) -> Path:
    cfg = load_config(ROOT / "experiments" / "zee.yaml", process="zee")
    cfg = replace(cfg, "trainer", max_epochs=1)
    return fit(cfg, SAMPLE, tmp / "run", progress=False)


def _rate(
    fn: Callable[..., np.ndarray], inp: np.ndarray, batch: int, sync: bool = False
) -> tuple[float, float]:
    """Events per wall-clock second and per CPU second (this process's CPU time, all its
    threads) of ``fn(inp, seed=0, batch_size=batch)``: the best of up to 3 timed passes
    (stopping once 5 s are spent) after a warm-up. On a shared machine other jobs take wall
    time from a pass but hardly its CPU time, so events per CPU second is the steadier
    measure of the per-core rate."""
    fn(inp[: min(batch, len(inp))], seed=0, batch_size=batch)  # warm-up
    wall, cpu, spent = 0.0, 0.0, 0.0
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(inp, seed=0, batch_size=batch)
        if sync:
            torch.cuda.synchronize()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        wall, cpu, spent = max(wall, len(inp) / dt), max(cpu, len(inp) / dc), spent + dt
        if spent > 5.0:
            break
    return wall, cpu


def throughput(
    run: Path,
    z: np.ndarray,
    x: np.ndarray,
    batch_sizes: list[int],
    threads: list[int],
    device: str = "cpu",
) -> list[tuple[str, str, int, int, float, float]]:
    sur = load_run(run, device=device)
    rows = []
    for nt in threads:
        torch.set_num_threads(nt)
        for bs in batch_sizes:
            for name, fn, inp in (("simulate", sur.simulate, z), ("unfold", sur.unfold, x)):
                rate, cpu = _rate(fn, inp, bs, sync=device != "cpu")
                rows.append((name, device, nt, bs, rate, cpu))
                print(
                    f"{name:8s} {device} threads={nt} batch={bs:>7d}: {rate:,.0f} ev/s, "
                    f"{cpu:,.0f} ev per CPU s",
                    flush=True,
                )
    return rows


def configurations(runs: list[Path], z: np.ndarray, batch: int) -> list[list[str]]:
    """Per run: decoder shape, simulation events/s (1 thread) and, where the run folder holds
    an ``eval.json`` from experiments/evaluate_model.py, its fidelity."""
    import json

    torch.set_num_threads(1)
    rows = []
    for run in runs:
        sur = load_run(run)
        net = sur.module.cfg.net
        rates = []
        for fast in (False, True):  # the reference (autograd-capable) path, then the fast one
            Transport.fast_inference = fast
            wall, cpu = _rate(sur.simulate, z, batch)
            rates += [cpu] if not fast else [cpu, wall]
        Transport.fast_inference = True
        fid = ["–"] * 5
        ev_file = run / "eval.json"
        if ev_file.is_file():
            e = json.loads(ev_file.read_text())
            fid = [f"{e['simulate'][k]['chi2_r']:.2f}" for k in ("m_ee", "e+_py", "e+_pz", "e+_E")]
            fid.append(f"{e['auc']['simulate'][0]:.3f}" if "auc" in e else "–")
        shape = f"{net.decoder_hidden or net.hidden} × {net.decoder_depth or net.depth}"
        n_par = sum(p.numel() for p in sur.module.decoder.parameters())
        rows.append([f"`{run.name}`", shape, f"{n_par:,}", *(f"{r:,.0f}" for r in rates), *fid])
        print(
            f"{run}: decoder {shape}, {rates[0]:,.0f} → {rates[1]:,.0f} ev per CPU s "
            f"({rates[2]:,.0f} ev/s wall), fidelity {fid}",
            flush=True,
        )
    return rows


def versus_generator(run: Path, n: int, tmp: Path) -> tuple[float, float]:
    """Generator+detector chain vs otus simulation on the same number of events."""
    from otus.generate import generate

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    generate("zee", n, seed=7, out_dir=tmp / "gen", progress=False)
    t_gen = time.perf_counter() - t0
    z = read_events(tmp / "gen" / "events.h5").z
    return n / t_gen, _rate(load_run(run).simulate, z, 65536)[0]


def _train_steps(metrics: Path) -> int:
    """Optimizer steps logged in a run's metrics.csv."""
    import csv

    if not metrics.exists():
        return 0
    with open(metrics, newline="") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh) if r.get("step")]
    return max(steps) + 1 if steps else 0


def training(
    sizes: list[int], tmp: Path, seconds: int, extra: tuple[str, ...] = ()
) -> list[tuple[int, float, float, int]]:
    """Peak RSS (MB) and training throughput (events/s) of `otus fit` (with ``extra``
    options) for growing datasets."""
    base = read_events(SAMPLE)
    out = []
    probe = (
        "import resource, subprocess, sys, time; t=time.time(); "
        "r=subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.time()-t, "
        "r.returncode)"
    )
    for n in sizes:
        f = tmp / f"train_{n}.h5"
        write_events(f, _tiled(base, n))
        run = tmp / f"run_{n}"
        cmd = [
            sys.executable,
            "-c",
            probe,
            sys.executable,
            "-m",
            "otus",
            "fit",
            "zee",
            "--data",
            str(f),
            "--out",
            str(run),
            "--max-epochs",
            "1000",
            "--max-time",
            f"00:00:00:{seconds:02d}",
            *extra,
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
        rss_kb, wall, rc = res.stdout.split()[-3:]
        metrics = run / "metrics.csv"
        steps = _train_steps(metrics)
        out.append((n, int(rss_kb) / 1024, float(wall), steps))
        print(
            f"fit on {n:>9,d} events: peak RSS {int(rss_kb) / 1024:.0f} MB, wall {float(wall):.1f}"
            f" s (rc {rc}, {steps} steps)",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", type=Path, help="trained run folder (default: train one epoch)")
    ap.add_argument(
        "--compare",
        type=Path,
        nargs="*",
        default=[],
        help="trained runs (e.g. smaller decoders) for the configuration table",
    )
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    ap.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "speed.md")
    a = ap.parse_args()
    n_events = 20_000 if a.quick else 1_000_000
    batch_sizes = [1024, 4096, 16384, 65536, 262144] if not a.quick else [1024, 8192]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        run = a.run or _train_quick(tmp)
        net = load_run(run).module.cfg.net
        shapes = (
            f"decoder {net.decoder_hidden or net.hidden} × "
            f"{net.decoder_depth or net.depth}, encoder {net.hidden} × {net.depth}"
        )
        ev = _tiled(read_events(SAMPLE), n_events)
        x = ev.x[ev.x_pass]
        rows = throughput(run, ev.z, x, batch_sizes, sorted({1, os.cpu_count() or 1}))
        conf = configurations([run, *a.compare], ev.z, 16384) if a.compare else []
        if torch.cuda.is_available():
            rows += throughput(run, ev.z, x, [16384, 131072, 1048576], [1], device="cuda")
        gen_rate, sim_rate = versus_generator(run, 500 if a.quick else 5000, tmp)
        sizes = [10_000, 100_000, 1_000_000] if not a.quick else [2_000, 20_000]
        mem = training(sizes, tmp, 20 if a.quick else 60)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Speed benchmarks",
        "",
        "- command: `python experiments/bench_speed.py"
        f"{' --quick' if a.quick else ''}{f' --run {a.run}' if a.run else ''}"
        f"{' --compare ' + ' '.join(map(str, a.compare)) if a.compare else ''}`",
        f"- machine: {_machine()}",
        f"- date: {when}",
        f"- model: {f'`{a.run}`' if a.run else '`experiments/zee.yaml`, one epoch on data/zee'}"
        f" ({shapes}); throughput does not depend on how well it is trained",
        "",
        "## Throughput (events/s)",
        "",
        "Wall-clock events/s, and events per CPU second of the process (its CPU time over all "
        "its threads): other jobs on a shared machine lower the first, hardly the second.",
        "",
        "| direction | device | threads | batch | events/s | events/s per thread | "
        "events per CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {dev} | {nt} | {bs} | {r:,.0f} | {r / nt:,.0f} | {c:,.0f} |"
        for n, dev, nt, bs, r, c in rows
    ]
    if conf:
        lines += [
            "",
            "## Decoder size: speed vs fidelity (simulate, 1 thread, batch 16384)",
            "",
            "Fidelity from `experiments/evaluate_model.py RUN --out RUN/eval.json` (χ²_R of the "
            "held-out x vs D(z), and the classifier AUC; see results/model.md).",
            "",
            "Events per CPU second of the reference path (`Transport.fast_inference = False`, "
            "the network code as before issue 7's inference work) and of the fast path "
            "(default), and the fast path's wall-clock events/s.",
            "",
            "| run | decoder hidden × depth | decoder parameters | ev per CPU s, reference | "
            "ev per CPU s, fast | ev/s wall, fast | m_ee | e+ py | e+ pz | e+ E | AUC |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += ["| " + " | ".join(r) + " |" for r in conf]
    lines += [
        "",
        "## otus simulation vs the generator+detector chain (same zee events, 1 thread)",
        "",
        "| chain | events/s |",
        "|---|---|",
        f"| `otus generate` (Pythia shower + Delphes-card detector + writing files) | {gen_rate:,.0f} |",
        f"| `Surrogate.simulate` (OTUS decoder) | {sim_rate:,.0f} |",
        f"| speed-up | {sim_rate / gen_rate:,.0f}× |",
        "",
        "## Training: peak memory as the dataset grows (streaming from HDF5)",
        "",
        f"Each `otus fit` (default config) runs for the same {60 if not a.quick else 20} s limit (then validates "
        "at most `data.val_max_rows` rows); training events/s = steps × batch / wall.",
        "",
        "| file events | peak RSS [MB] | wall [s] | optimizer steps | training events/s |",
        "|---|---|---|---|---|",
    ]
    bs = load_config(None, process="zee").data.batch_size  # `otus fit` defaults
    lines += [f"| {n:,} | {m:.0f} | {w:.1f} | {k} | {k * bs / w:,.0f} |" for n, m, w, k in mem]
    lines += ["", "## Against the goal (≥ 10⁶ zee events/s per core, simulation)", ""]
    one = [r for r in rows if r[0] == "simulate" and r[1] == "cpu" and r[2] == 1]
    best = max(one, key=lambda r: r[5])
    lines.append(
        f"- `--run` model, 1 thread: best {best[5]:,.0f} events per CPU second "
        f"({best[4]:,.0f} ev/s wall) at batch {best[3]} "
        f"({'meets' if best[5] >= 1e6 else 'misses'} the goal)."
    )
    for r in conf:
        ref, fast = (float(v.replace(",", "")) for v in r[3:5])
        lines.append(
            f"- {r[0]} (decoder {r[1]}): {r[4]} events per CPU second on the fast "
            f"path, {fast / ref:.1f}× the reference path; "
            f"{'meets' if fast >= 1e6 else 'misses'} the goal; sim χ²_R m_ee {r[6]}, "
            f"AUC {r[10]}."
        )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
