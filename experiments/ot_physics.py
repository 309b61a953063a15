"""Physics closure of ICNN OT calibration on Z→ee: calibrate in the Z-peak CR, check in the SR.

"MC" is ``otus generate zee`` with the CMS-card response; "data" is generated with a shifted
and wider electron response (``--energy-scale``, ``--resolution-scale``). The OT map moves
the electrons' log pT conditioned on their η (a partially input-convex potential), fitted
on events with 80 < m_ee < 100 GeV (CR) and applied to everything; the check is in the
off-peak SR (m_ee < 80 or m_ee > 100, selected on each sample's own m_ee): χ²_R per feature
and the classifier two-sample AUC (otus.metrics) before and after calibration.
Samples and maps are made in ``--work DIR`` and reused from there when present (default: a
temporary folder, so everything is made afresh). Writes a JSON file (and its m_ee plot
beside it) that ``experiments.ot_physics_table`` turns into the tables of
``experiments/results/ot.md``.

Usage: ``python -m experiments.ot_physics --events 30000 --work DIR --out FILE.json``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from experiments.common import RESULTS, command, machine, work_dir
from otus import metrics
from otus.calibrate.ot.files import apply_map
from otus.calibrate.ot.map import OTMap
from otus.calibrate.regions import region_for
from otus.io.h5 import read_events
from otus.physics.observables import observables

CR = "80 < m_ee < 100"
SR = "m_ee < 80 or m_ee > 100"
CHECK = ["e-_pt", "e+_pt", "e-_eta", "e+_eta", "m_ee", "pt_ee"]


def otus(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "otus", *args], check=True)


def region_obs(ev, region: str) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    x = ev.x[ev.x_pass]
    obs = observables(ev.process, x, "x")
    keep = region_for(region, ev.process).mask(obs)
    return x[keep], {k: v[keep] for k, v in obs.items()}, ev.weight[ev.x_pass][keep]


def compare(a, b) -> dict[str, float]:
    xa, oa, wa = a
    xb, ob, wb = b
    out = {f"chi2_r[{k}]": metrics.chi2_r(oa[k], ob[k], wx=wa, wy=wb) for k in CHECK}
    feats = np.stack([oa[k] for k in CHECK], 1), np.stack([ob[k] for k in CHECK], 1)
    auc, err = metrics.classifier_auc(
        feats[0], feats[1], wx=wa, wy=wb, seed=0, n_bootstrap=20, n_threads=1
    )
    out["auc"], out["auc_err"] = auc, err
    out["n"] = [len(xa), len(xb)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=30000)
    ap.add_argument("--energy-scale", type=float, default=1.02)
    ap.add_argument("--resolution-scale", type=float, default=1.3)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--solver", choices=("conjugate", "minmax"), default="conjugate")
    ap.add_argument("--inner-steps", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--guard", type=float, default=3.0)
    ap.add_argument(
        "--iterations",
        type=int,
        default=1,
        help="self-consistent CR fits (otus calibrate fit --iterations)",
    )
    ap.add_argument(
        "--per-object",
        action="store_true",
        help="one map for each electron's log pT given its η, fitted on both pooled",
    )
    ap.add_argument(
        "--objective",
        choices=("dual", "region"),
        default="dual",
        help="otus calibrate fit --objective (region: the calibrated MC events "
        "that land in the CR are matched to the data there)",
    )
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--val-every", type=int, default=25)
    ap.add_argument(
        "--fit-region",
        default=CR,
        help="events the map is fitted on ('all': no selection; default the CR)",
    )
    ap.add_argument(
        "--floor",
        action="store_true",
        help="also compare a second data sample (seed 23, same response) with the "
        "data: the AUC and χ²_R a perfect calibration would reach",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the map fit")
    ap.add_argument(
        "--noise-dims",
        type=int,
        default=0,
        help="region objective: noise inputs of a stochastic map (calibrate fit --noise-dims)",
    )
    ap.add_argument("--work", type=Path, default=None, help="cache of samples and maps")
    ap.add_argument("--out", type=Path, default=RESULTS / "ot_physics.json")
    args = ap.parse_args(argv)
    with work_dir(args.work, "ot") as work:
        run(args, work)
    return 0


def run(args: argparse.Namespace, work: Path) -> None:
    """Make (or reuse) the samples and the map in ``work``; write ``args.out`` and its plot."""
    n = args.events
    mc = work / f"zee_mc_n{n}_s21"
    data = work / f"zee_data_n{n}_s22_e{args.energy_scale}_r{args.resolution_scale}"
    t0 = time.perf_counter()
    if not (mc / "events.h5").exists():
        otus("generate", "zee", "--events", str(n), "--seed", "21", "--out", str(mc))
    data2 = work / f"zee_data_n{n}_s23_e{args.energy_scale}_r{args.resolution_scale}"
    for path, seed, wanted in ((data, 22, True), (data2, 23, args.floor)):
        if wanted and not (path / "events.h5").exists():
            otus(
                "generate",
                "zee",
                "--events",
                str(n),
                "--seed",
                str(seed),
                "--out",
                str(path),
                "--energy-scale",
                str(args.energy_scale),
                "--resolution-scale",
                str(args.resolution_scale),
            )
    t_gen = time.perf_counter() - t0
    dual = args.objective == "dual"
    tag = (
        f"{args.solver}_i{args.inner_steps}_lr{args.lr}_g{args.guard}_b{args.batch_size}"
        if dual
        else f"region_lr{args.lr}_b{args.batch_size}"
    )
    model = work / (
        f"model_{mc.name}_{data.name}_{args.steps}_{tag}_v{args.val_every}"
        + (f"_it{args.iterations}" if args.iterations > 1 else "")
        + ("_perobj" if args.per_object else "")
        + (
            ""
            if args.fit_region == CR
            else "_fitall"
            if args.fit_region == "all"
            else "_fit" + "".join(ch for ch in args.fit_region if ch.isalnum())
        )
        + (f"_seed{args.seed}" if args.seed else "")
        + (f"_noise{args.noise_dims}" if args.noise_dims else "")
    )
    region_args = [] if args.fit_region == "all" else ["--region", args.fit_region]
    t0 = time.perf_counter()
    if not (model / "map.pt").exists():
        otus(
            "calibrate",
            "fit",
            "--mc",
            str(mc / "events.h5"),
            "--data",
            str(data / "events.h5"),
            "--features",
            "e-_logpt,e+_logpt",
            "--condition",
            "e-_eta,e+_eta",
            *region_args,
            "--steps",
            str(args.steps),
            "--val-every",
            str(args.val_every),
            "--lr",
            str(args.lr),
            "--batch-size",
            str(args.batch_size),
            "--objective",
            args.objective,
            *(
                [
                    "--inner-steps",
                    str(args.inner_steps),
                    "--solver",
                    args.solver,
                    "--guard",
                    str(args.guard),
                    "--iterations",
                    str(args.iterations),
                ]
                if dual
                else []
            ),
            *(["--per-object"] if args.per_object else []),
            *(["--noise-dims", str(args.noise_dims)] if args.noise_dims else []),
            "--seed",
            str(args.seed),
            "--out",
            str(model),
        )
    t_fit = time.perf_counter() - t0
    ev_mc, ev_data = read_events(mc / "events.h5"), read_events(data / "events.h5")
    omap = OTMap.load(model / "map.pt")
    cal = apply_map(omap, ev_mc)
    ev_data2 = read_events(data2 / "events.h5") if args.floor else None
    res: dict = {
        "command": command("ot_physics"),
        "machine": machine("torch default threads"),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "generate_s": t_gen,
        "fit_s": t_fit,
        "map_fit_s": omap.info.get("fit_s"),  # the training loop, when the map was made
        "fit": json.loads((model / "diagnostics.json").read_text()),
    }
    for reg_name, reg in (("CR", CR), ("SR", SR)):
        d = region_obs(ev_data, reg)
        res[reg_name] = {
            "before": compare(region_obs(ev_mc, reg), d),
            "after": compare(region_obs(cal, reg), d),
        }
        if args.floor:
            res[reg_name]["floor"] = compare(region_obs(ev_data2, reg), d)
        print(reg_name, json.dumps(res[reg_name]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1, default=float))
    plot_mee(Path(args.out).with_suffix(".png"), ev_data, ev_mc, cal)


def plot_mee(path: Path, data, mc, cal) -> None:
    """m_ee in the CR and (log scale) the SR: data, MC before and after calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (reg, lo, hi) in zip(axs, ((CR, 80, 100), (SR, 40, 160)), strict=True):
        for ev, label, color in (
            (data, "data", "k"),
            (mc, "MC", "C0"),
            (cal, "calibrated MC", "C2"),
        ):
            _, obs, w = region_obs(ev, reg)
            # MC normalised to the data's yield in the region, as the AUC compares shapes
            scale = region_obs(data, reg)[2].sum() / w.sum()
            ax.hist(
                obs["m_ee"],
                np.linspace(lo, hi, 41),
                weights=w * scale,
                histtype="step",
                color=color,
                lw=2 if ev is data else 1.5,
                label=label,
            )
        ax.set(
            xlabel="m_ee [GeV]", ylabel="events", title=reg, yscale="log" if reg == SR else "linear"
        )
    axs[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
