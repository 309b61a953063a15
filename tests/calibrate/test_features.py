from __future__ import annotations

import numpy as np
import pytest

from otus.calibrate.features import (
    check_transportable,
    object_features,
    replace_features,
    transport_matrix,
)
from otus.errors import ConfigError
from otus.physics import fourvec as fv
from otus.processes import TTBAR, ZEE, generic


def zee_x(n: int, seed: int, *, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    objs = [
        fv.from_ptetaphim(
            scale * rng.uniform(20, 60, n),
            rng.uniform(-2.4, 2.4, n),
            rng.uniform(-np.pi, np.pi, n),
            0.000511,
        )
        for _ in range(2)
    ]
    return np.concatenate(objs, axis=1).astype(np.float32)


def test_features_roundtrip_keeps_event() -> None:
    x = zee_x(100, 0)
    names = ["e-_logpt", "e-_eta", "e+_phi"]
    v = transport_matrix(ZEE, x, names)
    back = replace_features(ZEE, x, names, v)
    np.testing.assert_allclose(back, x, rtol=1e-4, atol=1e-3)


def test_replace_recomputes_energy_on_shell() -> None:
    x = zee_x(50, 1)
    v = transport_matrix(ZEE, x, ["e-_logpt"]) + np.log(1.1)
    new = replace_features(ZEE, x, ["e-_logpt"], v)
    p = fv.objects(new.astype(np.float64), 2)
    np.testing.assert_allclose(fv.pt(p[:, 0]), 1.1 * fv.pt(fv.objects(x, 2)[:, 0]), rtol=1e-5)
    np.testing.assert_allclose(fv.mass(p[:, 0]), 0.000511, atol=0.05)  # float32 rounding
    np.testing.assert_allclose(new[:, 4:], x[:, 4:])  # e+ untouched


def test_rebuild_in_torch_matches_numpy_and_is_differentiable() -> None:
    import torch

    from otus.calibrate.features import new_values, rebuild_objects

    x = zee_x(40, 3).astype(np.float64)
    names = ["e-_logpt", "e+_logpt", "e+_eta"]
    v = transport_matrix(ZEE, x, names) + np.array([np.log(1.2), -0.1, 0.3])
    ref = fv.objects(replace_features(ZEE, x, names, v).astype(np.float64), 2)
    vt = torch.tensor(v, requires_grad=True)
    p = rebuild_objects(ZEE, fv.objects(torch.tensor(x), 2), new_values(ZEE, names, vt))
    np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-5, atol=1e-4)
    # m_ee² = 2 pT1 pT2 (cosh Δη − cos Δφ) for massless electrons: d log m / d log pT1 = ½
    torch.log(fv.invariant_mass(p[:, 0], p[:, 1])).sum().backward()
    np.testing.assert_allclose(vt.grad[:, 0].numpy(), 0.5, atol=1e-6)


def test_cartesian_features() -> None:
    x = zee_x(10, 2)
    new = replace_features(ZEE, x, ["e+_px"], np.zeros((10, 1)))
    assert np.all(new[:, 4] == 0)
    np.testing.assert_allclose(new[:, 7], np.sqrt(new[:, 5] ** 2 + new[:, 6] ** 2), rtol=1e-5)


def test_bad_feature_choices() -> None:
    with pytest.raises(ConfigError, match="unknown feature 'e-_mass' for zee"):
        check_transportable(ZEE, ["e-_mass"])
    with pytest.raises(ConfigError, match="mix of Cartesian and collider"):
        check_transportable(ZEE, ["e-_px", "e-_eta"])
    with pytest.raises(ConfigError, match="pt or logpt"):
        check_transportable(ZEE, ["e-_pt", "e-_logpt"])
    with pytest.raises(ConfigError, match="unknown feature or observable 'm_jj'"):
        transport_matrix(ZEE, zee_x(5, 0), ["m_jj"])
    assert "met_eta" not in object_features(TTBAR)


def test_conditioning_on_observables() -> None:
    x = zee_x(20, 3)
    m = transport_matrix(ZEE, x, ["m_ee"])[:, 0]
    np.testing.assert_allclose(
        m, fv.invariant_mass(*fv.objects(x.astype(float), 2).transpose(1, 0, 2)), rtol=1e-6
    )


def test_plain_columns_are_replaced_as_they_are() -> None:
    import torch

    from otus.calibrate.features import rebuild_rows, transport_features

    p = generic(["a", "b", "c"])
    x = np.arange(12.0).reshape(4, 3).astype(np.float32)
    assert transport_features(p) == ["a", "b", "c"] == object_features(p)
    np.testing.assert_array_equal(transport_matrix(p, x, ["c", "a"]), x[:, [2, 0]])
    new = replace_features(p, x, ["c"], -np.ones((4, 1)))
    np.testing.assert_array_equal(new[:, :2], x[:, :2])
    assert np.all(new[:, 2] == -1) and new.dtype == np.float32
    v = torch.zeros(4, 1, dtype=torch.float64, requires_grad=True)
    r = rebuild_rows(p, torch.tensor(x, dtype=torch.float64), ["b"], v)
    r.sum().backward()
    assert r.shape == (4, 3) and np.all(v.grad.numpy() == 1)
    with pytest.raises(ConfigError, match="unknown feature 'd' for generic"):
        check_transportable(p, ["d"])


def test_one_region_grammar() -> None:
    """ot.files selects with otus.calibrate.regions: == and != work, names are checked
    against the file's own process (not a fixed vocabulary)."""
    from otus.calibrate.ot.files import _select
    from otus.io.h5 import Events

    p = generic(["cat", "v"])
    ev = Events(p, x=np.array([[0, 1.0], [1, 2.0], [2, 3.0], [np.nan, 4.0]], np.float32))
    assert _select(ev, "cat != 1 and v < 3").tolist() == [True, False, False, False]
    assert _select(ev, "cat == 2 or cat == 0").tolist() == [True, False, True, False]
    with pytest.raises(ConfigError, match="unknown observable 'm_ee'; choose from cat, v"):
        _select(ev, "80 < m_ee < 100")
