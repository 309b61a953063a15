"""Can ε(z) follow a detector's sharp edges? The efficiency model alone, trained on pass flags.

The zoo's ``crystalball`` detector loses 70 % of its electrons in the crack
1.37 < |η| < 1.52; the simulators trained on it overshoot the electrons' η there (the zoo
table's η χ²_R). This probe isolates :class:`otus.models.efficiency.Efficiency` from the rest
of the model: it trains ε(z) on the pass flags of a paired event file (the z coordinates and
standardisation the model uses, Adam, batch 512, learning rate annealed like ``otus fit``'s)
with every ``--fourier`` setting given, then compares on a held-out file the passing events
per bin of each object's η and pT with the predicted Σ ε(z) in the same bin:
χ²/bin = Σ (N_pass − Σε)² / Σ ε(1 − ε) / bins. χ²/bin ≈ 1 is the statistical floor.

    python -m experiments.efficiency_probe --train zee_crystalball/train/events.h5 \\
        --test zee_crystalball/test/events.h5 --fourier 0,3,3eta --steps 6000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.common import command, header, machine, now, results_path, table, write_section
from otus.io.h5 import read_events
from otus.models.coords import Coordinates
from otus.models.efficiency import Efficiency
from otus.physics.observables import observables

ETA_EDGES = np.linspace(-2.5, 2.5, 51)  # 0.1 wide: the crack spans two bins
PT_EDGES = np.array([10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 80, 120, 1000.0])


def _coords(path: str, n: int | None) -> tuple[Any, torch.Tensor, np.ndarray, np.ndarray]:
    ev = read_events(path)
    if n is not None:
        ev = ev.subset(slice(0, n))
    p = ev.process
    if ev.x_pass is None:
        raise SystemExit(f"{path}: no pass flags (x_pass); the probe needs a paired file")
    z = torch.as_tensor(np.asarray(ev.z, np.float64))
    c = Coordinates(p, "z").encode(z).to(torch.float32)
    return p, c, np.asarray(ev.x_pass, bool), np.asarray(ev.z)


def train_efficiency(
    c: torch.Tensor,
    flag: np.ndarray,
    fourier: int,
    steps: int,
    seed: int,
    columns: list[int] | None = None,
    lr: float = 1e-3,
) -> tuple[Efficiency, torch.Tensor, torch.Tensor, float]:
    """ε(z) trained on the flags alone; (model, μ, σ of the coordinates, seconds)."""
    torch.manual_seed(seed)
    mu, sd = c.mean(0), c.std(0).clamp_min(1e-6)
    s = (c - mu) / sd
    y = torch.as_tensor(flag, dtype=torch.float32)
    model = Efficiency(c.shape[1], 64, fourier, columns)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        i = torch.randint(0, len(s), (512,), generator=gen)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(s[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model, mu, sd, time.perf_counter() - t0


def binned_chi2(values: np.ndarray, flag: np.ndarray, eps: np.ndarray, edges: np.ndarray) -> float:
    """χ² per non-empty bin of the passing count against the predicted Σ ε."""
    idx = np.digitize(values, edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    k = len(edges) - 1
    n_pass = np.bincount(idx[ok], flag[ok].astype(float), k)
    s_eps = np.bincount(idx[ok], eps[ok], k)
    var = np.bincount(idx[ok], eps[ok] * (1 - eps[ok]), k)
    use = var > 0
    return float(np.sum((n_pass[use] - s_eps[use]) ** 2 / var[use]) / max(1, use.sum()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True, help="paired event file with pass flags")
    ap.add_argument("--test", required=True, help="held-out paired event file")
    ap.add_argument(
        "--fourier",
        default="0,3,3eta",
        help="comma-separated settings to compare: F (features of every coordinate) or Feta "
        "(of the objects' η only)",
    )
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--train-events", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-results", action="store_true", help="print only")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    p, c, flag, _ = _coords(args.train, args.train_events)
    pt_, ct, ft, zt = _coords(args.test, None)
    obs = observables(pt_, zt, "z")  # held-out file only: the bins are judged there
    if pt_.name != p.name:
        raise SystemExit(f"{args.test}: process {pt_.name!r}, the training file's is {p.name!r}")
    names = sorted(k for k in obs if k.endswith("_eta") or k.endswith("_pt"))
    rows = []
    eta = Coordinates(p, "z").eta_index
    for setting in args.fourier.split(","):
        # "F": Fourier features of every coordinate; "Feta": of the objects' η only
        f = int(setting.removesuffix("eta"))
        cols = eta if setting.endswith("eta") else None
        model, mu, sd, secs = train_efficiency(c, flag, f, args.steps, args.seed, cols)
        with torch.no_grad():
            logit = model((ct - mu) / sd)
            bce = torch.nn.functional.binary_cross_entropy_with_logits(
                logit, torch.as_tensor(ft, dtype=torch.float32)
            )
        eps = torch.sigmoid(logit).double().numpy()
        chi = [
            binned_chi2(obs[k], ft, eps, ETA_EDGES if k.endswith("_eta") else PT_EDGES)
            for k in names
        ]
        rows.append([setting, f"{float(bce):.4f}", *(f"{v:.2f}" for v in chi), f"{secs:.0f}"])
        print(rows[-1], flush=True)
    text = header(
        f"ε(z) alone on pass flags: {Path(args.train).parent.parent.name}, {args.steps} steps",
        command=command("efficiency_probe", argv),
        machine=machine(),
        date=now(),
        notes=[
            f"{len(c)} training events, {len(ct)} held-out events, {args.steps} Adam steps of "
            "batch 512 (learning rate 10⁻³, cosine), the model's z coordinates",
            "χ²/bin of the held-out passing count against Σ ε(z) per bin (0.1 in η, 12 in pT); "
            "≈ 1 is the floor",
        ],
    ) + table(
        ["Fourier frequencies (on)", "held-out BCE", *(f"{k} χ²/bin" for k in names), "train s"],
        rows,
    )
    print("\n".join(text))
    if not args.no_results:
        key = f"efficiency {Path(args.train).parent.parent.name} {args.steps}"
        write_section(results_path("zoo"), key, text, title="Detector zoo")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
