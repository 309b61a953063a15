"""Assemble experiments/RESULTS.md: for each capability, the headline of its results file
(``experiments/results/<name>.md``): everything up to the end of its first table, which is
the first section's command, machine, date and table.

    python -m experiments.make_results
"""

from __future__ import annotations

from pathlib import Path

from experiments.common import RESULTS

HERE = Path(__file__).resolve().parent
# (capability, results file stem, script(s)); a capability without a file is not measured yet
CAPABILITIES: list[tuple[str, str | None, str]] = [
    ("Model fidelity", "fidelity", "fidelity, evaluate_model, train_sweep"),
    ("New final states", "processes", "evaluate_model"),
    ("Detector zoo", "zoo", "zoo"),
    ("Data-driven training", "data_driven", "data_driven"),
    ("Unfolding", "unfold", "unfold_bench (+ peers in make bench-env)"),
    ("Reweighting", "reweight", "reweight_bench"),
    ("Optimal-transport calibration", "ot", "ot_bench, ot_physics"),
    ("Generator validation", "generate", "validate_generate"),
    ("Speed", "speed", "bench_speed"),
    ("Memory", "memory", "bench_memory"),
    ("I/O", "io", "bench_io"),
    ("Reliability", "reliability", "reliability_table"),
    ("Demo", "demo", "demo_results"),
]


def headline(text: str) -> list[str]:
    """The lines of a results file after its title, up to the end of its first table, without
    the section markers, headings one level down."""
    out: list[str] = []
    in_table = False
    for ln in text.splitlines()[1:]:
        if ln.startswith("<!--"):
            continue
        if in_table and not ln.startswith("|"):
            break
        in_table = ln.startswith("|")
        out.append("#" + ln if ln.startswith("#") else ln)
    while out and not out[0].strip():
        out.pop(0)
    return out


def main() -> int:
    out = [
        "# Results",
        "",
        "One section per capability: the headline of its results file in `experiments/results/` "
        "(the command that made it, the machine, the date and its first table; the file holds "
        "the rest). Rerun a capability with its command (experiments/README.md), then "
        "`python -m experiments.make_results`. Rows that miss a goal are reported as they are.",
        "",
        "| capability | script (`python -m experiments.NAME`) | results |",
        "|---|---|---|",
    ]
    for title, stem, script in CAPABILITIES:
        link = f"[results/{stem}.md](results/{stem}.md)" if stem else "not measured yet"
        out.append(f"| {title} | {script} | {link} |")
    for title, stem, _ in CAPABILITIES:
        if stem is None:
            continue
        path = RESULTS / f"{stem}.md"
        out += ["", f"## {title}", ""]
        if not path.is_file():
            out.append(f"Not measured yet: no `results/{stem}.md`.")
            continue
        out += headline(path.read_text())
        out += ["", f"All of it: [results/{stem}.md](results/{stem}.md)."]
    (HERE / "RESULTS.md").write_text("\n".join(out) + "\n")
    print(f"wrote {HERE / 'RESULTS.md'} ({len(out)} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
