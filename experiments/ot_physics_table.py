"""Markdown tables of ``experiments.ot_physics`` results (its JSON files), written as a section
of ``experiments/results/ot.md`` (the section ``--key``; a rerun replaces it).

    python -m experiments.ot_physics_table --key KEY --title "..." \\
        "label=experiments/results/a.json" "label 2=experiments/results/b.json"

The `before` and `floor` rows come from the first file holding them (all files must share
the MC and data samples); every file adds its `after` row under its label. The command,
machine and date of each file are listed under the tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from experiments.common import command, results_path, write_section

CHECK = ["e-_pt", "e+_pt", "e-_eta", "e+_eta", "m_ee", "pt_ee"]


def row(label: str, region: str, d: dict) -> str:
    chi = " | ".join(f"{d[f'chi2_r[{k}]']:.2f}" for k in CHECK)
    n = d.get("n", ["?", "?"])
    return f"| {label} | {region} | {chi} | {d['auc']:.3f} ± {d['auc_err']:.3f} | {n[0]} / {n[1]} |"


def tables(runs: list[tuple[str, dict]]) -> list[str]:
    def sample(r: dict) -> tuple:
        return tuple(r["args"][k] for k in ("events", "energy_scale", "resolution_scale"))

    if len({sample(r) for _, r in runs}) != 1:
        raise SystemExit("the files compare different samples; make one table per sample")
    head = "| sample | region | " + " | ".join(f"χ²_R {k}" for k in CHECK)
    out = [head + " | classifier AUC | events MC / data |", "|---" * (len(CHECK) + 4) + "|"]
    for region in ("CR", "SR"):
        out.append(row("MC before", region, runs[0][1][region]["before"]))
        floor = next((r[region]["floor"] for _, r in runs if "floor" in r[region]), None)
        if floor is not None:
            out.append(row("floor (second data sample)", region, floor))
        out += [row(label, region, r[region]["after"]) for label, r in runs]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="label=path.json")
    ap.add_argument("--title", required=True)
    ap.add_argument("--key", required=True, help="the section of the results file")
    ap.add_argument("--text", default="", help="paragraph under the title")
    ap.add_argument("--out", type=Path, default=results_path("ot"))
    args = ap.parse_args(argv)
    runs = []
    for spec in args.runs:
        label, _, path = spec.rpartition("=")
        runs.append((label, json.loads(Path(path).read_text())))
    a = runs[0][1]["args"]
    out = [f"## {args.title}", ""]
    if args.text:
        out += [args.text, ""]
    out += [
        f"Samples: {a['events']} zee events each; data response {a['resolution_scale']}× "
        f"resolution, {a['energy_scale']} energy scale; CR 80 < m_ee < 100, SR outside.",
        "",
        *tables(runs),
        "",
        "Runs:",
    ]
    for (label, r), spec in zip(runs, args.runs, strict=True):
        out.append(
            f"- {label} (`{spec.rpartition('=')[2]}`): `{r.get('command', '?')}`; "
            + (
                f"training loop {r['map_fit_s']:.0f} s"
                if r.get("map_fit_s")
                else f"fit {r['fit_s']:.0f} s"
                if r["fit_s"] > 5
                else "map cached from an earlier run"
            )
            + f"; {r.get('machine', '?')}; {r.get('date', '?')}"
            + (
                f"; m_ee plot `{Path(spec.rpartition('=')[2]).with_suffix('.png')}`"
                if Path(spec.rpartition("=")[2]).with_suffix(".png").is_file()
                else ""
            )
        )
    out.append("")
    shown = [("<the paragraph above>" if a == args.text and a else a) for a in sys.argv[1:]]
    out.append(f"Written by `{command('ot_physics_table', shown)}`.")
    write_section(args.out, args.key, out, title="Optimal-transport calibration")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
