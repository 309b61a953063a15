"""``otus calibrate fit`` / ``otus calibrate apply``: ICNN optimal-transport calibration."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from otus.cli._common import add_seed


def _names(s: str | None) -> list[str]:
    return [t.strip() for t in s.split(",") if t.strip()] if s else []


# defaults of the objective-specific options (None on the command line: not given)
COMMON = {"steps": None, "batch_size": None, "lr": None}
DUAL = {
    "steps": 2000,
    "batch_size": 1024,
    "lr": 1e-3,
    "inner_steps": 5,
    "solver": "minmax",
    "conj_iters": 10,
    "cycle": 0.0,
    "clip_grad": 0.0,
    "guard": 3.0,
    "init": "gaussian",
    "isotropic": False,
}
REGION = {"steps": 300, "batch_size": 16384, "lr": 3e-3, "projections": 64, "noise_dims": 0}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="ICNN optimal-transport calibration of MC toward data",
        description="Move simulated events toward data with the gradient of a convex potential "
        "(Makkuva et al. min-max dual), fitted in a control region, on any event file: a "
        "physics process (object kinematics) or plain named features (process generic; its "
        "columns).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    f = actions.add_parser(
        "fit",
        help="fit the OT map MC -> data",
        description="Fit convex potentials on passing events (in --region) "
        "and write DIR/map.pt and DIR/diagnostics.json.",
    )
    f.add_argument("--mc", required=True, help="MC event file (.h5), the source")
    f.add_argument("--data", required=True, help="data event file (.h5), the target")
    f.add_argument("--out", required=True, help="new model folder")
    f.add_argument(
        "--features",
        default=None,
        help="comma-separated transported features, e.g. 'e-_logpt,e-_eta' "
        "(default: logpt, eta, phi of every object; for plain features, every column)",
    )
    f.add_argument(
        "--condition",
        default=None,
        help="comma-separated conditioning features or observables (not moved)",
    )
    f.add_argument(
        "--region",
        default=None,
        help="control region over observable (or column) names: < <= > >= == !=, and, or, "
        "not, e.g. '80 < m_ee < 100' or 'njet == 2 and mjj > 500'",
    )
    f.add_argument(
        "--iterations",
        type=int,
        default=1,
        help="fits with a self-consistent --region: after the first, MC events are "
        "selected by their calibrated observables (default 1: raw ones)",
    )
    f.add_argument(
        "--per-object",
        action="store_true",
        help="one map for every object's features given its own conditions, fitted "
        "on the objects pooled (e.g. --features e-_logpt,e+_logpt --condition "
        "e-_eta,e+_eta: each electron's log pT given its η)",
    )
    f.add_argument(
        "--objective",
        choices=("dual", "region"),
        default="dual",
        help="dual: Makkuva et al.'s min-max dual between the MC and data events "
        "in --region; region: fit the map so that the calibrated MC events "
        "that land in --region match the data there (selection redone on the "
        "calibrated events every step; use it when the region is cut on what "
        "the map moves, e.g. m_ee) (default dual)",
    )
    f.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"f steps (dual, default {DUAL['steps']}) or steps (region, default "
        f"{REGION['steps']})",
    )
    f.add_argument(
        "--inner-steps",
        type=int,
        default=None,
        help=f"dual: g steps per f step (default {DUAL['inner_steps']})",
    )
    f.add_argument("--hidden", default="64,64,64", help="hidden widths (default 64,64,64)")
    f.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"events per step (default {DUAL['batch_size']} dual, {REGION['batch_size']} region)",
    )
    f.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"Adam learning rate (default {DUAL['lr']:g} dual, {REGION['lr']:g} region)",
    )
    f.add_argument(
        "--projections",
        type=int,
        default=None,
        help="region: random directions of the sliced distance per step, besides "
        f"the coordinate axes (default {REGION['projections']})",
    )
    f.add_argument(
        "--noise-dims",
        type=int,
        default=None,
        help="region: standard-normal inputs of a stochastic map, which can add the "
        "smearing of a worse data resolution (default 0: a deterministic map; "
        "`calibrate apply --seed` seeds the draws)",
    )
    f.add_argument(
        "--val-every",
        type=int,
        default=25,
        help="f steps between validations; the best validated state is kept, so "
        "validate often: the min-max can diverge (default 25)",
    )
    f.add_argument(
        "--solver",
        choices=("conjugate", "minmax"),
        default=None,
        help="dual: minmax: Makkuva et al.'s inner g steps; conjugate: exact conjugate "
        f"argmax from ∇g per step (amortised, Amos 2022) (default {DUAL['solver']})",
    )
    f.add_argument(
        "--conj-iters",
        type=int,
        default=None,
        help=f"dual: conjugate-solver iterations per step (default {DUAL['conj_iters']})",
    )
    f.add_argument(
        "--cycle",
        type=float,
        default=None,
        help="dual: weight of the W2GN cycle regulariser |∇f(∇g(x)) - x|² (default 0)",
    )
    f.add_argument(
        "--clip-grad",
        type=float,
        default=None,
        help="dual: max gradient norm per step, 0: off (default 0)",
    )
    f.add_argument(
        "--guard",
        type=float,
        default=None,
        help="dual: revert to the best state (and halve the lr) when the validation "
        f"score exceeds this multiple of the best, 0: off (default {DUAL['guard']:g})",
    )
    f.add_argument(
        "--init",
        choices=("gaussian", "identity"),
        default=None,
        help="dual: start from the Gaussian (linear) OT map or the identity",
    )
    f.add_argument(
        "--isotropic",
        action="store_true",
        default=None,
        help="dual: one common scale for all features (default: per-feature standardisation)",
    )
    f.add_argument("--accelerator", default="cpu", help="Lightning accelerator (default cpu)")
    add_seed(f)
    f.set_defaults(func=run)
    a = actions.add_parser(
        "apply",
        help="move events with a fitted map",
        description="Replace the calibrated features of passing events, "
        "recompute energies on the mass shell (objects), keep the rest.",
    )
    a.add_argument("model", help="model folder from `otus calibrate fit`")
    a.add_argument("--input", required=True, help="event file (.h5) to calibrate")
    a.add_argument("--out", required=True, help="output event file (.h5)")
    a.add_argument("--region", default=None, help="only move events in this region")
    a.add_argument("--device", default="cpu", help="torch device for the map (default cpu)")
    add_seed(a)
    a.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from otus.calibrate.ot import OTMap
    from otus.calibrate.ot_events import apply_map, fit_files
    from otus.errors import ConfigError, InputFileError, OtusError
    from otus.io.atomic import atomic_path
    from otus.io.h5 import read_events, write_events
    from otus.provenance import provenance

    if args.action == "fit":
        out = Path(args.out)
        if out.exists() and any(out.iterdir()):
            raise OtusError(f"{out}: output folder exists and is not empty")
        given = {k: getattr(args, k) for k in (*DUAL, *REGION) if getattr(args, k) is not None}
        other = DUAL if args.objective == "region" else REGION
        wrong = [k for k in given if k in other and k not in COMMON]
        if wrong:
            raise ConfigError(
                f"--{wrong[0].replace('_', '-')} does not apply to the {args.objective} objective"
            )
        opts: dict[str, Any] = {**COMMON, **(REGION if args.objective == "region" else DUAL)}
        opts.update({k: v for k, v in given.items() if k in opts})
        for name in (
            "steps",
            "inner_steps",
            "batch_size",
            "val_every",
            "conj_iters",
            "projections",
            "iterations",
        ):
            v = opts.get(name, getattr(args, name, None))
            if v is not None and v < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
        if opts.get("noise_dims", 0) < 0:
            raise ConfigError(f"--noise-dims must be >= 0, got {opts['noise_dims']}")
        if not opts["lr"] > 0:
            raise ConfigError(f"--lr must be > 0, got {opts['lr']}")
        for name in ("cycle", "clip_grad", "guard"):
            if name in opts and not opts[name] >= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {opts[name]}")
        try:
            hidden = tuple(int(h) for h in _names(args.hidden))
        except ValueError:
            raise ConfigError(f"--hidden {args.hidden!r}: expected integers like 64,64") from None
        kw = {k: v for k, v in opts.items() if k not in ("isotropic", "projections")}
        if args.objective == "dual":
            kw["per_feature_scale"] = not opts["isotropic"]
        else:
            kw["n_projections"] = opts["projections"]
            kw["progress"] = sys.stderr.isatty()
        m, summary = fit_files(
            args.mc,
            args.data,
            features=_names(args.features),
            condition=_names(args.condition),
            region=args.region,
            hidden=hidden,
            iterations=args.iterations,
            per_object=args.per_object,
            objective=args.objective,
            val_every=args.val_every,
            accelerator=args.accelerator,
            seed=args.seed,
            **kw,
        )
        m.info["provenance"] = provenance(
            seed=args.seed, inputs=[args.mc, args.data], command="calibrate fit"
        )
        out.mkdir(parents=True, exist_ok=True)
        m.save(out / "map.pt")
        with atomic_path(out / "diagnostics.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2, default=float))
        b = summary["best"]
        if args.objective == "region":
            print(
                f"best step {summary['best_step']}: sliced W2² in the region "
                f"{b['sliced_w2']:.4g} (identity {m.info['identity']['sliced_w2']:.4g}; "
                f"MC events in the region {summary['n_mc']}, data {summary['n_data']}); "
                f"map in {out / 'map.pt'}"
            )
        else:
            print(
                f"best step {summary['best_step']}: W2 dual {b['w2_dual']:.4g}, primal "
                f"{b['w2_primal']:.4g}, duality gap {b['duality_gap']:.3g} "
                f"(standardised units); map in {out / 'map.pt'}"
            )
        return 0
    model = Path(args.model)
    if not (model / "map.pt").is_file():
        raise InputFileError(f"{model}: not a calibrate model folder (no map.pt)")
    m = OTMap.load(model / "map.pt")
    ev = read_events(args.input)
    new = apply_map(m, ev, region=args.region, device=args.device, seed=args.seed)
    new.provenance = {
        "calibrate": provenance(
            seed=args.seed, inputs=[args.input], model=str(model), region=args.region
        ),
        "input": ev.provenance,
    }
    write_events(args.out, new)
    print(
        f"calibrated {int(ev.x_pass.sum()) if ev.x_pass is not None else 0} passing events "
        f"-> {args.out}"
    )
    return 0
