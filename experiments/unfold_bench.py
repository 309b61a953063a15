"""Unfolding side by side: otus (plain and iterated), OmniFold, IBU and no unfolding, on
pseudo-data whose parton-level spectrum is the training sample's or differs from it.

MC: a paired zee sample of one detector, on which otus trains with its default
configuration (``otus fit --replicas K``: the nominal run and K bootstrap members). Pseudo-data:
another sample of the same detector, from which the stress variants are drawn by
acceptance-rejection on smooth functions of the parton level:

- ``nominal``: as generated (the training prior is right);
- ``shift``: the Z line shape moved up by 1 GeV (Breit-Wigner ratio);
- ``narrow``: the Z width 5 % smaller;
- ``shape``: the pair's rapidity and a forward-backward asymmetry reweighted,
  (1 + 0.15 y²)·(1 + 0.2 tanh((η(e⁻) − η(e⁺))/2)).

Each variant is unfolded by otus with ``--iterations 0`` (plain E(x)) and ``--iterations N``,
with its K replicas; by OmniFold (the ``omnifold`` package) and IBU (``pyunfold``, binned)
in the benchmark environment (``make bench-env``; ``experiments/peers.py``); and not at all
(the detector-level values). Every answer is the parton level of the *passing* events and is
judged against the truth of the pseudo-data's passing events: χ²_R on fixed bins (the
variance of each method's own histogram plus the truth's), 10·W1 with a bootstrap error,
and the classifier AUC of unfolded vs true events. The shift of the median m_ee against the
nominal variant measures the prior dependence. With replicas, the unfolded histograms get
the replicas' mean and standard deviation; the expected truth (the MC's passing z, weighted
by the variant's function: independent of the pseudo-data) then gives the coverage (bins
with |mean − truth| ≤ σ) and the bias χ² per bin (≈ 1 when the bias is within the
statistical uncertainty).

    python -m experiments.unfold_bench --work /tmp/ub [--budget 00:00:05:00] [--replicas 6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments.common import (
    command,
    header,
    machine,
    results_path,
    run_otus,
    run_progress,
    table,
    work_dir,
    write_section,
)
from otus.models.iterate import ACCELERATION

M_Z, G_Z = 91.1876, 2.4952
# pT(ee) is zero at the parton level of LO Drell-Yan (no ISR in the LHE event): not unfolded.
OBS = ["m_ee", "e-_pt", "e-_eta", "e-_E", "e+_pt", "e+_eta", "e+_E"]
IBU_OBS = ["m_ee", "e-_pt", "e-_eta", "e+_eta"]
VARIANTS = ("nominal", "shift", "narrow", "shape")
LABEL = {
    "none": "no unfolding (detector level)",
    "otus": "otus (plain E(x))",
    "omnifold": "OmniFold (3 iterations)",
    "ibu": "IBU (pyunfold, binned, 3 iterations)",
}


def methods(a: argparse.Namespace) -> list[str]:
    return ["none", "otus", *(f"otus_iter{n}" for n in a.iterations), "omnifold", "ibu"]


def label(m: str) -> str:
    return LABEL.get(m) or f"otus --iterations {m.removeprefix('otus_iter')}"


N_BINS = 30
BENCH_PYTHON = Path(__file__).resolve().parent.parent / ".venv-bench" / "bin" / "python"


# ------------------------------------------------------------------------------ samples
def _bw(m: np.ndarray, mass: float, width: float) -> np.ndarray:
    return 1.0 / ((m**2 - mass**2) ** 2 + mass**2 * width**2)


def variant_weight(name: str, obs: dict[str, np.ndarray]) -> np.ndarray:
    """The parton-level weight function of a stress variant (module docstring)."""
    m = obs["m_ee"]
    if name == "nominal":
        return np.ones_like(m)
    if name == "shift":
        return _bw(m, M_Z + 1.0, G_Z) / _bw(m, M_Z, G_Z)
    if name == "narrow":
        return _bw(m, M_Z, 0.95 * G_Z) / _bw(m, M_Z, G_Z)
    if name == "shape":
        deta = obs["e-_eta"] - obs["e+_eta"]
        return (1 + 0.15 * obs["y_ee"] ** 2) * (1 + 0.2 * np.tanh(deta / 2))
    raise ValueError(name)


def z_obs(ev: Any) -> dict[str, np.ndarray]:
    """Parton-level observables of ``ev`` (all rows), with the pair rapidity."""
    from otus.physics.observables import observables

    o = observables(ev.process, np.asarray(ev.z, np.float64), "z")
    p = np.asarray(ev.z, np.float64).reshape(len(ev.z), -1, 4).sum(axis=1)
    o["y_ee"] = 0.5 * np.log((p[:, 3] + p[:, 2]) / np.maximum(p[:, 3] - p[:, 2], 1e-9))
    return o


def samples(work: Path, a: argparse.Namespace) -> dict[str, Path]:
    """The MC and the pseudo-data pool (generated once), and each variant's pseudo-data."""
    from otus.io.h5 import read_events, write_events

    out = {}
    for key, n, seed in (("mc", a.events, 1), ("pool", a.pool_events, 2)):
        d = work / key
        if not (d / "events.h5").is_file():
            run_otus(
                "generate", "zee", "--detector", a.detector, "--events", n, "--seed", seed,
                "--out", d, quiet=True,
            )  # fmt: skip
        out[key] = d / "events.h5"
    pool = read_events(out["pool"])
    obs = z_obs(pool)
    rng = np.random.default_rng(7)
    u = rng.random(len(pool))
    for v in VARIANTS:
        path = work / f"data_{v}.h5"
        if not path.is_file():
            w = variant_weight(v, obs)
            write_events(path, pool.subset(u < w / w.max()))
        out[v] = path
    return out


