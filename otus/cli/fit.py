"""``otus fit``: train OTUS (arXiv:2101.08944) into a run folder."""

from __future__ import annotations

import argparse
from typing import Any

from otus.cli._common import PROCESS_HELP, REGION_HELP


def register(sub: Any) -> None:
    p = sub.add_parser(
        "fit",
        help="train the OTUS simulator/unfolder",
        description="Train the stochastic OTUS autoencoder on an event file (x, and z unless "
        "--z-data gives another file: unpaired training). The run folder gets "
        "last.ckpt (+ periodic checkpoints), config.yaml, provenance.json and "
        "metrics.csv.",
    )
    p.add_argument("process", help=PROCESS_HELP)
    p.add_argument("--data", required=True, help="event file (.h5) with detector-level x")
    p.add_argument(
        "--z-data", default=None, help="event file with parton-level z (default: --data)"
    )
    p.add_argument(
        "--config",
        default=None,
        help="YAML config: the keys it sets replace the project's defaults (see "
        "experiments/zee.yaml); with --init, those of the initial run",
    )
    p.add_argument(
        "--luminosity",
        type=float,
        default=None,
        help="integrated luminosity of the x data (pb^-1): with the z sample's cross-section "
        "it fixes the efficiency ε(z) in fully unpaired training (N_pass = L σ <ε>)",
    )
    p.add_argument(
        "--cross-section",
        type=float,
        default=None,
        help="cross-section of the z sample (pb; default: the z file's cross_section_pb, kept "
        "from its LHE file)",
    )
    p.add_argument(
        "--init",
        default=None,
        metavar="RUN",
        help="fine-tune this trained run on the --data events in --region (z from --z-data)",
    )
    p.add_argument("--region", default=None, help=f"detector-level {REGION_HELP}")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--max-epochs", "--trainer.max_epochs", dest="max_epochs", type=int)
    p.add_argument(
        "--max-time",
        "--trainer.max_time",
        dest="max_time",
        help="training budget DD:HH:MM:SS; the learning rate anneals within it, and the epochs "
        "are not limited unless --max-epochs is given too",
    )
    p.add_argument(
        "--accelerator", "--trainer.accelerator", dest="accelerator", help="cpu, gpu, auto, ..."
    )
    p.add_argument("--devices", "--trainer.devices", dest="devices")
    p.add_argument("--strategy", "--trainer.strategy", dest="strategy", help="e.g. ddp")
    p.add_argument(
        "--num-nodes",
        "--trainer.num_nodes",
        dest="num_nodes",
        type=int,
        help="machines in a multi-node DDP run (see README)",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=0,
        metavar="K",
        help="also train a bootstrap ensemble of K members in OUT/replicas/000 ... (seed + 1 + k, "
        "event weights x Poisson(1) draws), for the uncertainties of otus unfold --replicas; "
        "--max-time applies per member; with --resume, members that exist continue and "
        "missing ones are trained",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--seed", type=int, default=None, help="random seed (default: the config's seed, 0)"
    )
    p.set_defaults(func=run)


def _devices(v: str) -> Any:
    return int(v) if v.isdigit() else v


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from otus.cli._common import resolve_process
    from otus.io.h5 import info
    from otus.models.config import config_from_dict, load_config, replace
    from otus.models.train import fit

    process = resolve_process(args.process, args.data)
    for f in (args.data, args.z_data):
        if f is not None:
            info(f, process)  # the card must be the one the files were written with

    from otus.errors import ConfigError

    if args.replicas < 0:
        raise ConfigError(f"--replicas must be >= 0, got {args.replicas}")
    if args.init is not None:
        if args.replicas:
            raise ConfigError(
                "--replicas trains a bootstrap ensemble; it cannot fine-tune (--init)"
            )
        if args.region is None:
            raise ConfigError(
                "--init needs --region: the control region where the data constrain the "
                "simulator, e.g. --region '80 < m_ee < 100'"
            )
        if args.z_data is None:
            raise ConfigError("--init needs --z-data: the parton-level MC events to simulate")
        if args.resume:
            raise ConfigError("--resume continues a run with its own config.yaml; drop --init")
    if args.resume:
        if args.config is not None:
            raise ConfigError("--resume continues with the run's own config.yaml; drop --config")
        cfg = (
            load_config(Path(args.out) / "config.yaml", process=process)
            if (Path(args.out) / "config.yaml").is_file()
            else load_config(None, process=process)
        )
    elif args.init is not None:
        cfg = _fine_tune_config(args, process)
    else:
        cfg = load_config(args.config, process=process)
    data_over = {
        k: v
        for k, v in (
            ("luminosity", args.luminosity),
            ("cross_section", args.cross_section),
            ("region", args.region),
        )
        if v is not None
    }
    if data_over and args.resume:
        raise ConfigError("--resume continues with the run's own data options; drop them")
    if data_over:
        cfg = replace(cfg, "data", **data_over)
    if args.seed is not None:
        d = cfg.to_dict()
        d["seed"] = args.seed
        cfg = config_from_dict(d)
    over = {
        k: v
        for k, v in (
            ("max_epochs", args.max_epochs),
            ("max_time", args.max_time),
            ("accelerator", args.accelerator),
            ("strategy", args.strategy),
            ("num_nodes", args.num_nodes),
        )
        if v is not None
    }
    if args.max_time is not None and args.max_epochs is None:
        over["max_epochs"] = -1  # the time is the budget
    if args.devices is not None:
        over["devices"] = _devices(args.devices)
    if over:
        cfg = replace(cfg, "trainer", **over)
    run_dir = fit(cfg, args.data, args.out, z_data=args.z_data, resume=args.resume, init=args.init)
    if over and args.resume:
        import yaml

        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    if args.replicas:
        from otus.models.replicas import fit_replicas

        fit_replicas(cfg, args.data, run_dir, args.replicas, z_data=args.z_data, resume=args.resume)
    what = f"fine-tuned {args.init} into" if args.init else f"trained {cfg.process} model in"
    ens = f" and {args.replicas} bootstrap replicas" if args.replicas else ""
    print(f"otus fit: {what} {run_dir}{ens}")
    return 0


def _fine_tune_config(args: argparse.Namespace, process: Any) -> Any:
    """The initial run's configuration for fine-tuning, with --config's keys over it."""
    from otus.models.config import load_config
    from otus.models.train import fine_tune_config

    d = fine_tune_config(args.init, args.region, process.name)
    return load_config(args.config, process=process, base=d, where=f"{args.init}/config.yaml")
