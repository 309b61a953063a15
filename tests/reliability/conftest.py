from __future__ import annotations

from pathlib import Path

import pytest
from rel_samples import Samples, make_samples


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    """Valid zee and ttbar files of every kind, written once per session (read-only use)."""
    return make_samples(Path(tmp_path_factory.mktemp("samples")))
