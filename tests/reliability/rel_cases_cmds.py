"""Bad inputs of the training, application and calibration commands (fit, simulate, unfold,
generate, evaluate, reweight), appended to :data:`rel_cases.CASES`."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from rel_cases import CASES, Case, Run, edit_h5, unwritable_dir
from rel_samples import (
    CALIBRATE_ARGS,
    Samples,
    calibrated_model,
    reweight_model,
    tiny_config,
    trained_run,
    training_file,
)


def _add(category: str, name: str, target: str, match: str, make: Any) -> None:
    CASES.append(Case(category, name, target, make, match))


def _fit(
    s: Samples, t: Path, data: Path, *extra: Any, config: Path | None = None, process: str = "zee"
) -> Run:
    run = t / "run"
    cfg = config if config is not None else tiny_config(s.root_dir)
    argv = [
        "fit",
        process,
        "--data",
        str(data),
        "--config",
        str(cfg),
        "--out",
        str(run),
        *map(str, extra),
    ]
    return Run(argv=argv, outputs=[run / "last.ckpt"])


def _train_copy(s: Samples, t: Path, edit: Any) -> Path:
    out = t / "train.h5"
    shutil.copyfile(training_file(s), out)
    with h5py.File(out, "r+") as f:
        edit(f)
    return out


def _config(t: Path, text: str) -> Path:
    p = t / "bad.yaml"
    p.write_text(text)
    return p


def _apply(
    cmd: str,
    s: Samples,
    t: Path,
    inp: Path,
    out: Path | None = None,
    run: Path | None = None,
    *extra: Any,
) -> Run:
    out = out if out is not None else t / "out.h5"
    run = run if run is not None else trained_run(s)
    return Run(
        argv=[cmd, str(run), "--input", str(inp), "--out", str(out), *map(str, extra)],
        outputs=[out],
    )


def _ckpt_run(s: Samples, t: Path, edit: Any) -> Path:
    """A copy of the trained run whose checkpoint dictionary is passed through ``edit``."""
    run = t / "edited_run"
    run.mkdir()
    ck = torch.load(trained_run(s) / "last.ckpt", map_location="cpu", weights_only=True)
    ck = copy.deepcopy(ck)
    edit(ck)
    torch.save(ck, run / "last.ckpt")
    return run


class _Evil:
    """Unpickling this would create the file ``marker``: a checkpoint must never run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.makedirs, (str(self.marker),))


# ---- otus fit
F = "training input (fit)"
_add(
    F,
    "zee file fitted as ttbar",
    "otus fit",
    r"holds zee events, expected ttbar",
    lambda t, s: _fit(s, t, training_file(s), process="ttbar"),
)
_add(
    F,
    "x of ttbar width in a zee file",
    "otus fit",
    r"x has shape \(2000, 24\), expected",
    lambda t, s: _fit(
        s,
        t,
        _train_copy(
            s, t, lambda f: (f.__delitem__("x"), f.__setitem__("x", np.ones((2000, 24), "f4")))
        ),
    ),
)
_add(
    F,
    "file with 0 rows",
    "otus fit",
    r"holds 0 events, too few to train",
    lambda t, s: _fit(
        s,
        t,
        _train_copy(
            s, t, lambda f: [f[k].resize(0, axis=0) for k in ("z", "x", "x_pass", "weight")]
        ),
    ),
)
_add(
    F,
    "too few events for a batch",
    "otus fit",
    r"too few z events for one batch",
    lambda t, s: _fit(s, t, s.path("zee", "h5")),
)
_add(
    F,
    "NaN in z",
    "otus fit",
    r"train\.h5: z holds NaN or inf in 1 events",
    lambda t, s: _fit(s, t, _train_copy(s, t, lambda f: f["z"].__setitem__((1500, 1), np.nan))),
)
_add(
    F,
    "inf in a passing x row",
    "otus fit",
    r"train\.h5: x holds NaN or inf in 1 passing",
    lambda t, s: _fit(s, t, _train_copy(s, t, lambda f: f["x"].__setitem__((10, 3), np.inf))),
)
_add(
    F,
    "no passing events",
    "otus fit",
    r"train\.h5: fewer than 2 usable x events",
    lambda t, s: _fit(
        s,
        t,
        _train_copy(
            s,
            t,
            lambda f: (
                f["x_pass"].__setitem__(slice(None), False),
                f["x"].__setitem__(slice(None), np.nan),
            ),
        ),
    ),
)
_add(
    F,
    "all weights zero",
    "otus fit",
    r"train\.h5: the weights of the usable z events .* sum "
    r"to 0; need > 0",
    lambda t, s: _fit(s, t, _train_copy(s, t, lambda f: f["weight"].__setitem__(slice(None), 0.0))),
)
_add(
    F,
    "x-only file without --z-data",
    "otus fit",
    r"detector\.h5: holds no parton-level z",
    lambda t, s: _fit(s, t, s.path("zee", "h5_x")),
)
_add(
    F,
    "--z-data of another process",
    "otus fit",
    r"holds ttbar events, expected zee",
    lambda t, s: _fit(s, t, training_file(s), "--z-data", s.path("ttbar", "h5_z")),
)

