"""Reliability: what the reliability suite (``tests/reliability``) shows, as tables. Writes the
``reliability`` section of ``experiments/results/reliability.md``.

    python -m experiments.reliability_table [--no-kill]

Runs the bad-input table (``test_bad_inputs.py``), the fuzzing of the readers
(``test_fuzz_readers.py``) and the SIGKILL/``--resume`` scenario (``test_interrupt.py``) with
pytest in a subprocess, and reads its JUnit XML report: the outcome of each case by the
category it records, the outcome of each fuzzed read (its ``fuzz`` property), and the
interrupted run's measurements (its ``kill_and_resume`` property).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

from experiments.common import (
    ROOT,
    command,
    header,
    machine,
    results_path,
    table,
    work_dir,
    write_section,
)

SUITE = ROOT / "tests" / "reliability"
FILES = ("test_bad_inputs.py", "test_fuzz_readers.py", "test_interrupt.py")
# fuzz test (without parameters) -> what it mutates and reads
READERS = {
    "test_read_lhe_mutated_bytes": "read_lhe (bytes)",
    "test_read_lhe_mutated_lines": "read_lhe (.lhe lines)",
    "test_read_events_mutated_bytes": "read_events + iter_chunks (.h5 bytes)",
    "test_read_delphes_mutated_bytes": "read_delphes (.root bytes)",
}


def run_suite(report: Path, kill: bool) -> float:
    """Run the reliability tests with a JUnit XML ``report``; return the wall time."""
    args = [str(SUITE / f) for f in FILES if kill or f != "test_interrupt.py"]
    t0 = time.time()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *args,
            f"--junitxml={report}",
            "-o",
            "junit_family=xunit1",
        ],
        cwd=ROOT,
        check=False,
    )
    return time.time() - t0


def _reader(test: str) -> str:
    """``test_read_lhe_mutated_bytes[zee-lhe]`` -> ``read_lhe (bytes), zee-lhe``."""
    base, _, params = test.partition("[")
    return READERS.get(base, base) + (f", {params.rstrip(']')}" if params else "")


def parse(report: Path) -> tuple[dict[str, Counter], dict[str, Counter], dict | None, list[str]]:
    """(outcomes by category, fuzz outcomes by reader, the kill-and-resume record, failures)."""
    cats: dict[str, Counter] = defaultdict(Counter)
    fuzz: dict[str, Counter] = defaultdict(Counter)
    kill, failures = None, []
    for case in ET.parse(report).getroot().iter("testcase"):
        name = case.get("name", "")
        props = [(p.get("name"), p.get("value", "")) for p in case.iter("property")]
        failed = case.find("failure") is not None or case.find("error") is not None
        status = "failed" if failed else "skipped" if case.find("skipped") is not None else "ok"
        if failed:
            failures.append(name)
        for key, value in props:
            if key == "category":
                cats[value][status] += 1
            elif key == "fuzz":
                fuzz[_reader(name)][value] += 1
            elif key == "kill_and_resume":
                kill = json.loads(value)
        if failed and name.split("[")[0] in READERS:
            fuzz[_reader(name)]["failed"] += 1
    return cats, fuzz, kill, failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-kill", action="store_true", help="skip the SIGKILL scenario")
    ap.add_argument("--out", type=Path, default=results_path("reliability"))
    args = ap.parse_args(argv)
    with work_dir(None, "reliability") as d:
        seconds = run_suite(d / "junit.xml", not args.no_kill)
        cats, fuzz, kill, failures = parse(d / "junit.xml")
    lines = header(
        "Bad inputs refused, by category",
        command=command("reliability_table", argv),
        machine=machine(),
        notes=[f"the suite ran in {seconds:.0f} s"],
    )
    lines += [
        "*Refused as promised* = exit 2 with one line `otus CMD: error: FILE: problem` (or a "
        "one-line `OtusError` from a reader) matching the expected message, and no output or "
        "temporary file left; a valid edge case (negative or zero weights, failed "
        "reconstructions, a misnamed gzip) counts when it is *accepted* and read correctly. "
        "The cases: `tests/reliability/rel_cases*.py`.",
        "",
    ]
    rows, tot = [], Counter()
    for cat, c in cats.items():
        tried = sum(c.values())
        rows.append([cat, tried, c["ok"], c["skipped"], c["failed"]])
        tot.update({"tried": tried, "ok": c["ok"], "skipped": c["skipped"], "failed": c["failed"]})
    rows.append(["**all**", f"**{tot['tried']}**", f"**{tot['ok']}**", tot["skipped"]])
    rows[-1].append(f"**{tot['failed']}**")
    lines += table("category | tried | refused as promised | skipped | failed", rows)
    lines += [
        "",
        "### Fuzzing the readers (hypothesis examples, derandomised)",
        "",
        *table(
            "reader (mutated input) | reads | read as valid events | refused, one line "
            "| anything else (failed)",
            (
                [
                    name,
                    sum(c.values()),
                    c["read as valid events"],
                    c["refused, one line"],
                    c["failed"],
                ]
                for name, c in fuzz.items()
            ),
        ),
    ]
    if kill is not None:
        same = not kill["weights_differ"] and kill["val_ref"] == kill["val_resumed"]
        lines += [
            "",
            "### Interrupted training (SIGKILL, then `otus fit --resume`)",
            "",
            *table(
                "measure | value",
                [
                    ["process exit", f"{kill['returncode']} (SIGKILL)"],
                    ["last checkpoint after the kill", f"epoch {kill['saved_epoch']}, readable"],
                    [
                        "work lost",
                        f"{kill['lost_s']:.2f} s (checkpoint interval {kill['interval_s']:.2f} s)",
                    ],
                    ["temporary files left", len(kill["leftovers"])],
                    [
                        "final epoch / steps, uninterrupted vs resumed",
                        f"{tuple(kill['epochs'])} / {tuple(kill['steps'])}",
                    ],
                    ["weights and validation metrics identical", "yes" if same else "NO"],
                ],
            ),
        ]
    if failures:
        lines += ["", "### Failed tests", "", *(f"- `{f}`" for f in failures)]
    write_section(args.out, "reliability", lines, title="Reliability")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
