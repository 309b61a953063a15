"""``otus demo``: the whole job end to end on freshly generated Z → ee events."""

from __future__ import annotations

import argparse

from otus.cli._common import add_seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole chain end to end and write a report",
        description="Generate Z→ee events, train OTUS, simulate and unfold held-out events, "
        "calibrate simulation toward pseudo-data by reweighting and by ICNN transport, "
        "evaluate everything and write DIR/report.md and DIR/report.html.",
    )
    p.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes, for a smoke test (seconds)")
    add_seed(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from otus.demo import TINY, DemoSettings, run_demo

    settings = replace(TINY if args.tiny else DemoSettings(), seed=args.seed)
    run_demo(args.out, settings=settings)
    return 0
