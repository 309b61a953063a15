"""Bootstrap ensembles: statistical uncertainties of the unfolding from replicas.

``otus fit --replicas K`` trains, beside the nominal run in ``RUN``, K members in
``RUN/replicas/000`` … (ordinary run folders). Member k trains with seed ``seed + 1 + k`` on
the training events with their weights multiplied by Poisson(1) draws (the Poisson bootstrap,
Hanley & MacGibbon 2006; the weight-based form used by the LHC experiments): x and z events
alike, in the loss and in the standardisation statistics. ``otus unfold --replicas K``
unfolds with member k and multiplies the input events' weights by Poisson(1) draws too, so
that the spread of the K replicas covers the statistics of both the training sample and the
data (SPEC §8).

The draws are counter-based: the count of row i of a file is a function of
(seed, member, stream, i) alone (a splitmix64 hash of the row index turned into a uniform and
then into a Poisson(1) count by its inverse CDF), so they do not depend on how the rows are
read in chunks.

>>> poisson_counts(0, 1, 0, 10, 15)
array([1, 0, 1, 4, 0])
>>> bool(np.array_equal(poisson_counts(0, 1, 0, 0, 15)[10:], poisson_counts(0, 1, 0, 10, 15)))
True
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from otus.errors import ConfigError, InputFileError

REPLICAS = "replicas"
LAST = "last.ckpt"
PathLike = str | os.PathLike[str]

# Inverse CDF of Poisson(1): P(N ≤ n) for n = 0 … 19 (the rest, < 1e-18, is n = 20).
_CDF = np.cumsum([math.exp(-1.0) / math.factorial(n) for n in range(20)])
_M64 = (1 << 64) - 1


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def poisson_counts(seed: int, member: int, stream: int, start: int, stop: int) -> np.ndarray:
    """Poisson(1) counts [stop − start] of rows ``start … stop − 1`` for bootstrap ``member``.

    Args:
        seed: the run's (or the unfolding's) seed.
        member: the replica index k ≥ 0.
        stream: tells independent samples apart (e.g. the x and z files of an unpaired
            training; one file read at two levels uses one stream, so pairs stay together).
        start, stop: the rows, by their index in the file.

    The count of a row depends on (seed, member, stream, row) only: reading a file in chunks
    of any size gives the same counts.
    """
    key = np.array([seed & _M64], dtype=np.uint64)
    for v in (member, stream):
        key = _mix(key ^ np.uint64(v & _M64))
    rows = np.arange(start, stop, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = _mix(key + (rows + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15))
    u = (h >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.searchsorted(_CDF, u, side="right").astype(np.int64)


def member_dir(run: PathLike, k: int) -> Path:
    """The folder of bootstrap member ``k`` of ``run``: ``run/replicas/00k``."""
    return Path(run) / REPLICAS / f"{k:03d}"


def member_config(cfg: Any, k: int) -> Any:
    """Member ``k``'s configuration: ``cfg`` (the nominal run's) with seed ``seed + 1 + k`` and
    ``data.bootstrap`` k."""
    from otus.models.config import config_from_dict

    d = cfg.to_dict()
    d["seed"] = cfg.seed + 1 + k
    d["data"]["bootstrap"] = k
    return config_from_dict(d)


def fit_replicas(
    cfg: Any,
    data: PathLike,
    out: PathLike,
    n: int,
    *,
    z_data: PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    fast_dev_run: bool = False,
) -> list[Path]:
    """Train members 0 … n − 1 of the bootstrap ensemble of the trained run ``out``.

    New members start from the run's own resolved ``config.yaml`` (:func:`member_config`);
    with ``resume`` a member that holds ``last.ckpt`` continues from it with its own
    configuration and ``cfg``'s trainer options (a finished member is not trained again),
    and missing members are trained. The trainer budget (``max_time``) applies per member.
    One line per member goes to stderr.
    """
    import yaml

    from otus.models.config import config_from_dict
    from otus.models.train import fit

    if n < 1:
        raise ConfigError(f"--replicas must be >= 1, got {n}")
    run = Path(out)

    def saved(d: Path) -> Any:
        path = d / "config.yaml"
        if not path.is_file():
            raise ConfigError(f"{d}: no config.yaml; cannot train or resume its replicas")
        return config_from_dict(yaml.safe_load(path.read_text()), where=str(path))

    nominal = saved(run)
    dirs = []
    for k in range(n):
        d = member_dir(run, k)
        done = (d / LAST).is_file()
        if done and not resume:
            raise ConfigError(f"{d}: already holds a trained member; use --resume")
        if done:
            mcfg = config_from_dict({**saved(d).to_dict(), "trainer": cfg.to_dict()["trainer"]})
        else:
            mcfg = member_config(nominal, k)
        print(
            f"otus fit: replica {k + 1}/{n} (seed {mcfg.seed}, bootstrap {k}) "
            f"{'resumed' if done else 'training'} in {d}",
            file=sys.stderr,
            flush=True,
        )
        fit(
            mcfg,
            data,
            d,
            z_data=z_data,
            resume=done,
            progress=progress,
            fast_dev_run=fast_dev_run,
        )
        if done:
            (d / "config.yaml").write_text(yaml.safe_dump(mcfg.to_dict(), sort_keys=False))
        dirs.append(d)
    return dirs


def count_members(run: PathLike) -> int:
    """How many consecutive members 0, 1, … of ``run``'s ensemble hold ``last.ckpt``."""
    k = 0
    while (member_dir(run, k) / LAST).is_file():
        k += 1
    return k


def member_runs(run: PathLike, n: int) -> list[Path]:
    """The folders of members 0 … n − 1 of ``run``; an error names the run and the count
    when it holds fewer."""
    have = count_members(run)
    if n < 1:
        raise InputFileError(f"--replicas must be >= 1, got {n}")
    if have < n:
        raise InputFileError(
            f"{run}: holds {have} bootstrap replica(s), {n} asked for; train them with "
            f"otus fit ... --replicas {n} --resume --out {run}"
        )
    return [member_dir(run, k) for k in range(n)]
