"""A fitted transport map and its file: :class:`OTMap`.

The map moves source events by the gradient of the convex potential ``g`` in standardised
coordinates (:func:`standardisation`); :meth:`OTMap.save` writes a state dict and the
constructor arguments atomically, :meth:`OTMap.load` reads them back without unpickling
code (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from otus.errors import InputFileError, OtusError
from otus.io.atomic import atomic_path
from otus.transport.icnn import ICNN
from otus.transport.ot_dual import conjugate, transport


@dataclass
class OTMap:
    """A fitted transport map :math:`x \\mapsto s\\,\\nabla g((x - m)/s) + m`.

    ``shift``/``scale`` standardise the transported variables, ``cond_shift``/``cond_scale``
    the conditioning variables (statistics of the source training sample).

    ``noise_dims`` > 0 (a stochastic map, fitted by the region objective): ``g`` is also
    conditioned on that many standard-normal draws per event, so each event is moved by one
    of a family of OT maps :math:`\\nabla_x g(x; c, u)`, convex in x for every draw u. It
    can add the smearing that a worse resolution in the data needs, which no deterministic
    map can; the draws come from the ``generator`` given to :meth:`transport`.
    """

    g: ICNN
    f: ICNN
    shift: Tensor
    scale: Tensor
    cond_shift: Tensor | None = None
    cond_scale: Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)
    noise_dims: int = 0

    @property
    def n_conditions(self) -> int:
        """Conditioning variables the caller supplies (the noise draws excluded)."""
        return self.g.cond_dim - self.noise_dims

    def _std(self, x: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor | None]:
        xs = (x - self.shift) / self.scale
        if c is None:
            return xs, None
        assert self.cond_shift is not None and self.cond_scale is not None
        return xs, (c - self.cond_shift) / self.cond_scale

    def transport(
        self,
        x: Tensor,
        c: Tensor | None = None,
        *,
        batch_size: int = 65536,
        device: str | torch.device | None = None,
        refine: int = 0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Move source points ``x`` [N, D] (given ``c`` [N, C]); batched, on ``device``.

        ``refine`` > 0: polish :math:`\\nabla g(x)` by that many conjugate iterations of ``f``
        (:func:`otus.transport.ot_dual.conjugate`), i.e. move by :math:`\\nabla f^*`.
        A stochastic map (``noise_dims`` > 0) draws its noise from ``generator`` (a fresh
        one seeded 0 if None, so a call is reproducible).
        """
        if x.ndim != 2 or x.shape[1] != self.g.dim:
            raise OtusError(
                f"dimension mismatch: the map transports {self.g.dim} features, "
                f"got shape {tuple(x.shape)}"
            )
        nc = self.n_conditions
        if (c is None) != (nc == 0) or (c is not None and c.shape != (len(x), nc)):
            raise OtusError(f"the map needs {nc} conditioning variables per event")
        if not bool(torch.isfinite(x).all()) or (
            c is not None and not bool(torch.isfinite(c).all())
        ):
            raise OtusError("input to transport holds NaN or inf")
        if device is not None:
            self.g.to(device)
        xs, cs = self._std(x.float(), None if c is None else c.float())
        if self.noise_dims:
            if refine > 0:
                raise OtusError("refine needs the dual's f; a stochastic map has none")
            gen = generator if generator is not None else torch.Generator().manual_seed(0)
            cs = with_noise(cs, len(xs), self.noise_dims, gen)
        t = transport(self.g, xs, cs, batch_size=batch_size)
        if refine > 0:
            dev = next(self.f.parameters()).device if device is None else device
            self.f.to(dev)
            t = (
                torch.cat(
                    [
                        conjugate(
                            self.f,
                            xs[a : a + batch_size].to(dev),
                            None if cs is None else cs[a : a + batch_size].to(dev),
                            t[a : a + batch_size].to(dev),
                            iters=refine,
                        ).to(t.device)
                        for a in range(0, len(xs), batch_size)
                    ]
                )
                if len(xs)
                else t
            )
        return t * self.scale + self.shift

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save atomically (a state dict plus the constructor arguments)."""
        state = {
            "dim": self.g.dim,
            "hidden": list(self.g.hidden),
            "cond_dim": self.g.cond_dim,
            "strong_convexity": self.g.strong_convexity,
            "g": self.g.state_dict(),
            "f": self.f.state_dict(),
            "shift": self.shift,
            "scale": self.scale,
            "cond_shift": self.cond_shift,
            "cond_scale": self.cond_scale,
            "info": self.info,
            "noise_dims": self.noise_dims,
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OTMap:
        p = Path(path)
        if not p.is_file():
            raise InputFileError(f"{p}: no such file")
        try:
            s = torch.load(p, map_location="cpu", weights_only=True)
            kw = {"cond_dim": s["cond_dim"], "strong_convexity": s["strong_convexity"]}
            g, f = ICNN(s["dim"], s["hidden"], **kw), ICNN(s["dim"], s["hidden"], **kw)
            g.load_state_dict(s["g"])
            f.load_state_dict(s["f"])
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise InputFileError(
                f"{p}: not an otus OT map ({type(err).__name__}: {first})"
            ) from None
        return cls(
            g.eval(),
            f.eval(),
            s["shift"],
            s["scale"],
            s["cond_shift"],
            s["cond_scale"],
            s["info"],
            int(s.get("noise_dims", 0)),  # maps saved before stochastic maps existed: 0
        )


def with_noise(c: Tensor | None, n: int, noise_dims: int, gen: torch.Generator) -> Tensor:
    """Standardised conditions ``c`` [n, C] (or None) with ``noise_dims`` standard-normal
    columns from ``gen`` appended: the inputs of a stochastic map's potential."""
    u = torch.randn(n, noise_dims, generator=gen)
    if c is None:
        return u
    return torch.cat([c, u.to(c.device, c.dtype)], 1)


def standardisation(a: Tensor, *, per_feature: bool) -> tuple[Tensor, Tensor]:
    """Shift and scale [D] that standardise the sample ``a`` [N, D]: per feature, or one
    isotropic scale for all (which keeps the Euclidean OT map optimal)."""
    m = a.mean(0)
    if per_feature:
        s = a.std(0).clamp_min(1e-12)
    else:  # one scale for all features keeps the Euclidean OT map optimal
        s = a.var(0).mean().sqrt().clamp_min(1e-12).expand(a.shape[1]).clone()
    return m, s
