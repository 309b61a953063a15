"""Run configuration: frozen dataclasses mirrored one to one by ``experiments/*.yaml``.

Unknown keys and ill-typed values raise :class:`~otus.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otus.errors import ConfigError
from otus.models.coords import COORDS, FEATURES
from otus.processes import BUILTIN_NAMES, Process, get_process, process_from_text


@dataclass(frozen=True)
class NetConfig:
    """Encoder and decoder networks; ``decoder_hidden`` / ``decoder_depth`` (0: same as
    ``hidden`` / ``depth``) give the decoder its own, e.g. smaller and faster, shape."""

    hidden: int = 128
    depth: int = 2
    noise_dim: int = 4
    identity_bias: bool = True
    coords: str = "ptetaphi"
    # ε(z) = P(pass | z), learnt from the z file's pass flags (otus/models/efficiency.py);
    # switched off at fit time when the z file carries none (an LHE-only sample).
    efficiency: bool = True
    efficiency_hidden: int = 64
    # sin, cos of 2^k π η (k < efficiency_fourier) of each object's standardised η in ε's
    # input: sharp edges in η (cracks); 0: the coordinates alone; no effect with cartesian
    efficiency_fourier: int = 0
    # Unfolded events get zero total pT (fourvec.balance_transverse): leading-order partons.
    balance_pt: bool = False
    decoder_hidden: int = 0
    decoder_depth: int = 0
    decoder_activation: str = "silu"  # or relu: cheaper on a CPU (fast simulation)


@dataclass(frozen=True)
class LossConfig:
    """Loss weights (the terms of :mod:`otus.models.module`) and their schedule; ``anchor``
    is used until ``anchor_until_epoch`` (exclusive), ``anchor_after`` from then on."""

    data: float = 1.0
    prior: float = 1.0
    sim: float = 1.0
    anchor: float = 1.0
    anchor_until_epoch: int = 2
    anchor_after: float = 0.0
    minkowski: float = 1.0
    efficiency: float = 1.0  # weight of the pass-flag cross-entropy of ε(z)
    paired: float = 0.0  # ρ: energy score of x under D(z) for paired events (0: unpaired)
    paired_unfold: float = 0.0  # ρ_u: energy score of z under E(x) for paired events
    n_projections: int = 256
    axis_projections: bool = False  # add the feature axes to the random slices
    axis_weight: float = 0.0  # weight of a separate marginal term (every feature axis)
    mass_scale: float = 1.0  # scale of the standardised invariant-mass features in the loss
    features: tuple[str, ...] = ("p4", "pteta", "masses")

    @property
    def uses_pairs(self) -> bool:
        """Whether a paired term (``paired`` or ``paired_unfold``) is switched on."""
        return self.paired > 0 or self.paired_unfold > 0


@dataclass(frozen=True)
class DataConfig:
    batch_size: int = 4096
    val_fraction: float = 0.1
    chunk_size: int = 65536
    stat_rows: int = 200_000
    val_max_rows: int = 65_536  # validation rows used at most (bounded time and memory)
    z_passing_only: bool = False  # paired files: z of passing events only (see data.py)
    # Detector-level region (otus.calibrate.regions grammar): the x events used, and the
    # simulated events the loss compares with them, are those inside it (fine-tuning on data
    # in a control region, arXiv:2101.08944 §1).
    region: str | None = None
    # Efficiency from the data yield (fully unpaired training): the x file's integrated
    # luminosity (pb⁻¹) and the z sample's cross-section (pb; None: the z file's
    # cross_section_pb from its LHE init block) fix the mean of ε(z) over the z events,
    # pass_rate = N_pass / (L·σ); otus fit fills pass_rate in, or it may be given directly.
    luminosity: float | None = None
    cross_section: float | None = None
    pass_rate: float | None = None
    # Bootstrap member of an ensemble (otus fit --replicas): None trains on the events as they
    # are; an index k multiplies every training event's weight by a Poisson(1) draw fixed by
    # (seed, k, row) (otus.models.replicas.poisson_counts), in the loss and the statistics.
    bootstrap: int | None = None


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    cosine: bool = True


@dataclass(frozen=True)
class TrainerConfig:
    """Lightning ``Trainer`` options settable from the command line."""

    # The training budget: the learning rate anneals to its floor at whichever of the two
    # comes first; max_epochs -1 (with max_time) leaves the epochs unlimited.
    max_epochs: int = 20
    max_time: str | None = None  # DD:HH:MM:SS
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1  # machines in a multi-node DDP run (see README)
    strategy: str = "auto"
    log_every_n_steps: int = 10
    checkpoint_every_n_epochs: int = 5
    num_threads: int = 0  # torch CPU threads; 0 = torch's default


@dataclass(frozen=True)
class Config:
    process: str
    # The process card's YAML text for a process that is not built in ("" for zee, ttbar),
    # so that a run folder needs no card file.
    process_card: str = ""
    seed: int = 0
    net: NetConfig = field(default_factory=NetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML- and ``torch.save``-safe dictionary."""
        d = dataclasses.asdict(self)
        d["loss"]["features"] = list(d["loss"]["features"])
        return d


