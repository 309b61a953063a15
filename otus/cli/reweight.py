"""``otus reweight fit`` / ``otus reweight apply``: classifier reweighting MC → data."""

from __future__ import annotations

import argparse

from otus.calibrate.reweight.config import ReweightConfig
from otus.cli._common import REGION_HELP, add_fit_apply, add_seed


def register(sub: argparse._SubParsersAction) -> None:
    f, a = add_fit_apply(
        sub,
        "reweight",
        help="classifier reweighting of MC toward data",
        description="Classifier reweighting of simulation toward data (k-fold), on any event "
        "file: a physics process (features: its observables) or plain named features "
        "(process generic; features: its columns).",
        fit_help="fit the reweighter in a control region",
        fit_description="Train k classifiers MC vs data in --region and write "
        "the model folder with its diagnostics (report.md, plots).",
        mc_help="MC event file (.h5) to be reweighted",
        apply_help="reweight an event file with a fitted model",
        apply_description="Multiply the weight column by the fitted factor (or "
        "write the new weights to --column), keeping everything else.",
        input_help="event file (.h5) to reweight",
    )
    f.add_argument("--region", default=None, help=f"{REGION_HELP} (default: all events)")
    f.add_argument(
        "--features",
        default=None,
        help="comma-separated observables (default: pT, η, masses of the process; for plain "
        "features, every column)",
    )
    d = ReweightConfig()
    f.add_argument(
        "--folds",
        type=int,
        default=d.k_folds,
        help=f"k of the k-fold training (default {d.k_folds})",
    )
    f.add_argument(
        "--repeats",
        type=int,
        default=d.repeats,
        help="repeat the k-fold training with new fold assignments and average the "
        f"out-of-fold logits (an ensemble; default {d.repeats}, costs R times the training "
        "time)",
    )
    f.add_argument(
        "--epochs", type=int, default=d.epochs, help=f"maximum epochs (default {d.epochs})"
    )
    widths = ",".join(str(h) for h in d.hidden)
    f.add_argument("--hidden", default=widths, help=f"hidden layer widths (default {widths})")
    f.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help=f"events per optimiser step (default {d.batch_size})",
    )
    f.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr:g})")
    f.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help="share of each fold's training events held out for early stopping "
        f"(default {d.val_fraction})",
    )
    f.add_argument(
        "--ema-epochs",
        type=float,
        default=d.ema_epochs,
        help="horizon in epochs (at most a fifth of --epochs) of the moving average of the "
        "classifier weights that is validated and kept (0: the trained weights; default "
        f"{d.ema_epochs:g})",
    )
    f.add_argument(
        "--no-logit-calibration",
        action="store_true",
        help="skip the Platt scaling of the ensemble logit on the out-of-fold logits "
        "(default: fitted; its slope is in report.json)",
    )
    f.add_argument(
        "--clip",
        type=float,
        default=d.clip,
        help="largest density ratio kept; larger ones are clipped and reported",
    )
    f.add_argument(
        "--normalise",
        choices=("data", "mc", "none"),
        default=d.normalise,
        help="sum of new MC weights equals data (default), old MC, or raw ratio",
    )
    f.add_argument(
        "--no-clamp",
        action="store_true",
        help="let the network extrapolate outside the training range of each "
        "feature (default: the ratio is held at its edge value there)",
    )
    f.add_argument("--accelerator", default="cpu", help="Lightning accelerator (default cpu)")
    f.add_argument(
        "--no-diagnostics",
        action="store_true",
        help="skip the before/after AUC, KS and χ²_R tables and the plots",
    )
    add_seed(f)
    f.set_defaults(func=run)
    a.add_argument(
        "--column", default=None, help="write the new weights to this new dataset, keeping `weight`"
    )
    add_seed(a)
    a.set_defaults(func=run)


def _ints(text: str, what: str) -> tuple[int, ...]:
    from otus.errors import ConfigError

    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise ConfigError(f"{what} must be positive integers, got {text!r}")
    return vals


def run(args: argparse.Namespace) -> int:
    import torch

    from otus.calibrate.reweight import files as rf

    torch.set_num_threads(min(torch.get_num_threads(), 4))
    if args.action == "apply":
        s = rf.apply_file(args.model, args.input, args.out, column=args.column)
        print(
            f"reweighted {s['events']} events into {args.out} ({s['column']}): sum of "
            f"weights {s['sum_before']:.6g} -> {s['sum_after']:.6g}; {s['clipped']} ratios "
            f"clipped; {s['failed_unchanged']} failed-reconstruction events unchanged"
        )
        return 0
    cfg = ReweightConfig(
        k_folds=args.folds,
        repeats=args.repeats,
        epochs=args.epochs,
        hidden=_ints(args.hidden, "--hidden"),
        batch_size=args.batch_size,
        lr=args.lr,
        val_fraction=args.val_fraction,
        ema_epochs=args.ema_epochs,
        calibrate_logit=not args.no_logit_calibration,
        clip=args.clip,
        normalise=args.normalise,
        clamp_features=not args.no_clamp,
        accelerator=args.accelerator,
        seed=args.seed,
    )
    feats = tuple(s.strip() for s in args.features.split(",")) if args.features else None
    diag = not args.no_diagnostics
    rep = rf.fit_files(
        args.mc,
        args.data,
        args.out,
        region=args.region,
        features=feats,
        config=cfg,
        diagnose=diag,
        plots=diag,
    )
    d = rep.get("diagnostics")
    auc = f"; AUC {d['auc_before']:.3f} -> {d['auc_after']:.3f}" if d and "auc_after" in d else ""
    reps = f" ({cfg.repeats} repeats)" if cfg.repeats > 1 else ""
    print(
        f"fitted {cfg.k_folds}-fold reweighter{reps} in {rep['region'] or 'all events'}"
        f"{auc}; Platt slope {rep['logit_calibration']['scale']:.3f}; "
        f"{rep['clipping']['n_clipped']} ratios clipped; overlap "
        f"{'ok' if rep['overlap']['ok'] else 'POOR'}; wrote {args.out}"
    )
    return 0
