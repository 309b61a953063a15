"""``otus calibrate fit`` / ``otus calibrate apply``: ICNN optimal-transport calibration."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from otus.calibrate.ot.config import INITS, SOLVERS, DualConfig, RegionConfig
from otus.cli._common import REGION_HELP, add_fit_apply, add_seed

DUAL, REGION = DualConfig(), RegionConfig()
# options whose name differs from their config field
_OPTION = {"n_projections": "projections", "per_feature_scale": "isotropic"}


def _names(s: str | None) -> list[str]:
    return [t.strip() for t in s.split(",") if t.strip()] if s else []


def _option(field: str) -> str:
    return "--" + _OPTION.get(field, field).replace("_", "-")


def _default(name: str, fmt: str = "") -> str:
    """The default of option ``name`` for both objectives (one value when they agree)."""
    d, r = getattr(DUAL, name), getattr(REGION, name)
    if isinstance(d, tuple):
        d, r = ",".join(map(str, d)), ",".join(map(str, r))
    if d == r:
        return f"default {d:{fmt}}"
    return f"default {d:{fmt}} dual, {r:{fmt}} region"


def register(sub: argparse._SubParsersAction) -> None:
    f, a = add_fit_apply(
        sub,
        "calibrate",
        help="ICNN optimal-transport calibration of MC toward data",
        description="Move simulated events toward data with the gradient of a convex potential "
        "(Makkuva et al. min-max dual), fitted in a control region, on any event file: a "
        "physics process (object kinematics) or plain named features (process generic; its "
        "columns).",
        fit_help="fit the OT map MC -> data",
        fit_description="Fit convex potentials on passing events (in --region) "
        "and write DIR/map.pt and DIR/diagnostics.json.",
        mc_help="MC event file (.h5), the source",
        apply_help="move events with a fitted map",
        apply_description="Replace the calibrated features of passing events, "
        "recompute energies on the mass shell (objects), keep the rest.",
        input_help="event file (.h5) to calibrate",
    )
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
    f.add_argument("--region", default=None, help=REGION_HELP)
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
    # Objective-specific options default to None (not given): the chosen objective's
    # config (otus.calibrate.ot.config) supplies the default shown in the help.
    d, r = DUAL, REGION
    options: list[tuple[str, type | list[str], str]] = [
        ("--steps", int, f"f steps (dual, default {d.steps}) or steps (region, default {r.steps})"),
        ("--inner-steps", int, f"dual: g steps per f step (default {d.inner_steps})"),
        (
            "--max-time",
            float,
            "dual: training budget in seconds, within which the learning rate anneals; "
            f"the fit stops at it or after --steps, whichever comes first (default {d.max_time:g}, "
            "0: no limit)",
        ),
        ("--hidden", str, f"hidden widths ({_default('hidden')})"),
        ("--batch-size", int, f"events per step ({_default('batch_size')})"),
        ("--lr", float, f"Adam learning rate ({_default('lr', 'g')})"),
        (
            "--projections",
            int,
            "region: random directions of the sliced distance per step, besides "
            f"the coordinate axes (default {r.n_projections})",
        ),
        (
            "--noise-dims",
            int,
            "region: standard-normal inputs of a stochastic map, which can add the smearing "
            f"of a worse data resolution (default {r.noise_dims}: a deterministic map; "
            "`calibrate apply --seed` seeds the draws)",
        ),
        (
            "--val-every",
            int,
            "f steps between validations; the best validated state is kept, so "
            f"validate often: the min-max can diverge ({_default('val_every')})",
        ),
        (
            "--solver",
            sorted(SOLVERS),
            "dual: minmax: Makkuva et al.'s inner g steps; conjugate: exact conjugate "
            f"argmax from ∇g per step (amortised, Amos 2022) (default {d.solver})",
        ),
        (
            "--conj-iters",
            int,
            f"dual: conjugate-solver iterations per step (default {d.conj_iters})",
        ),
        (
            "--cycle",
            float,
            f"dual: weight of the W2GN cycle regulariser |∇f(∇g(x)) - x|² (default {d.cycle:g})",
        ),
        (
            "--clip-grad",
            float,
            f"dual: max gradient norm per step, 0: off (default {d.clip_grad:g})",
        ),
        (
            "--guard",
            float,
            "dual: revert to the best state (and halve the lr) when the validation "
            f"score exceeds this multiple of the best, 0: off (default {d.guard:g})",
        ),
        (
            "--init",
            sorted(INITS),
            f"dual: start from the Gaussian (linear) OT map or the identity (default {d.init})",
        ),
    ]
    for flag, kind, text in options:
        if isinstance(kind, list):
            f.add_argument(flag, choices=kind, default=None, help=text)
        else:
            f.add_argument(flag, type=kind, default=None, help=text)
    scale = "per-feature standardisation" if DUAL.per_feature_scale else "one common scale"
    f.add_argument(
        "--isotropic",
        dest="isotropic",
        action="store_const",
        const=True,
        default=None,
        help=f"dual: one common scale for all features (default: {scale})",
    )
    f.add_argument(
        "--per-feature-scale",
        dest="isotropic",
        action="store_const",
        const=False,
        help="dual: standardise each feature on its own",
    )
    f.add_argument("--accelerator", default="cpu", help="Lightning accelerator (default cpu)")
    add_seed(f)
    f.set_defaults(func=run)
    a.add_argument("--region", default=None, help="only move events in this region")
    a.add_argument("--device", default="cpu", help="torch device for the map (default cpu)")
    add_seed(a)
    a.set_defaults(func=run)


def _config(args: argparse.Namespace) -> DualConfig | RegionConfig:
    """The chosen objective's options: its config defaults, overridden by those given."""
    from dataclasses import fields

    from otus.errors import ConfigError

    cls = RegionConfig if args.objective == "region" else DualConfig
    known = {f.name for f in fields(cls)}
    given: dict[str, object] = {}
    for field in (*(f.name for f in fields(DualConfig)), *(f.name for f in fields(RegionConfig))):
        value = getattr(args, _OPTION.get(field, field), None)
        if value is None or field in given or field == "seed":
            continue
        if field not in known:
            raise ConfigError(f"{_option(field)} does not apply to the {args.objective} objective")
        given[field] = value
    if args.iterations < 1:
        raise ConfigError(f"--iterations must be >= 1, got {args.iterations}")
    if "hidden" in given:
        try:
            given["hidden"] = tuple(int(h) for h in _names(args.hidden))
        except ValueError:
            raise ConfigError(f"--hidden {args.hidden!r}: expected integers like 64,64") from None
    if "per_feature_scale" in given:
        given["per_feature_scale"] = not args.isotropic
    try:
        return cls(**given, seed=args.seed)  # type: ignore[arg-type]
    except ConfigError as err:  # "steps must be ...": name the option, "--steps must be ..."
        field, _, rest = str(err).partition(" ")
        raise ConfigError(f"{_option(field)} {rest}" if field in known else str(err)) from None


def run(args: argparse.Namespace) -> int:
    from otus.calibrate.ot.files import apply_map, fit_files
    from otus.calibrate.ot.map import OTMap
    from otus.errors import InputFileError, OtusError
    from otus.io.atomic import atomic_path
    from otus.io.h5 import read_events, write_events
    from otus.provenance import provenance

    if args.action == "fit":
        out = Path(args.out)
        if out.exists() and any(out.iterdir()):
            raise OtusError(f"{out}: output folder exists and is not empty")
        m, summary = fit_files(
            args.mc,
            args.data,
            features=_names(args.features),
            condition=_names(args.condition),
            region=args.region,
            iterations=args.iterations,
            per_object=args.per_object,
            config=_config(args),
            accelerator=args.accelerator,
            progress=args.objective == "region" and sys.stderr.isatty(),
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
