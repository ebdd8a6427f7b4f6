"""Shared fixtures: the real ml-latest-small (skipped cleanly when absent) and an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _data_dir() -> Path | None:
    raw = os.environ.get("EMBSPACE_DATA_DIR")
    for candidate in ([Path(raw)] if raw else []) + [_DEFAULT_DATA]:
        if (candidate / "ml-latest-small.zip").is_file() or (
            candidate / "ml-latest-small"
        ).is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder holding the verified ml-latest-small (zip and/or extracted)."""
    found = _data_dir()
    if found is None:
        pytest.skip("ml-latest-small not found (set EMBSPACE_DATA_DIR)")
    return found


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test gets its own empty cache folder and never reaches the network."""
    monkeypatch.setenv("EMBSPACE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("EMBSPACE_MIRROR", "http://127.0.0.1:9/unreachable")


@pytest.fixture(scope="session")
def ml_small(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The real ml-latest-small as :class:`embspace.Ratings`, loaded through
    ``EMBSPACE_DATA_DIR`` (shared by the whole session: do not modify it)."""
    from embspace import datasets

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMBSPACE_DATA_DIR", str(data_dir))
        mp.setenv("EMBSPACE_CACHE_DIR", str(tmp_path_factory.mktemp("ml_small_cache")))
        return datasets.load("ml-latest-small", progress=False)


@pytest.fixture(scope="session")
def tiny():
    """Synthetic MovieLens-shaped ratings, preset "tiny" (200 users x 300 items,
    10,000 ratings), seed 0 (shared by the whole session: do not modify it)."""
    from embspace import datasets

    return datasets.synthetic(preset="tiny", seed=0)
