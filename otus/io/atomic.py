"""Atomic output: write to a temporary file beside the target, rename on success."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from otus.errors import OtusError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path``, on any error it is removed.

    Readers therefore never see a half-written file, and a failed run leaves no output.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OtusError(f"{target}: output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OtusError(f"{target}: output folder {parent} is not writable")
    if target.is_dir():
        raise OtusError(f"{target}: is a folder; give a file name for the output")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as err:  # e.g. read-only file systems, where os.access may say yes to root
        raise OtusError(
            f"{target}: output folder {parent} is not writable ({err.strerror or err})"
        ) from None
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the output the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