def inputs(work: Path, a: argparse.Namespace) -> tuple[dict[str, Path], dict[str, np.ndarray]]:
    """The samples (:func:`samples`) and the fixed bins of every observable
    (:func:`edges_of` of the MC's passing truth)."""
    from otus.io.h5 import read_events

    f = samples(work, a)
    mc = read_events(f["mc"])
    assert mc.x_pass is not None
    return f, edges_of(z_obs(mc.subset(mc.x_pass)))


# ------------------------------------------------------------------------------ methods
def train(work: Path, f: dict[str, Path], a: argparse.Namespace) -> Path:
    run = work / "runs" / "otus"
    if not (run / "last.ckpt").is_file() or (
        a.replicas and not (run / "replicas" / f"{a.replicas - 1:03d}" / "last.ckpt").is_file()
    ):
        resume = ["--resume"] if (run / "last.ckpt").is_file() else []
        rep = ["--replicas", a.replicas] if a.replicas else []
        cfg = ["--config", a.config] if a.config else []
        run_otus(
            "fit", "zee", "--data", f["mc"], "--max-time", a.budget, *cfg, *rep, *resume,
            "--out", run,
        )  # fmt: skip
    return run


def unfold(work: Path, run: Path, f: dict[str, Path], a: argparse.Namespace) -> dict[str, Path]:
    """otus's unfoldings of every variant: plain and with each ``--iterations`` count from the
    nominal run; the K replicas of the plain unfolding of every variant and of the most
    iterated one of the nominal and shift variants. Returns paths keyed ``{variant}/{method}``
    and ``{variant}/{method}/replicas``."""
    out: dict[str, Path] = {}
    top = max(a.iterations)
    for v in VARIANTS:
        plan = [("otus", 0, 0), ("otus", 0, a.replicas)]
        plan += [(f"otus_iter{n}", n, 0) for n in a.iterations]
        if v in ("nominal", "shift"):
            plan.append((f"otus_iter{top}", top, a.replicas))
        for method, it, rep in plan:
            # the iterated answers' files name their acceleration: a cache of another is stale
            suffix = (f"_a{a.acceleration:g}" if it else "") + ("_replicas" if rep else "")
            path = work / "unfolded" / f"{v}_{method}{suffix}.h5"
            if not path.is_file():
                path.parent.mkdir(exist_ok=True)
                extra = ["--replicas", rep] if rep else []
                if it:
                    extra += ["--acceleration", a.acceleration]
                t = time.time()
                run_otus(
                    "unfold", run, "--input", f[v], "--out", path, "--iterations", it, *extra,
                    quiet=True,
                )  # fmt: skip
                (path.parent / f"{path.stem}.seconds").write_text(f"{time.time() - t:.1f}\n")
            out[f"{v}/{method}" + ("/replicas" if rep else "")] = path
    return out


