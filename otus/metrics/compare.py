"""Per-observable metrics of one process (:func:`compare`), on the observables of
:mod:`otus.physics.observables`."""

from __future__ import annotations

from typing import Any

import numpy as np

from otus.errors import OtusError
from otus.metrics.univariate import DEFAULT_BINS, _weights, all_1d


def compare(
    process: Any,
    truth_rows: Any,
    pred_rows: Any,
    level: str,
    *,
    wt: Any = None,
    wp: Any = None,
    bins: int = DEFAULT_BINS,
    observables: list[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Per-observable metrics between truth and prediction rows of one process.

    ``level`` is ``'z'`` or ``'x'``; rows are [N, Dz] or [N, Dx] (rows with NaN, i.e.
    non-passing events, are dropped per observable). Returns
    ``{observable: {"W", "chi2_r", "KS", "triangular", "mean_truth", "mean_pred"}}`` for every
    observable of :func:`otus.physics.observables.observables` (or the given subset).
    Observables constant in both samples (e.g. MET pz) are skipped.
    """
    from otus.physics.observables import observables as obs_fn
    from otus.processes import Process, get_process

    proc = process if isinstance(process, Process) else get_process(str(process))
    if level not in ("z", "x"):
        raise OtusError(f"level must be 'z' or 'x', got {level!r}")
    dim = proc.dz if level == "z" else proc.dx
    t = np.asarray(truth_rows, dtype=np.float64)
    p = np.asarray(pred_rows, dtype=np.float64)
    for name, a in (("truth", t), ("prediction", p)):
        if a.ndim != 2 or a.shape[1] != dim:
            raise OtusError(
                f"{name} rows have shape {a.shape}, expected [N, {dim}] for {proc.name} {level}"
            )
        if len(a) == 0:
            raise OtusError(f"{name} is an empty sample")
    wt = _weights(wt, len(t), "truth weights")
    wp = _weights(wp, len(p), "prediction weights")
    ot, op = obs_fn(proc, t, level), obs_fn(proc, p, level)
    names = list(ot) if observables is None else observables
    out: dict[str, dict[str, float]] = {}
    for name in names:
        if name not in ot:
            raise OtusError(f"unknown observable {name!r} for {proc.name} {level}")
        a, b = ot[name], op[name]
        fa, fb = np.isfinite(a), np.isfinite(b)
        if not fa.any():
            raise OtusError(f"truth observable {name} holds no finite values")
        if not fb.any():
            raise OtusError(f"prediction observable {name} holds no finite values")
        if np.ptp(a[fa]) == 0 and np.ptp(b[fb]) == 0 and a[fa][0] == b[fb][0]:
            continue
        m = all_1d(a, b, wx=wt, wy=wp, bins=bins)
        m["mean_truth"] = float(np.average(a[fa], weights=wt[fa]))
        m["mean_pred"] = float(np.average(b[fb], weights=wp[fb]))
        out[name] = m
    return out
