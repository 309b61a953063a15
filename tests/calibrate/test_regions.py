from __future__ import annotations

import numpy as np
import pytest

from otus.calibrate.regions import parse_region, region_mask
from otus.errors import ConfigError
from otus.physics import fourvec as fv
from otus.processes import ZEE

NAMES = ("m_ee", "e-_pt", "e+_pt", "e-_eta", "pt_ee")


def _obs() -> dict[str, np.ndarray]:
    return {
        "m_ee": np.array([70.0, 85.0, 95.0, 110.0]),
        "e-_pt": np.array([5.0, 30, 40, 50]),
        "e+_pt": np.array([20.0, 25, 30, 35]),
        "e-_eta": np.array([-2.0, 0.5, -1.0, 2.2]),
        "pt_ee": np.zeros(4),
    }


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("80 < m_ee < 100", [False, True, True, False]),
        ("m_ee < 80 or m_ee > 100", [True, False, False, True]),
        ("not (80 < m_ee < 100)", [True, False, False, True]),
        ("e-_pt > 20 and e+_pt >= 30", [False, False, True, True]),
        ("abs(e-_eta) < 1.5", [False, True, True, False]),
        ("e-_eta > -1.5 and m_ee != 85", [False, False, True, True]),
    ],
)
def test_region_expressions(expr: str, want: list[bool]) -> None:
    np.testing.assert_array_equal(parse_region(expr, NAMES).mask(_obs()), want)


@pytest.mark.parametrize(
    ("expr", "match"),
    [
        ("__import__('os').system('true')", "only abs"),
        ("m_ee.real > 3", "Attribute is not allowed"),
        ("m_ee + 1 < 3", "BinOp is not allowed"),
        ("[m_ee] < 3", "List is not allowed"),
        ("mee < 80", "unknown observable 'mee'"),
        ("m_ee", "is not a condition"),
        ("m_ee < 'a'", "not a number"),
        ("80 < m_ee <", "not a valid expression"),
        ("  ", "empty"),
        ("(m_ee < 3) < 4", "cannot compare a condition"),
        ("m_ee < 3 and 4", "need conditions"),
    ],
)
def test_unsafe_or_bad_expressions(expr: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_region(expr, NAMES).mask(_obs())


def test_region_mask_on_detector_rows_excludes_failed_events() -> None:
    pt = np.array([40.0, 40.0, 40.0])
    eta = np.array([0.3, 0.3, 0.3])
    e1 = fv.from_ptetaphim(pt, eta, np.zeros(3), np.zeros(3))
    e2 = fv.from_ptetaphim(pt, -eta, np.full(3, np.pi), np.zeros(3))
    x = np.concatenate([e1, e2], axis=1)
    x[2] = np.nan
    m = fv.invariant_mass(e1, e2)[0]  # ≈ 2·pT·cosh(η) for back-to-back electrons
    assert region_mask(f"{m - 1} < m_ee < {m + 1}", ZEE, x).tolist() == [True, True, False]
    # `not` cannot pull failed events in, and x_pass is honoured
    assert region_mask("not m_ee < 0", ZEE, x, np.array([True, False, True])).tolist() == [
        True,
        False,
        False,
    ]
