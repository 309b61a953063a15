"""Fidelity of trained OTUS runs on held-out event files (SPEC §8, ANCHORS OTUS protocol).

Each held-out file is split into halves A and B so that truth and prediction are
independent samples:

* simulation x vs x̃′ = D(z): passing x of A against D(z of B), truncated by the detector
  acceptance (like real data);
* unfolding z vs z̃ = E(x): z of A's passing events (what an unfolder of passing events can
  recover) against E(passing x of B); also against all z of A, reported as ``unfold_all``;
* autoencoder x vs x̃ = D(E(x)) on B's passing events against A's.

Prints and writes (``--out``) a JSON report: per-observable W, χ²_R, KS (otus.metrics), the
global sliced W2 on standardised rows, classifier AUCs and the simulation speed. Everything
follows the run's process card: the headline observables are the card's observables of each
level and the anchor particle's pT and E; the *mass* of a level is the card's first ``mass``
or ``mt`` observable there (e.g. zee: m_ee at both levels; a W → e ν card: mt of (e, ν)
at parton level, mt of (e, MET) at detector level), so any final state gets the same table.

The goals table has one row per run (several ``RUN --test FILE`` pairs may be given) with
the mass χ²_R of simulation and unfolding and the simulation AUC, checked against the goals
for a new final state trained with the project defaults (:data:`GOALS`), and the command,
machine and date.

``--markdown`` writes that table as a section of ``experiments/results/processes.md`` (the
section of the runs' processes: a rerun on the same processes replaces it).

Usage::

    python -m experiments.evaluate_model RUN --test TEST.h5 [--out report.json]
    python -m experiments.evaluate_model RUN1 RUN2 --test T1.h5 T2.h5 --markdown
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.common import (
    command,
    header,
    machine,
    now,
    results_path,
    run_progress,
    write_section,
)
from otus.evaluation import auc_features
from otus.io.h5 import read_events
from otus.metrics import classifier_auc, compare, sliced_w2
from otus.models.api import load_run
from otus.physics.selection import acceptance
from otus.processes import Process

# Goals for a final state trained with the default config (no --config), paired or not.
GOALS = {"simulate_mass_chi2_r": 2.5, "simulate_auc": 0.65, "unfold_mass_chi2_r": 10.0}
TITLE = "New final states: fidelity with the default config"


def _std_sw(a: np.ndarray, b: np.ndarray) -> float:
    mu, sd = a.mean(0), a.std(0) + 1e-9
    return sliced_w2((a - mu) / sd, (b - mu) / sd, n_projections=1000, seed=0)


def mass_observable(process: Process, level: str) -> str | None:
    """The card's first ``mass`` or ``mt`` observable of ``level`` (a built-in's first)."""
    names = process.objects(level)
    for ob in process.observable_defs:
        if ob.kind in ("mass", "mt") and all(o in names for o in ob.objects):
            return ob.name
        if ob.kind == "builtin":
            return process.observable_names(level)[0] if process.observable_names(level) else None
    return None


def headline(process: Process, level: str) -> list[str]:
    """Observables printed per section: the card's, then the anchor particle's pT and E."""
    anchor = process.objects(level)[process.anchor[0 if level == "z" else 1]]
    return [*process.observable_names(level), f"{anchor}_pt", f"{anchor}_E"]


def _training(run: Path) -> dict[str, Any]:
    """How the run was trained: input files (one: paired file; two: x and z files), the
    epochs begun and optimiser steps done (as logged in metrics.csv)."""
    out: dict[str, Any] = {"inputs": [], "epochs": None, "steps": None}
    prov = run / "provenance.json"
    if prov.is_file():
        p = json.loads(prov.read_text())
        out["inputs"] = list(p.get("inputs") or [])  # {path: sha256}: x file, then z file
    progress = run_progress(run)
    if progress:
        out["epochs"], out["steps"] = progress
    return out


def evaluate_run(
    run: str | Path,
    test: str | Path,
    *,
    seed: int = 123,
    max_events: int = 60000,
    auc: bool = True,
) -> dict[str, Any]:
    """The half-split fidelity report of one run on one held-out file (see module doc)."""
    sur = load_run(run)
    p = sur.process
    ev = read_events(test, p.name).subset(slice(0, max_events))
    n = len(ev)
    half = n // 2
    a, b = ev.subset(slice(0, half)), ev.subset(slice(half, 2 * half))
    xa = a.x[a.x_pass]
    za_pass = a.z[a.x_pass]
    xb = b.x[b.x_pass]

    t0 = time.perf_counter()
    xs, acc = sur.simulate(b.z, seed=seed, with_pass=True)
    t_sim = time.perf_counter() - t0
    xs_pass = xs[acc]
    zu = sur.unfold(xb, seed=seed + 1)
    xae = sur.simulate(zu, seed=seed + 2)
    xae = xae[np.asarray(acceptance(p, xae.astype(np.float64)), bool)]

    rep: dict[str, Any] = {
        "run": str(run),
        "test": str(test),
        "process": p.name,
        "training": _training(Path(run)),
        "events": 2 * half,
        "pass_rate_truth": float(a.x_pass.mean()),
        "pass_rate_D(z)": float(acc.mean()),
        "simulate_events_per_s": float(len(b.z) / t_sim),
        "mass_observable": {"x": mass_observable(p, "x"), "z": mass_observable(p, "z")},
        "headline": {"x": headline(p, "x"), "z": headline(p, "z")},
    }
    sections = {
        "simulate": compare(p, xa, xs_pass, "x"),
        "autoencode": compare(p, xa, xae, "x"),
        "unfold": compare(p, za_pass, zu, "z"),
        "unfold_all": compare(p, a.z, zu, "z"),
    }
    rep.update(sections)
    rep["global_sw2"] = {
        "simulate": _std_sw(xa, xs_pass),
        "unfold": _std_sw(za_pass, zu),
        "autoencode": _std_sw(xa, xae),
    }
    if auc:
        fa, fs = auc_features(p, xa, xs_pass, "x")
        auc_s, err = classifier_auc(fa, fs, seed=0, n_bootstrap=20, max_events=30000, n_threads=1)
        fz, fu = auc_features(p, za_pass, zu, "z")
        auc_u, err_u = classifier_auc(fz, fu, seed=0, n_bootstrap=20, max_events=30000, n_threads=1)
        rep["auc"] = {"simulate": [auc_s, err], "unfold": [auc_u, err_u]}
    return rep


def summary(rep: dict[str, Any]) -> str:
    """The printed lines of one report."""
    lines = [f"{rep['run']} on {rep['test']} ({rep['events']} events)"]
    for sec, level in (("simulate", "x"), ("unfold", "z"), ("autoencode", "x")):
        row = rep[sec]
        cells = [f"{k} {row[k]['chi2_r']:.2f}" for k in rep["headline"][level] if k in row]
        lines.append(f"  chi2_R {sec:10s}: " + ", ".join(cells))
    lines.append(
        "  global SW2 (standardised): "
        + ", ".join(f"{k} {v:.4f}" for k, v in rep["global_sw2"].items())
    )
    if "auc" in rep:
        lines.append(
            "  AUC: " + ", ".join(f"{k} {v[0]:.3f}±{v[1]:.3f}" for k, v in rep["auc"].items())
        )
    lines.append(
        f"  pass rate truth {rep['pass_rate_truth']:.3f}, pass rate of D(z) "
        f"{rep['pass_rate_D(z)']:.3f}, simulate {rep['simulate_events_per_s']:.3g} ev/s"
    )
    return "\n".join(lines)


def goal_row(rep: dict[str, Any]) -> dict[str, Any]:
    """The goal quantities of one report and whether each is met."""
    mx, mz = rep["mass_observable"]["x"], rep["mass_observable"]["z"]
    vals = {
        "simulate_mass_chi2_r": rep["simulate"][mx]["chi2_r"] if mx else None,
        "simulate_auc": rep["auc"]["simulate"][0] if "auc" in rep else None,
        "unfold_mass_chi2_r": rep["unfold"][mz]["chi2_r"] if mz else None,
    }
    met = {k: (v is not None and v <= GOALS[k]) for k, v in vals.items()}
    return {"values": vals, "met": met, "mass_x": mx, "mass_z": mz}


def _mode(rep: dict[str, Any]) -> str:
    inputs = rep["training"]["inputs"]
    if len(inputs) >= 2:
        return f"unpaired: x {Path(inputs[0]).parent.name}, z {Path(inputs[1]).name}"
    return f"one paired file ({Path(inputs[0]).parent.name})" if inputs else "?"


def markdown(reports: list[dict[str, Any]], meta: dict[str, str], title: str = TITLE) -> str:
    """The goals table: one row per run, under ``title`` and the command, machine and date."""
    g = GOALS
    notes = [f"note: {meta['note']}"] if meta.get("note") else []
    out = header(
        title, command=meta["command"], machine=meta["machine"], date=meta["date"], notes=notes
    )
    out += [
        "Half-split method of `experiments.evaluate_model` (truth from half A of the "
        "held-out file, predictions from the inputs of half B). Mass: the card's first mass "
        "or transverse-mass observable of each level. Goals: simulation mass "
        f"χ²_R ≤ {g['simulate_mass_chi2_r']}, simulation AUC ≤ {g['simulate_auc']}, "
        f"unfolding mass χ²_R ≤ {g['unfold_mass_chi2_r']}; a miss is marked ✗.",
        "",
        "| process | training | epochs / steps | held-out events | simulation mass | χ²_R | AUC "
        "| unfolding mass | χ²_R | pass rate true / D(z) | goals |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        gr = goal_row(r)
        v, m = gr["values"], gr["met"]

        def cell(key: str, fmt: str, v: dict[str, Any] = v, m: dict[str, bool] = m) -> str:
            return "–" if v[key] is None else format(v[key], fmt) + ("" if m[key] else " ✗")

        auc_err = f" ± {r['auc']['simulate'][1]:.3f}" if "auc" in r else ""
        out.append(
            f"| {r['process']} | {_mode(r)} | {r['training']['epochs'] or '?'} / "
            f"{r['training']['steps'] or '?'} | {r['events']} "
            f"| {gr['mass_x']} | {cell('simulate_mass_chi2_r', '.2f')} "
            f"| {cell('simulate_auc', '.3f')}{auc_err} | {gr['mass_z']} "
            f"| {cell('unfold_mass_chi2_r', '.2f')} "
            f"| {r['pass_rate_truth']:.3f} / {r['pass_rate_D(z)']:.3f} "
            f"| {'all met' if all(m.values()) else 'missed'} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="+", help="trained run folder(s)")
    ap.add_argument(
        "--test", required=True, nargs="+", help="held-out event file(s): one, or one per run"
    )
    ap.add_argument("--out", default=None, help="JSON report (a list when several runs)")
    ap.add_argument(
        "--markdown",
        nargs="?",
        const=results_path("processes"),
        default=None,
        type=Path,
        help="write the goals table of all runs into this results file "
        "(default experiments/results/processes.md)",
    )
    ap.add_argument("--title", default=TITLE, help="heading of the goals table")
    ap.add_argument("--note", default="", help="a line for the Markdown table")
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--max-events", type=int, default=60000)
    ap.add_argument("--no-auc", action="store_true")
    args = ap.parse_args(argv)
    if len(args.test) not in (1, len(args.run)):
        ap.error("give one --test file, or one per run")
    torch.set_num_threads(1)
    tests = args.test * len(args.run) if len(args.test) == 1 else args.test
    reports = []
    for run, test in zip(args.run, tests, strict=True):
        rep = evaluate_run(
            run, test, seed=args.seed, max_events=args.max_events, auc=not args.no_auc
        )
        print(summary(rep), flush=True)
        reports.append(rep)
    if args.out:
        Path(args.out).write_text(
            json.dumps(reports[0] if len(reports) == 1 else reports, indent=1)
        )
    if args.markdown:
        meta = {
            "command": command("evaluate_model", argv),
            "machine": machine("torch threads: training default, evaluation 1"),
            "date": now(),
            "note": args.note,
        }
        key = ", ".join(sorted({r["process"] for r in reports}))
        write_section(
            args.markdown, key, markdown(reports, meta, args.title), title="New final states"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
