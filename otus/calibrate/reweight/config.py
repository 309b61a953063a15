"""Options of the classifier reweighter (no torch import: the CLI reads the defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from otus.errors import ConfigError

LOSS_NAMES = ("bce", "mlc")  # the classifier losses (reweight.classifier.LOSSES)


@dataclass(frozen=True)
class ReweightConfig:
    """Options of the reweighter (saved with the model)."""

    # Defaults: the settings with the smallest weight error on the analytic closure tests of
    # experiments/reweight_bench.py.
    k_folds: int = 5
    repeats: int = 2  # k-fold trainings with different fold assignments, logits averaged
    hidden: tuple[int, ...] = (32, 32, 32)
    epochs: int = 60
    batch_size: int = 2048
    lr: float = 2e-3
    val_fraction: float = 0.1  # of each fold's training events, for early stopping
    # horizon (epochs, at most epochs / 5) of the moving average of the weights that is
    # validated and kept; 0: off. Averaging lowers the weight error on the closure tests.
    ema_epochs: float = 7.0
    patience: int = 6  # epochs without improvement before stopping; lr cut after a third
    # Platt-scale the ensemble logit on the out-of-fold logits (Platt 1999); undoes the
    # shrinkage that the weight average puts on the logit
    calibrate_logit: bool = True
    # one of LOSS_NAMES; "mlc" gives a larger weight error than "bce" on the mixture
    # closure test
    loss: str = "bce"
    normalise: str = "data"  # "data": sum w' = sum w_data; "mc": keep the MC sum; "none"
    clip: float | None = None  # largest ratio r kept; None = no clipping (reported anyway)
    overlap_ratio: float = 20.0  # r above this marks a data event outside the MC support
    overlap_tolerance: float = 0.01  # warn when more than this data fraction is there
    clamp_features: bool = True  # hold the ratio flat outside the training range
    accelerator: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k_folds < 2:
            raise ConfigError(f"k_folds must be at least 2, got {self.k_folds}")
        if self.repeats < 1:
            raise ConfigError(f"repeats must be at least 1, got {self.repeats}")
        if self.normalise not in ("data", "mc", "none"):
            raise ConfigError(f"normalise must be data, mc or none, got {self.normalise!r}")
        if self.loss not in LOSS_NAMES:
            raise ConfigError(f"loss must be one of {', '.join(LOSS_NAMES)}, got {self.loss!r}")
        if self.clip is not None and not self.clip > 1.0:
            raise ConfigError(f"clip must be a ratio above 1, got {self.clip}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        if not self.ema_epochs >= 0.0:
            raise ConfigError(f"ema_epochs must be >= 0, got {self.ema_epochs}")
        if self.epochs < 1 or self.batch_size < 1 or not self.hidden:
            raise ConfigError("epochs, batch_size and hidden must be positive")
