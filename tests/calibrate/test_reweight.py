from __future__ import annotations

import numpy as np
import pytest
import torch

from otus.calibrate.reweight import fit as rw
from otus.calibrate.reweight.classifier import (
    balanced_weights,
    fit_logit_calibration,
    weighted_bce,
    weighted_mlc,
)
from otus.calibrate.reweight.clipping import clip_ratio
from otus.calibrate.reweight.config import ReweightConfig
from otus.calibrate.reweight.fit import (
    OverlapWarning,
    ReweightFit,
    fit_reweighter,
    fold_of,
    fold_table,
    row_hash,
)
from otus.errors import ConfigError, InputFileError, TrainingError


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny nets: one thread is much faster than a contended pool."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


FAST = ReweightConfig(k_folds=3, repeats=1, epochs=12, hidden=(32, 32), batch_size=1024, patience=3)


def _phi(x: np.ndarray, s: float = 1.0) -> np.ndarray:
    return np.exp(-0.5 * (x / s) ** 2) / (s * np.sqrt(2 * np.pi))


def _shifted(n: int, mu: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xm = rng.normal(size=(n, 2))
    xd = rng.normal(size=(n, 2))
    xd[:, 0] += mu
    return xm, xd


def test_recovers_analytic_ratio() -> None:
    mu = 0.5
    xm, xd = _shifted(8000, mu, 0)
    fit = fit_reweighter(xm, np.ones(len(xm)), xd, np.ones(len(xd)), config=FAST)
    true = np.exp(mu * xm[:, 0] - mu**2 / 2)  # N(mu,1)/N(0,1), both normalised
    bulk = np.abs(xm[:, 0]) < 2
    err = np.mean(np.abs(fit.mc_weights[bulk] / true[bulk] - 1))
    assert err < 0.06
    # normalise="data": the new MC weights sum to the data weight
    assert fit.mc_weights.sum() == pytest.approx(len(xd), rel=1e-9)


def test_negative_weights_are_used_not_dropped() -> None:
    # MC density 2·N(0,1) − N(0,0.7²) (positive everywhere) made from a positive and a
    # negative-weight component; data N(0,1). Dropping the negative events would give r ≡ 1.
    rng = np.random.default_rng(1)
    n = 8000
    pos, neg = rng.normal(size=(2 * n, 1)), rng.normal(scale=0.7, size=(n, 1))
    xm = np.concatenate([pos, neg])
    wm = np.concatenate([np.ones(2 * n), -np.ones(n)])
    xd = rng.normal(size=(n, 1))
    fit = fit_reweighter(xm, wm, xd, np.ones(n), config=FAST)
    grid = np.linspace(-1.5, 1.5, 31)[:, None]
    true = _phi(grid[:, 0]) / (2 * _phi(grid[:, 0]) - _phi(grid[:, 0], 0.7))
    got = np.exp(np.mean([rw.predict_logit(m, grid) for m in fit.models], axis=0))
    assert np.mean(np.abs(got / true - 1)) < 0.12
    # without the negative events the ratio would be flat; the truth varies by a factor 1.7
    assert got[15] / got[0] > 1.3


def _spy_on_training(monkeypatch) -> list[set[int]]:
    """Record, for every classifier trained, the hashes of the MC events it saw."""
    seen: list[set[int]] = []
    orig = rw.train_classifier

    def spy(x_mc, w_mc, x_data, w_data, *, config, seed):
        seen.append(set(row_hash(x_mc, seed=config.seed).tolist()))
        return orig(x_mc, w_mc, x_data, w_data, config=config, seed=seed)

    monkeypatch.setattr(rw, "train_classifier", spy)
    return seen


def test_kfold_no_event_weighted_by_a_model_that_saw_it(monkeypatch) -> None:
    seen = _spy_on_training(monkeypatch)
    xm, xd = _shifted(3000, 0.3, 2)
    fit = fit_reweighter(xm, np.ones(len(xm)), xd, np.ones(len(xd)), config=FAST)
    h = row_hash(xm, seed=FAST.seed)
    fold = fold_of(h, FAST.k_folds)
    assert len(seen) == FAST.k_folds and np.bincount(fold).min() > 0
    for i in range(len(xm)):
        assert int(h[i]) not in seen[fold[i]]  # the model weighting event i never saw it
    # every event was seen by the other k-1 models
    assert all(int(h[i]) in seen[(fold[i] + 1) % FAST.k_folds] for i in range(len(xm)))
    # applying the fit to the training events again uses the same out-of-fold models
    m, _ = fit.multiplier(xm)
    np.testing.assert_allclose(m, fit.mc_weights, rtol=1e-6)
    # events never seen get the mean logit of all models
    new = xm[:5] + 1e-3
    mean = np.mean([rw.predict_logit(mm, new) for mm in fit.models], axis=0)
    a, b = fit.calibration
    np.testing.assert_allclose(fit.logit(new), a * mean + b)


def test_ensemble_keeps_the_kfold_guarantee(monkeypatch) -> None:
    seen = _spy_on_training(monkeypatch)
    cfg = ReweightConfig(**{**FAST.__dict__, "repeats": 2, "epochs": 3})
    xm, xd = _shifted(2000, 0.3, 7)
    fit = fit_reweighter(xm, np.ones(len(xm)), xd, np.ones(len(xd)), config=cfg)
    k = cfg.k_folds
    h = row_hash(xm, seed=cfg.seed)
    folds = fold_table(h, k, 2)
    assert len(seen) == len(fit.models) == 2 * k
    assert np.mean(folds[:, 0] == folds[:, 1]) < 0.5  # the repeats re-shuffle the folds
    for i in range(len(xm)):
        for r in range(2):
            assert int(h[i]) not in seen[r * k + folds[i, r]]
    # a training event's logit is the mean of exactly its two out-of-fold models
    want = np.zeros(len(xm))
    for r in range(2):
        for j in range(k):
            sel = folds[:, r] == j
            want[sel] += rw.predict_logit(fit.models[r * k + j], xm[sel]) / 2
    # (after the Platt scaling fitted on those same out-of-fold logits)
    a, b = fit.calibration
    assert a > 0 and (a, b) != (1.0, 0.0)
    np.testing.assert_allclose(np.log(fit.mc_ratio), a * want + b, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fit.logit(xm), a * want + b, rtol=1e-6, atol=1e-9)
    # unseen events: the mean over all 2k models; the round trip keeps the fold table
    new = xm[:5] + 1e-3
    mean = np.mean([rw.predict_logit(m, new) for m in fit.models], axis=0)
    np.testing.assert_allclose(fit.logit(new), a * mean + b)
    back = ReweightFit.from_dict(fit.to_dict())
    np.testing.assert_allclose(back.multiplier(xm)[0], fit.mc_weights, rtol=1e-6)


def test_platt_scaling_recovers_the_slope_of_shrunk_logits() -> None:
    # MC N(0,1), data N(mu,1): log r = mu x - mu^2/2; logits shrunk by half need a = 2, b = 0
    rng = np.random.default_rng(5)
    mu, n = 0.8, 40000
    xm, xd = rng.normal(size=n), rng.normal(mu, 1.0, size=n)
    half = [0.5 * (mu * x - 0.5 * mu**2) for x in (xm, xd)]
    a, b = fit_logit_calibration(half[0], np.ones(n), half[1], np.ones(n))
    assert a == pytest.approx(2.0, abs=0.08) and b == pytest.approx(0.0, abs=0.03)
    # class sizes and overall weights do not matter (the classes are balanced)
    a2, b2 = fit_logit_calibration(half[0], np.full(n, 3.0), half[1][: n // 2], np.ones(n // 2))
    assert a2 == pytest.approx(2.0, abs=0.12) and b2 == pytest.approx(0.0, abs=0.05)
    # logits that anti-separate carry no usable information: the constant ratio
    assert fit_logit_calibration(-half[0], np.ones(n), -half[1], np.ones(n)) == (0.0, 0.0)
    # pure noise: the slope collapses toward 0, the ratio toward flat
    a0, _ = fit_logit_calibration(rng.normal(size=n), np.ones(n), rng.normal(size=n), np.ones(n))
    assert 0.0 <= a0 < 0.03


def test_mlc_loss_recovers_the_ratio() -> None:
    # the MLC loss has the same minimiser as the BCE: Platt under it finds a = 2 on halved
    # logits, and a full fit recovers the analytic ratio of the shifted Gaussian
    rng = np.random.default_rng(6)
    mu, n = 0.8, 40000
    xm, xd = rng.normal(size=n), rng.normal(mu, 1.0, size=n)
    half = [0.5 * (mu * x - 0.5 * mu**2) for x in (xm, xd)]
    a, b = fit_logit_calibration(half[0], np.ones(n), half[1], np.ones(n), loss="mlc")
    assert a == pytest.approx(2.0, abs=0.1) and b == pytest.approx(0.0, abs=0.05)
    xm2, xd2 = _shifted(8000, 0.5, 0)
    cfg = ReweightConfig(**{**FAST.__dict__, "loss": "mlc"})
    fit = fit_reweighter(xm2, np.ones(8000), xd2, np.ones(8000), config=cfg)
    true = np.exp(0.5 * xm2[:, 0] - 0.125)
    bulk = np.abs(xm2[:, 0]) < 2
    assert np.mean(np.abs(fit.mc_weights[bulk] / true[bulk] - 1)) < 0.06
    with pytest.raises(ConfigError, match="loss must be"):
        ReweightConfig(loss="mse")


def test_weighted_mlc_values() -> None:
    # data events cost -l, MC events e^l - 1; a negative weight subtracts its event's cost
    logits, y = torch.tensor([0.3, -1.0]), torch.tensor([1.0, 0.0])
    got = weighted_mlc(logits, y, torch.tensor([1.0, 2.0]))
    assert float(got) == pytest.approx((-0.3 + 2 * np.expm1(-1.0)) / 3.0, rel=1e-6)
    neg = weighted_mlc(logits, y, torch.tensor([1.0, -2.0]))
    assert float(neg) == pytest.approx((-0.3 - 2 * np.expm1(-1.0)) / 3.0, rel=1e-6)
    big = weighted_mlc(torch.tensor([500.0]), torch.tensor([0.0]), torch.tensor([1.0]))
    assert torch.isfinite(big)  # capped, no overflow


def test_platt_scaling_is_saved_and_can_be_switched_off() -> None:
    xm, xd = _shifted(3000, 0.5, 8)
    fit = fit_reweighter(xm, np.ones(3000), xd, np.ones(3000), config=FAST)
    a, b = fit.calibration
    assert 0.5 < a < 2.0 and a != 1.0
    back = ReweightFit.from_dict(fit.to_dict())
    assert back.calibration == (a, b)
    np.testing.assert_allclose(back.multiplier(xm)[0], fit.mc_weights, rtol=1e-6)
    old = fit.to_dict()
    del old["calibration"]  # files written before the calibration load uncalibrated
    raw = ReweightFit.from_dict(old)
    assert raw.calibration == (1.0, 0.0)
    np.testing.assert_allclose(a * raw.logit(xm) + b, fit.logit(xm), rtol=1e-6, atol=1e-9)
    off = fit_reweighter(
        xm,
        np.ones(3000),
        xd,
        np.ones(3000),
        config=ReweightConfig(**{**FAST.__dict__, "calibrate_logit": False}),
    )
    assert off.calibration == (1.0, 0.0)
    # same networks (same seeds), only the scaling differs
    np.testing.assert_allclose(np.log(fit.mc_ratio), a * np.log(off.mc_ratio) + b, atol=1e-9)


def test_clipping_is_reported() -> None:
    r = np.array([0.5, 1.0, 3.0, 12.0, 40.0])
    out, rep = clip_ratio(r, clip=10.0)
    np.testing.assert_array_equal(out, [0.5, 1.0, 3.0, 10.0, 10.0])
    assert rep.n_clipped == 2 and rep.max_ratio == 40.0
    assert rep.weight_removed == pytest.approx((2 + 30) / r.sum())
    assert "clipped 2 of 5" in str(rep)
    same, rep0 = clip_ratio(r, clip=None)
    assert rep0.n_clipped == 0 and same is not None and "no clipping" in str(rep0)

    xm, xd = _shifted(3000, 1.0, 3)
    cfg = ReweightConfig(**{**FAST.__dict__, "clip": 2.0})
    fit = fit_reweighter(xm, np.ones(len(xm)), xd, np.ones(len(xd)), config=cfg)
    assert fit.clip_report.n_clipped == int(np.sum(fit.mc_ratio > 2.0)) > 0
    assert np.max(fit.mc_weights) == pytest.approx(2.0 * fit.norm)


def test_overlap_warning() -> None:
    rng = np.random.default_rng(4)
    xm = rng.normal(size=(3000, 1))
    xd = np.concatenate([rng.normal(size=(2700, 1)), rng.normal(8.0, 0.3, size=(300, 1))])
    with pytest.warns(OverlapWarning, match="supports do not overlap"):
        fit = fit_reweighter(xm, np.ones(3000), xd, np.ones(3000), config=FAST)
    assert not fit.overlap["ok"]
    assert fit.overlap["data_frac_outside_mc_range"]["f0"] > 0.05


def test_ratio_is_flat_outside_the_training_range() -> None:
    xm, xd = _shifted(3000, 0.5, 6)
    fit = fit_reweighter(xm, np.ones(3000), xd, np.ones(3000), config=FAST)
    hi = np.max(np.concatenate([xm, xd]), axis=0)
    far = np.array([[hi[0] + 5.0, 0.0], [hi[0] + 50.0, 0.0]])
    edge = np.array([[hi[0], 0.0]])
    for m in fit.models:
        got = rw.predict_logit(m, far)
        # beyond the largest training value the ratio is held at its edge value
        np.testing.assert_allclose(got, np.repeat(rw.predict_logit(m, edge), 2), rtol=1e-5)
    free = fit_reweighter(
        xm,
        np.ones(3000),
        xd,
        np.ones(3000),
        config=ReweightConfig(**{**FAST.__dict__, "clamp_features": False}),
    )
    assert not torch.isfinite(free.models[0].hi).any()


def test_save_load_round_trip(tmp_path) -> None:
    xm, xd = _shifted(2000, 0.3, 5)
    fit = fit_reweighter(xm, np.ones(2000), xd, np.ones(2000), features=("a", "b"), config=FAST)
    torch.save(fit.to_dict(), tmp_path / "m.pt")
    back = ReweightFit.from_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    assert back.features == ("a", "b") and back.config == fit.config
    np.testing.assert_allclose(back.multiplier(xm)[0], fit.mc_weights, rtol=1e-6)


def test_weighted_bce_sign_of_negative_weights() -> None:
    logits = torch.tensor([0.3, -1.0])
    y = torch.tensor([1.0, 0.0])
    pos = weighted_bce(logits, y, torch.tensor([1.0, 1.0]))
    neg = weighted_bce(logits, y, torch.tensor([1.0, -1.0]))
    assert float(neg) < float(pos)  # a negative weight subtracts its event's loss


def test_row_hash_is_seeded_and_stable() -> None:
    x = np.random.default_rng(0).normal(size=(100, 3))
    np.testing.assert_array_equal(row_hash(x, seed=1), row_hash(x.copy(), seed=1))
    assert not np.array_equal(row_hash(x, seed=1), row_hash(x, seed=2))
    assert len(set(row_hash(x).tolist())) == 100


@pytest.mark.parametrize(
    ("xm", "wm", "xd", "wd", "match"),
    [
        (np.zeros((10, 2)), np.ones(10), np.zeros((10, 3)), np.ones(10), "MC has 2 features"),
        (np.zeros((0, 2)), np.ones(0), np.zeros((10, 2)), np.ones(10), "MC sample is empty"),
        (np.ones((10, 2)), np.zeros(10), np.ones((10, 2)), np.ones(10), "all MC weights"),
        (np.ones((10, 2)), np.ones(10), np.ones((10, 2)), np.zeros(10), "all data weights"),
        (np.ones((10, 2)), np.ones(9), np.ones((10, 2)), np.ones(10), "MC weights have shape"),
        (np.full((10, 2), np.nan), np.ones(10), np.ones((10, 2)), np.ones(10), "NaN"),
    ],
)
def test_bad_input(xm, wm, xd, wd, match) -> None:
    with pytest.raises(InputFileError, match=match):
        fit_reweighter(xm, wm, xd, wd, config=FAST)


def test_net_negative_weights_rejected() -> None:
    with pytest.raises(InputFileError, match="sum to"):
        balanced_weights(np.array([1.0, -2.0]), np.ones(3))


def test_bad_config() -> None:
    with pytest.raises(ConfigError, match="k_folds"):
        ReweightConfig(k_folds=1)
    with pytest.raises(ConfigError, match="repeats"):
        ReweightConfig(repeats=0)
    with pytest.raises(ConfigError, match="clip"):
        ReweightConfig(clip=0.5)
    with pytest.raises(ConfigError, match="normalise"):
        ReweightConfig(normalise="sum")
    with pytest.raises(ConfigError, match="ema_epochs"):
        ReweightConfig(ema_epochs=-1.0)


def test_weight_average_is_what_is_validated_and_kept() -> None:
    from otus.calibrate.reweight.classifier import Classifier, LitClassifier

    net = Classifier(2, (4,))
    lit = LitClassifier(net, 1e-3, ema=0.5)
    w0 = net.net[0].weight.detach().clone()
    with torch.no_grad():
        net.net[0].weight += 1.0
    lit.on_train_batch_end()  # the first update copies the weights
    with torch.no_grad():
        net.net[0].weight += 1.0
    lit.on_train_batch_end()  # then 0.5·average + 0.5·weights
    torch.testing.assert_close(lit.evaluated().net[0].weight, w0 + 1.5)
    assert lit.evaluated() is not net
    assert LitClassifier(net, 1e-3).evaluated() is net  # ema = 0: the trained weights


def test_recovers_analytic_ratio_with_weight_average() -> None:
    mu = 0.5
    xm, xd = _shifted(8000, mu, 0)
    cfg = ReweightConfig(**{**FAST.__dict__, "ema_epochs": 1.0})
    fit = fit_reweighter(xm, np.ones(len(xm)), xd, np.ones(len(xd)), config=cfg)
    true = np.exp(mu * xm[:, 0] - mu**2 / 2)
    bulk = np.abs(xm[:, 0]) < 2
    assert np.mean(np.abs(fit.mc_weights[bulk] / true[bulk] - 1)) < 0.06


def test_infinite_ratio_is_an_error() -> None:
    with pytest.raises(TrainingError, match="not finite"):
        rw._exp_ratio(np.array([0.0, 800.0]))
