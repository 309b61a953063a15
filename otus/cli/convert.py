"""``otus convert``: LHE and/or Delphes ROOT files, or a CMS NanoAOD file, into an otus
event file (.h5), streaming (:mod:`otus.io.convert`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from otus.cli._common import PROCESS_HELP, add_seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert LHE and/or Delphes ROOT files, or a NanoAOD file, into an otus event file",
        description=(
            "Read parton-level events (LHE, --lhe) and/or detector-level events (Delphes ROOT, "
            "--delphes), or both levels from one CMS NanoAOD file (--nanoaod; parton level from "
            "LHEPart, or GenPart when the card names a mother; the detector level alone from "
            "collision data), and write the otus event file. With both levels, the inputs must "
            "hold the same events in the same order: rows without the process at parton level "
            "are dropped from both, and z and x of a row are one event. Files are read in "
            "chunks, so memory does not grow with their size."
        ),
    )
    p.add_argument("process", help=PROCESS_HELP)
    p.add_argument("--lhe", type=Path, help="parton-level LHE file (.lhe or .lhe.gz)")
    p.add_argument("--delphes", type=Path, help="detector-level Delphes ROOT file")
    p.add_argument(
        "--nanoaod",
        type=Path,
        help="CMS NanoAOD ROOT file (both levels; detector level only for collision data); "
        "not with --lhe or --delphes",
    )
    p.add_argument("--out", type=Path, required=True, help="output event file (.h5)")
    p.add_argument(
        "--max-events", type=int, default=None, help="read at most this many events of each input"
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="events read at a time (default 50000); the output does not depend on it",
    )
    add_seed(p)
    p.set_defaults(func=run)
    _add_ntuple_args(p)


def run(args: argparse.Namespace) -> int:
    if any(getattr(args, k) for k in ("ntuple", "tree", "branches", "weight_branch")):
        return _run_ntuple(args)  # plain named features (process generic)
    from typing import Any

    from tqdm.auto import tqdm

    from otus.io.convert import CHUNK, convert
    from otus.processes import get_process
    from otus.provenance import provenance

    proc = get_process(args.process)
    inputs = [str(f) for f in (args.lhe, args.delphes, args.nanoaod) if f is not None]

    def prov(info: dict[str, Any]) -> dict[str, Any]:
        return provenance(
            seed=args.seed,
            inputs=inputs,
            command="convert",
            process=proc.name,
            max_events=args.max_events,
            **info,
        )

    # A progress bar on stderr, shown on terminals only (quiet in logs and tests).
    with tqdm(desc="convert", unit="ev", disable=None, leave=False) as bar:
        res = convert(
            proc,
            args.out,
            lhe=args.lhe,
            delphes=args.delphes,
            nanoaod=args.nanoaod,
            max_events=args.max_events,
            chunk_size=CHUNK if args.chunk_size is None else args.chunk_size,
            provenance=prov,
            progress=bar.update,
        )
    parts = [f"wrote {res.n_written} {proc.name} events to {args.out}"]
    if res.n_skipped:
        where = "LHE events" if res.parton == "lhe" else f"events (parton level from {res.parton})"
        parts.append(f"skipped {res.n_skipped} {where} without the process")
    elif res.parton not in (None, "lhe"):
        parts.append(f"parton level from {res.parton}")
    if args.nanoaod is not None and res.parton is None:
        parts.append(
            f"detector level only: {args.nanoaod} has no generator branches (LHEPart, GenPart), "
            "read as collision data"
        )
    if res.n_pass is not None:
        parts.append(f"{res.n_pass} pass the detector selection")
    print("otus convert: " + "; ".join(parts), file=sys.stderr)
    return 0


# --- plain named features (process generic): `otus convert generic --ntuple F ...` ---------
def _add_ntuple_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("plain named features (otus convert generic --ntuple F --out F)")
    g.add_argument(
        "--ntuple",
        type=Path,
        help="flat ROOT ntuple (.root), .npz or .npy of plain named features; writes an "
        "event file of process generic (see otus.io.ntuple)",
    )
    g.add_argument("--tree", help="tree of the --ntuple file (default: its only tree)")
    g.add_argument(
        "--branches",
        help="comma-separated columns to read (default: every scalar numeric one); for a "
        "plain [N, F] .npy, the names of its F columns",
    )
    g.add_argument("--weight-branch", help="the column of --ntuple holding event weights")


def _run_ntuple(args: argparse.Namespace) -> int:
    from otus.errors import ConfigError
    from otus.io.ntuple import write_ntuple
    from otus.processes import GENERIC
    from otus.provenance import provenance

    if args.ntuple is None:
        raise ConfigError("--tree, --branches and --weight-branch apply to --ntuple only")
    if args.process != GENERIC:
        raise ConfigError(
            f"--ntuple writes plain named features: give the process {GENERIC}, not "
            f"{args.process!r} (otus convert {GENERIC} --ntuple {args.ntuple} --out F)"
        )
    other = [f"--{k}" for k in ("lhe", "delphes", "nanoaod") if getattr(args, k, None)]
    if other:
        raise ConfigError(f"--ntuple does not combine with {', '.join(other)}")
    if args.max_events is not None and args.max_events < 1:
        raise ConfigError(f"--max-events must be positive, got {args.max_events}")
    branches = [b.strip() for b in args.branches.split(",") if b.strip()] if args.branches else None
    tree, weight = args.tree, args.weight_branch
    prov = provenance(
        seed=args.seed,
        inputs=[str(args.ntuple)],
        command="convert",
        process=GENERIC,
        tree=tree,
        branches=branches,
        weight=weight,
    )
    n = write_ntuple(
        args.ntuple,
        args.out,
        tree=tree,
        branches=branches,
        weight=weight,
        max_events=args.max_events,
        provenance=prov,
    )
    print(f"otus convert: wrote {n} {GENERIC} events to {args.out}", file=sys.stderr)
    return 0
