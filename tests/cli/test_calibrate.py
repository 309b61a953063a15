from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from calibrate.test_features import zee_x  # tests/calibrate: pytest puts tests/ on sys.path

from otus.cli import main
from otus.io.h5 import Events, read_events, write_events
from otus.physics import fourvec as fv
from otus.processes import TTBAR, ZEE

FAST = ["--steps", "40", "--hidden", "8,8", "--batch-size", "128", "--val-every", "20"]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    x_mc = zee_x(1500, 0)
    x_mc[:20] = np.nan  # failing events stay untouched
    x_pass = np.all(np.isfinite(x_mc), axis=1)
    mc = write_events(tmp_path / "mc.h5", Events(ZEE, x=x_mc, x_pass=x_pass))
    data = write_events(tmp_path / "data.h5", Events(ZEE, x=zee_x(1500, 1, scale=1.05)))
    tt = write_events(tmp_path / "tt.h5", Events(TTBAR, x=np.ones((50, 24), np.float32)))
    return {"mc": mc, "data": data, "tt": tt, "dir": tmp_path}


def _fit(files: dict[str, Path], out: Path, *extra: str) -> int:
    """`otus calibrate fit` of the fixture's MC toward its data, into ``out``."""
    return main(
        [
            "calibrate",
            "fit",
            "--mc",
            str(files["mc"]),
            "--data",
            str(files["data"]),
            "--out",
            str(out),
            *extra,
        ]
    )


def test_fit_and_apply(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = files["dir"] / "model"
    rc = _fit(
        files,
        out,
        "--features",
        "e-_logpt,e+_logpt",
        "--condition",
        "e-_eta",
        "--region",
        "m_ee > 0",
        *FAST,
    )
    assert rc == 0, capsys.readouterr().err
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["features"] == ["e-_logpt", "e+_logpt"] and diag["n_mc"] == 1480
    res = files["dir"] / "cal.h5"
    assert (
        main(["calibrate", "apply", str(out), "--input", str(files["mc"]), "--out", str(res)]) == 0
    )
    before, after = read_events(files["mc"]), read_events(res)
    assert np.array_equal(before.x_pass, after.x_pass)
    assert np.all(np.isnan(after.x[:20]))
    p_b, p_a = fv.objects(before.x[20:].astype(float), 2), fv.objects(after.x[20:].astype(float), 2)
    np.testing.assert_allclose(fv.eta(p_a), fv.eta(p_b), atol=1e-4)  # η, φ kept
    assert not np.allclose(fv.pt(p_a), fv.pt(p_b))  # pT moved
    # energy on shell up to float32 storage: |E² - p²| / E² at the 1e-6 level
    assert np.max(np.abs(fv.mass2(p_a)) / p_a[..., 3] ** 2) < 1e-5


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--data", "{tt}"], "dimension mismatch: .*zee events .*ttbar"),
        (["--data", "{data}", "--condition", "e-_foo"], "unknown feature or observable 'e-_foo'"),
        (["--data", "{data}", "--features", "e-_px,e-_eta"], "mix of Cartesian and collider"),
        (["--data", "{data}", "--region", "m_ee > 1e9"], "only 0 passing events in region"),
        (["--data", "{missing}"], "missing.h5: no such file"),
        (["--data", "{data}", "--objective", "region"], "region objective needs a region"),
        (
            [
                "--data",
                "{data}",
                "--objective",
                "region",
                "--region",
                "m_ee > 0",
                "--solver",
                "conjugate",
            ],
            "--solver does not apply to the region objective",
        ),
        (
            [
                "--data",
                "{data}",
                "--objective",
                "region",
                "--region",
                "m_ee > 0",
                "--iterations",
                "2",
            ],
            "iterations apply to the dual objective",
        ),
        (["--data", "{data}", "--projections", "8"], "--projections does not apply to the dual"),
        (["--data", "{data}", "--noise-dims", "1"], "--noise-dims does not apply to the dual"),
        (
            [
                "--data",
                "{data}",
                "--objective",
                "region",
                "--region",
                "m_ee > 0",
                "--noise-dims",
                "-1",
            ],
            "--noise-dims must be >= 0, got -1",
        ),
    ],
)
def test_fit_bad_input(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], extra: list[str], match: str
) -> None:
    out = files["dir"] / "bad_model"
    paths = {k: str(v) for k, v in files.items()} | {"missing": str(files["dir"] / "missing.h5")}
    args = [a.format(**paths) for a in extra]
    rc = main(["calibrate", "fit", "--mc", str(files["mc"]), *args, "--out", str(out), *FAST])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("otus calibrate: error: ") and "\n" not in err
    import re

    assert re.search(match, err), err
    assert not (out / "map.pt").exists()


