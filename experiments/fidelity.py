"""Model fidelity: the OTUS supplementary fidelity tables (arXiv:2101.08944) reproduced on our
own test sets. Writes the ``otus-tables`` section of ``experiments/results/fidelity.md``.

Method (as in the OTUS paper): the held-out test set is split at random into halves A and
B. The truth comes from half A, the predictions from the inputs of half B, so no prediction
is compared with the very event it came from:

* z̃ = E(x_B) (unfolded), compared with z_A of events whose x passes (the encoder only ever
  sees passing detector events, so its target is the parton distribution given a pass);
* x̃ = D(E(x_B)) (autoencoded), compared with passing x_A;
* x̃′ = D(z_B) (simulated from all parton events), compared with passing x_A.

Simulated events pass as the model says (the learnt efficiency ε(z) and the detector
acceptance, :meth:`otus.models.api.Surrogate.simulate` with ``with_pass``); autoencoded ones
inside the acceptance (:func:`otus.physics.selection.acceptance`); the simulated pass rate
is reported beside the true one. Per row: W (GeV²), χ²_R, KS (:mod:`otus.metrics`);
globally: squared sliced Wasserstein distance (1000 slices) on the raw GeV features and on
features standardised by the truth's mean and spread, and the classifier two-sample AUC. The
OTUS paper does not state the normalisation of its global SW, so those rows are not strictly
comparable.

Usage::

    python -m experiments.fidelity --zee-run runs/zee --zee-test zee_test/events.h5 \\
        [--ttbar-run runs/ttbar --ttbar-test ttbar_test/events.h5] [--plots DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from experiments.common import command, header, machine, now, results_path, write_section
from otus import metrics as M
from otus.errors import OtusError
from otus.evaluation import auc_features, json_ready
from otus.io.h5 import Events
from otus.physics.observables import observables
from otus.physics.selection import acceptance

CITATION = (
    "OTUS, J. N. Howard, S. Mandt, D. Whiteson, Y. Yang, arXiv:2101.08944 "
    "(Sci. Rep. 12, 2022), supplementary tables; copied from ANCHORS.md"
)
COLUMNS = ("z̃ = E(x)", "x̃ = D(E(x))", "x̃′ = D(z)")
KEYS = ("unfold", "autoencode", "simulate")

# (row label, z-level observable or None, x-level observable or None)
ROWS: dict[str, list[tuple[str, str | None, str | None]]] = {
    "zee": [
        ("e+ py", "e+_py", "e+_py"),
        ("e+ pz", "e+_pz", "e+_pz"),
        ("e+ E", "e+_E", "e+_E"),
        ("M_ee", "m_ee", "m_ee"),
    ],
    "ttbar": [
        ("leading-jet E", None, "jet1_E"),
        ("m_tt̄", "m_tt", "m_tt"),
        ("hadronic M_W", "m_W_had", "m_W_had"),
        ("leptonic M_t", "m_t_lep", "m_t_lep"),
        ("hadronic M_t", "m_t_had", "m_t_had"),
        ("b-quark E", "b_E", None),
    ],
}

# Published (W [GeV²], χ²_R, KS) per row and column; None where the paper gives no number.
PUBLISHED: dict[str, dict[str, dict[str, tuple[float | None, float | None, float | None]]]] = {
    "zee": {
        "e+ py": {
            "unfold": (1.34, 50.6, 0.016),
            "autoencode": (0.42, 1.39, 0.0035),
            "simulate": (1.05, 37.6, 0.012),
        },
        "e+ pz": {
            "unfold": (1.59, 1.33, 0.0049),
            "autoencode": (3.71, 1.52, 0.010),
            "simulate": (9.53, 4.78, 0.0075),
        },
        "e+ E": {
            "unfold": (1.29, 8.81, 0.015),
            "autoencode": (0.66, 0.49, 0.0032),
            "simulate": (3.64, 9.37, 0.020),
        },
        "M_ee": {
            "unfold": (27.3, 823, 0.246),
            "autoencode": (0.73, 5.06, 0.026),
            "simulate": (0.72, 12.8, 0.031),
        },
    },
    "ttbar": {
        "leading-jet E": {"simulate": (324, 50.1, 0.048)},
        "m_tt̄": {"simulate": (1030, 54.6, 0.103)},
        "hadronic M_W": {"simulate": (104, 68.4, 0.109)},
        "leptonic M_t": {"simulate": (74.1, 92.5, 0.131)},
        "hadronic M_t": {"simulate": (1110, 161, 0.235)},
        "b-quark E": {"unfold": (None, 31.2, None)},
    },
}
PUBLISHED_SW = {"zee": {"unfold": 0.98, "autoencode": 1.33, "simulate": 3.03}}
PUBLISHED_PASS = {"ttbar": {"simulate": 0.60, "truth": 0.991}}


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])


def _wpass(w: np.ndarray, ok: np.ndarray) -> float:
    return float(np.sum(w[ok]) / np.sum(w))


def fidelity(
    test: Events,
    surrogate: Any,
    *,
    seed: int = 0,
    n_projections: int = 1000,
    auc: bool = True,
    auc_max_events: int = 200_000,
) -> dict[str, Any]:
    """The three OTUS columns for one process, computed by the half-split method.

    ``test`` must hold paired z and x; ``surrogate`` provides ``simulate(z, seed=)`` and
    ``unfold(x, seed=)`` (:class:`otus.models.api.Surrogate`). Returns a JSON-ready dict with
    ``rows`` ({label: {column key: {W, chi2_r, KS}}}), ``global`` ({column key: {sliced_w2,
    auc, auc_err}}) and ``pass_rate``.
    """
    proc = test.process
    if test.z is None or test.x is None or test.x_pass is None:
        raise OtusError("the fidelity test set must hold paired z and x")
    if surrogate.process.name != proc.name:
        raise OtusError(
            f"the model is for {surrogate.process.name}, the test set holds {proc.name} events"
        )
    w = np.asarray(test.weight, dtype=np.float64)
    a, b = _split(len(test), seed)
    pa, pb = test.x_pass[a], test.x_pass[b]
    if pa.sum() < 20 or pb.sum() < 20:
        raise OtusError("the test set has fewer than 20 passing events per half")
    z_a, x_a, w_a = test.z[a][pa], test.x[a][pa], w[a][pa]
    xb, wbp = test.x[b][pb], w[b][pb]
    z_unf = surrogate.unfold(xb, seed=seed + 1)
    x_ae = surrogate.simulate(z_unf, seed=seed + 2)
    x_sim, pass_sim = surrogate.simulate(test.z[b], seed=seed + 3, with_pass=True)
    ok_ae = np.asarray(acceptance(proc, x_ae)) & np.all(np.isfinite(x_ae), axis=1)
    ok_sim = pass_sim & np.all(np.isfinite(x_sim), axis=1)
    preds = {
        "unfold": ("z", z_a, w_a, z_unf, wbp),
        "autoencode": ("x", x_a, w_a, x_ae[ok_ae], wbp[ok_ae]),
        "simulate": ("x", x_a, w_a, x_sim[ok_sim], w[b][ok_sim]),
    }
    rows: dict[str, dict[str, dict[str, float]]] = {lab: {} for lab, _, _ in ROWS[proc.name]}
    full: dict[str, dict[str, dict[str, float]]] = {}
    glob: dict[str, dict[str, float]] = {}
    for key, (lv, t, wt, p, wp) in preds.items():
        if len(p) < 20:
            raise OtusError(f"{key}: only {len(p)} predicted events inside the acceptance")
        full[key] = M.compare(proc, t, p, lv, wt=wt, wp=wp)
        for lab, zname, xname in ROWS[proc.name]:
            name = zname if lv == "z" else xname
            if name is not None:
                rows[lab][key] = {k: full[key][name][k] for k in ("W", "chi2_r", "KS")}
        mu = np.average(t, axis=0, weights=wt)
        sd = np.sqrt(np.average((t - mu) ** 2, axis=0, weights=wt))
        sd = np.where(sd > 0, sd, 1.0)
        g = {
            "sliced_w2": M.sliced_w2(t, p, wx=wt, wy=wp, n_projections=n_projections, seed=seed),
            "sliced_w2_std": M.sliced_w2(
                (t - mu) / sd, (p - mu) / sd, wx=wt, wy=wp, n_projections=n_projections, seed=seed
            ),
        }
        if auc:
            ft, fp = auc_features(proc, t, p, lv)
            g["auc"], g["auc_err"] = M.classifier_auc(
                ft, fp, wx=wt, wy=wp, seed=seed, max_events=auc_max_events
            )
        glob[key] = g
    pass_rate = {
        "truth": _wpass(w, test.x_pass),
        "simulate": _wpass(w[b], ok_sim),
        "autoencode": _wpass(wbp, ok_ae),
    }
    return json_ready(
        {
            "process": proc.name,
            "n_test": len(test),
            "n_half_a_pass": int(pa.sum()),
            "rows": rows,
            "global": glob,
            "pass_rate": pass_rate,
            "all_observables": full,
        }
    )


def _f(v: Any) -> str:
    if v is None:
        return "–"
    a = abs(v)
    if 1e3 <= a < 1e6:
        return f"{v:.0f}"
    return f"{v:.3g}" if 1e-3 <= a < 1e3 or a == 0 else f"{v:.2e}"


def _triple(m: Any) -> str:
    return ", ".join(_f(v) for v in m) if m else "–"


def markdown(results: list[dict[str, Any]], meta: dict[str, str]) -> str:
    """Side-by-side tables: ours vs the published OTUS numbers (W, χ²_R, KS per cell)."""
    notes = [f"published numbers: {CITATION}"]
    notes += [f"note: {meta['note']}"] if meta.get("note") else []
    out = header(
        "OTUS fidelity tables: otus vs the published OTUS numbers",
        command=meta["command"],
        machine=meta["machine"],
        date=meta["date"],
        notes=notes,
    )
    out += [
        "Cells: W [GeV²], χ²_R, KS. Half-split method (truth from half A of the test set, "
        "predictions from the inputs of half B); see the docstring of "
        "`experiments.fidelity`. Ratio column: published W / our W (≥5 is the goal).",
        "",
    ]
    for r in results:
        name = r["process"]
        pub = PUBLISHED.get(name, {})
        out += [
            f"### {name} ({r['n_test']} test events, {r['n_half_a_pass']} passing truth "
            f"events in half A)",
            "",
        ]
        head = "| observable | " + " | ".join(f"{c} otus | {c} OTUS | W ratio" for c in COLUMNS)
        out += [head + " |", "|---|" + "---|---|---|" * len(COLUMNS)]
        for lab, row in r["rows"].items():
            cells = []
            for key in KEYS:
                ours = row.get(key)
                theirs = pub.get(lab, {}).get(key)
                mine = (ours["W"], ours["chi2_r"], ours["KS"]) if ours else None
                ratio = (
                    _f(theirs[0] / ours["W"])
                    if ours and theirs and theirs[0] is not None and ours["W"]
                    else "–"
                )
                cells += [_triple(mine), _triple(theirs), ratio]
            out.append(f"| {lab} | " + " | ".join(cells) + " |")
        out += ["", "| global | " + " | ".join(COLUMNS) + " |", "|---|---|---|---|"]
        g = r["global"]
        out.append(
            "| sliced W2² otus (raw GeV features) | "
            + " | ".join(_f(g[k]["sliced_w2"]) for k in KEYS)
            + " |"
        )
        out.append(
            "| sliced W2² otus (features standardised by the truth) | "
            + " | ".join(_f(g[k]["sliced_w2_std"]) for k in KEYS)
            + " |"
        )
        psw = PUBLISHED_SW.get(name)
        if psw:
            out.append(
                "| global SW OTUS (published; their normalisation) | "
                + " | ".join(_f(psw[k]) for k in KEYS)
                + " |"
            )
        if all("auc" in g[k] for k in KEYS):
            out.append(
                "| classifier AUC otus (0.5 ideal) | "
                + " | ".join(f"{g[k]['auc']:.4f} ± {g[k]['auc_err']:.4f}" for k in KEYS)
                + " |"
            )
        pr = r["pass_rate"]
        out += [
            "",
            f"Pass rates: true x {pr['truth']:.3f}; D(z) {pr['simulate']:.3f}; "
            f"D(E(x)) {pr['autoencode']:.3f}.",
        ]
        if name in PUBLISHED_PASS:
            pp = PUBLISHED_PASS[name]
            out[-1] += f" OTUS published: true x {pp['truth']}, D(z) {pp['simulate']}."
        out.append("")
    return "\n".join(out)


SPREAD = {"zee": ("e+_E", "m_ee"), "ttbar": ("jet1_E", "m_W_had")}


def fidelity_plots(
    test: Events,
    surrogate: Any,
    folder: Path,
    *,
    seed: int = 0,
    n_inputs: int = 5,
    repeats: int = 300,
) -> list[Path]:
    """Diagnostic PNGs: the decoder's spread for fixed z (``repeats`` draws of D(z, ε) for
    ``n_inputs`` passing test events, true x marked), the simulated mass peaks and
    transported z → D(z) of the reference particle, each next to the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from otus import plots
    from otus.physics.observables import label

    proc = test.process
    folder.mkdir(parents=True, exist_ok=True)
    if test.z is None or test.x is None or test.x_pass is None:
        raise OtusError("the fidelity test set must hold paired z and x")
    idx = np.flatnonzero(test.x_pass)[:n_inputs]
    xs = surrogate.simulate(test.z[idx], seed=seed + 4, repeats=repeats)
    obs_rep = observables(proc, xs, "x")
    obs_true = observables(proc, test.x[idx], "x")
    x_sim, pass_sim = surrogate.simulate(test.z, seed=seed + 5, with_pass=True)
    ok = pass_sim & np.all(np.isfinite(x_sim), axis=1)
    w = np.asarray(test.weight)
    o_sim = observables(proc, x_sim[ok], "x")
    o_true = observables(proc, test.x[test.x_pass], "x")
    written = []
    rc: Any = plots.hep_style()
    with plt.rc_context(rc):
        for name in SPREAD[proc.name]:
            fig, ax = plt.subplots(figsize=(6, 4.5))
            plots.spread(
                ax,
                obs_rep[name].reshape(len(idx), repeats),
                truth=obs_true[name],
                label=label(name),
            )
            ax.set_title(
                f"{proc.name}: D(z, ε) for {len(idx)} fixed z, {repeats} draws each; "
                "dotted: true x",
                fontsize=9,
            )
            written.append(folder / f"{proc.name}_spread_{name.replace('+', 'plus')}.png")
            fig.savefig(written[-1], bbox_inches="tight")
            plt.close(fig)
        for name in [k for k in o_true if k.startswith("m_")]:
            fig = plt.figure(figsize=(5.5, 5.5))
            ax, axr = plots.ratio_axes(fig)
            plots.mass_peak(
                ax,
                axr,
                o_true[name],
                o_sim[name],
                wt=w[test.x_pass],
                wp=w[ok],
                label=label(name),
                truth_label="x (test)",
                pred_label="D(z)",
            )
            written.append(folder / f"{proc.name}_simulated_{name}.png")
            fig.savefig(written[-1])
            plt.close(fig)
        zi, xi = proc.anchor
        fig, axs = plt.subplots(1, 2, figsize=(11, 4.5))
        fig.subplots_adjust(left=0.08, right=0.97, bottom=0.13, wspace=0.3)
        c = 3  # energy
        lim = plots.auto_range(test.z[test.x_pass, 4 * zi + c], test.x[test.x_pass, 4 * xi + c])
        for ax, a, b, who in (
            (axs[0], test.z[test.x_pass], test.x[test.x_pass], "x"),
            (axs[1], test.z[ok], x_sim[ok], "D(z)"),
        ):
            plots.transport_2d(
                ax,
                a[:, 4 * zi + c],
                b[:, 4 * xi + c],
                range=(lim, lim),
                xlabel=f"z: {proc.z_objects[zi]} E [GeV]",
                ylabel=f"{who}: {proc.x_objects[xi]} E [GeV]",
            )
        written.append(folder / f"{proc.name}_transport_E.png")
        fig.savefig(written[-1])
        plt.close(fig)
    return written


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for proc in ("zee", "ttbar"):
        p.add_argument(f"--{proc}-run", type=Path, help=f"trained {proc} run folder")
        p.add_argument(f"--{proc}-test", type=Path, help=f"held-out {proc} event file (paired)")
    p.add_argument("--out", type=Path, default=results_path("fidelity"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--projections", type=int, default=1000)
    p.add_argument("--no-auc", action="store_true")
    p.add_argument(
        "--note", default="", help="a line for the report (e.g. how the runs were trained)"
    )
    p.add_argument(
        "--plots",
        type=Path,
        default=None,
        help="also write diagnostic PNGs (decoder spread, mass peaks) here",
    )
    p.add_argument(
        "--max-events",
        type=int,
        default=None,
        help="use at most this many test events (first rows)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from otus.io.h5 import read_events

    args = _parse(argv)
    jobs = [(p, getattr(args, f"{p}_run"), getattr(args, f"{p}_test")) for p in ("zee", "ttbar")]
    jobs = [j for j in jobs if j[1] is not None or j[2] is not None]
    if not jobs:
        print(
            "fidelity: error: give --zee-run/--zee-test and/or --ttbar-run/--ttbar-test",
            file=sys.stderr,
        )
        return 2
    from otus.models.api import load_run

    try:
        results = []
        for proc, run, test in jobs:
            if run is None or test is None:
                raise OtusError(f"--{proc}-run and --{proc}-test go together")
            ev = read_events(test, proc)
            if args.max_events:
                ev = ev.subset(slice(0, args.max_events))
            sur = load_run(run, process=proc)
            results.append(
                fidelity(
                    ev, sur, seed=args.seed, n_projections=args.projections, auc=not args.no_auc
                )
            )
            if args.plots is not None:
                fidelity_plots(ev, sur, args.plots, seed=args.seed)
            print(f"fidelity: {proc} done", file=sys.stderr)
        meta = {
            "command": command("fidelity", argv),
            "machine": machine("torch default threads"),
            "note": args.note,
            "date": now(),
        }
        write_section(args.out, "otus-tables", markdown(results, meta), title="Model fidelity")
    except OtusError as err:
        print(f"fidelity: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
