r"""The MC-vs-data classifier of the reweighter: a small MLP on standardised, range-clamped
features, trained with a weighted binary cross-entropy under a thin Lightning module.

With the two classes balanced to equal total weight, the minimiser of the weighted BCE is
:math:`s = p_d/(p_d+p_m)`, so :math:`e^{\mathrm{logit}} = p_{\rm data}/p_{\rm MC}`
(Cranmer et al., arXiv:1506.02169).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F

from otus.calibrate.reweight.config import LOSS_NAMES, ReweightConfig
from otus.calibrate.training import KeepBestCallback, fit, make_trainer
from otus.errors import InputFileError, TrainingError

if TYPE_CHECKING:
    from pytorch_lightning.utilities.types import OptimizerLRSchedulerConfig


def weighted_bce(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    r"""Weighted BCE :math:`-\sum w_i[y_i\log s_i + (1-y_i)\log(1-s_i)] / \sum|w_i|`.

    Negative weights keep their sign (the loss of a sample with negative-weight events is the
    difference of its positive and negative parts); normalising by :math:`\sum|w|` keeps the
    gradient scale independent of the batch's net weight.
    """
    per = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return _weighted_sum(per, w)


def weighted_mlc(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    r"""Weighted maximum-likelihood-classifier loss
    :math:`\sum w_i[-y_i\ell_i + (1-y_i)(e^{\ell_i}-1)] / \sum|w_i|`.

    With balanced classes its minimiser is also :math:`e^\ell = p_d/p_m` (D'Agnolo & Wulzer
    arXiv:1806.02350; Rizvi et al. arXiv:2305.10500). To second order in the error δ of the
    log-ratio it costs :math:`\int p_d\,δ^2/2`, where the BCE costs
    :math:`\int p_d\,δ^2/(2(1+r))`: it does not discount the regions where the ratio r is
    large, which is where the BCE-trained ratio is least accurate. Logits are capped at 30
    (r ≈ 10¹³) so that one outlier cannot overflow the exponential.
    """
    per = torch.where(y > 0.5, -logits, torch.expm1(logits.clamp(max=30.0)))
    return _weighted_sum(per, w)


def _weighted_sum(per: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Σ w·per / Σ|w|: signed weights, a scale independent of the batch's net weight."""
    return (w * per).sum() / w.abs().sum().clamp_min(1e-12)


LOSSES = {"bce": weighted_bce, "mlc": weighted_mlc}
assert tuple(LOSSES) == LOSS_NAMES  # the config validates against the names


