"""Train OTUS into a run folder: ``last.ckpt`` (+ periodic checkpoints), the resolved
``config.yaml``, ``provenance.json`` and the metrics log ``metrics.csv``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

from otus._lightning import drop_tips
from otus.errors import ConfigError, TrainingError
from otus.models.config import Config, config_process, replace
from otus.provenance import provenance

LAST = "last.ckpt"
PathLike = str | os.PathLike[str]


_IGNORED = (
    ".*does not have many workers.*",
    ".*is smaller than the logging interval.*",
    ".*GPU available but not used.*",
    ".*exists and is not empty.*",
    ".*LeafSpec.*",
    ".*TPU available but not used.*",
    ".*dirpath has changed.*",
)


def _quiet_lightning() -> None:
    drop_tips()
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for msg in _IGNORED:
        warnings.filterwarnings("ignore", message=msg)


def _merge_metrics(old: Path, new: Path) -> None:
    """Prepend the rows of a previous metrics log (Lightning's CSV logger restarts it)."""
    import csv

    with open(old, newline="") as f:
        rows = list(csv.DictReader(f))
    if new.is_file():
        with open(new, newline="") as f:
            rows += list(csv.DictReader(f))
    keys = sorted({k for r in rows for k in r})
    with open(new, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    old.unlink()


def _fit(
    cfg: Config,
    data: PathLike,
    run: Path,
    z_data: PathLike | None,
    resume: bool,
    progress: bool,
    fast_dev_run: bool,
    init: Path | None = None,
) -> Path:
    """:func:`fit`, without the clean-up of a failed run's folders."""
    import pytorch_lightning as pl
    import torch
    import yaml
    from pytorch_lightning.callbacks import Callback, ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger
    from pytorch_lightning.utilities.exceptions import MisconfigurationException

    from otus.models.data import OtusDataModule
    from otus.models.module import OtusModule

    last = run / LAST
    if resume and not last.is_file():
        raise ConfigError(f"{run}: nothing to resume (no {LAST})")
    if not resume and last.exists():
        raise ConfigError(f"{run}: already holds a trained run; use --resume or another --out")
    run.mkdir(parents=True, exist_ok=True)
    dm = OtusDataModule(config_process(cfg), data, z_data, cfg=cfg.data, seed=cfg.seed)
    if not resume:
        cfg = _yield_target(cfg, dm)
    if cfg.net.efficiency and not dm.z_has_flags and cfg.data.pass_rate is None and not resume:
        if init is None:
            print(
                f"otus fit: {dm.z_path} carries no detector pass flags and no --luminosity was "
                f"given; training without the efficiency model ε(z) (net.efficiency: false), "
                f"so simulated events pass the acceptance only",
                file=sys.stderr,
            )
            cfg = replace(cfg, "net", efficiency=False)
        else:
            print(
                f"otus fit: {dm.z_path} carries no pass flags and no --luminosity was given; "
                f"ε(z) stays as in {init}",
                file=sys.stderr,
            )
    if cfg.loss.uses_pairs and not dm.z_has_flags and not resume:
        print(
            f"otus fit: {dm.z_path} is not paired (no detector level); training unpaired "
            f"(loss.paired and loss.paired_unfold: 0)",
            file=sys.stderr,
        )
        cfg = replace(cfg, "loss", paired=0.0, paired_unfold=0.0)
    dm.paired = cfg.loss.uses_pairs
    if dm.paired and dm.z_path.resolve() != dm.x_path.resolve() and not resume:
        print(
            f"otus fit: loss.paired learns p(x | z) from the detector level stored in "
            f"{dm.z_path}; if {dm.x_path} is real data, train unpaired (loss.paired: 0)",
            file=sys.stderr,
        )
    # Initial weights come from torch's global generator: seed it first, so that the same
    # seed gives the same run (bit-identical on CPU).
    torch.manual_seed(cfg.seed)
    model = OtusModule(cfg.to_dict())
    if not resume:
        if init is not None:
            # Fine-tuning: the initial run's weights and its standardisation (so the networks
            # see the coordinates they were trained on).
            model.load_state_dict(_init_state(init, cfg))
        else:
            model.set_statistics(dm.fit_statistics(cfg.net.coords, cfg.loss.features))
        (run / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        inputs = [str(data)] + ([str(z_data)] if z_data is not None else [])
        extra: dict[str, Any] = {"init": str(init)} if init is not None else {}
        prov = provenance(
            seed=cfg.seed,
            inputs=inputs,
            deterministic=False,
            command="fit",
            process=cfg.process,
            **extra,
        )
        (run / "provenance.json").write_text(json.dumps(prov, indent=1, sort_keys=True))
    t = cfg.trainer
    if t.num_threads > 0:
        torch.set_num_threads(t.num_threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.manual_seed(cfg.seed)  # Lightning-internal randomness only; otus uses generators
    k = t.checkpoint_every_n_epochs
    periodic = ModelCheckpoint(
        dirpath=run,
        filename="epoch{epoch:04d}",
        save_top_k=-1,
        auto_insert_metric_name=False,
        every_n_epochs=k,
        save_last=k == 1,
    )
    # last.ckpt after every epoch: a top-1 checkpoint without a monitor keeps the newest.
    ckpts: list[Callback] = (
        [periodic]
        if k == 1
        else [
            ModelCheckpoint(
                dirpath=run,
                filename="last",
                save_top_k=1,
                every_n_epochs=1,
                enable_version_counter=False,
            ),
            periodic,
        ]
    )
    kw: dict[str, Any] = {}
    if t.max_time:
        kw["max_time"] = t.max_time
    try:
        trainer = pl.Trainer(
            default_root_dir=run,
            max_epochs=t.max_epochs,  # -1: no limit (with max_time)
            accelerator=t.accelerator,
            devices=t.devices,
            num_nodes=t.num_nodes,
            strategy=t.strategy,
            log_every_n_steps=t.log_every_n_steps,
            logger=CSVLogger(save_dir=run, name="", version=""),
            callbacks=ckpts,
            enable_model_summary=False,
            enable_progress_bar=progress,
            fast_dev_run=fast_dev_run,
            num_sanity_val_steps=0,
            **kw,
        )
    except (ValueError, MisconfigurationException) as err:  # Lightning's option checks
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"bad trainer option: {msg}") from None
    metrics, saved = run / "metrics.csv", run / ".metrics.previous.csv"
    if resume and metrics.is_file():
        metrics.replace(saved)
    try:
        trainer.fit(model, datamodule=dm, ckpt_path=str(last) if resume else None)
    except TrainingError as err:
        kept = f"last good checkpoint {last}" if last.is_file() else "no checkpoint was written"
        raise TrainingError(
            f"{str(err).split('; training stopped')[0]}; training stopped, {kept}"
        ) from None
    finally:
        if saved.is_file():
            _merge_metrics(saved, metrics)
    if fast_dev_run:  # Lightning writes no checkpoint in this mode; keep the folder usable
        trainer.save_checkpoint(last)
    return run


def _yield_target(cfg: Config, dm: Any) -> Config:
    """``cfg`` with ``data.pass_rate`` = N_pass / (L·σ) when ``data.luminosity`` is given:
    the fraction of z events that the data's yield says pass (and land in ``data.region``).
    Checks that a region selects data at all."""
    from otus.io.h5 import info
    from otus.models.data import passing_weight

    d = cfg.data
    if d.luminosity is None and d.region is None:
        return cfg
    n_pass, n_rows = passing_weight(dm.x_path, dm.process, d.region, boot=dm.boot("x"))
    if d.region is not None and n_rows == 0:
        raise ConfigError(f"{dm.x_path}: no passing events inside region {d.region!r}")
    if d.luminosity is None:
        return cfg
    if not cfg.net.efficiency:
        raise ConfigError("--luminosity fixes the efficiency model ε(z); net.efficiency is false")
    sigma = d.cross_section
    if sigma is None:
        sigma = info(dm.z_path, dm.process).cross_section_pb
        if sigma is None:
            raise ConfigError(
                f"{dm.z_path}: no cross_section_pb (it is kept from an LHE file's init "
                f"block); give --cross-section"
            )
    rate = n_pass / (d.luminosity * sigma)
    where = f" in region {d.region!r}" if d.region else ""
    print(
        f"otus fit: efficiency from the yield: {n_pass:.6g} passing events{where} in "
        f"{dm.x_path}, L·σ = {d.luminosity:.6g} pb⁻¹ × {sigma:.6g} pb → ⟨ε⟩ = {rate:.4f}",
        file=sys.stderr,
    )
    if not 0 < rate <= 1:
        raise ConfigError(
            f"{dm.x_path}: {n_pass:.6g} passing events{where} but luminosity × cross-section "
            f"= {d.luminosity * sigma:.6g}; the pass fraction {rate:.4g} must be in (0, 1]: "
            f"check --luminosity and --cross-section"
        )
    return replace(cfg, "data", pass_rate=rate)


def _init_state(init: Path, cfg: Config) -> dict[str, Any]:
    """The state dict of the run ``init`` (``last.ckpt``, loaded with ``weights_only``);
    the run must be of the same process and network shape as ``cfg``."""
    from otus.models.api import load_checkpoint

    module = load_checkpoint(init / LAST)
    if module.process != config_process(cfg):
        raise ConfigError(
            f"{init}: is a {module.process.name} run; cannot fine-tune it for {cfg.process}"
        )
    if module.cfg.net != cfg.net:
        raise ConfigError(f"{init}: its net section differs from the config's; keep the run's")
    return dict(module.state_dict())


# What fine-tuning changes in the initial run's configuration: it adapts the simulator (the
# decoder and ε) only, so the encoder's terms are off (the reconstruction term, fed data
# truncated to the control region, pulls the decoder toward less noise and shorter tails);
# the data are unpaired (no pair terms); the model is trained already (no anchoring stage; a
# smaller learning rate, so the start is kept where the control-region data say nothing).
FINE_TUNE: dict[str, dict[str, Any]] = {
    "loss": {
        "data": 0.0,
        "prior": 0.0,
        "paired": 0.0,
        "paired_unfold": 0.0,
        "anchor_until_epoch": 0,
    },
    "optim": {"lr": 3e-4},
    "trainer": {"max_epochs": 5, "max_time": None},
}


def fine_tune_config(init: str | os.PathLike[str], region: str, process: str) -> dict[str, Any]:
    """The configuration (a dict) of a fine-tuning of the run folder ``init`` (a run of
    ``process``) on data in ``region``: the run's own ``config.yaml`` with :data:`FINE_TUNE`
    and the region."""
    import yaml

    path = Path(init) / "config.yaml"
    if not (Path(init) / LAST).is_file() or not path.is_file():
        raise ConfigError(f"{init}: not a trained run folder (needs {LAST} and config.yaml)")
    d: dict[str, Any] = yaml.safe_load(path.read_text())
    if d.get("process") != process:
        raise ConfigError(f"{init}: is a {d.get('process')} run; cannot fine-tune it for {process}")
    for section, kw in FINE_TUNE.items():
        d[section] = {**d.get(section, {}), **kw}
    d["data"] = {
        **d.get("data", {}),
        "region": region,
        "luminosity": None,  # those of the initial run's data, not of these
        "cross_section": None,
        "pass_rate": None,
    }
    return d


def fit(
    cfg: Config,
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    z_data: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    fast_dev_run: bool = False,
    init: str | os.PathLike[str] | None = None,
) -> Path:
    """Train on ``data`` (x, and z unless ``z_data`` gives another file); return the run dir.

    With ``resume`` the run continues from ``out/last.ckpt``. With ``init`` (a run folder)
    training starts from that run's weights and standardisation: fine-tuning, typically on
    data in ``cfg.data.region`` (:func:`fine_tune_config` makes its configuration).
    A non-finite loss raises
    :class:`~otus.errors.TrainingError`; the checkpoints written so far stay. A fit that
    fails before writing a checkpoint removes the folders it created for ``out``.
    """
    run = Path(out)
    made = _missing_dirs(run)
    try:
        with warnings.catch_warnings():
            _quiet_lightning()
            return _fit(
                cfg,
                data,
                run,
                z_data,
                resume,
                progress,
                fast_dev_run,
                Path(init) if init is not None else None,
            )
    except BaseException:
        _remove_unused(run, made)
        raise


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, innermost first."""
    missing: list[Path] = []
    while not os.path.lexists(path) and path.parent != path:
        missing.append(path)
        path = path.parent
    return missing


def _remove_unused(run: Path, made: list[Path]) -> None:
    """Remove the folders ``made`` (innermost first) for the ``run`` folder of a failed fit,
    unless the run folder holds a checkpoint; a parent still holding other files stays."""
    if not made or not run.is_dir() or any(run.rglob("*.ckpt")):
        return
    shutil.rmtree(run, ignore_errors=True)
    for d in made[1:]:
        try:
            d.rmdir()
        except OSError:
            break
