"""``otus calibrate fit`` / ``otus calibrate apply``: ICNN optimal-transport calibration."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from otus.cli._common import add_seed


def _names(s: str | None) -> list[str]:
    return [t.strip() for t in s.split(",") if t.strip()] if s else []


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate", help="ICNN optimal-transport calibration of MC toward data",
        description="Move simulated events toward data with the gradient of a convex potential "
                    "(Makkuva et al. min-max dual), fitted in a control region.")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    f = actions.add_parser("fit", help="fit the OT map MC -> data",
                           description="Fit convex potentials on passing events (in --region) "
                                       "and write DIR/map.pt and DIR/diagnostics.json.")
    f.add_argument("--mc", required=True, help="MC event file (.h5), the source")
    f.add_argument("--data", required=True, help="data event file (.h5), the target")
    f.add_argument("--out", required=True, help="new model folder")
    f.add_argument("--features", default=None,
                   help="comma-separated transported features, e.g. 'e-_logpt,e-_eta' "
                        "(default: logpt, eta, phi of every object)")
    f.add_argument("--condition", default=None,
                   help="comma-separated conditioning features or observables (not moved)")
    f.add_argument("--region", default=None, help="control region, e.g. '80 < m_ee < 100'")
    f.add_argument("--iterations", type=int, default=1,
                   help="fits with a self-consistent --region: after the first, MC events are "
                        "selected by their calibrated observables (default 1: raw ones)")
    f.add_argument("--per-object", action="store_true",
                   help="one map for every object's features given its own conditions, fitted "
                        "on the objects pooled (e.g. --features e-_logpt,e+_logpt --condition "
                        "e-_eta,e+_eta: each electron's log pT given its η)")
    f.add_argument("--steps", type=int, default=2000, help="f steps (default 2000)")
    f.add_argument("--inner-steps", type=int, default=5, help="g steps per f step (default 5)")
    f.add_argument("--hidden", default="64,64,64", help="hidden widths (default 64,64,64)")
    f.add_argument("--batch-size", type=int, default=1024)
    f.add_argument("--lr", type=float, default=1e-3)
    f.add_argument("--val-every", type=int, default=25,
                   help="f steps between validations; the best validated state is kept, so "
                   "validate often: the min-max can diverge (default 25)")
    f.add_argument("--solver", choices=("conjugate", "minmax"), default="minmax",
                   help="minmax: Makkuva et al.'s inner g steps; conjugate: exact conjugate "
                        "argmax from ∇g per step (amortised, Amos 2022) (default minmax)")
    f.add_argument("--conj-iters", type=int, default=10,
                   help="conjugate-solver iterations per step (default 10)")
    f.add_argument("--cycle", type=float, default=0.0,
                   help="weight of the W2GN cycle regulariser |∇f(∇g(x)) - x|² (default 0)")
    f.add_argument("--clip-grad", type=float, default=0.0,
                   help="max gradient norm per step, 0: off (default 0)")
    f.add_argument("--guard", type=float, default=3.0,
                   help="revert to the best state (and halve the lr) when the validation "
                        "score exceeds this multiple of the best, 0: off (default 3)")
    f.add_argument("--init", choices=("gaussian", "identity"), default="gaussian",
                   help="start from the Gaussian (linear) OT map or the identity")
    f.add_argument("--isotropic", action="store_true",
                   help="one common scale for all features (default: per-feature standardisation)")
    f.add_argument("--accelerator", default="cpu", help="Lightning accelerator (default cpu)")
    add_seed(f)
    f.set_defaults(func=run)
    a = actions.add_parser("apply", help="move events with a fitted map",
                           description="Replace the calibrated features of passing events, "
                                       "recompute energies on the mass shell, keep the rest.")
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
        for name in ("steps", "inner_steps", "batch_size", "val_every", "conj_iters",
                     "iterations"):
            if getattr(args, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, "
                                  f"got {getattr(args, name)}")
        if not args.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {args.lr}")
        for name in ("cycle", "clip_grad", "guard"):
            if not getattr(args, name) >= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, "
                                  f"got {getattr(args, name)}")
        try:
            hidden = tuple(int(h) for h in _names(args.hidden))
        except ValueError:
            raise ConfigError(f"--hidden {args.hidden!r}: expected integers like 64,64") from None
        m, summary = fit_files(
            args.mc, args.data, features=_names(args.features),
            condition=_names(args.condition), region=args.region, hidden=hidden,
            iterations=args.iterations, per_object=args.per_object,
            steps=args.steps, inner_steps=args.inner_steps, batch_size=args.batch_size,
            lr=args.lr, val_every=args.val_every, init=args.init, solver=args.solver,
            conj_iters=args.conj_iters, cycle=args.cycle, clip_grad=args.clip_grad,
            guard=args.guard,
            per_feature_scale=not args.isotropic, accelerator=args.accelerator, seed=args.seed)
        m.info["provenance"] = provenance(seed=args.seed, inputs=[args.mc, args.data],
                                          command="calibrate fit")
        out.mkdir(parents=True, exist_ok=True)
        m.save(out / "map.pt")
        with atomic_path(out / "diagnostics.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2, default=float))
        b = summary["best"]
        print(f"best step {summary['best_step']}: W2 dual {b['w2_dual']:.4g}, primal "
              f"{b['w2_primal']:.4g}, duality gap {b['duality_gap']:.3g} "
              f"(standardised units); map in {out / 'map.pt'}")
        return 0
    model = Path(args.model)
    if not (model / "map.pt").is_file():
        raise InputFileError(f"{model}: not a calibrate model folder (no map.pt)")
    m = OTMap.load(model / "map.pt")
    ev = read_events(args.input)
    new = apply_map(m, ev, region=args.region, device=args.device)
    new.provenance = {"calibrate": provenance(seed=args.seed, inputs=[args.input],
                                              model=str(model), region=args.region),
                      "input": ev.provenance}
    write_events(args.out, new)
    print(f"calibrated {int(ev.x_pass.sum()) if ev.x_pass is not None else 0} passing events "
          f"-> {args.out}")
    return 0
