"""Public interface to a trained run: ``load_run(run_dir) -> Surrogate``.

Example::

    sur = load_run("runs/zee")
    x_sim = sur.simulate(z, seed=1, repeats=3)   # [3 N, Dx], event-major
    z_unf = sur.unfold(x_pass_rows, seed=1)      # [N, Dz]
    members = load_replicas("runs/zee", 10)      # bootstrap ensemble (otus fit --replicas)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from pickle import UnpicklingError  # the exception only; nothing is unpickled here
from typing import Any

import numpy as np
import torch

from otus.errors import InputFileError, OtusError
from otus.models.config import config_from_dict
from otus.processes import Process

LAST = "last.ckpt"


@dataclass
class Surrogate:
    """A trained OTUS model: stochastic simulator (z → x) and unfolder (x → z)."""

    process: Process
    module: Any  # otus.models.module.OtusModule, imported lazily
    run_dir: Path

    def _apply(
        self,
        rows: np.ndarray,
        level: str,
        *,
        seed: int,
        repeats: int,
        batch_size: int,
        with_pass: bool = False,
    ) -> Any:
        p = self.process
        dim = p.dz if level == "z" else p.dx
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != dim:
            raise OtusError(
                f"{level} rows have shape {rows.shape}, expected [N, {dim}] for {p.name}"
            )
        if not np.all(np.isfinite(rows)):
            bad = int(np.sum(~np.all(np.isfinite(rows), axis=1)))
            raise OtusError(f"{level} holds NaN or inf in {bad} events")
        if repeats < 1:
            raise OtusError(f"repeats must be >= 1, got {repeats}")
        m = self.module
        if level == "z":

            def fn(t: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
                return m.simulate_with_pass(t, generator=g)
        else:

            def fn(t: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
                return m.unfold(t, generator=g), torch.ones(len(t), dtype=torch.bool)

        dev = m.device
        gen = torch.Generator(device=dev).manual_seed(int(seed))
        rep = np.repeat(rows, repeats, axis=0) if repeats > 1 else rows
        out = np.empty((len(rep), p.dx if level == "z" else p.dz), dtype=np.float32)
        flags = np.empty(len(rep), dtype=bool)
        # inference_mode: the networks' fast path (no autograd); results go straight into
        # the preallocated float32 output (no list of parts, no concatenate, no extra copy)
        with torch.inference_mode():
            for a in range(0, len(rep), batch_size):
                t = torch.as_tensor(rep[a : a + batch_size], dtype=torch.float32, device=dev)
                o, f = fn(t, gen)
                out[a : a + len(t)] = o.cpu().numpy()
                flags[a : a + len(t)] = f.cpu().numpy()
        return (out, flags) if with_pass else out

    def simulate(
        self,
        z: np.ndarray,
        *,
        seed: int,
        repeats: int = 1,
        batch_size: int = 65536,
        with_pass: bool = False,
    ) -> Any:
        """Detector-level x̃ = D(z, ε) for parton-level rows z [N, Dz]; [N·repeats, Dx] with
        the repeats of one event adjacent. With ``with_pass`` also the pass flags [N·repeats]:
        a row passes with the learnt efficiency ε(z) and lies inside the acceptance
        (:meth:`OtusModule.simulate_with_pass`); failing rows are kept, not removed."""
        return self._apply(
            z, "z", seed=seed, repeats=repeats, batch_size=batch_size, with_pass=with_pass
        )

    def unfold(
        self, x: np.ndarray, *, seed: int, repeats: int = 1, batch_size: int = 65536
    ) -> np.ndarray:
        """Parton-level z̃ = E(x, ε) for detector-level rows x [N, Dx] (passing events)."""
        return self._apply(x, "x", seed=seed, repeats=repeats, batch_size=batch_size)

    def efficiency(self, z: np.ndarray, *, batch_size: int = 65536) -> np.ndarray:
        """The learnt probability ε(z) [N] that parton-level rows z [N, Dz] pass the detector
        (:mod:`otus.models.efficiency`); an error for runs trained without it."""
        m = self.module
        if m.efficiency is None:
            raise OtusError(
                f"{self.run_dir}: was trained without the efficiency model (net.efficiency "
                "false or no pass flags): it cannot weight events to the full phase space"
            )
        z = np.asarray(z, np.float32)
        out = np.empty(len(z))
        with torch.inference_mode():
            for a in range(0, len(z), batch_size):
                t = torch.as_tensor(z[a : a + batch_size], device=m.device)
                out[a : a + len(t)] = torch.sigmoid(m.efficiency_logit(t)).cpu().numpy()
        return out


def load_checkpoint(path: str | os.PathLike[str]) -> Any:
    """An :class:`OtusModule` from a checkpoint file (loaded with ``weights_only=True``)."""
    from otus.models.module import OtusModule

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: no such checkpoint")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
        cfg = ck["hyper_parameters"]["config"]
        if isinstance(cfg.get("net"), dict) and "efficiency" not in cfg["net"]:
            cfg["net"]["efficiency"] = False  # runs trained before the efficiency model
        config_from_dict(cfg)
        module = OtusModule(cfg)
        module.load_state_dict(ck["state_dict"])
    except OtusError as err:
        raise InputFileError(f"{p}: bad configuration in checkpoint ({err})") from None
    except (
        OSError,
        KeyError,
        RuntimeError,
        TypeError,
        ValueError,
        EOFError,
        UnpicklingError,
    ) as err:  # UnpicklingError: weights_only refused an object
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputFileError(f"{p}: not an otus checkpoint ({msg})") from None
    return module.eval()


def load_run(
    run_dir: str | os.PathLike[str], *, process: str | None = None, device: str = "cpu"
) -> Surrogate:
    """Load ``run_dir/last.ckpt``; ``process``, when given, must match the run's."""
    run = Path(run_dir)
    if not run.is_dir():
        raise InputFileError(f"{run}: no such run folder")
    module = load_checkpoint(run / LAST).to(device)
    if process is not None and process != module.process.name:
        raise InputFileError(f"{run}: is a {module.process.name} model, not {process}")
    return Surrogate(module.process, module, run)


def load_replicas(
    run_dir: str | os.PathLike[str], n: int | None = None, *, device: Any = "cpu"
) -> list[Surrogate]:
    """The bootstrap members 0 … n − 1 of a run trained with ``otus fit --replicas``
    (``run_dir/replicas/000`` …; all of them when ``n`` is None); an error when the run
    holds fewer than ``n``."""
    from otus.models.replicas import count_members, member_runs

    run = Path(run_dir)
    if not run.is_dir():
        raise InputFileError(f"{run}: no such run folder")
    k = count_members(run) if n is None else n
    if n is None and k == 0:
        raise InputFileError(f"{run}: holds no bootstrap replicas (otus fit --replicas K)")
    return [load_run(d, device=device) for d in member_runs(run, k)]