C = "config and options"
_add(
    C,
    "unknown top-level key",
    "otus fit",
    r"bad\.yaml: unknown key 'optimiser'",
    lambda t, s: _fit(s, t, training_file(s), config=_config(t, "optimiser: {lr: 1}\n")),
)
_add(
    C,
    "unknown section key",
    "otus fit",
    r"bad\.yaml: net: unknown key 'hiden'",
    lambda t, s: _fit(s, t, training_file(s), config=_config(t, "net: {hiden: 3}\n")),
)
_add(
    C,
    "ill-typed value",
    "otus fit",
    r"optim\.lr: expected a number, got 'fast'",
    lambda t, s: _fit(s, t, training_file(s), config=_config(t, "optim: {lr: fast}\n")),
)
_add(
    C,
    "config of another process",
    "otus fit",
    r"is for process 'ttbar', not 'zee'",
    lambda t, s: _fit(s, t, training_file(s), config=_config(t, "process: ttbar\n")),
)
_add(
    C,
    "config is not YAML",
    "otus fit",
    r"bad\.yaml: not valid YAML",
    lambda t, s: _fit(s, t, training_file(s), config=_config(t, "net: {hidden: [\n")),
)
_add(
    C,
    "config file missing",
    "otus fit",
    r"nope\.yaml: no such config file",
    lambda t, s: _fit(s, t, training_file(s), config=t / "nope.yaml"),
)
_add(
    C,
    "shell syntax in a path is not expanded",
    "otus fit",
    r"\$\(touch .*pwned\)\.h5: no such file",
    lambda t, s: _fit(s, t, Path(f"{t}/$(touch {t}/pwned).h5")),
)
_add(
    C,
    "--max-epochs 0",
    "otus fit",
    r"trainer\.max_epochs must be >= 1",
    lambda t, s: _fit(s, t, training_file(s), "--max-epochs", 0),
)
_add(
    C,
    "unknown --strategy",
    "otus fit",
    r"bad trainer option: .*invalid strategy",
    lambda t, s: _fit(s, t, training_file(s), "--strategy", "nonsense"),
)
_add(
    C,
    "malformed --max-time",
    "otus fit",
    r"bad trainer option: .*not a valid duration",
    lambda t, s: _fit(s, t, training_file(s), "--max-time", "soon"),
)
_add(
    C,
    "--resume without a run",
    "otus fit",
    r"nothing to resume \(no last\.ckpt\)",
    lambda t, s: Run(
        argv=["fit", "zee", "--data", str(training_file(s)), "--out", str(t / "run"), "--resume"],
        outputs=[t / "run" / "last.ckpt"],
    ),
)
_add(
    C,
    "--out already holds a run",
    "otus fit",
    r"already holds a trained run",
    lambda t, s: Run(
        argv=["fit", "zee", "--data", str(training_file(s)), "--out", str(trained_run(s))]
    ),
)
_add(
    C,
    "--out is a file",
    "otus fit",
    r"afile: File exists",
    lambda t, s: (
        (t / "afile").write_text("x")
        and Run(
            argv=[
                "fit",
                "zee",
                "--data",
                str(training_file(s)),
                "--config",
                str(tiny_config(s.root_dir)),
                "--out",
                str(t / "afile"),
            ]
        )
    ),
)
_add(
    C,
    "--repeats 0",
    "otus simulate",
    r"--repeats and --batch-size must be >= 1",
    lambda t, s: _apply("simulate", s, t, s.path("zee", "h5"), None, None, "--repeats", 0),
)
_add(
    C,
    "generate --events 0",
    "otus generate",
    r"number of events must be a positive",
    lambda t, s: Run(
        argv=["generate", "zee", "--events", "0", "--out", str(t / "g")],
        outputs=[t / "g" / "events.h5"],
    ),
)
_add(
    C,
    "generate --events -3",
    "otus generate",
    r"number of events must be a positive",
    lambda t, s: Run(
        argv=["generate", "ttbar", "--events", "-3", "--out", str(t / "g")],
        outputs=[t / "g" / "events.h5"],
    ),
)

