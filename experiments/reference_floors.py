"""Reference χ²_R between samples of the held-out file itself (no model), to read the
model's numbers against: statistical floor (z|pass vs z|pass from the other half), the
efficiency floor of a simulator without an efficiency model (all z vs z|pass), and the
identity map (no detector: x|pass vs z|pass). Prints only.

Usage: python -m experiments.reference_floors TEST.h5
"""

from __future__ import annotations

import argparse

from otus.io.h5 import read_events
from otus.metrics import compare

NAMES = {
    "zee": ["m_ee", "e+_py", "e+_pz", "e+_E"],
    "ttbar": ["m_W_had", "m_t_had", "m_t_lep", "m_tt"],
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("test", help="held-out event file (paired)")
    ev = read_events(ap.parse_args(argv).test)
    p = ev.process
    h = len(ev) // 2
    a, b = ev.subset(slice(0, h)), ev.subset(slice(h, 2 * h))
    names = NAMES[p.name]
    rows = {
        "z|pass(A) vs z|pass(B)  [statistical floor]": compare(
            p, a.z[a.x_pass], b.z[b.x_pass], "z"
        ),
        "z all(A) vs z|pass(B)   [no efficiency model]": compare(p, a.z, b.z[b.x_pass], "z"),
        "x|pass(A) vs x|pass(B)  [statistical floor]": compare(
            p, a.x[a.x_pass], b.x[b.x_pass], "x"
        ),
    }
    if p.name == "zee":  # same objects at both levels: the identity map is meaningful
        rows["x|pass(A) vs z|pass(B)  [identity map]"] = compare(
            p, a.x[a.x_pass], b.z[b.x_pass], "x"
        )
    for k, r in rows.items():
        print(f"{k}: " + ", ".join(f"{n} {r[n]['chi2_r']:.2f}" for n in names if n in r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
