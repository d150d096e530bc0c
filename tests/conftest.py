"""Shared fixtures. Real data is read from ../shared/data (override: MATSTORE_TEST_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    return Path(os.environ.get("MATSTORE_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real data; tests that need it skip (with the reason) where it is absent,
    except under CI (env CI set), where its absence is an error: a CI run cannot pass by
    skipping most of the suite."""
    d = _data_dir()
    if not d.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and the real data folder {d} is missing (set MATSTORE_TEST_DATA)",
                        pytrace=False)
        pytest.skip(f"real data folder {d} not found (set MATSTORE_TEST_DATA)")
    return d


@pytest.fixture(scope="session")
def read_formulas(shared_data):
    """read_formulas('oqmd/bandgap_train.csv') -> polars frame with formula[, target]."""
    def read(rel: str) -> pl.DataFrame:
        path = shared_data / rel
        if rel.endswith("gan_icsd_generated_1024.csv"):  # no header: one formula per line
            return pl.DataFrame({"formula": [l.strip() for l in path.read_text().splitlines() if l.strip()]})
        return pl.read_csv(path)
    return read


@pytest.fixture
def store(tmp_path):
    """A fresh, migrated store in a temporary folder (a copy of one Store.init made: new_store)."""
    from _store_data import new_store

    return new_store(tmp_path / "test.duckdb")
