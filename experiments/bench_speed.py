"""Speed: simulation/unfolding throughput vs batch size and threads (each rate the best of
up to 3 passes; CUDA rows too when a GPU is present), and otus against the
generator+detector chain it replaces. Writes the ``speed`` section of
``experiments/results/speed.md``.

    python -m experiments.bench_speed [--run RUN] [--compare RUN ...] [--quick]

Without ``--run`` the model is ``experiments/zee_fast.yaml`` after one ``fast_dev_run``
step on data/zee (throughput does not depend on how well a model is trained).
``--training`` measures training instead (the ``training`` section): optimizer steps that
`otus fit zee` with the default configuration makes on data/zee in a fixed ``--budget`` (one
torch thread, nothing else running), for this checkout and, with ``--baseline REV``, for
another commit (checked out in a temporary git worktree) in the same call.
``--compare`` adds a table of decoder configurations: simulation events/s (1 thread) beside
the fidelity that ``python -m experiments.evaluate_model RUN --out RUN/eval.json`` measured.
Training memory and throughput: ``python -m experiments.bench_memory``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from experiments.common import (
    DATA,
    ROOT,
    command,
    header,
    machine,
    results_path,
    run_progress,
    table,
    work_dir,
    write_section,
)
from otus.io.h5 import Events, read_events
from otus.models.api import load_run
from otus.models.config import load_config
from otus.models.networks import Transport
from otus.models.train import fit

SAMPLE = DATA / "zee" / "events.h5"
GOAL = 1e6  # zee events simulated per CPU second on one core


def tiled(ev: Events, n: int) -> Events:
    """``ev`` repeated to ``n`` events."""
    reps = -(-n // len(ev))
    idx = np.tile(np.arange(len(ev)), reps)[:n]
    return ev.subset(idx)


def quick_run(folder: Path, config: Path = ROOT / "experiments" / "zee_fast.yaml") -> Path:
    """A usable run of ``config`` after one ``fast_dev_run`` step on data/zee."""
    cfg = load_config(config, process="zee")
    return fit(cfg, SAMPLE, folder / "run", progress=False, fast_dev_run=True)


def rate(
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
                r, cpu = rate(fn, inp, bs, sync=device != "cpu")
                rows.append((name, device, nt, bs, r, cpu))
                print(
                    f"{name:8s} {device} threads={nt} batch={bs:>7d}: {r:,.0f} ev/s, "
                    f"{cpu:,.0f} ev per CPU s",
                    flush=True,
                )
    return rows


def configurations(runs: list[Path], z: np.ndarray, batch: int) -> list[list[str]]:
    """Per run: decoder shape, simulation events/s (1 thread) and, where the run folder holds
    an ``eval.json`` from ``experiments.evaluate_model``, its fidelity."""
    torch.set_num_threads(1)
    rows = []
    for run in runs:
        sur = load_run(run)
        net = sur.module.cfg.net
        rates = []
        for fast in (False, True):  # the reference (autograd-capable) path, then the fast one
            Transport.fast_inference = fast
            wall, cpu = rate(sur.simulate, z, batch)
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
    return n / t_gen, rate(load_run(run).simulate, z, 65536)[0]


def goal_rows(
    label: str, rows: list[tuple[str, str, int, int, float, float]], conf: list[list[str]]
) -> list[list[str]]:
    """The goal table: the best one-thread simulation rate of the main model and the fast
    path of each ``--compare`` run."""
    one = [r for r in rows if r[0] == "simulate" and r[1] == "cpu" and r[2] == 1]
    best = max(one, key=lambda r: r[5])
    out = [
        [
            label,
            f"{best[5]:,.0f}",
            f"{best[4]:,.0f}",
            str(best[3]),
            "met" if best[5] >= GOAL else "missed",
        ]
    ]
    for r in conf:
        fast = float(r[4].replace(",", ""))
        out.append(
            [
                f"{r[0]} (decoder {r[1]}; sim χ²_R m_ee {r[6]}, AUC {r[10]})",
                r[4],
                r[5],
                "16384",
                "met" if fast >= GOAL else "missed",
            ]
        )
    return out


def training_steps(root: Path, budget: int, out: Path) -> tuple[int, int]:
    """Optimizer steps and epochs of `otus fit zee` (default config) run from the checkout
    ``root`` on data/zee for ``budget`` seconds, one torch thread."""
    cmd = [sys.executable, "-m", "otus", "fit", "zee", "--data", str(SAMPLE), "--out", str(out)]
    cmd += ["--max-time", f"00:00:{budget // 60:02d}:{budget % 60:02d}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    print("$", " ".join(cmd[2:]), f"(in {root})", flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=root, stdout=subprocess.DEVNULL)
    epochs, steps = run_progress(out) or (0, 0)
    return steps, epochs


def training(argv: list[str] | None, budget: int, baseline: str | None, out: Path) -> int:
    """The ``training`` section: steps in the budget here and, optionally, at ``baseline``."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    rows = []
    with work_dir(None, "train-speed") as tmp:
        checkouts = [(f"this checkout ({head or 'unknown'})", ROOT)]
        if baseline:
            wt = tmp / "baseline"
            subprocess.run(
                ["git", "worktree", "add", "-q", "--detach", str(wt), baseline],
                cwd=ROOT,
                check=True,
            )
            checkouts.insert(0, (f"baseline {baseline}", wt))
        try:
            for i, (label, root) in enumerate(checkouts):
                steps, epochs = training_steps(root, budget, tmp / f"run{i}")
                rows.append([label, budget, steps, epochs, f"{steps / budget:.2f}"])
        finally:
            if baseline:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(tmp / "baseline")],
                    cwd=ROOT,
                    check=False,
                )
    lines = header(
        "Training throughput: optimizer steps in a fixed budget",
        command=command("bench_speed", argv),
        machine=machine(),
        notes=[
            f"`otus fit zee --data {SAMPLE.relative_to(ROOT)} --max-time` with the default "
            "configuration (batch 512, validation after every epoch), one process at a time; "
            "steps per second of the whole budget, validation and checkpoints included"
        ],
    )
    lines += table("checkout | budget [s] | optimizer steps | epochs | steps/s", rows)
    write_section(out, "training", lines, title="Speed")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, help="trained run folder (default: a quick_run)")
    ap.add_argument(
        "--compare",
        type=Path,
        nargs="*",
        default=[],
        help="trained runs (e.g. smaller decoders) for the configuration table",
    )
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    ap.add_argument("--out", type=Path, default=results_path("speed"))
    ap.add_argument("--training", action="store_true", help="measure training steps instead")
    ap.add_argument("--budget", type=int, default=120, help="--training: seconds per fit")
    ap.add_argument("--baseline", help="--training: also measure this git revision")
    a = ap.parse_args(argv)
    if a.training:
        return training(argv, a.budget, a.baseline, a.out)
    n_events = 20_000 if a.quick else 1_000_000
    batch_sizes = [1024, 4096, 16384, 65536, 262144] if not a.quick else [1024, 8192]
    with work_dir(None, "speed") as tmp:
        run = a.run or quick_run(tmp)
        net = load_run(run).module.cfg.net
        shapes = (
            f"decoder {net.decoder_hidden or net.hidden} × "
            f"{net.decoder_depth or net.depth}, encoder {net.hidden} × {net.depth}"
        )
        ev = tiled(read_events(SAMPLE), n_events)
        x = ev.x[ev.x_pass]
        rows = throughput(run, ev.z, x, batch_sizes, sorted({1, os.cpu_count() or 1}))
        conf = configurations([run, *a.compare], ev.z, 16384) if a.compare else []
        if torch.cuda.is_available():
            rows += throughput(run, ev.z, x, [16384, 131072, 1048576], [1], device="cuda")
        gen_rate, sim_rate = versus_generator(run, 500 if a.quick else 5000, tmp)
    model = f"`{a.run}`" if a.run else "`experiments/zee_fast.yaml` after one fast_dev_run step"
    lines = header(
        "Simulation throughput against the goal (≥ 10⁶ zee events per CPU second, one core)",
        command=command("bench_speed", argv),
        machine=machine("threads as in the tables"),
        notes=[f"model: {model} ({shapes}); throughput does not depend on how well it is trained"],
    )
    lines += table(
        "model | events per CPU s | events/s wall | batch | goal",
        goal_rows("the model above, 1 thread, best batch", rows, conf),
    )
    lines += [
        "",
        "### Throughput by batch size and threads",
        "",
        "Wall-clock events/s, and events per CPU second of the process (its CPU time over all "
        "its threads): other jobs on a shared machine lower the first, hardly the second.",
        "",
        *table(
            "direction | device | threads | batch | events/s | events/s per thread "
            "| events per CPU s",
            (
                [n, dev, nt, bs, f"{r:,.0f}", f"{r / nt:,.0f}", f"{c:,.0f}"]
                for n, dev, nt, bs, r, c in rows
            ),
        ),
    ]
    if conf:
        lines += [
            "",
            "### Decoder size: speed vs fidelity (simulate, 1 thread, batch 16384)",
            "",
            "Fidelity from `python -m experiments.evaluate_model RUN --out RUN/eval.json` (χ²_R "
            "of the held-out x vs D(z), and the classifier AUC). Events per CPU second of the "
            "reference path (`Transport.fast_inference = False`) and of the fast path "
            "(default), and the fast path's wall-clock events/s.",
            "",
            *table(
                "run | decoder hidden × depth | decoder parameters | ev per CPU s, reference "
                "| ev per CPU s, fast | ev/s wall, fast | m_ee | e+ py | e+ pz | e+ E | AUC",
                conf,
            ),
        ]
    lines += [
        "",
        "### otus simulation vs the generator+detector chain (same zee events, 1 thread)",
        "",
        *table(
            ["chain", "events/s"],
            [
                [
                    "`otus generate` (Pythia shower + Delphes-card detector + writing files)",
                    f"{gen_rate:,.0f}",
                ],
                ["`Surrogate.simulate` (OTUS decoder)", f"{sim_rate:,.0f}"],
                ["speed-up", f"{sim_rate / gen_rate:,.0f}×"],
            ],
        ),
    ]
    write_section(a.out, "speed", lines, title="Speed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