_SECTIONS = {
    "net": NetConfig,
    "loss": LossConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "trainer": TrainerConfig,
}


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(known)}")
    kw: dict[str, Any] = {}
    for k, v in values.items():
        default = getattr(cls(), k) if cls is not Config else None
        if isinstance(default, bool) and not isinstance(v, bool):
            raise ConfigError(f"{where}.{k}: expected true/false, got {v!r}")
        if (
            isinstance(default, int)
            and not isinstance(default, bool)
            and (isinstance(v, bool) or not isinstance(v, int))
        ):
            raise ConfigError(f"{where}.{k}: expected an integer, got {v!r}")
        if isinstance(default, float) and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise ConfigError(f"{where}.{k}: expected a number, got {v!r}")
        if isinstance(default, float):
            v = float(v)
        if isinstance(default, tuple):
            v = tuple(v) if isinstance(v, list | tuple) else (v,)
        kw[k] = v
    return cls(**kw)


def config_process(cfg: Config) -> Process:
    """The process a config trains: its stored card, or the built-in of that name."""
    if cfg.process_card:
        return process_from_text(cfg.process_card, where="config process_card")
    return get_process(cfg.process)


def _validate(cfg: Config) -> None:
    if cfg.process_card:
        proc = config_process(cfg)
        if proc.name != cfg.process:
            raise ConfigError(
                f"process {cfg.process!r} does not match its card (name {proc.name!r})"
            )
    elif cfg.process not in BUILTIN_NAMES:
        raise ConfigError(
            f"process {cfg.process!r} unknown; choose one of {', '.join(BUILTIN_NAMES)} or give "
            "the process card"
        )
    if cfg.net.decoder_activation not in ("silu", "relu"):
        raise ConfigError(
            f"net.decoder_activation {cfg.net.decoder_activation!r} unknown; choose silu or relu"
        )
    if cfg.net.coords not in COORDS:
        raise ConfigError(f"net.coords {cfg.net.coords!r} unknown; choose {', '.join(COORDS)}")
    bad = [f for f in cfg.loss.features if f not in FEATURES]
    if bad or not cfg.loss.features:
        raise ConfigError(f"loss.features {bad} unknown; choose from {', '.join(FEATURES)}")
    for name, v in (
        ("net.hidden", cfg.net.hidden),
        ("net.depth", cfg.net.depth),
        ("data.batch_size", cfg.data.batch_size),
        ("loss.n_projections", cfg.loss.n_projections),
        ("trainer.max_epochs", cfg.trainer.max_epochs),
        ("trainer.num_nodes", cfg.trainer.num_nodes),
    ):
        if v < 1 and not (name == "trainer.max_epochs" and v == -1 and cfg.trainer.max_time):
            raise ConfigError(f"{name} must be >= 1, got {v}")
    if cfg.net.efficiency and cfg.data.z_passing_only:
        raise ConfigError(
            "data.z_passing_only drops the failing events that net.efficiency "
            "learns from; the efficiency model weights the prior by the pass "
            "flags itself: set one of them false"
        )
    for name, v in (
        ("net.decoder_hidden", cfg.net.decoder_hidden),
        ("net.decoder_depth", cfg.net.decoder_depth),
    ):
        if v < 0:
            raise ConfigError(f"{name} must be >= 0 (0: same as the encoder), got {v}")
    for name in ("paired", "paired_unfold"):
        if getattr(cfg.loss, name) < 0:
            raise ConfigError(f"loss.{name} must be >= 0, got {getattr(cfg.loss, name)}")
    for name in ("luminosity", "cross_section", "pass_rate"):
        v = getattr(cfg.data, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not v > 0):
            raise ConfigError(f"data.{name} must be a number > 0 (or null), got {v!r}")
    if cfg.data.pass_rate is not None and cfg.data.pass_rate > 1:
        raise ConfigError(
            f"data.pass_rate {cfg.data.pass_rate:.4g} > 1: the data hold more passing events "
            "than luminosity × cross-section predicts; check the luminosity and cross-section"
        )
    if cfg.data.region is not None:
        from otus.calibrate.regions import region_for

        if not isinstance(cfg.data.region, str):
            raise ConfigError(f"data.region must be a region expression, got {cfg.data.region!r}")
        region_for(cfg.data.region, config_process(cfg))
    b = cfg.data.bootstrap
    if b is not None and (isinstance(b, bool) or not isinstance(b, int) or b < 0):
        raise ConfigError(f"data.bootstrap must be a member index >= 0 (or null), got {b!r}")
    if not 0.0 < cfg.data.val_fraction < 0.5:
        raise ConfigError(f"data.val_fraction must be in (0, 0.5), got {cfg.data.val_fraction}")
    if cfg.optim.lr <= 0:
        raise ConfigError(f"optim.lr must be > 0, got {cfg.optim.lr}")


