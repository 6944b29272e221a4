"""Which rows reference a blob. Blobs are content-addressed and shared, so a blob may only be deleted
when no row anywhere points at it. Columns that hold blob digests declare it with
``mapped_column(..., info={"blob_ref": True})``; this module finds them all on the shared metadata."""

from __future__ import annotations

from sqlalchemy import Column, exists, select
from sqlalchemy.orm import Session

from db.base import Base

BLOB_REF = {"blob_ref": True}


def blob_ref_columns() -> list[Column]:  # type: ignore[type-arg]
    return [
        col for table in Base.metadata.tables.values() for col in table.columns if col.info.get("blob_ref")
    ]


def is_referenced(session: Session, sha256: str) -> bool:
    for col in blob_ref_columns():
        if session.scalar(select(exists().where(col == sha256))):
            return True
    return False
