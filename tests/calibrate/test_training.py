"""The shared training helpers of the calibration networks."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
from torch import nn

from otus._schedule import cosine_floor, cosine_schedule
from otus.calibrate.training import KeepBest


def test_cosine_floor_decays_from_one_to_the_floor() -> None:
    values = [cosine_floor(p / 10) for p in range(11)]
    assert values[0] == 1.0 and values[-1] == pytest.approx(0.02)
    assert all(a > b for a, b in pairwise(values))
    assert cosine_floor(0.5, floor=0.0) == pytest.approx(0.5)


def test_cosine_schedule_follows_the_progress() -> None:
    opt = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=2.0)
    sched = cosine_schedule(opt, lambda step: min(step / 4, 1.0))
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([2.0 * cosine_floor(min(s / 4, 1.0)) for s in range(6)])


def test_keep_best_keeps_a_copy_and_restores_it() -> None:
    net = nn.Linear(2, 1)
    keep = KeepBest()
    with pytest.raises(RuntimeError, match="no state kept"):
        keep.restore(net)
    assert keep.update(1.0, 5, net)
    kept = net.weight.detach().clone()
    with torch.no_grad():
        net.weight += 1.0  # the kept copy must not follow
    assert not keep.update(math.inf, 6, net) and not keep.update(1.5, 7, net)
    keep.restore(net)
    assert torch.equal(net.weight, kept) and (keep.score, keep.step) == (1.0, 5)
