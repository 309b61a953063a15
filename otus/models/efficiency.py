"""Detector efficiency ε(z) = P(the event passes the detector selection | z).

The decoder D(z) only knows the kinematic acceptance of the process (thresholds applied to
its output); real detectors also lose objects to reconstruction and identification
inefficiencies that depend on where the particle goes (the Delphes CMS card's electron
efficiency falls from 0.95 to 0.85 with |η|, and isolation costs more). Without a model of
that, a simulator passes far too many events (zee: 0.99 vs 0.53) and gets the wrong η
shape. ε(z) is a small classifier trained on the pass flags that every generated sample
carries (``x_pass``: which parton-level events produced a passing detector event). It uses
each event's flag only, never its detector-level partner, so training stays unpaired.
Without flags (z from an LHE file alone, x from collision data), the data's yield fixes the
mean of ε: N_pass = L·σ·⟨ε⟩ (``otus fit --luminosity``), and the sliced-Wasserstein match of
the ε-weighted simulation to the data its shape (:mod:`otus.models.module`).

Simulation then follows the detector: an event passes with probability ε(z), and a passing
event's x is drawn from D(z) *conditioned on the acceptance* (the decoder noise is redrawn for
reconstructions outside it, :func:`draw_accepted`), so P(pass | z) = ε(z) and
p(x | z, pass) = p_D(x | z, accepted).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import nn

from otus.physics.selection import acceptance
from otus.processes import Process

Tensor = torch.Tensor

TRAIN_RETRIES = 2  # redraws of rejected reconstructions per training step (bias ~(1-a)^3)
SIMULATE_RETRIES = 8  # at simulation time


class Efficiency(nn.Module):
    """Logit of ε(z) from standardised decoder-input coordinates.

    ``fourier`` > 0 adds, for the coordinates ``columns`` (all when None), sin and cos of
    2^k·π·s (k < ``fourier``) of the standardised coordinate s: fixed positional features that
    let the MLP make edges as sharp as a detector's (an η crack 0.15 wide), which an MLP on
    the raw coordinates learns only slowly, lowest frequencies first (Tancik et al.,
    arXiv:2006.10739)."""

    freq: Tensor

    def __init__(
        self,
        d_in: int,
        hidden: int = 64,
        fourier: int = 0,
        columns: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.fourier = int(fourier)
        self.columns = list(range(d_in)) if columns is None else [int(c) for c in columns]
        # not in the state dict: fixed by ``fourier``, and runs saved before it load as before
        self.register_buffer(
            "freq",
            math.pi * 2.0 ** torch.arange(self.fourier, dtype=torch.float32),
            persistent=False,
        )
        width = d_in + 2 * self.fourier * len(self.columns)
        self.net = nn.Sequential(
            nn.Linear(width, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 1),
        )

    def embed(self, s: Tensor) -> Tensor:
        """[N, d] standardised coordinates → the first layer's input [N, d + 2F·columns]."""
        if not self.fourier:
            return s
        a = (s[:, self.columns, None] * self.freq.to(s.dtype)).flatten(1)
        return torch.cat([s, torch.sin(a), torch.cos(a)], dim=1)

    def forward(self, s: Tensor) -> Tensor:
        return self.net(self.embed(s)).squeeze(-1)

    def logit_fast(self, c: Tensor, mu: Tensor, sd: Tensor, tile: int = 4096) -> Tensor:
        """Inference only: logits from feature-major raw coordinates c [d, N], the
        standardisation (c − μ)/σ folded into the first layer and the rows run in tiles that
        stay in cache (the row-major path spends most of its time outside the matmuls)."""
        if self.fourier:  # the embedding needs the standardised coordinates themselves
            return self((c.t() - mu) / sd)
        l1, l2, l3 = (cast(nn.Linear, self.net[i]) for i in (0, 2, 4))
        w1 = l1.weight / sd
        b1 = (l1.bias - w1 @ mu)[:, None]
        b2, b3 = l2.bias[:, None], l3.bias[:, None]
        silu = nn.functional.silu
        out = c.new_empty(c.shape[1])
        for a in range(0, c.shape[1], tile):
            h = silu(torch.addmm(b1, w1, c[:, a : a + tile]), inplace=True)
            h = silu(torch.addmm(b2, l2.weight, h), inplace=True)
            out[a : a + tile] = torch.addmm(b3, l3.weight, h)[0]
        return out


def draw_accepted(
    process: Process,
    decode: Callable[[Tensor], Tensor],
    z: Tensor,
    want: Tensor | None,
    retries: int,
) -> tuple[Tensor, Tensor]:
    """x = D(z) with up to ``retries`` redraws of the rows in ``want`` (all rows when None)
    whose reconstruction falls outside the acceptance; returns (x, accepted). A row whose
    redraws all fail keeps its first draw.

    Out-of-place updates keep the autograd graph of every row that is finally used.
    """
    x = decode(z)
    acc = acceptance(process, x)
    redo = ~acc if want is None else want & ~acc
    idx = torch.nonzero(redo).squeeze(1)
    if retries < 1 or idx.numel() == 0:
        return x, acc
    # All redraws in one decoder call (rows × retries): per call the network has a fixed
    # cost that would dominate a loop over ever smaller sets. The first accepted draw wins.
    xr = decode(z[idx].repeat(retries, 1)).reshape(retries, len(idx), -1)
    ar = acceptance(process, xr.reshape(retries * len(idx), -1)).reshape(retries, len(idx))
    got = ar.any(0)
    first = torch.argmax(ar.to(torch.int8), dim=0)  # first accepted draw (0 if none)
    pick = xr[first, torch.arange(len(idx), device=z.device)]
    sel = idx[got]
    x = x.index_put((sel,), pick[got])
    acc = acc.index_put((sel,), torch.ones_like(sel, dtype=torch.bool))
    return x, acc
