from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "testdata"
DATA = ROOT / "data"


@pytest.fixture
def testdata() -> Path:
    """The shared real-generator files; tests using them skip in a user's clone."""
    if not SHARED.is_dir():
        pytest.skip("../shared/testdata is not present")
    return SHARED
