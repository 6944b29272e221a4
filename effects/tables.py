"""Cache of computed visualizer artifacts, one row per (recording, kind, parameters)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UTCDateTime, utcnow


class EffectArtifact(Base):
    __tablename__ = "effect_artifacts"
    __table_args__ = (
        UniqueConstraint(
            "recording_id", "kind", "params_key", name="uq_effect_artifacts_recording_kind_params"
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    recording_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    params_key: Mapped[str] = mapped_column(String(200))
    etag: Mapped[str] = mapped_column(String(66))
    media_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
