"""Speed, memory and I/O benchmarks (pytest-benchmark), run by ``make bench``:

    python -m pytest experiments/test_benchmarks.py -m bench [--benchmark-json FILE]

Small sizes, so that the whole set runs in a few minutes on a laptop; each benchmark keeps
its events per second (and peak memory, where measured) in ``extra_info`` (in the JSON).
The ``bench`` marker keeps them out of ``make test``. The full measurements behind
experiments/results/{speed,memory,io}.md are ``python -m experiments.bench_speed``,
``bench_memory`` and ``bench_io``; the speed goal (≥ 10⁶ simulated zee events per CPU
second, one core) is checked there.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from experiments.bench_io import OPERATIONS, operations, sample
from experiments.bench_memory import training
from experiments.bench_speed import SAMPLE, quick_run, tiled
from experiments.common import DATA, peak_rss
from otus.io.h5 import Events, read_events
from otus.models.api import Surrogate, load_run

pytestmark = pytest.mark.bench

SPEED_EVENTS = 262_144  # 4 batches of 65536
IO_EVENTS = 50_000


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def surrogate(tmp_path_factory: pytest.TempPathFactory) -> Surrogate:
    """experiments/zee_fast.yaml after one fast_dev_run step (speed does not need training)."""
    return load_run(quick_run(tmp_path_factory.mktemp("speed")))


@pytest.fixture(scope="module")
def zee() -> Events:
    return tiled(read_events(SAMPLE), SPEED_EVENTS)


@pytest.mark.parametrize("direction", ["simulate", "unfold"])
def test_throughput_one_thread(
    benchmark, surrogate: Surrogate, zee: Events, one_thread: None, direction: str
) -> None:
    fn = surrogate.simulate if direction == "simulate" else surrogate.unfold
    rows = zee.z if direction == "simulate" else zee.x[zee.x_pass]
    out = benchmark.pedantic(
        fn, args=(rows,), kwargs={"seed": 0, "batch_size": 65536}, rounds=5, warmup_rounds=1
    )
    assert len(out) == len(rows)
    benchmark.extra_info["events_per_s"] = len(rows) / benchmark.stats["min"]


def test_convert_peak_memory(benchmark, tmp_path: Path) -> None:
    d = DATA / "zee"
    cmd = [sys.executable, "-m", "otus", "convert", "zee", "--lhe", str(d / "parton.lhe.gz")]
    cmd += ["--delphes", str(d / "delphes.root"), "--out", str(tmp_path / "ev.h5")]
    rss, _, rc = benchmark.pedantic(peak_rss, args=(cmd,), rounds=1, iterations=1)
    assert rc == 0
    benchmark.extra_info["peak_rss_mb"] = rss


def test_fit_peak_memory(benchmark, tmp_path: Path) -> None:
    """`otus fit zee` (the defaults) for 10 s on 20 000 events."""
    ((n, rss, _, steps),) = benchmark.pedantic(
        training, args=([20_000], tmp_path, 10), rounds=1, iterations=1
    )
    assert steps > 0
    benchmark.extra_info.update(peak_rss_mb=rss, steps=steps, events=n)


@pytest.fixture(scope="module")
def io_ops(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Callable[[], object]]:
    ops = operations(sample(IO_EVENTS), tmp_path_factory.mktemp("io"))
    for fn in ops.values():  # every file exists before its reader is timed
        fn()
    return ops


@pytest.mark.parametrize("name", OPERATIONS)
def test_io(benchmark, io_ops: dict[str, Callable[[], object]], name: str) -> None:
    benchmark.pedantic(io_ops[name], rounds=3, iterations=1)
    benchmark.extra_info["events_per_s"] = IO_EVENTS / benchmark.stats["min"]
