import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "babi" / "tasks_1-20_v1-2"


def _data_root() -> Path | None:
    value = os.environ.get("MEMJAX_DATA")
    root = Path(value) if value else DEFAULT_DATA
    return root if (root / "en").is_dir() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if root is None:
        pytest.skip("bAbI data not found: set MEMJAX_DATA to a tasks_1-20_v1-2 folder")
    return root
