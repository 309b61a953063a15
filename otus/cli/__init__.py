"""The ``otus`` command line. Each subcommand lives in its own module ``otus.cli.<name>``
with ``register(subparsers)``; heavy imports happen inside the command, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import otus
from otus.errors import OtusError

COMMANDS = (
    "generate",
    "convert",
    "fit",
    "apply",  # simulate, unfold
    "reweight",
    "calibrate",
    "evaluate",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otus",
        description="Optimal-transport simulation, unfolding and calibration for particle physics.",
    )
    parser.add_argument("--version", action="version", version=f"otus {otus.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"otus.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"otus.cli.{name}":
                continue  # command not built in this installation
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except OtusError as err:
        print(f"otus {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (
        FileNotFoundError,
        FileExistsError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
    ) as err:
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        print(f"otus {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"otus {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
