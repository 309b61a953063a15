"""``otus evaluate --truth T --pred P --out DIR``: metrics table (JSON + Markdown) and plots.

DIR receives ``metrics.json``, ``metrics.md`` and ``plots/*.png`` (one histogram with a
ratio panel per observable, for a prediction with replicas the mean ± σ over them; mass peaks zoomed; z → x transport maps of the reference
particle when both files hold z and x). DIR is built in a temporary folder beside it and
renamed at the end, so a failed run leaves no partial output.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from otus.cli._common import add_seed, progress
from otus.errors import InputFileError, OtusError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compare predicted events with truth: metrics table and plots",
        description="Compare a prediction (simulation, unfolding or calibration) with truth: "
        "per-observable W (GeV²), χ²_R, KS and triangular discrimination, global sliced "
        "Wasserstein and a classifier AUC; writes metrics.json, metrics.md and PNG plots.",
    )
    p.add_argument("--truth", required=True, type=Path, help="otus event file (.h5) with truth")
    p.add_argument("--pred", required=True, type=Path, help="otus event file (.h5) to evaluate")
    p.add_argument("--out", required=True, type=Path, help="output folder (replaced if present)")
    p.add_argument(
        "--level",
        choices=("x", "z"),
        default=None,
        help="level to compare (default: x when both files hold x, else z)",
    )
    p.add_argument(
        "--weights-column",
        default="weight",
        metavar="NAME",
        help="dataset holding event weights in both files ('none' to ignore "
        "weights; default 'weight')",
    )
    p.add_argument("--no-auc", action="store_true", help="skip the classifier two-sample test")
    p.add_argument(
        "--auc-max-events",
        type=int,
        default=200_000,
        help="events per sample used by the classifier test (default 200000)",
    )
    p.add_argument(
        "--projections",
        type=int,
        default=1000,
        help="slices of the sliced Wasserstein distance (default 1000)",
    )
    p.add_argument("--no-plots", action="store_true", help="write the tables only")
    p.add_argument(
        "--truth-label",
        default="truth",
        help="legend of --truth in the plots (default 'truth'; e.g. 'data')",
    )
    p.add_argument(
        "--pred-label",
        default="prediction",
        help="legend of --pred in the plots (default 'prediction'; e.g. 'reweighted MC')",
    )
    add_seed(p)
    p.set_defaults(func=run)


def _load(path: Path, column: str) -> Any:
    import h5py
    import numpy as np

    from otus.io.h5 import read_events

    ev = read_events(path)
    if column == "none":
        ev.weight = np.ones(len(ev))
    elif column != "weight":
        with h5py.File(path, "r") as f:
            if column not in f:
                raise InputFileError(f"{path}: no weights dataset {column!r}")
            w = np.asarray(f[column][...], dtype=np.float64)
        if w.shape != (len(ev),):
            raise InputFileError(f"{path}: {column} has shape {w.shape}, expected ({len(ev)},)")
        if not np.all(np.isfinite(w)):
            raise InputFileError(f"{path}: {column} holds NaN or inf")
        ev.weight = w
    return ev


def _safe(name: str) -> str:
    return name.replace("+", "plus").replace("-", "minus").replace("/", "_")


def _plots(
    folder: Path,
    truth: Any,
    pred: Any,
    report: dict[str, Any],
    use_weights: bool,
    labels: tuple[str, str] = ("truth", "prediction"),
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from otus import plots
    from otus.evaluation import replica_labels, rows_and_weights
    from otus.physics.observables import label, observables

    lv = report["level"]
    proc = truth.process
    t, wt = rows_and_weights(truth, lv, "truth")
    p, wp = rows_and_weights(pred, lv, "prediction")
    if not use_weights:
        wt, wp = np.ones(len(t)), np.ones(len(p))
    extra: dict[str, Any] = {} if pred.replica is None else {"replica": replica_labels(pred, lv)}
    ot, op = observables(proc, t, lv), observables(proc, p, lv)
    folder.mkdir()
    written = []
    nbins = int(np.clip(np.sqrt(min(len(t), len(p))) / 1.5, 15, 60))
    rc: Any = plots.hep_style()
    with plt.rc_context(rc):
        for name in progress(report["observables"], desc="plots", unit="plot"):
            m = report["observables"][name]
            fig = plt.figure(figsize=(5.5, 5.5))
            ax, axr = plots.ratio_axes(fig)
            fn = plots.mass_peak if name.startswith("m_") else plots.hist_ratio
            fn(
                ax,
                axr,
                ot[name],
                op[name],
                wt=wt,
                wp=wp,
                label=label(name),
                bins=nbins,
                truth_label=f"{labels[0]} ({lv})",
                pred_label=f"{labels[1]} ({lv})",
                **extra,
            )
            ax.set_title(
                f"{proc.name}: W={m['W']:.3g}  χ²_R={m['chi2_r']:.3g}  KS={m['KS']:.3g}",
                fontsize=10,
            )
            out = folder / f"{_safe(name)}.png"
            fig.savefig(out)
            plt.close(fig)
            written.append(out.name)
        if (
            truth.z is not None
            and truth.x is not None
            and pred.z is not None
            and pred.x is not None
        ):
            zi, xi = proc.anchor
            zo, xo = proc.z_objects[zi], proc.x_objects[xi]
            ok_t, ok_p = truth.x_pass, pred.x_pass
            for c, comp in enumerate(("px", "py", "pz", "E")):
                fig, axs = plt.subplots(1, 2, figsize=(11, 4.5))
                fig.subplots_adjust(left=0.08, right=0.97, bottom=0.13, wspace=0.3)
                lim = plots.auto_range(truth.z[ok_t, 4 * zi + c], truth.x[ok_t, 4 * xi + c])
                for ax, ev, ok, who in (
                    (axs[0], truth, ok_t, "truth"),
                    (axs[1], pred, ok_p, "prediction"),
                ):
                    plots.transport_2d(
                        ax,
                        ev.z[ok, 4 * zi + c],
                        ev.x[ok, 4 * xi + c],
                        weights=ev.weight[ok],
                        range=(lim, lim),
                        xlabel=f"z: {zo} {comp} [GeV]",
                        ylabel=f"x ({who}): {xo} {comp} [GeV]",
                    )
                    ax.set_title(f"{who}: z → x", fontsize=10)
                out = folder / f"transport_{_safe(zo)}_{comp}.png"
                fig.savefig(out)
                plt.close(fig)
                written.append(out.name)
    return written


def run(args: argparse.Namespace) -> int:
    from otus.evaluation import evaluate, infer_level, json_ready, markdown, unfold_target

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise OtusError(f"{out}: exists and is not a folder")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise OtusError(f"{out}: parent folder {parent} does not exist")
    if args.projections < 1 or args.auc_max_events < 20:
        raise OtusError("--projections must be ≥1 and --auc-max-events ≥20")
    truth = _load(args.truth, args.weights_column)
    pred = _load(args.pred, args.weights_column)
    truth = unfold_target(truth, pred, infer_level(truth, pred, args.level))
    report = evaluate(
        truth,
        pred,
        level=args.level,
        seed=args.seed,
        use_weights=args.weights_column != "none",
        n_projections=args.projections,
        auc=not args.no_auc,
        auc_max_events=args.auc_max_events,
    )
    report["inputs"] = {
        "truth": str(args.truth),
        "pred": str(args.pred),
        "weights_column": args.weights_column,
        "seed": args.seed,
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        if not args.no_plots:
            report["plots"] = _plots(
                tmp / "plots",
                truth,
                pred,
                report,
                args.weights_column != "none",
                (args.truth_label, args.pred_label),
            )
        (tmp / "metrics.json").write_text(json.dumps(json_ready(report), indent=1) + "\n")
        (tmp / "metrics.md").write_text(markdown(report))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    g = report["global"]
    auc = (
        f", classifier AUC {g['classifier_auc']:.3f} ± {g['classifier_auc_err']:.3f}"
        if "classifier_auc" in g
        else ""
    )
    print(
        f"otus evaluate: {report['process']} {report['level']}: {len(report['observables'])} "
        f"observables, sliced W2² {g['sliced_w2']:.4g}{auc} -> {out}"
    )
    return 0
