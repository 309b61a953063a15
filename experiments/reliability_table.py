"""Reliability report (issue 8): run every bad input of the test table, a seeded fuzzing
campaign against the readers, and the SIGKILL/--resume scenario; write
``experiments/results/reliability.md`` (and ``.json``).

Usage: ``PYTHONPATH=. python experiments/reliability_table.py [--fuzz N] [--no-kill]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

import numpy as np  # noqa: E402
import rel_cases_cmds  # noqa: E402, F401  (registers the command cases)
from _pytest.outcomes import Skipped  # noqa: E402
from rel_cases import CASES, GOOD, run_case  # noqa: E402
from rel_samples import make_samples  # noqa: E402

from otus.errors import OtusError  # noqa: E402


def bad_inputs(root: Path) -> tuple[list[dict], dict[str, Counter]]:
    samples = make_samples(root / "samples")
    rows, by_cat = [], defaultdict(Counter)
    for i, c in enumerate(CASES):
        tmp = root / f"case{i}"
        tmp.mkdir()
        try:
            out = run_case(c, tmp, samples)
            status = "refused" if out.ok else "FAILED"
            detail = out.detail
        except Skipped as err:
            status, detail = "skipped", str(err)
        by_cat[c.category][status] += 1
        rows.append(
            {
                "category": c.category,
                "case": c.name,
                "target": c.target,
                "status": status,
                "detail": detail,
            }
        )
    for i, g in enumerate(GOOD):
        tmp = root / f"good{i}"
        tmp.mkdir()
        try:
            ok = bool(g.check(g.make(tmp, samples)()))
        except Exception as err:  # reported, not hidden
            ok, g_err = False, err
        else:
            g_err = None
        by_cat["(valid edge case) " + g.category]["accepted" if ok else "FAILED"] += 1
        rows.append(
            {
                "category": "(valid) " + g.category,
                "case": g.name,
                "target": "reader",
                "status": "accepted" if ok else "FAILED",
                "detail": "" if g_err is None else repr(g_err),
            }
        )
    return rows, by_cat


def fuzz(root: Path, n: int, seed: int) -> dict[str, Counter]:
    """n seeded random mutations per reader target; outcome counts."""
    from test_fuzz_readers import TOKEN_LIST, edit_lines, mutate

    from otus.io.delphes import read_delphes
    from otus.io.h5 import iter_chunks, read_events
    from otus.io.lhe import read_lhe

    samples = make_samples(root / "fuzz_samples")
    rng = np.random.default_rng(seed)
    tokens = TOKEN_LIST

    def byte_mutation() -> tuple:
        kind = rng.choice(["flip", "head", "cut", "insert"])
        if kind in ("flip", "head"):
            k = int(rng.integers(1, 13))
            return (kind, [(float(rng.random()), int(rng.integers(256))) for _ in range(k)])
        if kind == "cut":
            return ("cut", float(rng.random()))
        return ("insert", float(rng.random()), rng.bytes(int(rng.integers(1, 33))))

    targets = {
        "read_lhe (zee .lhe bytes)": (samples.path("zee", "lhe"), lambda q: read_lhe(q, "zee")),
        "read_lhe (zee .lhe.gz bytes)": (
            samples.path("zee", "lhe_gz"),
            lambda q: read_lhe(q, "zee"),
        ),
        "read_lhe (ttbar .lhe lines)": (
            samples.path("ttbar", "lhe"),
            lambda q: read_lhe(q, "ttbar"),
        ),
        "read_events + iter_chunks (.h5 bytes)": (
            samples.path("zee", "h5"),
            lambda q: (read_events(q, "zee"), list(iter_chunks(q, 7, "zee"))),
        ),
        "read_delphes (.root bytes)": (samples.path("ttbar", "root"), read_delphes),
    }
    out: dict[str, Counter] = {}
    for name, (src, fn) in targets.items():
        cnt: Counter = Counter()
        data = src.read_bytes()
        for i in range(n):
            q = root / "fuzz" / f"{i}{''.join(src.suffixes)}"
            q.parent.mkdir(exist_ok=True)
            if "lines" in name:
                edits = [
                    (
                        str(rng.choice(["token", "delete", "duplicate", "swap"])),
                        float(rng.random()),
                        float(rng.random()),
                        str(rng.choice(tokens)),
                    )
                    for _ in range(int(rng.integers(1, 5)))
                ]
                q.write_text(edit_lines(data.decode(), edits), encoding="utf-8")
            else:
                q.write_bytes(mutate(data, byte_mutation()))
            try:
                fn(q)
                cnt["read as valid events"] += 1
            except OtusError as err:
                cnt["refused, one line" if "\n" not in str(err) else "FAILED multi-line"] += 1
            except Exception as err:
                cnt[f"FAILED {type(err).__name__}"] += 1
        out[name] = cnt
    return out


def interrupt(root: Path) -> dict:
    from rel_samples import make_samples as mk
    from test_interrupt import kill_and_resume

    (root / "kill").mkdir()
    return kill_and_resume(mk(root / "kill_samples"), root / "kill")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fuzz", type=int, default=150, help="mutations per reader (default 150)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-kill", action="store_true", help="skip the SIGKILL scenario")
    ap.add_argument("--out", type=Path, default=ROOT / "experiments" / "results")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        rows, by_cat = bad_inputs(root)
        fz = fuzz(root, args.fuzz, args.seed)
        kill = None if args.no_kill else interrupt(root)
    lines = [
        "# Reliability: bad inputs and faults survived",
        "",
        "Made by `PYTHONPATH=. python experiments/reliability_table.py"
        f" --fuzz {args.fuzz} --seed {args.seed}` in {time.time() - t0:.0f} s. "
        "*Refused* = exit 2 with one line `otus CMD: error: FILE: problem` (or one-line "
        "`OtusError` from a reader) matching the expected message, and no output or "
        "temporary file left. The cases are the table in "
        "`tests/reliability/rel_cases*.py`, run by `tests/reliability/test_bad_inputs.py`.",
        "",
        "## Bad inputs by category",
        "",
        "| category | tried | refused as promised | skipped | failed |",
        "|---|---|---|---|---|",
    ]
    tot = Counter()
    for cat, c in by_cat.items():
        tried = sum(c.values())
        good = c["refused"] + c["accepted"]
        lines.append(f"| {cat} | {tried} | {good} | {c['skipped']} | {c['FAILED']} |")
        tot.update({"tried": tried, "good": good, "skipped": c["skipped"], "failed": c["FAILED"]})
    lines += [
        f"| **all** | **{tot['tried']}** | **{tot['good']}** | {tot['skipped']} | "
        f"**{tot['failed']}** |",
        "",
        "Valid edge cases (negative or zero weights, failed reconstructions, misnamed "
        "gzip) count as *refused as promised* when they are **accepted** and read "
        "correctly.",
        "",
        "## Fuzzing the readers (seeded random mutations)",
        "",
        "| reader (mutated input) | mutations | read as valid events | refused, one line "
        "| other exceptions |",
        "|---|---|---|---|---|",
    ]
    for name, c in fz.items():
        other = sum(v for k, v in c.items() if k.startswith("FAILED"))
        lines.append(
            f"| {name} | {sum(c.values())} | {c['read as valid events']} | "
            f"{c['refused, one line']} | {other} |"
        )
    if kill is not None:
        same = not kill["weights_differ"] and kill["val_ref"] == kill["val_resumed"]
        lines += [
            "",
            "## Interrupted training (SIGKILL, then `otus fit --resume`)",
            "",
            "| measure | value |",
            "|---|---|",
            f"| process exit | {kill['returncode']} (SIGKILL) |",
            f"| last checkpoint after the kill | epoch {kill['saved_epoch']}, readable |",
            f"| work lost | {kill['lost_s']:.2f} s (checkpoint interval "
            f"{kill['interval_s']:.2f} s) |",
            f"| temporary files left | {len(kill['leftovers'])} |",
            f"| final epoch / steps, uninterrupted vs resumed | {kill['epochs']} / "
            f"{kill['steps']} |",
            f"| weights and validation metrics identical | {'yes' if same else 'NO'} |",
        ]
    failures = [r for r in rows if r["status"] == "FAILED"]
    if failures:
        lines += ["", "## Failed cases", ""] + [
            f"- {r['category']} / {r['case']}: {r['detail']}" for r in failures
        ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reliability.md").write_text("\n".join(lines) + "\n")
    (args.out / "reliability.json").write_text(
        json.dumps(
            {"cases": rows, "fuzz": {k: dict(v) for k, v in fz.items()}, "interrupt": kill},
            indent=1,
            default=str,
        )
    )
    print("(python experiments/make_results.py puts this into experiments/RESULTS.md)")
    print("\n".join(lines))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