class Classifier(nn.Module):
    """MLP on standardised features -> logit; the standardisation is stored as buffers.

    Inputs are first clamped to the range ``[lo, hi]`` seen in training, so outside it the
    ratio keeps its edge value (as a tree ensemble does) instead of being extrapolated by
    the network: a ratio fitted in a control region is continued flat into a signal region.
    """

    mean: torch.Tensor
    scale: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor

    def __init__(self, n_features: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.register_buffer("lo", torch.full((n_features,), -torch.inf))
        self.register_buffer("hi", torch.full((n_features,), torch.inf))
        layers: list[nn.Module] = []
        d = n_features
        for h in hidden:
            layers += [nn.Linear(d, h), nn.SiLU()]
            d = h
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.minimum(torch.maximum(x, self.lo), self.hi)
        return self.net((x - self.mean) / self.scale).squeeze(-1)

    def reset(self, gen: torch.Generator) -> None:
        """Initialise the weights from ``gen`` (no global RNG)."""
        for m in self.net:
            if isinstance(m, nn.Linear):
                bound = 1.0 / np.sqrt(m.in_features)
                nn.init.uniform_(m.weight, -bound, bound, generator=gen)
                nn.init.uniform_(m.bias, -bound, bound, generator=gen)


class LitClassifier(pl.LightningModule):
    """Thin Lightning wrapper: weighted BCE, Adam, train/val logging.

    ``ema`` > 0: an exponential moving average of the weights (decay ``ema`` per step) is
    kept, validated and returned instead of the last weights; it averages out the step-to-step
    noise of the optimiser, which otherwise dominates the error of the ratio where it is
    large (the MC is sparse there).
    """

    def __init__(
        self,
        net: Classifier,
        lr: float,
        ema: float = 0.0,
        plateau_patience: int = 2,
        loss: str = "bce",
    ) -> None:
        super().__init__()
        self.net = net
        self.loss_fn = LOSSES[loss]
        self.lr = lr
        self.plateau_patience = plateau_patience
        self.ema = (
            torch.optim.swa_utils.AveragedModel(
                net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(ema)
            )
            if ema > 0
            else None
        )

    def evaluated(self) -> Classifier:
        """The network that is validated and kept: the average, or the trained one."""
        return self.net if self.ema is None else cast(Classifier, self.ema.module)

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        x, y, w = batch
        net = self.net if stage == "train" else self.evaluated()
        loss = self.loss_fn(net(x), y, w)
        self.log(f"{stage}_loss", loss, prog_bar=False, batch_size=len(x))
        return loss

    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        return self._step(batch, "train")

    def on_train_batch_end(self, *_: Any) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.net)

    def validation_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        opt = torch.optim.Adam(self.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.3, patience=self.plateau_patience
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def _ema_decay(config: ReweightConfig, n_train: int) -> float:
    """Per-step decay of the weight average whose horizon is ``config.ema_epochs`` epochs,
    at most a fifth of ``config.epochs`` (an average over much of a short training would
    lag behind the network)."""
    if config.ema_epochs <= 0:
        return 0.0
    steps = max(1, -(-n_train // config.batch_size))
    horizon = min(config.ema_epochs, config.epochs / 5) * steps
    return 1.0 - 1.0 / max(1.0, horizon)


def _evaluated(module: pl.LightningModule) -> nn.Module:
    """The network of a :class:`LitClassifier` that is validated and kept."""
    if not isinstance(module, LitClassifier):
        raise TypeError(f"expected a LitClassifier, got {type(module).__name__}")
    return module.evaluated()


def _loader(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, bs: int, gen: torch.Generator | None
) -> torch.utils.data.DataLoader:
    ds = torch.utils.data.TensorDataset(
        torch.as_tensor(x, dtype=torch.float32),
        torch.as_tensor(y, dtype=torch.float32),
        torch.as_tensor(w, dtype=torch.float32),
    )
    base = (
        torch.utils.data.RandomSampler(ds, generator=gen)
        if gen is not None
        else torch.utils.data.SequentialSampler(ds)
    )
    sampler = torch.utils.data.BatchSampler(base, bs, drop_last=False)
    return torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=None)


def balanced_weights(w_mc: np.ndarray, w_data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale each class to the same total weight, (n_mc + n_data)/2, so s/(1-s) = p_d/p_m."""
    half = 0.5 * (len(w_mc) + len(w_data))
    out = []
    for name, w in (("MC", w_mc), ("data", w_data)):
        tot = float(np.sum(w))
        if not tot > 0:
            raise InputFileError(f"the {name} weights sum to {tot:g}; need a positive total")
        out.append(w * (half / tot))
    return out[0], out[1]


def train_classifier(
    x_mc: np.ndarray,
    w_mc: np.ndarray,
    x_data: np.ndarray,
    w_data: np.ndarray,
    *,
    config: ReweightConfig,
    seed: int,
) -> Classifier:
    """Train one MC-vs-data classifier with the weighted ``config.loss`` and early stopping."""
    wm, wd = balanced_weights(np.asarray(w_mc, np.float64), np.asarray(w_data, np.float64))
    x = np.concatenate([x_mc, x_data]).astype(np.float32)
    y = np.concatenate([np.zeros(len(x_mc)), np.ones(len(x_data))]).astype(np.float32)
    w = np.concatenate([wm, wd]).astype(np.float32)
    rng = np.random.default_rng(seed)
    is_val = rng.random(len(x)) < config.val_fraction
    gen = torch.Generator().manual_seed(seed)
    net = Classifier(x.shape[1], tuple(config.hidden))
    net.reset(gen)
    net.mean.copy_(torch.as_tensor(x[~is_val].mean(0)))
    net.scale.copy_(torch.as_tensor(x[~is_val].std(0)).clamp_min(1e-6))
    if config.clamp_features:
        net.lo.copy_(torch.as_tensor(x.min(0)))
        net.hi.copy_(torch.as_tensor(x.max(0)))
    keep = KeepBestCallback("val_loss", _evaluated)
    stop = pl.callbacks.EarlyStopping("val_loss", patience=config.patience, mode="min")
    trainer = make_trainer(
        max_epochs=config.epochs, accelerator=config.accelerator, callbacks=[keep, stop], quiet=True
    )
    fit(
        trainer,
        LitClassifier(
            net,
            config.lr,
            _ema_decay(config, int((~is_val).sum())),
            plateau_patience=max(2, config.patience // 3),
            loss=config.loss,
        ),
        _loader(x[~is_val], y[~is_val], w[~is_val], config.batch_size, gen),
        _loader(x[is_val], y[is_val], w[is_val], 8 * config.batch_size, None),
    )
    if keep.best.state is None:
        raise TrainingError(
            f"the reweighting classifier diverged (best val loss {keep.best.score})"
        )
    keep.best.restore(net)
    return net.eval()


def fit_logit_calibration(
    logit_mc: np.ndarray,
    w_mc: np.ndarray,
    logit_data: np.ndarray,
    w_data: np.ndarray,
    *,
    loss: str = "bce",
) -> tuple[float, float]:
    r"""Platt scaling of held-out logits: the (a, b) that minimise the balanced weighted
    ``loss`` (that of the classifiers) of :math:`a\,\ell + b` on out-of-fold logits ℓ of MC
    (label 0) and data (label 1).

    The classifier's weight average leaves it slightly under-confident: its log-ratio is
    shrunk toward zero (slope ≈ 0.985 against the true log-ratio on the mixture closure).
    The out-of-fold logits are independent of the networks' training, so fitting the two
    numbers on them undoes a global shrinkage without fitting noise (Platt 1999; the
    calibrated-classifier step of Cranmer et al. arXiv:1506.02169). A slope that comes out negative means the
    held-out logits carry no information; the constrained optimum a = b = 0 is returned.
    """
    wm, wd = balanced_weights(np.asarray(w_mc, np.float64), np.asarray(w_data, np.float64))
    lg = torch.as_tensor(np.concatenate([logit_mc, logit_data]), dtype=torch.float64)
    y = torch.cat([torch.zeros(len(logit_mc)), torch.ones(len(logit_data))]).double()
    w = torch.as_tensor(np.concatenate([wm, wd]), dtype=torch.float64)
    ab = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([ab], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = LOSSES[loss](ab[0] * lg + ab[1], y, w)
        value.backward()
        return value

    opt.step(closure)
    a, b = (float(v) for v in ab.detach())
    if not (np.isfinite(a) and np.isfinite(b)):
        raise TrainingError(f"the Platt scaling of the out-of-fold logits diverged ({a}, {b})")
    if a <= 0.0:
        # the held-out logits carry no information (MC and data alike): under a >= 0 the
        # optimum is the constant ratio of the balanced classes, a = b = 0
        return 0.0, 0.0
    return a, b


@torch.no_grad()
def predict_logit(net: Classifier, x: np.ndarray, *, batch: int = 65536) -> np.ndarray:
    """Logit log r(x) [N] (float64) of a trained classifier."""
    xt = torch.as_tensor(np.asarray(x, np.float32))
    out = [net(xt[i : i + batch]) for i in range(0, len(xt), batch)]
    return torch.cat(out).double().numpy() if out else np.zeros(0)
