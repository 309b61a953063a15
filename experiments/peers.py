"""The peers of ``experiments/unfold_bench.py``: OmniFold and iterative Bayesian unfolding.

Runs in the separate benchmark environment (``make bench-env``: TensorFlow, ``omnifold``,
``pyunfold``), never in otus's own: it imports neither otus nor torch. Input and output are
``.npz`` files written and read by ``unfold_bench.py``::

    .venv-bench/bin/python experiments/peers.py IN.npz OUT.npz [--omnifold-epochs E]

IN holds ``mc_reco`` [N, F], ``mc_gen`` [N, G] (features of the MC's passing events),
``data_reco`` [M, F]; and per binned observable k (``ibu_names``): ``ibu_mc_reco_k``,
``ibu_mc_gen_k`` [N], ``ibu_data_k`` [M], ``ibu_edges_k``. OUT holds ``omnifold_weights``
[N] (the MC's gen-level weights after the last iteration: the unfolded distribution is the
weighted MC), ``ibu_hist_k``/``ibu_err_k`` (unfolded counts and their statistical errors)
and the CPU seconds of each method.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def omnifold(d: dict[str, np.ndarray], epochs: int, iterations: int, seed: int) -> np.ndarray:
    """MultiFold (the ``omnifold`` package, arXiv:1911.09107) with its MLP, ``iterations``
    iterations; batch 512 (its default 128 takes four times as long on a CPU)."""
    import keras
    import omnifold.net
    import tensorflow as tf
    from omnifold import MLP, DataLoader, MultiFold

    # omnifold 0.1.36 compiles with a plain loss function, which Keras 3.12+ cannot rebuild
    # when it clones the compiled model in the second iteration: register it.
    loss = omnifold.net.weighted_binary_crossentropy
    keras.saving.get_custom_objects()["weighted_binary_crossentropy"] = loss

    tf.keras.utils.set_random_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (omnifold's DataLoader draws from the global state)

    def std(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
        return ((a - ref.mean(0)) / ref.std(0)).astype(np.float32)

    # Constant columns (e.g. the pair's pT at LO parton level) carry nothing: dropped.
    reco, gen = (c[:, c.std(0) > 0] for c in (d["mc_reco"], d["mc_gen"]))
    d = {**d, "data_reco": d["data_reco"][:, d["mc_reco"].std(0) > 0]}
    data = DataLoader(reco=std(d["data_reco"], reco), normalize=True)
    mc = DataLoader(reco=std(reco, reco), gen=std(gen, gen), normalize=True)
    with tempfile.TemporaryDirectory() as tmp:
        mf = MultiFold(
            "bench",
            MLP(reco.shape[1]),
            MLP(gen.shape[1]),
            data,
            mc,
            weights_folder=os.path.join(tmp, "w"),
            log_folder=tmp,
            niter=iterations,
            batch_size=512,
            epochs=epochs,
        )
        mf.Unfold()
        return np.asarray(mf.reweight(mc.gen, mf.model2, batch_size=4096), np.float64)


def ibu(
    reco_mc: np.ndarray, gen_mc: np.ndarray, reco_data: np.ndarray, edges: np.ndarray, iters: int
) -> tuple[np.ndarray, np.ndarray]:
    """pyunfold's iterative Bayesian unfolding (D'Agostini) of one observable on ``edges``
    (the same bins at both levels, over- and underflow folded into the outer bins); the MC's
    truth spectrum is the prior, every passing event is in the response (efficiency 1)."""
    from pyunfold import iterative_unfold

    def idx(v: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(edges) - 2)

    nb = len(edges) - 1
    counts = np.zeros((nb, nb))
    np.add.at(counts, (idx(reco_mc), idx(gen_mc)), 1.0)
    n_gen = counts.sum(axis=0)
    ok = n_gen > 0
    response = np.where(ok, counts / np.where(ok, n_gen, 1.0), 0.0)
    response_err = np.where(ok, np.sqrt(counts) / np.where(ok, n_gen, 1.0), 0.0)
    data = np.bincount(idx(reco_data), minlength=nb).astype(float)
    out = iterative_unfold(
        data=data,
        data_err=np.sqrt(data),
        response=response,
        response_err=response_err,
        efficiencies=np.ones(nb),
        efficiencies_err=np.zeros(nb),
        prior=n_gen / n_gen.sum(),
        ts="ks",
        ts_stopping=0.0,  # a fixed number of iterations, as OmniFold and otus run
        max_iter=iters,
    )
    return np.asarray(out["unfolded"]), np.asarray(out["stat_err"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--omnifold-epochs", type=int, default=50)
    ap.add_argument("--iterations", type=int, default=3, help="OmniFold and IBU iterations")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-omnifold", action="store_true")
    a = ap.parse_args()
    d = dict(np.load(a.inp))
    res: dict[str, np.ndarray] = {}
    t = time.process_time()
    for k, name in enumerate(d["ibu_names"]):
        h, e = ibu(
            d[f"ibu_mc_reco_{k}"],
            d[f"ibu_mc_gen_{k}"],
            d[f"ibu_data_{k}"],
            d[f"ibu_edges_{k}"],
            a.iterations,
        )
        res[f"ibu_hist_{k}"], res[f"ibu_err_{k}"] = h, e
        print(f"IBU {name}: done", flush=True)
    res["ibu_cpu_s"] = np.array(time.process_time() - t)
    if not a.skip_omnifold:
        t = time.process_time()
        res["omnifold_weights"] = omnifold(d, a.omnifold_epochs, a.iterations, a.seed)
        res["omnifold_cpu_s"] = np.array(time.process_time() - t)
    tmp = a.out + ".tmp.npz"
    np.savez(tmp, **res)
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