def test_apply_bad_input(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = files["dir"] / "model"
    assert _fit(files, out, "--features", "e-_logpt", *FAST) == 0
    res = files["dir"] / "res.h5"
    assert (
        main(["calibrate", "apply", str(out), "--input", str(files["tt"]), "--out", str(res)]) == 2
    )
    assert "the map calibrates zee events, the input holds ttbar" in capsys.readouterr().err
    assert not res.exists()
    assert (
        main(
            [
                "calibrate",
                "apply",
                str(files["dir"]),
                "--input",
                str(files["mc"]),
                "--out",
                str(res),
            ]
        )
        == 2
    )
    assert "not a calibrate model folder" in capsys.readouterr().err


def test_self_consistent_region_selects_mc_by_its_calibrated_observables(
    files: dict[str, Path],
) -> None:
    from otus.calibrate.ot.config import DualConfig
    from otus.calibrate.ot.files import _select, apply_map, fit_files

    kw = {
        "features": ["e-_logpt", "e+_logpt"],
        "region": "m_ee > 60",
        "config": DualConfig(
            steps=40, inner_steps=2, hidden=(8, 8), batch_size=128, val_every=20, seed=3
        ),
    }
    m1, s1 = fit_files(str(files["mc"]), str(files["data"]), **kw)
    _, s2 = fit_files(str(files["mc"]), str(files["data"]), iterations=2, **kw)
    assert s1["iterations"] == 1 and s2["iterations"] == 2
    mc = read_events(files["mc"])
    raw = int(_select(mc, kw["region"]).sum())
    moved = int(_select(apply_map(m1, mc), kw["region"]).sum())
    assert moved != raw  # the data are 5 % harder: calibration moves events across the cut
    assert s2["n_mc_per_iteration"] == [raw, moved] and s2["n_mc"] == moved
    # no region: nothing to make self-consistent, one fit
    _, s3 = fit_files(str(files["mc"]), str(files["data"]), iterations=3, **{**kw, "region": None})
    assert s3["iterations"] == 1


def test_per_object_map_is_fitted_on_pooled_objects_and_moves_each(files: dict[str, Path]) -> None:
    from otus.calibrate.features import object_groups
    from otus.calibrate.ot.files import apply_map, fit_files
    from otus.errors import ConfigError

    out = files["dir"] / "perobj"
    assert (
        _fit(
            files,
            out,
            "--features",
            "e-_logpt,e+_logpt",
            "--condition",
            "e-_eta,e+_eta",
            "--per-object",
            "--steps",
            "150",
            "--inner-steps",
            "2",
            "--hidden",
            "16,16",
            "--batch-size",
            "256",
            "--val-every",
            "25",
            "--solver",
            "conjugate",
        )
        == 0
    )
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["groups"] == [[["e-_logpt"], ["e-_eta"]], [["e+_logpt"], ["e+_eta"]]]
    assert diag["n_mc"] == 1480  # events; the map saw 2 × 1480 electrons
    from otus.calibrate.ot.map import OTMap

    m = OTMap.load(out / "map.pt")
    assert m.g.dim == 1 and m.g.cond_dim == 1
    mc, data = read_events(files["mc"]), read_events(files["data"])
    cal = apply_map(m, mc)
    for i in range(2):  # the data are 5 % harder in both electrons: both move toward it
        pt = [fv.pt(fv.objects(e.x[e.x_pass].astype(float), 2)[:, i]) for e in (mc, cal, data)]
        gap_before = abs(np.log(pt[0]).mean() - np.log(pt[2]).mean())
        gap_after = abs(np.log(pt[1]).mean() - np.log(pt[2]).mean())
        assert gap_after < 0.5 * gap_before
    with pytest.raises(ConfigError, match="same features"):
        object_groups(ZEE, ["e-_logpt", "e+_pt"], ["e-_eta", "e+_eta"])
    with pytest.raises(ConfigError, match="not calibrated"):
        object_groups(ZEE, ["e-_logpt"], ["e+_eta"])
    with pytest.raises(ConfigError, match="not an object feature"):
        fit_files(
            str(files["mc"]),
            str(files["data"]),
            features=["e-_logpt", "e+_logpt"],
            condition=["m_ee"],
            per_object=True,
        )


def test_region_objective_matches_the_calibrated_mc_that_lands_in_the_region(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The data are 5 % harder; the region cut (m_ee > 60) is on what the map moves. The
    fit must move the MC toward the data *as selected after calibration*, report the MC
    count of that selection, and keep the potential convex."""
    from otus.calibrate.ot.files import _select, apply_map
    from otus.calibrate.ot.map import OTMap

    out = files["dir"] / "region"
    region = "m_ee > 60"
    assert (
        _fit(
            files,
            out,
            "--features",
            "e-_logpt,e+_logpt",
            "--condition",
            "e-_eta,e+_eta",
            "--per-object",
            "--objective",
            "region",
            "--region",
            region,
            "--steps",
            "60",
            "--hidden",
            "16,16",
            "--lr",
            "1e-2",
            "--val-every",
            "10",
            "--projections",
            "16",
        )
        == 0
    )
    assert "sliced W2² in the region" in capsys.readouterr().out
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["objective"] == "region" and diag["best_step"] > 0
    m = OTMap.load(out / "map.pt")
    assert m.info["best"]["sliced_w2"] < 0.7 * m.info["identity"]["sliced_w2"]
    assert all(bool((w >= 0).all()) for w in m.g.positive_weights())
    mc, data = read_events(files["mc"]), read_events(files["data"])
    cal = apply_map(m, mc)
    assert diag["n_mc"] == int(_select(cal, region).sum()) != int(_select(mc, region).sum())
    for i in range(2):
        lpt = [
            np.log(fv.pt(fv.objects(e.x[_select(e, region)].astype(float), 2)[:, i]))
            for e in (mc, cal, data)
        ]
        assert abs(lpt[1].mean() - lpt[2].mean()) < 0.3 * abs(lpt[0].mean() - lpt[2].mean())


def _twin_electrons(n: int, seed: int, smear: float) -> np.ndarray:
    """Z-like rows whose two electrons share one pT (MC: smear 0), each then smeared by an
    independent log-normal factor exp(smear · N(0, 1)) (the data's worse resolution)."""
    rng = np.random.default_rng(seed)
    pt = rng.uniform(30, 50, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    objs = [
        fv.from_ptetaphim(
            pt * np.exp(smear * rng.standard_normal(n)),
            rng.uniform(-2.0, 2.0, n),
            phi + k * np.pi,
            0.000511,
        )
        for k in range(2)
    ]
    return np.concatenate(objs, axis=1).astype(np.float32)


def test_stochastic_region_map_adds_the_smearing_no_deterministic_map_can(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MC electrons share one pT; in the data each is smeared independently by 10 %. A
    deterministic per-electron map of log pT keeps the two pT equal; the stochastic map
    (--noise-dims 1) must spread log(pT1/pT2) to the data's √2 · 0.1 and fit the region
    better, reproducibly for one apply seed and differently for another."""
    from otus.calibrate.ot.files import apply_map
    from otus.calibrate.ot.map import OTMap

    files = {
        "mc": write_events(tmp_path / "mc.h5", Events(ZEE, x=_twin_electrons(3000, 0, 0.0))),
        "data": write_events(tmp_path / "data.h5", Events(ZEE, x=_twin_electrons(3000, 1, 0.1))),
    }
    common = [
        "--features",
        "e-_logpt,e+_logpt",
        "--per-object",
        "--objective",
        "region",
        "--region",
        "m_ee > 0",
        "--steps",
        "100",
        "--hidden",
        "16,16",
        "--lr",
        "1e-2",
        "--val-every",
        "25",
        "--projections",
        "32",
    ]
    spread, best = {}, {}
    mc = read_events(files["mc"])
    for noise in ("0", "1"):
        out = tmp_path / f"noise{noise}"
        assert _fit(files, out, *common, "--noise-dims", noise) == 0, capsys.readouterr().err
        m = OTMap.load(out / "map.pt")
        assert m.noise_dims == int(noise) and m.n_conditions == 0
        best[noise] = m.info["best"]["sliced_w2"]
        p = fv.objects(apply_map(m, mc, seed=3).x.astype(float), 2)
        spread[noise] = float(np.std(np.log(fv.pt(p[:, 0]) / fv.pt(p[:, 1]))))
    assert spread["0"] < 1e-3
    assert 0.11 < spread["1"] < 0.17  # the data: √2 · 0.1 = 0.141
    assert best["1"] < 0.6 * best["0"]
    again = apply_map(m, mc, seed=3).x
    np.testing.assert_array_equal(again, apply_map(m, mc, seed=3).x)
    assert not np.allclose(again, apply_map(m, mc, seed=4).x)
