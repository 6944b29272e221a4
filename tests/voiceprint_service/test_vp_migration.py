"""The hand-written migration creates exactly what voiceprint/tables.py declares."""

from __future__ import annotations

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

import voiceprint.tables as vt
from db.base import Base
from db.engine import make_engine

pytestmark = pytest.mark.both_dbs

OURS = {t for t in Base.metadata.tables if t.startswith("voiceprint")}


def _mine(diff: object) -> bool:
    items = diff if isinstance(diff, list) else [diff]
    for item in items:
        for part in item:
            name = getattr(part, "name", None)
            table = getattr(part, "table", None)
            if name in OURS or getattr(table, "name", None) in OURS:
                return True
    return False


def test_migration_matches_tables(database_url: str) -> None:
    assert OURS == {
        "voiceprints",
        "voiceprint_utterances",
        "voiceprint_embeddings",
        "voiceprint_challenges",
        "voiceprint_attempts",
        "voiceprint_rate_limits",
        "voiceprint_index_state",
        "voiceprint_index_events",
    }
    ours = MetaData(naming_convention=Base.metadata.naming_convention)
    for name in OURS:
        Base.metadata.tables[name].to_metadata(ours)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            diffs = [d for d in compare_metadata(MigrationContext.configure(conn), ours) if _mine(d)]
            heads = MigrationContext.configure(conn).get_current_heads()
    finally:
        engine.dispose()
    assert diffs == []
    assert "voiceprint_0001" in heads


def test_vector_bytes_round_trip() -> None:
    v = np.linspace(-1, 1, 192, dtype=np.float32)
    assert np.array_equal(vt.vector_from_bytes(vt.vector_to_bytes(v), 192), v)
    with pytest.raises(ValueError):
        vt.vector_from_bytes(vt.vector_to_bytes(v), 191)
