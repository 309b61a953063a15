"""``otus convert``: LHE and/or Delphes ROOT files into the otus event file (SPEC §3, §4)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from otus.cli._common import add_seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert LHE and/or Delphes ROOT files into an otus event file",
        description=(
            "Read parton-level events (LHE, --lhe) and/or detector-level events (Delphes ROOT, "
            "--delphes) and write the otus event file. With both, the files must hold the "
            "same events in the same order: rows without the process in the LHE file are "
            "dropped from both, and z and x of a row are one event."
        ),
    )
    p.add_argument("process", choices=("zee", "ttbar"), help="physics process")
    p.add_argument("--lhe", type=Path, help="parton-level LHE file (.lhe or .lhe.gz)")
    p.add_argument("--delphes", type=Path, help="detector-level Delphes ROOT file")
    p.add_argument("--out", type=Path, required=True, help="output event file (.h5)")
    p.add_argument(
        "--max-events", type=int, default=None, help="read at most this many events of each input"
    )
    add_seed(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from otus.errors import ConfigError, InputFileError, OtusError
    from otus.io.delphes import read_delphes
    from otus.io.h5 import Events, write_events
    from otus.io.lhe import select_lhe
    from otus.physics.selection import build_x
    from otus.processes import get_process
    from otus.provenance import provenance

    proc = get_process(args.process)
    if args.lhe is None and args.delphes is None:
        raise ConfigError("give --lhe, --delphes or both")
    if args.max_events is not None and args.max_events < 1:
        raise ConfigError(f"--max-events must be positive, got {args.max_events}")
    z = x = x_pass = weight = None
    info: dict[str, object] = {}
    sel = None
    if args.lhe is not None:
        sel = select_lhe(args.lhe, proc, max_events=args.max_events)
        info["lhe"] = sel.info
    if args.delphes is not None:
        reco, w_delphes = read_delphes(args.delphes, entry_stop=args.max_events)
        try:
            x, x_pass = build_x(proc, reco)
        except OtusError as err:
            raise InputFileError(f"{args.delphes}: {err}") from None
        info["delphes"] = {"file": str(args.delphes), "n_events": len(x)}
    if sel is not None and x is not None:
        if len(sel.selected) != len(x):
            raise InputFileError(
                f"{args.lhe} holds {len(sel.selected)} events but {args.delphes} holds "
                f"{len(x)}; paired conversion needs the same events in the same order"
            )
        keep = sel.selected
        z, x, x_pass, weight = sel.z[keep], x[keep], x_pass[keep], sel.weight[keep]
        info["weights_agree"] = bool(np.allclose(w_delphes[keep], weight, rtol=1e-5, atol=0))
    elif sel is not None:
        z, weight = sel.z[sel.selected], sel.weight[sel.selected]
    else:
        weight = w_delphes
    if x_pass is not None and not x_pass.any():
        raise InputFileError(
            f"{args.delphes}: none of its {len(x_pass)} events passes the {proc.name} "
            "detector selection (see otus.physics.selection)"
        )
    inputs = [str(f) for f in (args.lhe, args.delphes) if f is not None]
    prov = provenance(
        seed=args.seed,
        inputs=inputs,
        command="convert",
        process=proc.name,
        max_events=args.max_events,
        **info,
    )
    ev = Events(proc, z=z, x=x, x_pass=x_pass, weight=weight, provenance=prov)
    write_events(args.out, ev)
    parts = [f"wrote {len(ev)} {proc.name} events to {args.out}"]
    if sel is not None and sel.info["n_skipped"]:
        parts.append(f"skipped {sel.info['n_skipped']} LHE events without the process")
    if x_pass is not None:
        parts.append(f"{int(x_pass.sum())} pass the detector selection")
    print("otus convert: " + "; ".join(parts), file=sys.stderr)
    return 0
