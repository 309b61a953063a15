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

Usage: ``python experiments/ot_bench.py --dims 2,4,8,16 --out experiments/results/ot_bench.json``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import ot
import torch

from otus.calibrate.ot import fit_ot_map
from otus.metrics import l2_uvp


def make_pair(dim: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(3, dim))
    means = 2 * u / np.linalg.norm(u, axis=1, keepdims=True)
    chol = [np.linalg.cholesky(b @ b.T / dim + 0.2 * np.eye(dim))
            for b in rng.normal(size=(3, dim, dim))]
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


def run_dim(dim: int, *, n_train: int, steps: int, seed: int, emd_n: int, lr: float = 1e-3,
            inner: int = 10) -> dict:
    pair = make_pair(dim, seed)
    r = np.random.default_rng(seed + 1)
    x = pair["sample"](n_train, r)
    y = pair["T"](pair["sample"](n_train, r))
    xt = pair["sample"](10_000, r)
    truth = pair["T"](xt)
    row: dict = {"D": dim, "n_train": n_train}
    t0 = time.perf_counter()
    lt = ot.da.LinearTransport().fit(Xs=x, Xt=y)
    row["linear_uvp"] = l2_uvp(lt.transform(Xs=xt), truth)
    row["linear_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    xs, ys = x[:emd_n], y[:emd_n]
    plan = ot.emd(ot.unif(emd_n), ot.unif(emd_n), ot.dist(xs, ys), numItermax=10_000_000)
    bary = (plan @ ys) / plan.sum(1, keepdims=True)
    row["emd_uvp"] = l2_uvp(bary, pair["T"](xs))
    row["emd_s"] = time.perf_counter() - t0
    width = max(64, 4 * dim)
    t0 = time.perf_counter()
    m = fit_ot_map(torch.tensor(x), torch.tensor(y), hidden=(width, width, width), steps=steps,
                   batch_size=1024, inner_steps=inner, lr=lr, val_every=max(50, steps // 10),
                   seed=seed)
    row["icnn_s"] = time.perf_counter() - t0
    row["icnn_uvp"] = l2_uvp(m.transport(torch.tensor(xt, dtype=torch.float32)).numpy(), truth)
    row["icnn_best_step"] = m.info["best_step"]
    row["icnn_duality_gap"] = m.info["best"]["duality_gap"]
    row["icnn_steps"], row["icnn_hidden"] = steps, [width] * 3
    row["icnn_lr"], row["icnn_inner_steps"] = lr, inner
    convex = all(float(w.min()) >= 0 for net in (m.f, m.g) for w in net.positive_weights())
    row["icnn_weights_nonnegative"] = convex
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", default="2,4,8,16")
    ap.add_argument("--n-train", type=int, default=20_000)
    ap.add_argument("--steps", default="1500", help="f steps, one value or one per dimension")
    ap.add_argument("--emd-n", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--inner-steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="experiments/results/ot_bench.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dims = [int(d) for d in args.dims.split(",")]
    steps = [int(s) for s in args.steps.split(",")]
    steps = steps * len(dims) if len(steps) == 1 else steps
    rows = []
    for d, s in zip(dims, steps, strict=True):
        row = run_dim(d, n_train=args.n_train, steps=s, seed=args.seed, emd_n=args.emd_n,
                      lr=args.lr, inner=args.inner_steps)
        print(json.dumps(row), flush=True)
        rows.append(row)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
