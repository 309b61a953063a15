"""ROOT files through uproot: open a tree, and read branches in chunks of entries, with every
problem turned into a one-line InputFileError that names the file. Shared by the Delphes and
NanoAOD readers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import awkward as ak

from otus.errors import InputFileError


def short(err: BaseException) -> str:
    """The first line of an exception's message (its type when it has none)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def open_root(path: Path, what: str) -> Any:
    """The uproot file at ``path`` (``what``: e.g. "a Delphes ROOT file", for messages)."""
    import uproot

    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder, expected {what}")
    try:
        # No array cache: chunks are read once, and a cache would hold 100 MB of them.
        return uproot.open(path, array_cache=None)
    except Exception as err:  # uproot raises many types for non-ROOT input
        raise InputFileError(f"{path}: not a readable ROOT file ({short(err)})") from None


def tree_names(f: Any) -> list[str]:
    """Names of the trees in an open ROOT file."""
    return [k for k, c in f.classnames(cycle=False).items() if c in ("TTree", "ROOT::RNTuple")]


def get_tree(f: Any, path: Path, name: str, hint: str = "") -> Any:
    """The TTree ``name`` of an open file, or InputFileError listing the trees it has."""
    try:
        tree = f[name]
    except Exception:
        trees = ", ".join(tree_names(f)) or "none"
        raise InputFileError(f"{path}: no '{name}' tree (trees: {trees}){hint}") from None
    if not hasattr(tree, "arrays"):
        raise InputFileError(f"{path}: '{name}' is not a TTree")
    return tree


def iter_branches(
    tree: Any,
    path: Path,
    keys: Mapping[str, str],
    *,
    step_size: int | None,
    entry_stop: int | None = None,
) -> Iterator[dict[str, ak.Array]]:
    """Consecutive chunks of ``step_size`` entries (all at once when None) of the branches
    ``keys`` (output name -> full branch path), up to ``entry_stop``.

    Branches are read one at a time by path, because full paths of split branches (e.g.
    ``Electron/Electron.PT`` in files written by Delphes) are not valid uproot expressions.
    """
    n = tree.num_entries if entry_stop is None else min(entry_stop, tree.num_entries)
    step = max(n, 1) if step_size is None else step_size
    for a in range(0, n, step):
        b = min(a + step, n)
        try:
            chunk = {
                k: tree[v].array(entry_start=a, entry_stop=b, library="ak") for k, v in keys.items()
            }
        except Exception as err:
            raise InputFileError(
                f"{path}: cannot read the '{tree.name}' tree ({short(err)})"
            ) from None
        yield chunk
