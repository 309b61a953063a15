"""Reweighting on event files: fit in a control region, save, and apply to any file.

Any event file works: features are named observables of the file's own process (a built-in,
a process card, or the columns of plain features, process ``generic``).
A model folder holds ``model.pt`` (k state dicts, feature names, standardisation, process,
region, normalisation; read with ``torch.load(weights_only=True)``), ``report.json`` and
``report.md`` (clipping, overlap and the diagnostics of
:mod:`otus.calibrate.reweight.diagnostics`)
and ``ratio_<feature>.png`` plots. Folders and files are written atomically.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from otus.calibrate.features import classifier_features, classifier_matrix
from otus.calibrate.regions import region_mask
from otus.calibrate.reweight import diagnostics
from otus.calibrate.reweight.config import ReweightConfig
from otus.calibrate.reweight.fit import ReweightFit, fit_reweighter
from otus.errors import ConfigError, InputFileError, OtusError
from otus.io.atomic import atomic_path
from otus.io.h5 import info, iter_chunks, read_events, text_attr
from otus.processes import Process, process_from_attrs
from otus.provenance import file_hash, provenance

MODEL_FILE = "model.pt"


def load_region(
    path: str | os.PathLike[str], *, region: str | None, process: str | None = None
) -> tuple[Process, np.ndarray, np.ndarray]:
    """Passing detector rows x and weights of an event file, inside ``region`` if given."""
    ev = read_events(path, process)
    if ev.x is None:
        raise InputFileError(f"{path}: holds no detector-level x to reweight")
    assert ev.x_pass is not None and ev.weight is not None  # set by Events
    sel = region_mask(region, ev.process, ev.x, ev.x_pass) if region else ev.x_pass.copy()
    if not sel.any():
        raise InputFileError(f"{path}: no passing events in region {region or '(all)'!r}")
    return ev.process, ev.x[sel], ev.weight[sel]


def fit_files(
    mc: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    region: str | None = None,
    features: tuple[str, ...] | None = None,
    config: ReweightConfig | None = None,
    diagnose: bool = True,
    plots: bool = True,
) -> dict[str, Any]:
    """Fit the reweighter MC → data in ``region`` and write the model folder ``out_dir``."""
    cfg = config or ReweightConfig()
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OtusError(f"{out}: exists and is not empty; choose a new output folder")
    proc, x_mc, w_mc = _load(mc, region)
    proc_d, x_data, w_data = _load(data, region)
    if proc_d.name != proc.name:
        raise InputFileError(f"{data}: holds {proc_d.name} events but {mc} holds {proc.name}")
    names = tuple(features) if features else classifier_features(proc)
    f_mc, f_data = _features(mc, proc, x_mc, names), _features(data, proc_d, x_data, names)
    fit = fit_reweighter(f_mc, w_mc, f_data, w_data, features=names, config=cfg)
    fit.meta.update(
        process=proc.name,
        # the process is rebuilt from these on loading (otus.processes.process_from_attrs)
        process_card=proc.card_text,
        x_features=list(proc.x_features),
        region=region or "",
        provenance=json.dumps(
            provenance(
                seed=cfg.seed, inputs=[str(mc), str(data)], region=region, features=list(names)
            )
        ),
    )
    report: dict[str, Any] = {
        "process": proc.name,
        "region": region,
        "features": list(names),
        "config": fit.to_dict()["config"],
        "norm": fit.norm,
        "logit_calibration": {"scale": fit.calibration[0], "shift": fit.calibration[1]},
        "clipping": fit.clip_report.to_dict(),
        "overlap": fit.overlap,
    }
    if diagnose:
        report["diagnostics"] = diagnostics.diagnose(
            f_mc,
            f_data,
            w_before=w_mc,
            w_after=fit.mc_weights,
            w_data=w_data,
            names=names,
            seed=cfg.seed,
            n_threads=torch.get_num_threads(),
        )
    _write_folder(out, fit, report, (f_mc, w_mc, f_data, w_data) if plots else None)
    return report


def _load(
    path: str | os.PathLike[str], region: str | None
) -> tuple[Process, np.ndarray, np.ndarray]:
    try:
        return load_region(path, region=region)
    except ConfigError as err:  # a region naming what the file lacks: say which file
        raise ConfigError(f"{path}: {err}") from None


def _features(
    path: str | os.PathLike[str], proc: Process, x: np.ndarray, names: tuple[str, ...]
) -> np.ndarray:
    try:
        return classifier_matrix(proc, x, names)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def _write_folder(
    out: Path, fit: ReweightFit, report: dict[str, Any], plot_data: tuple[np.ndarray, ...] | None
) -> None:
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OtusError(f"{out}: output folder {parent} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        torch.save(fit.to_dict(), tmp / MODEL_FILE)
        (tmp / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
        md = [
            f"# Reweighting {report['process']} MC → data in {report['region'] or 'all'}",
            "",
            f"Clipping: {fit.clip_report}.",
            "",
            f"Overlap: {'ok' if fit.overlap['ok'] else 'SUPPORTS DO NOT OVERLAP'} "
            f"({100 * fit.overlap['data_frac_high_ratio']:.3f}% of the data weight has "
            f"ratio > {fit.overlap['ratio_threshold']:g}).",
            "",
        ]
        if "diagnostics" in report:
            md.append(diagnostics.to_markdown(report["diagnostics"], title="Training region"))
        (tmp / "report.md").write_text("\n".join(md) + "\n")
        if plot_data is not None:
            _plots(tmp, fit, *plot_data)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _plots(
    folder: Path,
    fit: ReweightFit,
    f_mc: np.ndarray,
    w_mc: np.ndarray,
    f_data: np.ndarray,
    w_data: np.ndarray,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from otus.physics.observables import label

    for i, n in enumerate(fit.features):
        fig, (a, b) = plt.subplots(
            2, 1, sharex=True, figsize=(5, 5), gridspec_kw={"height_ratios": (3, 1)}
        )
        diagnostics.ratio_plot(
            a,
            b,
            f_mc[:, i],
            f_data[:, i],
            w_before=w_mc,
            w_after=fit.mc_weights,
            w_data=w_data,
            label=label(n),
        )
        fig.savefig(folder / f"ratio_{n.replace('+', 'p').replace('-', 'm')}.png", dpi=90)
        plt.close(fig)


def load_reweighter(model_dir: str | os.PathLike[str]) -> tuple[Process, ReweightFit]:
    """Load a model folder written by :func:`fit_files`."""
    p = Path(model_dir) / MODEL_FILE
    if not p.is_file():
        raise InputFileError(f"{model_dir}: not a reweighting model folder (no {MODEL_FILE})")
    try:
        d = torch.load(p, map_location="cpu", weights_only=True)
        fit = ReweightFit.from_dict(d)
    except (
        OSError,
        RuntimeError,
        KeyError,
        TypeError,
        ValueError,
        EOFError,
        pickle.UnpicklingError,
    ) as err:
        if isinstance(err, OtusError):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputFileError(f"{p}: unreadable reweighting model ({first})") from None
    meta = fit.meta
    try:
        proc = process_from_attrs(
            str(meta.get("process", "")),
            str(meta.get("process_card", "")),
            x_features=[str(f) for f in meta.get("x_features", ())],
            where=str(p),
        )
    except OtusError as err:
        raise InputFileError(f"{p}: {err}") from None
    return proc, fit


def apply_file(
    model_dir: str | os.PathLike[str],
    inp: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    column: str | None = None,
    chunk_size: int = 65536,
) -> dict[str, Any]:
    """Reweight the events of ``inp`` into ``out`` (everything else kept).

    Without ``column`` the ``weight`` dataset is multiplied by the factor c·min(r, clip);
    with it, a new dataset ``column`` holds the reweighted weights and ``weight`` stays.
    Events that failed reconstruction have no features; their factor is 1.
    """
    proc, fit = load_reweighter(model_dir)
    fi = info(inp, proc.name)  # features are computed by name with the file's own process
    if not fi.has_x:
        raise InputFileError(f"{inp}: holds no detector-level x to reweight")
    if column is not None and (not column.isidentifier() or column in ("x", "z", "x_pass")):
        raise ConfigError(f"--column {column!r} must be a new dataset name, not x, z or x_pass")
    if Path(out).resolve() == Path(inp).resolve():
        raise ConfigError(f"{out}: the output must differ from the input")
    n_clip = n_fail = 0
    max_r = 0.0
    with atomic_path(out) as tmp:
        shutil.copyfile(inp, tmp)
        with h5py.File(tmp, "r+") as f:
            if column is not None and column in f and column != "weight":
                raise ConfigError(f"{inp}: already has a dataset {column!r}")
            w_old = np.asarray(f["weight"][:], np.float64) if "weight" in f else np.ones(fi.n)
            w_new = w_old.copy()
            start = 0
            for ev in iter_chunks(inp, chunk_size, proc.name):
                assert ev.x is not None and ev.x_pass is not None
                ok = ev.x_pass & np.all(np.isfinite(ev.x), axis=1)
                m = np.ones(len(ev))
                if ok.any():
                    feats = _features(inp, fi.process, ev.x[ok], fit.features)
                    m[ok], rep = fit.multiplier(feats)
                    n_clip += rep.n_clipped
                    max_r = max(max_r, rep.max_ratio)
                n_fail += int((~ok).sum())
                w_new[start : start + len(ev)] *= m
                start += len(ev)
            target = column or "weight"
            if target in f:
                del f[target]
            f.create_dataset(target, data=w_new, compression="gzip")
            prov = json.loads(f.attrs.get("provenance", "{}") or "{}")
            # The input's own provenance stays; this step adds its own full record.
            prov["reweight"] = provenance(
                seed=fit.config.seed,
                inputs=[str(inp)],
                command="reweight apply",
                model=str(model_dir),
                column=target,
            )
            prov["reweight"].update(
                model=str(model_dir),
                column=target,
                model_sha256=file_hash(Path(model_dir) / MODEL_FILE),
            )
            f.attrs["provenance"] = text_attr(json.dumps(prov, sort_keys=True, default=str))
    return {
        "events": fi.n,
        "failed_unchanged": n_fail,
        "clipped": n_clip,
        "clip": fit.config.clip,
        "max_ratio": max_r,
        "column": column or "weight",
        "sum_before": float(w_old.sum()),
        "sum_after": float(w_new.sum()),
    }
