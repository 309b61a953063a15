"""One-line description of the machine a benchmark ran on (recorded with its results)."""

from __future__ import annotations

import platform
import subprocess


def machine(threads: str = "1 torch thread") -> str:
    """Host, ``lscpu`` model name and CPU count, OS, torch version, ``threads``."""
    import torch

    info = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines())}
    except OSError:
        pass
    cpu = info.get("Model name") or platform.processor() or "unknown CPU"
    cores = info.get("CPU(s)", "?")
    return (
        f"{platform.node()}: {cpu}, {cores} CPUs (lscpu), {platform.system()} "
        f"{platform.release()}, torch {torch.__version__}, {threads}"
    )
