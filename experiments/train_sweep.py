"""Train several OTUS configurations side by side (e.g. on one GPU), each a plain `otus fit`.

    python -m experiments.train_sweep SWEEP.json --out DIR [--max-time SECONDS]
        [--accelerator cpu]

SWEEP.json maps a run name to [process, base yaml, data file, overrides]; overrides are
config sections ({"loss": {"data": 0.1}}), top-level keys ({"seed": 1}) and "epochs"; environment variables in the data
path are expanded (``$S/zee_train/events.h5``). Every run gets DIR/NAME (run folder)
and DIR/NAME.log. ``experiments/sweeps/configs.json`` trains the configurations of the
model-fidelity table (experiments/results/fidelity.md) from the samples made as in
experiments/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml


def _config(
    base: str, over: dict, epochs: int, accelerator: str, max_time: str | None, path: Path
) -> Path:
    c = yaml.safe_load(Path(base).read_text())
    for sec, kv in over.items():  # a config section, or a top-level key such as "seed"
        if isinstance(kv, dict):
            c.setdefault(sec, {}).update(kv)
        else:
            c[sec] = kv
    c["trainer"].update(
        {
            "accelerator": accelerator,
            "max_epochs": epochs,
            "checkpoint_every_n_epochs": 10_000,
            "max_time": max_time,
        }
    )
    path.write_text(yaml.safe_dump(c, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--max-time", type=int, default=None, help="per-run wall limit [s]")
    ap.add_argument("--accelerator", default="gpu")
    args = ap.parse_args(argv)
    runs = json.loads(args.sweep.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    mt = time.strftime("00:%H:%M:%S", time.gmtime(args.max_time)) if args.max_time else None
    procs = {}
    for name, (proc, base, data, over) in runs.items():
        over = dict(over)
        epochs = int(over.pop("epochs"))
        cfg = _config(base, over, epochs, args.accelerator, mt, args.out / f"{name}.yaml")
        cmd = [
            sys.executable,
            "-m",
            "otus",
            "fit",
            proc,
            "--data",
            os.path.expandvars(data),
            "--config",
            str(cfg),
            "--out",
            str(args.out / name),
        ]
        log = open(args.out / f"{name}.log", "w")  # the child process owns it
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), time.time())
    rc = 0
    for name, (p, t0) in procs.items():
        p.wait()
        rc |= p.returncode
        print(f"{name}: rc {p.returncode}, {time.time() - t0:.0f} s", flush=True)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
