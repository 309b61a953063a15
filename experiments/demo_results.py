"""Demo: the numbers of a `make demo` report, copied into the ``demo`` section of
``experiments/results/demo.md``.

    time make demo        # note the `real` wall time
    python -m experiments.demo_results --wall 6m16s [--report demo_output/report.md]
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from experiments.common import ROOT, machine, results_path, write_section


def _between(text: str, start: str, end: str) -> str:
    a = text.index(start)
    return text[a : text.index(end, a)].strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wall", required=True, help="wall time of `make demo`, e.g. 6m16s")
    ap.add_argument("--report", type=Path, default=ROOT / "demo_output" / "report.md")
    ap.add_argument("--note", default="", help="a line on the conditions (load, install)")
    ap.add_argument("--out", type=Path, default=results_path("demo"))
    a = ap.parse_args(argv)
    rep = a.report.read_text()
    stamp = datetime.fromtimestamp(a.report.stat().st_mtime, timezone.utc)
    lines = [
        "## `make demo`: the main job end to end",
        "",
        f"- command: `time make demo`; wall time **{a.wall}**",
        f"- machine: {machine('torch default threads')}",
        f"- date: {stamp:%Y-%m-%d %H:%M} UTC (report written)",
        *([f"- note: {a.note}"] if a.note else []),
        "",
        _between(rep, "| stage |", "## Simulation"),
        "",
        "Numbers copied from the run's report.md by `python -m experiments.demo_results`.",
        "",
        "### Simulation: x vs D(z) on held-out events",
        "",
        _between(rep, "Classifier two-sample AUC", "![m_ee](eval_simulation"),
        "",
        "### Unfolding: z vs E(x) on held-out events",
        "",
        _between(rep, "## Unfolding", "![m_ee](eval_unfolding").split("\n", 1)[1].strip(),
        "",
        "### Calibration in the SR",
        "",
        _between(rep, "| sample in the SR |", "![m_ee](signal_region"),
        "",
    ]
    write_section(a.out, "demo", lines, title="Demo")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
