"""Plain named features (process ``generic``): a process without physics objects."""

from __future__ import annotations

import numpy as np
import pytest

from otus.errors import ConfigError, OtusError
from otus.physics.observables import observables
from otus.processes import GENERIC, ZEE, generic, get_process, process_from_attrs


def test_columns_are_features_and_observables() -> None:
    p = generic(["mjj", "deta_jj", "n.jet"], ["m_true"])
    assert (p.name, p.x_features, p.z_features, p.dx, p.dz) == (
        GENERIC,
        ("mjj", "deta_jj", "n.jet"),
        ("m_true",),
        3,
        1,
    )
    assert not p.has_objects and p.default_features() == p.x_features
    rows = np.arange(6.0).reshape(2, 3)
    obs = observables(p, rows, "x")
    assert list(obs) == ["mjj", "deta_jj", "n.jet"]
    np.testing.assert_array_equal(obs["deta_jj"], [1.0, 4.0])
    assert p == generic(["mjj", "deta_jj", "n.jet"], ["m_true"]) != generic(["mjj"])


def test_physics_processes_unchanged() -> None:
    assert ZEE.has_objects and ZEE.dx == 8 and ZEE.x_columns == ()
    assert ZEE.require_objects("training") is ZEE


@pytest.mark.parametrize(
    ("x", "match"),
    [
        ([], "at least one x feature"),
        (["a", "a"], "'a' is used twice"),
        (["1st"], "name '1st' is not usable"),
        (["a b"], "name 'a b' is not usable"),
        (["and"], "name 'and' is not usable"),
        (["abs"], "name 'abs' is not usable"),
        ("ab", "a list of names"),
    ],
)
def test_bad_names(x: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        generic(x)


def test_needs_a_physics_process() -> None:
    with pytest.raises(ConfigError, match="training needs a physics process"):
        generic(["a"]).require_objects("training")
    with pytest.raises(OtusError, match=r"'generic' .* is not a physics process"):
        get_process("generic")


def test_process_from_attrs() -> None:
    assert process_from_attrs("generic", x_features=["a"], z_features=["b"]) == generic(
        ["a"], ["b"]
    )
    assert process_from_attrs("zee") == ZEE
    assert process_from_attrs("zee", ZEE.card_text) == ZEE