def _features(ev: Any, level: str, passing: np.ndarray | None = None) -> np.ndarray:
    """The peers' features: the detector-level classifier defaults (pT, η of each object,
    the card's observables) and the same at the parton level."""
    from otus.calibrate.features import classifier_matrix
    from otus.physics.observables import observables

    if level == "x":
        return classifier_matrix(ev.process, ev.x if passing is None else ev.x[passing])
    z = np.asarray(ev.z if passing is None else ev.z[passing], np.float64)
    p = ev.process
    obs = observables(p, z, "z")
    names = [f"{o}_{k}" for o in p.z_objects for k in ("pt", "eta")]
    return np.stack([obs[n] for n in [*names, *p.observable_names("z")]], axis=1)


def edges_of(mc_obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fixed bins of each observable: quantiles of the MC's passing truth (0.5 %-99.5 %)."""
    out = {}
    for name in OBS:
        v = mc_obs[name]
        lo, hi = np.quantile(v, [0.005, 0.995])
        inner = np.quantile(v[(v > lo) & (v < hi)], np.linspace(0, 1, N_BINS + 1))
        inner[0], inner[-1] = lo, hi
        out[name] = np.unique(inner)
    return out


def peers(
    work: Path, f: dict[str, Path], edges: dict[str, np.ndarray], a: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """OmniFold and IBU on every variant (``experiments/peers.py`` in the benchmark
    environment); {} when that environment is missing."""
    from otus.io.h5 import read_events
    from otus.physics.observables import observables

    py = Path(a.peers_python)
    if not py.is_file():
        print(f"unfold_bench: no benchmark environment ({py}); OmniFold and IBU skipped")
        return {}
    mc = read_events(f["mc"])
    assert mc.x_pass is not None
    ok = mc.x_pass
    ox, oz = observables(mc.process, mc.x[ok], "x"), observables(mc.process, mc.z[ok], "z")
    res: dict[str, dict[str, Any]] = {}
    for v in VARIANTS:
        out = work / "peers" / f"{v}.npz"
        if not out.is_file():
            out.parent.mkdir(exist_ok=True)
            data = read_events(f[v])
            assert data.x_pass is not None
            od = observables(data.process, data.x[data.x_pass], "x")
            d: dict[str, Any] = {
                "mc_reco": _features(mc, "x", ok),
                "mc_gen": _features(mc, "z", ok),
                "data_reco": _features(data, "x", data.x_pass),
                "ibu_names": np.array(IBU_OBS),
            }
            for k, name in enumerate(IBU_OBS):
                d[f"ibu_mc_reco_{k}"], d[f"ibu_mc_gen_{k}"] = ox[name], oz[name]
                d[f"ibu_data_{k}"], d[f"ibu_edges_{k}"] = od[name], edges[name]
            inp = work / "peers" / f"{v}_in.npz"
            np.savez(inp, **d)
            cmd = [str(py), str(Path(__file__).with_name("peers.py")), str(inp), str(out)]
            cmd += ["--omnifold-epochs", str(a.omnifold_epochs), "--iterations", "3"]
            print("$", " ".join(cmd), flush=True)
            env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
            with open(work / "peers" / f"{v}.log", "w") as log:
                subprocess.run(cmd, check=True, env=env, stdout=log, stderr=log)
        res[v] = dict(np.load(out))
    return res


# ------------------------------------------------------------------------------ metrics
def _hist(v: np.ndarray, w: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised histogram (outer bins take the overflow) and its variance Σw²/(Σw)²."""
    vc = np.clip(v, e[0], e[-1] - 1e-9 * abs(e[-1]))
    h, _ = np.histogram(vc, e, weights=w)
    s, _ = np.histogram(vc, e, weights=w**2)
    return h / w.sum(), s / w.sum() ** 2


def chi2_fixed(p: np.ndarray, vp: np.ndarray, t: np.ndarray, vt: np.ndarray) -> float:
    """Reduced χ² of two normalised histograms with variances (SPEC §8 on fixed bins)."""
    var = vp + vt
    ok = var > 0
    return float(np.sum((p[ok] - t[ok]) ** 2 / var[ok]) / max(ok.sum() - 1, 1))


def w1_boot(
    u: np.ndarray, wu: np.ndarray, t: np.ndarray, wt: np.ndarray, n: int = 10, seed: int = 0
) -> tuple[float, float]:
    """10·W1 (scipy) and its standard deviation over ``n`` Poisson bootstraps of both."""
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(seed)
    val = 10 * wasserstein_distance(u, t, wu, wt)
    if n == 0:
        return float(val), float("nan")
    boots = [
        10 * wasserstein_distance(u, t, wu * rng.poisson(1, len(u)), wt * rng.poisson(1, len(t)))
        for _ in range(n)
    ]
    return float(val), float(np.std(boots))


def judge(
    work: Path,
    f: dict[str, Path],
    unf: dict[str, Path],
    peer: dict[str, dict[str, Any]],
    edges: dict[str, np.ndarray],
    a: argparse.Namespace,
) -> dict[str, Any]:
    from otus.evaluation import auc_features
    from otus.io.h5 import read_events
    from otus.metrics.events import classifier_auc
    from otus.metrics.univariate import chi2_r
    from otus.physics.observables import observables

    mc = read_events(f["mc"])
    assert mc.x_pass is not None
    mc_pass = mc.subset(mc.x_pass)
    mc_obs = z_obs(mc_pass)
    res: dict[str, Any] = {}
    for v in VARIANTS:
        data = read_events(f[v])
        assert data.x_pass is not None
        dp = data.subset(data.x_pass)
        truth = observables(dp.process, dp.z, "z")
        wt = np.ones(len(dp))
        # The expected truth: the MC's passing z weighted by the variant's function.
        w_exp = variant_weight(v, mc_obs) * mc_pass.weight
        # (observables, weights, parton-level rows for the AUC or None)
        answers: dict[str, tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None]] = {
            "none": (observables(dp.process, dp.x, "x"), wt, None)
        }
        for m in methods(a):
            if f"{v}/{m}" not in unf:
                continue
            ev = read_events(unf[f"{v}/{m}"])
            answers[m] = (observables(ev.process, ev.z, "z"), ev.weight, ev.z)
        if v in peer and "omnifold_weights" in peer[v]:
            w = peer[v]["omnifold_weights"] * mc_pass.weight
            answers["omnifold"] = (observables(mc_pass.process, mc_pass.z, "z"), w, mc_pass.z)
        rows: dict[str, Any] = {}
        for m, (o, w, rows_z) in answers.items():
            row: dict[str, Any] = {"chi2": {}, "w1": {}}
            for name in OBS:
                e = edges[name]
                hp, vp = _hist(o[name], w, e)
                ht, vt = _hist(truth[name], wt, e)
                row["chi2"][name] = chi2_fixed(hp, vp, ht, vt)
                row["w1"][name] = w1_boot(o[name], w, truth[name], wt)
            row["median_m_ee"] = float(_wmedian(o["m_ee"], w))
            # The goals' metric: otus evaluate's χ²_R (SPEC §8, pooled-quantile bins merged
            # to ≥ 5 entries), not the fixed bins above.
            row["chi2_spec_m_ee"] = chi2_r(truth["m_ee"], o["m_ee"], wx=wt, wy=w)
            if rows_z is not None:
                ft, fp = auc_features(dp.process, dp.z, rows_z, "z")
                row["auc"] = classifier_auc(ft, fp, wx=wt, wy=w, n_threads=1, n_bootstrap=20)
            rows[m] = row
        if v in peer and "ibu_hist_0" in peer[v]:
            row = {"chi2": {}, "w1": {}}
            for k, name in enumerate(IBU_OBS):
                e = edges[name]
                h, err = peer[v][f"ibu_hist_{k}"], peer[v][f"ibu_err_{k}"]
                ht, vt = _hist(truth[name], wt, e)
                row["chi2"][name] = chi2_fixed(h / h.sum(), (err / h.sum()) ** 2, ht, vt)
                c = 0.5 * (e[1:] + e[:-1])
                # bin centres: W1 only approximate, and no bootstrap of 30 weighted points
                row["w1"][name] = w1_boot(c, np.maximum(h, 0), truth[name], wt, n=0)
                if name == "m_ee":
                    row["median_m_ee"] = float(_wmedian(c, np.maximum(h, 0)))
            rows["ibu"] = row
        rows["truth"] = {"median_m_ee": float(np.median(truth["m_ee"]))}
        rows["replicas"] = _replica_stats(unf, v, edges, mc_obs, w_exp, methods(a))
        res[v] = rows
        print(f"unfold_bench: judged {v}", flush=True)
    return res


def _wmedian(v: np.ndarray, w: np.ndarray) -> float:
    o = np.argsort(v)
    c = np.cumsum(w[o])
    return float(v[o][np.searchsorted(c, 0.5 * c[-1])])


def _replica_stats(
    unf: dict[str, Path],
    v: str,
    edges: dict[str, np.ndarray],
    mc_obs: dict[str, np.ndarray],
    w_exp: np.ndarray,
    names: list[str],
) -> dict[str, Any]:
    """Coverage and bias χ²/bin of each otus method's replica band against the expected
    truth (module docstring)."""
    from otus.io.h5 import read_events
    from otus.physics.observables import observables

    out: dict[str, Any] = {}
    for m in names:
        key = f"{v}/{m}/replicas"
        if key not in unf:
            continue
        ev = read_events(unf[key])
        rep = getattr(ev, "replica", None)
        if rep is None:
            continue
        o = observables(ev.process, ev.z, "z")
        k = int(rep.max()) + 1
        inside, total, chi = 0, 0, []
        for name in OBS:
            e = edges[name]
            hs = np.stack([_hist(o[name][rep == r], ev.weight[rep == r], e)[0] for r in range(k)])
            mean, sd = hs.mean(0), hs.std(0, ddof=1)
            ht, vt = _hist(mc_obs[name], w_exp, e)
            sig = np.sqrt(sd**2 + vt)
            inside += int(np.sum(np.abs(mean - ht) <= sig))
            total += len(ht)
            chi.append(float(np.mean((mean - ht) ** 2 / sig**2)))
            if name == "m_ee":
                out[f"{m}_bias_chi2_m_ee"] = chi[-1]
        out[f"{m}_coverage"] = inside / total
        out[f"{m}_bias_chi2"] = float(np.mean(chi))
        out["k"] = k
    return out


# ------------------------------------------------------------------------------ report
def markdown(res: dict[str, Any], a: argparse.Namespace, cpu: dict[str, float]) -> list[str]:
    lines = header(
        f"Unfolding side by side on the {a.detector} detector: otus, OmniFold, IBU",
        command=command("unfold_bench"),
        machine=machine(),
    )
    lines += [
        f"MC: zee, detector `{a.detector}`, {a.events} events; otus trained paired with the "
        f"{'configuration ' + a.config if a.config else 'default configuration'} for {a.budget} (one torch thread), {a.replicas} bootstrap "
        f"replicas of the same budget; `--iterations` {a.iterations} with `--acceleration` "
        f"{a.acceleration:g}. Pseudo-data: the same "
        f"detector, drawn from {a.pool_events} events by acceptance-rejection (variants in "
        "the script's docstring). All answers: the parton level of the passing events, "
        "judged against the pseudo-data's truth; χ²_R on 30 fixed bins (quantiles of the MC "
        "truth), and for m_ee also as otus evaluate and the goals have it (§8: 50 pooled-quantile "
        "bins merged to ≥ 5 entries); 10·W1 ± bootstrap; AUC of unfolded vs true events (every parton-level observable, "
        "as otus evaluate). OmniFold: 3 iterations, its MLP, batch 512, "
        f"{a.omnifold_epochs} epochs at most; IBU: 3 iterations, MC truth as the prior. "
        f"Optimizer steps of the otus runs (nominal, then the replicas): {res.get('steps')}.",
        "",
    ]
    for v in VARIANTS:
        r = res[v]
        lines += [f"### {v}", ""]
        head = [
            "method",
            *(f"χ²_R {n}" for n in OBS),
            "χ²_R m_ee (§8)",
            "10·W1 m_ee",
            "AUC",
            "median m_ee − truth",
        ]
        rows = []
        for m in methods(a):
            if m not in r:
                continue
            row = r[m]
            w1 = row["w1"].get("m_ee")
            auc = row.get("auc")
            med = row.get("median_m_ee")
            rows.append(
                [
                    label(m),
                    *(f"{row['chi2'][n]:.2f}" if n in row["chi2"] else "—" for n in OBS),
                    f"{row['chi2_spec_m_ee']:.2f}" if "chi2_spec_m_ee" in row else "—",
                    (f"{w1[0]:.2f} ± {w1[1]:.2f}" if np.isfinite(w1[1]) else f"{w1[0]:.2f}")
                    if w1
                    else "—",
                    f"{auc[0]:.3f}" if auc else "—",
                    f"{med - r['truth']['median_m_ee']:+.2f}" if med is not None else "—",
                ]
            )
        lines += [*table(head, rows), ""]
    lines += ["### Prior dependence: the median m_ee shift recovered (shift variant)", ""]
    d_truth = res["shift"]["truth"]["median_m_ee"] - res["nominal"]["truth"]["median_m_ee"]
    rows = []
    for m in methods(a):
        if m in res["shift"] and "median_m_ee" in res["shift"][m]:
            d = res["shift"][m]["median_m_ee"] - res["nominal"][m]["median_m_ee"]
            rows.append([label(m), f"{d:+.3f}", f"{d / d_truth:.2f}"])
    lines += [f"Truth: the median moves by {d_truth:+.3f} GeV.", ""]
    lines += table(["method", "unfolded median shift [GeV]", "fraction recovered"], rows)
    lines += ["", "### Uncertainties from the replicas", ""]
    rows = []
    for v in VARIANTS:
        rp = res[v]["replicas"]
        for m in methods(a):
            if f"{m}_coverage" in rp:
                rows.append(
                    [
                        v,
                        label(m),
                        rp["k"],
                        f"{rp[f'{m}_coverage']:.2f}",
                        f"{rp[f'{m}_bias_chi2']:.2f}",
                        f"{rp[f'{m}_bias_chi2_m_ee']:.2f}",
                    ]
                )
    lines += table(
        ["variant", "method", "replicas", "coverage (goal 0.68 ± 0.05)", "bias²/σ² per bin, all",
         "bias²/σ² per bin, m_ee"],
        rows,
    )  # fmt: skip
    budget = sum(int(v) * m for v, m in zip(a.budget.split(":"), (86400, 3600, 60, 1), strict=True))
    lines += [
        "",
        f"Time: otus training {budget} s per member (one torch thread); "
        + ", ".join(f"{k} {v:.0f} s" for k, v in cpu.items()),
        "",
    ]
    return lines


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=None, help="folder for samples and runs (kept, reused)")
    ap.add_argument("--detector", default="cms")
    ap.add_argument("--events", type=int, default=50_000, help="MC events")
    ap.add_argument("--pool-events", type=int, default=60_000, help="pseudo-data pool")
    ap.add_argument("--budget", default="00:00:05:00", help="otus training budget per member")
    ap.add_argument("--replicas", type=int, default=6)
    ap.add_argument("--config", default=None, help="otus fit --config (default: the defaults)")
    ap.add_argument(
        "--key", default=None, help="results section (default: zee_DETECTOR, + _CONFIG stem)"
    )
    ap.add_argument(
        "--iterations",
        type=lambda v: [int(n) for n in v.split(",")],
        default=[4, 12],
        help="otus --iterations counts, comma-separated",
    )
    ap.add_argument(
        "--acceleration",
        type=float,
        default=ACCELERATION,
        help="otus unfold --acceleration of the iterated answers",
    )
    ap.add_argument("--peers-python", default=str(BENCH_PYTHON))
    ap.add_argument("--omnifold-epochs", type=int, default=30)
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    ap.add_argument("--no-results", action="store_true", help="do not rewrite the results file")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    with work_dir(a.work, "unfold") as work:
        f, edges = inputs(work, a)
        cpu: dict[str, float] = {}
        # The peers run on one core while otus trains on the other.
        peer_proc = None
        if Path(a.peers_python).is_file():
            peer_proc = subprocess.Popen(
                [sys.executable, "-c", _PEERS_CHILD, json.dumps(vars(a)), str(work)],
                cwd=Path(__file__).resolve().parent.parent,
            )
        run = train(work, f, a)
        members = [run, *sorted((run / "replicas").glob("[0-9]*"))]
        steps = [(run_progress(d) or (0, 0))[1] for d in members]
        unf = unfold(work, run, f, a)
        # Wall time of each unfolding of the nominal variant, as measured when it was made
        # (one torch thread).
        for key, path in unf.items():
            sec = path.with_suffix(".seconds")
            if key.startswith("nominal/") and sec.is_file():
                name = label(key.split("/")[1]) + (
                    " × replicas" if key.endswith("replicas") else ""
                )
                cpu[f"{name} (nominal, wall)"] = float(sec.read_text())
        if peer_proc is not None and peer_proc.wait() != 0:
            raise SystemExit("unfold_bench: the peers failed (see WORK/peers/*.log)")
        with_peers = peers(work, f, edges, a)
        for d in with_peers.values():
            for k in ("omnifold_cpu_s", "ibu_cpu_s"):
                if k in d:
                    key = k.replace("_cpu_s", "") + " CPU"
                    cpu[key] = cpu.get(key, 0.0) + float(d[k])
        res = judge(work, f, unf, with_peers, edges, a)
        res["steps"] = steps
        if a.json:
            Path(a.json).write_text(json.dumps({"results": res, "cpu": cpu}, default=_js))
        text = "\n".join(markdown(res, a, cpu))
        print(text)
        if not a.no_results:
            key = a.key or f"zee_{a.detector}" + (f"_{Path(a.config).stem}" if a.config else "")
            write_section(results_path("unfold"), key, text, title="Unfolding")
    return 0


def _js(o: Any) -> Any:
    if isinstance(o, np.ndarray | np.generic):
        return o.tolist()
    return str(o)


# The peers in a child process (they need the MC and pseudo-data files only).
_PEERS_CHILD = """
import argparse, json, sys
from pathlib import Path
from experiments import unfold_bench as ub
a = argparse.Namespace(**json.loads(sys.argv[1])); work = Path(sys.argv[2])
ub.peers(work, *ub.inputs(work, a), a)
"""


if __name__ == "__main__":
    sys.exit(main())