# ---- checkpoints
K = "checkpoint"
_add(
    K,
    "run folder missing",
    "otus simulate",
    r"nope: no such run folder",
    lambda t, s: _apply("simulate", s, t, s.path("zee", "h5"), None, t / "nope"),
)
_add(
    K,
    "run folder without last.ckpt",
    "otus unfold",
    r"last\.ckpt: no such checkpoint",
    lambda t, s: (
        (t / "empty_run").mkdir()
        or _apply("unfold", s, t, s.path("zee", "h5"), None, t / "empty_run")
    ),
)
_add(
    K,
    "truncated checkpoint",
    "otus simulate",
    r"last\.ckpt: not an otus checkpoint",
    lambda t, s: _apply("simulate", s, t, s.path("zee", "h5"), None, _trunc_run(s, t)),
)
_add(
    K,
    "checkpoint of a newer version (unknown config key)",
    "otus simulate",
    r"bad configuration in checkpoint .*unknown key 'new_option'",
    lambda t, s: _apply(
        "simulate",
        s,
        t,
        s.path("zee", "h5"),
        None,
        _ckpt_run(
            s, t, lambda ck: ck["hyper_parameters"]["config"]["net"].__setitem__("new_option", 1)
        ),
    ),
)
_add(
    K,
    "checkpoint whose weights do not fit its config",
    "otus unfold",
    r"last\.ckpt: not an otus checkpoint \(Error\(s\) in loading state_dict",
    lambda t, s: _apply(
        "unfold",
        s,
        t,
        s.path("zee", "h5"),
        None,
        _ckpt_run(
            s, t, lambda ck: ck["hyper_parameters"]["config"]["net"].__setitem__("hidden", 32)
        ),
    ),
)
_add(
    K,
    "checkpoint with a pickled object (code execution attempt)",
    "otus simulate",
    r"last\.ckpt: not an otus checkpoint \(Weights only load failed",
    lambda t, s: _evil_run(s, t),
)
_add(
    K,
    "zee run applied to ttbar events",
    "otus simulate",
    r"ttbar/events\.h5: holds ttbar events, expected zee",
    lambda t, s: _apply("simulate", s, t, s.path("ttbar", "h5")),
)
_add(
    K,
    "zee run unfolding a ttbar Delphes file",
    "otus unfold",
    r"delphes\.root: holds no passing detector-level events",
    lambda t, s: _apply("unfold", s, t, s.path("ttbar", "root")),
)
_add(
    C,
    "--resume with --config",
    "otus fit",
    r"--resume continues with the run's own config",
    lambda t, s: Run(
        argv=[
            "fit",
            "zee",
            "--data",
            str(training_file(s)),
            "--out",
            str(t / "r"),
            "--resume",
            "--config",
            str(tiny_config(s.root_dir)),
        ]
    ),
)