def config_from_dict(
    d: dict[str, Any], *, process: str | Process | None = None, where: str = "config"
) -> Config:
    """Build and validate a :class:`Config`; ``process`` (a built-in name or a
    :class:`Process`) fills or must match ``d['process']`` (and its card)."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    d = dict(d)
    if process is not None:
        proc = get_process(process)
        if d.get("process", proc.name) != proc.name:
            raise ConfigError(f"{where}: is for process {d['process']!r}, not {proc.name!r}")
        card = (
            "" if proc.name in BUILTIN_NAMES and proc == get_process(proc.name) else proc.card_text
        )
        if d.get("process_card") and process_from_text(d["process_card"], where=where) != proc:
            raise ConfigError(
                f"{where}: was made with another {proc.name} process card than the one given"
            )
        d["process"] = proc.name
        d["process_card"] = card
    if "process" not in d:
        raise ConfigError(f"{where}: no 'process' given")
    top = {"process": d.pop("process")}
    if "process_card" in d:
        top["process_card"] = d.pop("process_card") or ""
        if not isinstance(top["process_card"], str):
            raise ConfigError(f"{where}: process_card must be the card's YAML text")
    if "seed" in d:
        top["seed"] = d.pop("seed")
    sections = {}
    for k, v in d.items():
        if k not in _SECTIONS:
            raise ConfigError(
                f"{where}: unknown key {k!r}; known: process, process_card, seed, "
                f"{', '.join(_SECTIONS)}"
            )
        sections[k] = _build(_SECTIONS[k], v or {}, f"{where}: {k}")
    if not isinstance(top.get("seed", 0), int):
        raise ConfigError(f"{where}: seed must be an integer")
    cfg = Config(**top, **sections)
    _validate(cfg)
    return cfg


def default_dict(process: str | Process) -> dict[str, Any]:
    """The project's default configuration (package data ``defaults.yaml``) as a dictionary;
    the two-object recoil features (aco) are dropped for final states that are not two
    visible objects."""
    from importlib import resources

    import yaml

    text = resources.files("otus.models").joinpath("defaults.yaml").read_text("utf-8")
    d: dict[str, Any] = yaml.safe_load(text)
    if not get_process(process).two_body:
        d["loss"]["features"] = [f for f in d["loss"]["features"] if f != "aco"]
    return d


def _overlay(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with the keys of ``over`` replaced, section by section."""
    out = dict(base)
    for k, v in over.items():
        out[k] = {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def load_config(
    path: str | os.PathLike[str] | None,
    *,
    process: str | Process,
    base: dict[str, Any] | None = None,
    where: str = "otus/models/defaults.yaml",
) -> Config:
    """The configuration for ``process``: ``base`` (default: the project's defaults,
    :func:`default_dict`; e.g. a run's own configuration when fine-tuning it, ``where``
    naming it in errors) with the keys a YAML file ``path`` sets replaced (None: ``base``
    alone)."""
    import yaml

    if base is None:
        base = default_dict(process)
    if path is None:
        return config_from_dict(base, process=process, where=where)
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        d = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: expected a mapping of config sections, got {type(d).__name__}")
    return config_from_dict(_overlay(base, d), process=process, where=str(p))


def replace(cfg: Config, section: str, **kw: Any) -> Config:
    """A copy of ``cfg`` with fields of one section replaced (validated)."""
    d = cfg.to_dict()
    d[section].update(kw)
    return config_from_dict(d)
