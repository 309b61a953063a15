"""OT-map benchmark with known truth, built like the Wasserstein-2 benchmark (Korotin et al.,
arXiv:2106.01954): L2-UVP of the ICNN map against POT baselines, in dimensions 2 … 64.

Pair construction (our own pairs, not Korotin's downloaded ones):
  * source P: a mixture of 3 Gaussians in D dimensions, means 2·u_k (u_k random unit vectors,
    equal weights), covariances B_k B_kᵀ / D + 0.2 I with B_k standard normal;
  * known convex potential ψ(x) = ½ xᵀ A x + Σ_{j=1}^{2D} c_j softplus(β (w_j·x + b_j)) / β,
    with A = Q diag(λ) Qᵀ, λ ~ U(0.3, 1), w_j random unit vectors, c_j ~ U(5, 12),
    b_j ~ N(0, 1), β = 1.5. ψ is convex (a PSD quadratic plus convex ridges), so by Brenier's
    theorem T*(x) = ∇ψ(x) = A x + Σ_j c_j sigmoid(β (w_j·x + b_j)) w_j is the optimal map
    from P to Q = T*#P;
  * target sample y = T*(x') from an independent source sample x' (unpaired training).
L2-UVP = 100·E‖T̂(x) − T*(x)‖² / Var T*(x) on fresh test points (otus.metrics.l2_uvp).
Baselines: ``ot.da.LinearTransport`` (the Gaussian closed form), and the barycentric
projection of exact OT (``ot.emd``) on a subsample, evaluated on its own source points.

Usage: ``python -m experiments.ot_bench --dims 2,4,8,16 --out experiments/results/ot_bench.json``
(``--no-baselines`` skips the POT baselines, so the ICNN part runs where POT is not installed,
e.g. on a GPU machine; ``--device cuda``; ``--max-time`` bounds each ICNN fit in seconds.)
``--lib-defaults``: pass ``fit_ot_map`` only the fit options given on the command line (its
own defaults for the rest, steps and max_time included); without it, unset options take this
script's historical values (width max(64, 4D), 3 layers, batch 1024, lr 1e-3, conjugate, ...).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from experiments.common import command, header, machine, results_path, table, write_section
from otus.calibrate.ot.config import DualConfig
from otus.calibrate.ot.fit import fit_ot_map
from otus.metrics import l2_uvp


def make_pair(dim: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(3, dim))
    means = 2 * u / np.linalg.norm(u, axis=1, keepdims=True)
    chol = [
        np.linalg.cholesky(b @ b.T / dim + 0.2 * np.eye(dim))
        for b in rng.normal(size=(3, dim, dim))
    ]
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    a = q @ np.diag(rng.uniform(0.3, 1.0, dim)) @ q.T
    w = rng.normal(size=(2 * dim, dim))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    c, b, beta = rng.uniform(5.0, 12.0, 2 * dim), rng.normal(size=2 * dim), 1.5

    def sample(n: int, r: np.random.Generator) -> np.ndarray:
        k = r.integers(0, 3, n)
        z = r.normal(size=(n, dim))
        return means[k] + np.einsum("nij,nj->ni", np.stack(chol)[k], z)

    def t_star(x: np.ndarray) -> np.ndarray:
        s = 1 / (1 + np.exp(-beta * (x @ w.T + b)))
        return x @ a + (s * c) @ w

    return {"sample": sample, "T": t_star}


def baselines(
    x: np.ndarray, y: np.ndarray, xt: np.ndarray, truth: np.ndarray, t_star, emd_n: int
) -> dict:
    """POT's LinearTransport and the exact-EMD barycentric map (on ``emd_n`` points)."""
    import ot

    row = {}
    t0 = time.perf_counter()
    lt = ot.da.LinearTransport().fit(Xs=x, Xt=y)
    row["linear_uvp"] = l2_uvp(lt.transform(Xs=xt), truth)
    row["linear_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    xs, ys = x[:emd_n], y[:emd_n]
    plan = ot.emd(ot.unif(emd_n), ot.unif(emd_n), ot.dist(xs, ys), numItermax=10_000_000)
    bary = (plan @ ys) / plan.sum(1, keepdims=True)
    row["emd_uvp"] = l2_uvp(bary, t_star(xs))
    row["emd_s"] = time.perf_counter() - t0
    return row


def run_dim(
    dim: int,
    *,
    n_train: int,
    steps: int | None,
    seed: int,
    emd_n: int,
    icnn: dict,
    with_baselines: bool = True,
    device: str = "cpu",
    refine: int = 20,
    lib_defaults: bool = False,
) -> dict:
    pair = make_pair(dim, seed)
    r = np.random.default_rng(seed + 1)
    x = pair["sample"](n_train, r)
    y = pair["T"](pair["sample"](n_train, r))
    xt = pair["sample"](10_000, r)
    truth = pair["T"](xt)
    row: dict = {"D": dim, "n_train": n_train}
    if with_baselines:
        row.update(baselines(x, y, xt, truth, pair["T"], emd_n))
    if steps == 0:  # baselines only
        return row
    icnn = dict(icnn)
    width, depth = icnn.pop("width", None), icnn.pop("depth", None)
    if lib_defaults:  # only what was given; fit_ot_map's defaults for the rest
        kw = {k: v for k, v in icnn.items() if v is not None}
        if width is not None or depth is not None:
            kw["hidden"] = (width or 64,) * (depth or 3)
        if steps is not None:
            kw["steps"] = steps
    else:
        assert steps is not None
        width = width or max(64, 4 * dim)
        kw = {
            "hidden": (width,) * (depth or 3),
            "batch_size": 1024,
            "inner_steps": 10,
            "lr": 1e-3,
            "val_every": max(50, steps // 10),
            "per_feature_scale": False,  # fit_ot_map's default before DualConfig
        } | {k: v for k, v in icnn.items() if v is not None}
        kw["steps"] = steps
    accel = "gpu" if device.startswith("cuda") else "cpu"
    t0 = time.perf_counter()
    cfg = DualConfig(seed=seed, **kw)
    m = fit_ot_map(torch.tensor(x), torch.tensor(y), config=cfg, accelerator=accel)
    row["icnn_s"] = time.perf_counter() - t0
    xtt = torch.tensor(xt, dtype=torch.float32)
    row["icnn_uvp"] = l2_uvp(m.transport(xtt, device=device).cpu().numpy(), truth)
    if refine:
        row["icnn_refined_uvp"] = l2_uvp(
            m.transport(xtt, device=device, refine=refine).cpu().numpy(), truth
        )
    row["icnn_best_step"] = m.info["best_step"]
    row["icnn_steps_done"] = m.info["steps_done"]
    row["icnn_duality_gap"] = m.info["best"]["duality_gap"]
    row["icnn_reverts"] = m.info["reverts"]
    row["icnn_steps"] = m.info["steps"]
    row["icnn"] = {k: m.info[k] for k in ("hidden", "batch_size", "inner_steps", "lr", "solver")}
    row["icnn"] |= {
        k: m.info[k] for k in ("conj_iters", "guard", "max_time", "init") if k in m.info
    }
    row["icnn"] |= {k: v for k, v in kw.items() if k not in row["icnn"]}
    row["icnn"] = {k: list(v) if isinstance(v, tuple) else v for k, v in row["icnn"].items()}
    row["device"] = (
        torch.cuda.get_device_name()
        if device.startswith("cuda")
        else f"cpu, {torch.get_num_threads()} torch thread(s)"
    )
    row["torch"] = torch.__version__
    row["history"] = [
        {k: h[k] for k in ("step", "sliced_w2", "duality_gap")} for h in m.info["history"]
    ]
    convex = all(float(w.min()) >= 0 for net in (m.f, m.g) for w in net.positive_weights())
    row["icnn_weights_nonnegative"] = convex
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", default="2,4,8,16")
    ap.add_argument("--n-train", type=int, default=20_000)
    ap.add_argument(
        "--steps",
        default=None,
        help="f steps, one value or one per dimension (0: baselines only; unset: 1500, "
        "or fit_ot_map's default with --lib-defaults)",
    )
    ap.add_argument(
        "--max-time",
        default=None,
        help="seconds per ICNN fit (0: no limit), one value or one per dimension",
    )
    ap.add_argument("--emd-n", type=int, default=2000)
    ap.add_argument("--lib-defaults", action="store_true", help="unset options: fit_ot_map's")
    ap.add_argument("--solver", choices=("minmax", "conjugate"), default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--inner-steps", type=int, default=None)
    ap.add_argument("--conj-iters", type=int, default=None)
    ap.add_argument("--cycle", type=float, default=None)
    ap.add_argument("--clip-grad", type=float, default=None)
    ap.add_argument("--guard", type=float, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--val-every", type=int, default=None, help="unset or 0: steps / 10")
    ap.add_argument("--width", type=int, default=None, help="ICNN width (unset: max(64, 4D))")
    ap.add_argument("--depth", type=int, default=None, help="ICNN hidden layers (unset: 3)")
    ap.add_argument("--strong-convexity", type=float, default=None)
    ap.add_argument("--init", choices=("gaussian", "identity"), default=None)
    ap.add_argument("--per-feature-scale", choices=("true", "false"), default=None)
    ap.add_argument(
        "--refine", type=int, default=20, help="conjugate iterations for the refined map (0: skip)"
    )
    ap.add_argument("--no-baselines", action="store_true", help="skip POT baselines")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="experiments/results/ot_bench.json")
    ap.add_argument(
        "--markdown",
        action="store_true",
        help="also write the table as a section of experiments/results/ot.md",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dims = [int(d) for d in args.dims.split(",")]
    if not args.lib_defaults:  # this script's historical values
        hist = {"steps": "1500", "max_time": "0", "solver": "conjugate", "lr": 1e-3}
        hist |= {"inner_steps": 1, "conj_iters": 10, "cycle": 0.0, "clip_grad": 0.0}
        hist |= {"guard": 0.0, "batch_size": 1024}
        for k, v in hist.items():
            if getattr(args, k) is None:
                setattr(args, k, v)

    def per_dim(v: str, typ: type) -> list:
        vals = [typ(s) for s in v.split(",")]
        return vals * len(dims) if len(vals) == 1 else vals

    def per_dim_opt(v: str | None, typ: type) -> list:
        return [None] * len(dims) if v is None else per_dim(v, typ)

    rows = []
    steps_l, mt_l = per_dim_opt(args.steps, int), per_dim_opt(args.max_time, float)
    for d, s, mt in zip(dims, steps_l, mt_l, strict=True):
        icnn = {
            "solver": args.solver,
            "lr": args.lr,
            "inner_steps": args.inner_steps,
            "conj_iters": args.conj_iters,
            "cycle": args.cycle,
            "clip_grad": args.clip_grad,
            "guard": args.guard,
            "batch_size": args.batch_size,
            "max_time": mt,
            "width": args.width,
            "depth": args.depth,
            "strong_convexity": args.strong_convexity,
            "init": args.init,
            "per_feature_scale": None
            if args.per_feature_scale is None
            else args.per_feature_scale == "true",
        }
        if args.val_every:
            icnn["val_every"] = args.val_every
        row = run_dim(
            d,
            n_train=args.n_train,
            steps=s,
            seed=args.seed,
            emd_n=args.emd_n,
            icnn=icnn,
            with_baselines=not args.no_baselines,
            device=args.device,
            refine=args.refine,
            lib_defaults=args.lib_defaults,
        )
        print(json.dumps({k: v for k, v in row.items() if k != "history"}), flush=True)
        rows.append(row)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    if args.markdown:
        write_markdown(rows, args, argv)


def write_markdown(rows: list[dict], args: argparse.Namespace, argv: list[str] | None) -> None:
    """The rows as a section of results/ot.md, keyed by the mode and the pair seed."""
    mode = "library defaults" if args.lib_defaults else "script options"
    head = ["D", "pair seed", "ICNN L2-UVP %", "f steps done", "best step", "guard reverts"]
    head += ["fit s", "LinearTransport L2-UVP %"]
    body = [
        [
            r["D"],
            args.seed,
            f"{r['icnn_uvp']:.3f}",
            r["icnn_steps_done"],
            r["icnn_best_step"],
            r["icnn_reverts"],
            f"{r['icnn_s']:.0f}",
            f"{r['linear_uvp']:.2f}" if "linear_uvp" in r else "–",
        ]
        for r in rows
    ]
    text = header(
        f"OT maps with known truth on the CPU: {mode}, pair seed {args.seed}",
        command=command("ot_bench", argv),
        machine=machine(f"{args.threads} torch thread(s) per fit"),
        notes=[
            f"{args.n_train} unpaired training points per side, L2-UVP on 10 000 fresh test "
            "points; the fit's options: "
            + ", ".join(f"{k} {v}" for k, v in rows[0]["icnn"].items())
        ],
    ) + table(head, body)
    key = f"cpu {mode} seed {args.seed} D {','.join(str(r['D']) for r in rows)}"
    write_section(results_path("ot"), key, text, title="ICNN optimal-transport calibration")


if __name__ == "__main__":
    main()