def _trunc_run(s: Samples, t: Path) -> Path:
    run = t / "cut_run"
    run.mkdir()
    data = (trained_run(s) / "last.ckpt").read_bytes()
    (run / "last.ckpt").write_bytes(data[: len(data) // 3])
    return run


def _evil_run(s: Samples, t: Path) -> Run:
    marker = t / "code_ran"
    run = _ckpt_run(s, t, lambda ck: ck.__setitem__("extra", _Evil(marker)))
    r = _apply("simulate", s, t, s.path("zee", "h5"), None, run)
    r.outputs.append(marker)  # must not exist afterwards: the object was never unpickled
    return r


# ---- simulate / unfold inputs and outputs
A = "application input (simulate/unfold)"
_add(
    A,
    "simulate an x-only file",
    "otus simulate",
    r"holds no parton-level z events to simulate",
    lambda t, s: _apply("simulate", s, t, s.path("zee", "h5_x")),
)
_add(
    A,
    "unfold a z-only file",
    "otus unfold",
    r"holds no detector-level x events to unfold",
    lambda t, s: _apply("unfold", s, t, s.path("zee", "h5_z")),
)
_add(
    A,
    "unfold an LHE file",
    "otus unfold",
    r"parton\.lhe: unsupported input format",
    lambda t, s: _apply("unfold", s, t, s.path("zee", "lhe")),
)
_add(
    A,
    "NaN in z to simulate",
    "otus simulate",
    r"z holds NaN or inf in 1 events",
    lambda t, s: _apply(
        "simulate", s, t, edit_h5(s, "zee", "h5_z", t, lambda f: f["z"].__setitem__((4, 0), np.nan))
    ),
)
_add(
    A,
    "corrupt LHE to simulate",
    "otus simulate",
    r"parton\.lhe\.gz: not a readable LHE",
    lambda t, s: _apply("simulate", s, t, _cut(s.copy("zee", "lhe_gz", t))),
)
_add(
    A,
    "unsupported output suffix",
    "otus simulate",
    r"o\.csv: unsupported output format",
    lambda t, s: _apply("simulate", s, t, s.path("zee", "h5"), t / "o.csv"),
)

U = "unwritable output"
_add(
    U,
    "simulate into a missing folder",
    "otus simulate",
    r"nodir.*does not exist",
    lambda t, s: _apply("simulate", s, t, s.path("zee", "h5"), t / "nodir" / "o.h5"),
)
_add(
    U,
    "unfold into a folder path",
    "otus unfold",
    r"outdir\.h5: is a folder",
    lambda t, s: (
        (t / "outdir.h5").mkdir()
        or Run(
            argv=[
                "unfold",
                str(trained_run(s)),
                "--input",
                str(s.path("zee", "h5")),
                "--out",
                str(t / "outdir.h5"),
            ]
        )
    ),
)
_add(
    U,
    "generate into a file path",
    "otus generate",
    r"afile: exists and is not a folder",
    lambda t, s: (
        (t / "afile").write_text("x")
        and Run(argv=["generate", "zee", "--events", "5", "--out", str(t / "afile")])
    ),
)


def _readonly_sim(t: Path, s: Samples) -> Run:
    d = unwritable_dir(t)
    if d is None:
        import pytest

        pytest.skip("no unwritable folder available")
    return _apply("simulate", s, t, s.path("zee", "h5"), d / "o.h5")


_add(U, "simulate into a read-only folder", "otus simulate", r"is not writable", _readonly_sim)


def _cut(p: Path) -> Path:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return p


# ---- calibration and evaluation inputs
Q = "calibration/evaluation input"
_add(
    Q,
    "reweight MC and data of different processes",
    "otus reweight",
    r"holds ttbar events but .* holds zee",
    lambda t, s: Run(
        argv=[
            "reweight",
            "fit",
            "--mc",
            str(s.path("zee", "h5")),
            "--data",
            str(s.path("ttbar", "h5")),
            "--out",
            str(t / "rw"),
        ],
        outputs=[t / "rw" / "model.pt"],
    ),
)
_add(
    Q,
    "reweight with an unknown feature",
    "otus reweight",
    r"unknown features \['nonsense'\]",
    lambda t, s: Run(
        argv=[
            "reweight",
            "fit",
            "--mc",
            str(s.path("zee", "h5")),
            "--data",
            str(s.path("zee", "h5")),
            "--out",
            str(t / "rw"),
            "--features",
            "nonsense",
        ],
        outputs=[t / "rw" / "model.pt"],
    ),
)
_add(
    Q,
    "reweight MC with NaN",
    "otus reweight",
    r"z holds NaN or inf",
    lambda t, s: Run(
        argv=[
            "reweight",
            "fit",
            "--mc",
            str(edit_h5(s, "zee", "h5", t, lambda f: f["z"].__setitem__((2, 2), np.nan))),
            "--data",
            str(s.path("zee", "h5")),
            "--out",
            str(t / "rw"),
        ],
        outputs=[t / "rw" / "model.pt"],
    ),
)
_add(
    Q,
    "reweight apply without a model",
    "otus reweight",
    r"not a reweighting model folder",
    lambda t, s: Run(
        argv=[
            "reweight",
            "apply",
            str(t),
            "--input",
            str(s.path("zee", "h5")),
            "--out",
            str(t / "o.h5"),
        ],
        outputs=[t / "o.h5"],
    ),
)
_add(
    Q,
    "evaluate different processes",
    "otus evaluate",
    r"truth holds zee events but prediction holds ttbar",
    lambda t, s: Run(
        argv=[
            "evaluate",
            "--truth",
            str(s.path("zee", "h5")),
            "--pred",
            str(s.path("ttbar", "h5")),
            "--out",
            str(t / "ev"),
        ],
        outputs=[t / "ev" / "metrics.json"],
    ),
)
_add(
    Q,
    "evaluate a prediction with NaN",
    "otus evaluate",
    r"z holds NaN or inf",
    lambda t, s: Run(
        argv=[
            "evaluate",
            "--truth",
            str(s.path("zee", "h5")),
            "--pred",
            str(edit_h5(s, "zee", "h5", t, lambda f: f["z"].__setitem__((0, 0), np.inf))),
            "--out",
            str(t / "ev"),
        ],
        outputs=[t / "ev" / "metrics.json"],
    ),
)


# ---- ICNN calibration and reweighting models
def _cal_fit(s: Samples, t: Path, mc: Path, data: Path, *extra: Any) -> Run:
    out = t / "cal"
    return Run(
        argv=[
            "calibrate",
            "fit",
            "--mc",
            str(mc),
            "--data",
            str(data),
            "--out",
            str(out),
            *CALIBRATE_ARGS,
            *map(str, extra),
        ],
        outputs=[out / "map.pt"],
    )


def _model_apply(cmd: str, model: Path, inp: Path, t: Path) -> Run:
    out = t / "o.h5"
    return Run(
        argv=[cmd, "apply", str(model), "--input", str(inp), "--out", str(out)], outputs=[out]
    )


def _damaged_model(t: Path, src: Path, name: str, how: str) -> tuple[Path, Path]:
    """A copy of a model folder whose ``name`` file is truncated or holds a pickled object."""
    d = t / "model"
    shutil.copytree(src, d)
    marker = t / "code_ran"
    if how == "cut":
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[: len(data) // 3])
    else:
        obj = torch.load(d / name, map_location="cpu", weights_only=True)
        torch.save({"payload": _Evil(marker), "state": obj}, d / name)
    return d, marker


def _evil_apply(cmd: str, t: Path, src: Path, name: str) -> Run:
    d, marker = _damaged_model(t, src, name, "evil")
    r = _model_apply(cmd, d, src.parent.parent / "zee" / "events.h5", t)
    r.outputs.append(marker)
    return r


CAL = "calibration models (calibrate/reweight)"
_add(
    CAL,
    "calibrate MC and data of different processes",
    "otus calibrate",
    r"dimension mismatch: .*holds zee events \(8 features\), .*holds ttbar \(24\)",
    lambda t, s: _cal_fit(s, t, s.path("zee", "h5"), s.path("ttbar", "h5")),
)
_add(
    CAL,
    "calibrate with an unknown feature",
    "otus calibrate",
    # One name check for features and conditions (one feature vocabulary).
    r"unknown feature or observable 'nonsense'",
    lambda t, s: _cal_fit(s, t, s.path("zee", "h5"), s.path("zee", "h5"), "--features", "nonsense"),
)
_add(
    CAL,
    "calibrate MC with NaN",
    "otus calibrate",
    r"x holds NaN or inf in 1 passing",
    lambda t, s: _cal_fit(
        s,
        t,
        edit_h5(s, "zee", "h5", t, lambda f: f["x"].__setitem__((0, 0), np.nan)),
        s.path("zee", "h5"),
    ),
)
_add(
    CAL,
    "calibrate parton-level file",
    "otus calibrate",
    r"holds no detector-level x",
    lambda t, s: _cal_fit(s, t, s.path("zee", "h5_z"), s.path("zee", "h5")),
)
_add(
    CAL,
    "calibrate --steps 0",
    "otus calibrate",
    r"--steps must be >= 1, got 0",
    lambda t, s: _cal_fit(s, t, s.path("zee", "h5"), s.path("zee", "h5"), "--steps", 0),
)
_add(
    CAL,
    "calibrate with a malformed region",
    "otus calibrate",
    r"region 'm_ee >': not a valid expression",
    lambda t, s: _cal_fit(s, t, s.path("zee", "h5"), s.path("zee", "h5"), "--region", "m_ee >"),
)
_add(
    CAL,
    "zee map applied to ttbar events",
    "otus calibrate",
    r"the map calibrates zee events, the input holds ttbar",
    lambda t, s: _model_apply("calibrate", calibrated_model(s), s.path("ttbar", "h5"), t),
)
_add(
    CAL,
    "calibrate apply without a model",
    "otus calibrate",
    r"not a calibrate model folder",
    lambda t, s: _model_apply("calibrate", t, s.path("zee", "h5"), t),
)
_add(
    CAL,
    "truncated map.pt",
    "otus calibrate",
    r"map\.pt: not an otus OT map",
    lambda t, s: _model_apply(
        "calibrate",
        _damaged_model(t, calibrated_model(s), "map.pt", "cut")[0],
        s.path("zee", "h5"),
        t,
    ),
)
_add(
    CAL,
    "map.pt with a pickled object (code execution attempt)",
    "otus calibrate",
    r"map\.pt: not an otus OT map",
    lambda t, s: _evil_apply("calibrate", t, calibrated_model(s), "map.pt"),
)
_add(
    CAL,
    "truncated model.pt",
    "otus reweight",
    r"model\.pt: unreadable reweighting model",
    lambda t, s: _model_apply(
        "reweight",
        _damaged_model(t, reweight_model(s), "model.pt", "cut")[0],
        s.path("zee", "h5"),
        t,
    ),
)
_add(
    CAL,
    "model.pt with a pickled object (code execution attempt)",
    "otus reweight",
    r"model\.pt: unreadable reweighting model \(Weights only load failed",
    lambda t, s: _evil_apply("reweight", t, reweight_model(s), "model.pt"),
)
