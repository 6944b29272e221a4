"""Voiceprint tables: voiceprints (versioned per user and model), enrollment utterances, embeddings,
challenges, verification attempts, rate-limit state, and the search-index change feed.

Vectors are stored as little-endian float32 bytes with their model id and dimension
(:func:`vector_to_bytes` / :func:`vector_from_bytes`). Enrollment audio is referenced by the blob
store's sha256 (content-addressed, possibly shared with other rows).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UTCDateTime, utcnow
from db.blobrefs import BLOB_REF

MODEL_ID_LEN = 200


def vector_to_bytes(vector: np.ndarray) -> bytes:
    """float32 little-endian bytes of a 1-D vector."""
    return np.ascontiguousarray(vector, dtype="<f4").ravel().tobytes()


def vector_from_bytes(data: bytes, dimension: int) -> np.ndarray:
    """Inverse of :func:`vector_to_bytes`; checks the stored dimension."""
    arr = np.frombuffer(data, dtype="<f4")
    if arr.size != dimension:
        raise ValueError(f"stored vector has {arr.size} values, expected {dimension}")
    return arr.astype(np.float32)


class Voiceprint(Base):
    """One enrollment version of one user for one model.

    status: ``enrolling`` (collecting utterances), ``active`` (used for verification; at most one per
    user and model, also flagged by ``active``), ``superseded`` (replaced by a newer version).
    """

    __tablename__ = "voiceprints"
    __table_args__ = (
        UniqueConstraint("user_id", "model_id", "version", name="uq_voiceprints_user_model_version"),
        Index("ix_voiceprints_model_active", "model_id", "active"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    model_id: Mapped[str] = mapped_column(String(MODEL_ID_LEN))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    n_utterances: Mapped[int] = mapped_column(Integer, default=0)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    activated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    superseded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


# At most one active voiceprint per user and model, enforced by the database (partial unique index).
Index(
    "uq_voiceprints_one_active",
    Voiceprint.user_id,
    Voiceprint.model_id,
    unique=True,
    sqlite_where=Voiceprint.active == true(),
    postgresql_where=Voiceprint.active == true(),
)
# At most one version collecting utterances per user and model (concurrent uploads join it).
Index(
    "uq_voiceprints_one_enrolling",
    Voiceprint.user_id,
    Voiceprint.model_id,
    unique=True,
    sqlite_where=Voiceprint.status == "enrolling",
    postgresql_where=Voiceprint.status == "enrolling",
)


class EnrollmentUtterance(Base):
    """One accepted enrollment recording: its blob, quality measurements and embedding."""

    __tablename__ = "voiceprint_utterances"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    voiceprint_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("voiceprints.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True, info=BLOB_REF)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    duration_s: Mapped[float] = mapped_column(Float)
    speech_s: Mapped[float] = mapped_column(Float)
    quality: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Embedding(Base):
    """A stored vector: an utterance's (``kind='utterance'``) or a voiceprint's (``kind='voiceprint'``)."""

    __tablename__ = "voiceprint_embeddings"
    __table_args__ = (Index("ix_voiceprint_embeddings_voiceprint_kind", "voiceprint_id", "kind"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    voiceprint_id: Mapped[str] = mapped_column(String(40), ForeignKey("voiceprints.id", ondelete="CASCADE"))
    utterance_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("voiceprint_utterances.id", ondelete="CASCADE"), nullable=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    model_id: Mapped[str] = mapped_column(String(MODEL_ID_LEN))
    dimension: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def array(self) -> np.ndarray:
        return vector_from_bytes(self.vector, self.dimension)


class Challenge(Base):
    """A one-time random digit prompt issued to a user; ``used_at`` is set when it is consumed."""

    __tablename__ = "voiceprint_challenges"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    prompt: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class VerificationAttempt(Base):
    """One scored verification: what was asked, what was measured, what was decided."""

    __tablename__ = "voiceprint_attempts"
    __table_args__ = (Index("ix_voiceprint_attempts_user_created", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    challenge_id: Mapped[str] = mapped_column(String(40), index=True)
    prompt: Mapped[str] = mapped_column(String(32))
    voiceprint_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    model_id: Mapped[str] = mapped_column(String(MODEL_ID_LEN))
    score: Mapped[float] = mapped_column(Float)
    normalized_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(16))
    cohort_size: Mapped[int] = mapped_column(Integer, default=0)
    decision: Mapped[str] = mapped_column(String(16))
    audio_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RateLimitState(Base):
    """GCRA state of one rate-limited key: the theoretical arrival time (epoch seconds)."""

    __tablename__ = "voiceprint_rate_limits"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tat: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class IndexState(Base):
    """Per model id, the generation of the set of active voiceprints (bumped by every change).

    ``epoch`` is random per database: an index saved to disk from another database (same model,
    same generation by chance) is recognised as foreign and rebuilt.
    """

    __tablename__ = "voiceprint_index_state"

    model_id: Mapped[str] = mapped_column(String(MODEL_ID_LEN), primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger)
    epoch: Mapped[str] = mapped_column(String(32))


class IndexEvent(Base):
    """One change to a model's active voiceprints: ``voiceprint_id`` set = (re)placed, None = removed.

    Written in the transaction that makes the change, under the IndexState row lock, so generations
    commit in order and every process can replay them onto its in-memory index.
    """

    __tablename__ = "voiceprint_index_events"

    model_id: Mapped[str] = mapped_column(String(MODEL_ID_LEN), primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    voiceprint_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
