"""Atomic output: write to a temporary file beside the target, rename on success."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


class AtomicWriter:
    """Base of the incremental writers: the file appears at ``path`` only when the writer is
    closed with ``ok`` (or its ``with`` block ends without an error); otherwise the
    temporary file is removed. Subclasses open their handles on :attr:`tmp` in
    ``__init__`` (inside :meth:`_opening`), write the file's last bytes in :meth:`_finish`
    and close their handles in :meth:`_release`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._ctx = atomic_path(self.path)
        self.tmp = self._ctx.__enter__()

    @contextlib.contextmanager
    def _opening(self) -> Iterator[None]:
        """Wrap the opening of the handles: a failure removes the temporary file."""
        try:
            yield
        except BaseException as err:
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise

    def _finish(self) -> None:
        """Write what completes the file (called on a successful close only)."""

    def _release(self) -> None:
        """Close the open handles (called on every close)."""

    def close(self, ok: bool = True) -> None:
        """Finish the file (``ok``) or discard it."""
        try:
            if ok:
                self._finish()
            self._release()
        except BaseException as err:
            with contextlib.suppress(Exception):
                self._release()
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise
        if ok:
            self._ctx.__exit__(None, None, None)
        else:
            abort = OtusError("write aborted")
            self._ctx.__exit__(type(abort), abort, None)

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(ok=exc_type is None)
