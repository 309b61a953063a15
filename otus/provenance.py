"""Provenance stored in every output: version, git commit, seed, settings, input hashes."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import otus


def file_hash(path: str | os.PathLike[str], limit: int = 1 << 30) -> str:
    """SHA-256 of a file's first ``limit`` bytes (all of it for ordinary event files)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = limit
        while left > 0:
            block = f.read(min(1 << 20, left))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def git_commit() -> str | None:
    """The commit of the otus source tree, if it is a git checkout (never via a shell)."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(
    *,
    seed: int | None = None,
    inputs: list[str] | None = None,
    deterministic: bool = True,
    **settings: Any,
) -> dict[str, Any]:
    """A provenance record. With ``deterministic`` (the default) it carries no time stamp,
    so that identical runs write bit-identical files."""
    rec: dict[str, Any] = {
        "otus_version": otus.__version__,
        "git_commit": git_commit(),
        "seed": seed,
        "settings": settings,
        "inputs": {str(p): file_hash(p) for p in (inputs or [])},
    }
    if not deterministic:
        rec["created"] = datetime.now(timezone.utc).isoformat()
        rec["host"] = platform.node()
    return rec
