"""The training idiom of the small calibration networks (OT potentials, classifiers).

Each fit is a ``LightningModule`` trained by :func:`make_trainer`'s quiet, checkpoint-free
``Trainer``; an epoch is one validation period. Validation scores feed :class:`KeepBest`,
which holds the best state in memory (min-max and small-batch training can degrade, so the
last state is not trusted), and the OT fits decay the learning rate with
:func:`otus._schedule.cosine_floor`.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence

import pytorch_lightning as pl
from torch import Tensor, nn
from torch.utils.data import DataLoader

from otus._lightning import drop_tips

__all__ = ["KeepBest", "KeepBestCallback", "fit", "make_trainer"]


class KeepBest:
    """The state dict with the lowest finite validation score so far, copied to the CPU.

    >>> net = nn.Linear(1, 1)
    >>> keep = KeepBest()
    >>> keep.update(2.0, 10, net), keep.update(3.0, 20, net), keep.update(float("nan"), 30, net)
    (True, False, False)
    >>> keep.score, keep.step
    (2.0, 10)
    """

    def __init__(self) -> None:
        self.score = math.inf
        self.step = -1
        self.state: dict[str, Tensor] | None = None

    def update(self, score: float, step: int, module: nn.Module) -> bool:
        """Keep ``module``'s state if ``score`` beats the best; True if it did."""
        if not (math.isfinite(score) and score < self.score):
            return False
        self.score, self.step = score, step
        self.state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        return True

    def restore(self, module: nn.Module) -> None:
        """Load the kept state into ``module`` (a state must have been kept)."""
        if self.state is None:
            raise RuntimeError("KeepBest.restore: no state kept yet")
        module.load_state_dict(self.state)


class KeepBestCallback(pl.Callback):
    """:class:`KeepBest` on the logged metric ``monitor`` at the end of each validation, for
    modules trained with automatic optimisation. ``select`` picks the network to keep
    (default: the whole module)."""

    def __init__(
        self,
        monitor: str = "val_loss",
        select: Callable[[pl.LightningModule], nn.Module] | None = None,
    ) -> None:
        self.monitor = monitor
        self.select = select
        self.best = KeepBest()

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or trainer.sanity_checking:
            return
        net = module if self.select is None else self.select(module)
        self.best.update(float(value), trainer.current_epoch, net)


def make_trainer(
    *,
    max_epochs: int,
    accelerator: str = "cpu",
    progress: bool = False,
    callbacks: Sequence[pl.Callback] = (),
    quiet: bool = False,
) -> pl.Trainer:
    """A single-device ``Trainer`` without logger, checkpoints, model summary or sanity
    validation; ``quiet`` also hides Lightning's INFO lines (device summary, stop reason)."""
    drop_tips()
    if quiet:
        for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        callbacks=list(callbacks),
        num_sanity_val_steps=0,
    )


def fit(
    trainer: pl.Trainer, module: pl.LightningModule, train: DataLoader, val: DataLoader
) -> None:
    """``trainer.fit`` without the warnings that tiny in-memory loaders always raise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")
        trainer.fit(module, train, val)
