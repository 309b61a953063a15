"""Same seed and inputs give bit-identical outputs on CPU (issue 8, part 3), a different
seed gives different ones (so the comparisons can fail), and every output carries its
provenance (version, git commit, seed, settings, input hashes)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from rel_samples import Samples, samples_fixture, tiny_config, trained_run, training_file  # noqa: F401 (fixture)

from otus.cli import main
from otus.provenance import file_hash


def _run(*argv: object) -> None:
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in argv])
    assert rc == 0, argv


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _provenance(path: Path) -> dict:
    with h5py.File(path) as f:
        return json.loads(f.attrs["provenance"])


def _check_provenance(prov: dict, *, seed: int, inputs: list[Path]) -> None:
    import otus

    assert prov["otus_version"] == otus.__version__
    assert "git_commit" in prov and "settings" in prov
    assert prov["seed"] == seed
    assert prov["inputs"] == {str(p): file_hash(p) for p in inputs}


@pytest.mark.parametrize("cmd", ["simulate", "unfold"])
def test_apply_is_bit_identical_per_seed(cmd: str, samples: Samples, tmp_path: Path) -> None:
    run, inp = trained_run(samples), samples.path("zee", "h5")
    outs = {}
    for name, seed in (("a", 4), ("b", 4), ("c", 5)):
        outs[name] = tmp_path / f"{name}.h5"
        _run(cmd, run, "--input", inp, "--out", outs[name], "--seed", seed, "--repeats", 2)
    assert _digest(outs["a"]) == _digest(outs["b"])
    assert _digest(outs["a"]) != _digest(outs["c"])
    _check_provenance(_provenance(outs["a"]), seed=4, inputs=[inp])


def test_fit_is_bit_identical_per_seed(samples: Samples, tmp_path: Path) -> None:
    ref = trained_run(samples)  # seed 1, the tiny config, the training file
    data, cfg = training_file(samples), tiny_config(samples.root_dir)
    for name, seed in (("same", 1), ("other", 2)):
        _run(
            "fit", "zee", "--data", data, "--config", cfg, "--out", tmp_path / name, "--seed", seed
        )
    sd = {
        k: torch.load(d / "last.ckpt", weights_only=True)["state_dict"]
        for k, d in (("ref", ref), ("same", tmp_path / "same"), ("other", tmp_path / "other"))
    }
    assert sd["ref"].keys() == sd["same"].keys()
    assert all(torch.equal(sd["ref"][k], sd["same"][k]) for k in sd["ref"])
    assert not all(torch.equal(sd["ref"][k], sd["other"][k]) for k in sd["ref"])
    assert (ref / "metrics.csv").read_text() == (tmp_path / "same" / "metrics.csv").read_text()
    prov = json.loads((tmp_path / "same" / "provenance.json").read_text())
    _check_provenance(prov, seed=1, inputs=[data])


def test_reweight_is_bit_identical_per_seed(samples: Samples, tmp_path: Path) -> None:
    import shutil

    mc, data = training_file(samples), samples.path("zee", "h5")
    model = tmp_path / "model"  # one path: the model folder is recorded in the provenance
    outs, model_hash = {}, {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        shutil.rmtree(model, ignore_errors=True)
        _run(
            "reweight",
            "fit",
            "--mc",
            mc,
            "--data",
            data,
            "--out",
            model,
            "--folds",
            2,
            "--epochs",
            2,
            "--hidden",
            "8",
            "--no-diagnostics",
            "--seed",
            seed,
        )
        model_hash[name] = file_hash(model / "model.pt")
        outs[name] = tmp_path / f"{name}.h5"
        _run("reweight", "apply", model, "--input", mc, "--out", outs[name])
    with h5py.File(outs["a"]) as fa, h5py.File(outs["b"]) as fb:
        for k in fa:
            np.testing.assert_array_equal(fa[k][()], fb[k][()], err_msg=k)
        assert fa.attrs["provenance"] == fb.attrs["provenance"]
    assert _digest(outs["a"]) == _digest(outs["b"])
    assert _digest(outs["a"]) != _digest(outs["c"])
    rec = _provenance(outs["a"])["reweight"]
    _check_provenance(rec, seed=3, inputs=[mc])
    assert rec["model_sha256"] == model_hash["a"] == model_hash["b"] != model_hash["c"]


@pytest.mark.generate
def test_generate_is_bit_identical_per_seed(tmp_path: Path) -> None:
    pytest.importorskip("pythia8mc")
    import uproot

    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        _run("generate", "zee", "--events", 12, "--seed", seed, "--out", tmp_path / name)
    a, b, c = (tmp_path / n for n in "abc")
    for f in ("events.h5", "parton.lhe.gz"):
        assert _digest(a / f) == _digest(b / f), f
        assert _digest(a / f) != _digest(c / f), f
    # ROOT files carry creation times and UUIDs; their content must agree.
    import awkward as ak

    with uproot.open(a / "delphes.root") as fa, uproot.open(b / "delphes.root") as fb:
        assert ak.array_equal(fa["Delphes"].arrays(), fb["Delphes"].arrays())
    prov = _provenance(a / "events.h5")
    assert prov["seed"] == 7 and prov["otus_version"]


def test_calibrate_is_bit_identical_per_seed(samples: Samples, tmp_path: Path) -> None:
    from rel_samples import CALIBRATE_ARGS

    mc, data = training_file(samples), samples.path("zee", "h5")
    maps, outs = {}, {}
    import shutil

    model = tmp_path / "cal"  # one path: the model folder is recorded in the provenance
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        shutil.rmtree(model, ignore_errors=True)
        _run(
            "calibrate",
            "fit",
            "--mc",
            mc,
            "--data",
            data,
            "--out",
            model,
            *CALIBRATE_ARGS,
            "--seed",
            seed,
        )
        maps[name] = torch.load(model / "map.pt", weights_only=True)
        outs[name] = tmp_path / f"{name}.h5"
        _run("calibrate", "apply", model, "--input", mc, "--out", outs[name], "--seed", seed)
    for k in ("g", "f"):
        assert all(torch.equal(maps["a"][k][p], maps["b"][k][p]) for p in maps["a"][k])
        assert not all(torch.equal(maps["a"][k][p], maps["c"][k][p]) for p in maps["a"][k])
    assert _digest(outs["a"]) == _digest(outs["b"])
    with h5py.File(outs["a"]) as fa, h5py.File(outs["c"]) as fc:
        assert not np.array_equal(fa["x"][()], fc["x"][()], equal_nan=True)
    prov = _provenance(outs["a"])["calibrate"]
    _check_provenance(prov, seed=3, inputs=[mc])
    assert prov["settings"]["model"] == str(model)
