"""Request/response schemas for voiceprints (``/v1/voiceprints``).

Embeddings appear only in :class:`VoiceprintVersionOut.embedding`, filled only for an admin who asks
(``?include_embedding=true``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.schemas.recordings import ID_PATTERN

VOICEPRINT_ID_PATTERN = r"^[A-Za-z0-9_]{1,40}$"


class UtteranceOut(BaseModel):
    id: str
    sha256: str
    size_bytes: int
    duration_s: float
    speech_s: float
    quality: dict[str, Any]
    created_at: dt.datetime


class EnrollmentOut(BaseModel):
    """Answer to one enrollment upload."""

    user_id: str
    voiceprint_id: str
    version: int
    model_id: str
    status: Literal["enrolling", "active"]
    utterances: int = Field(description="Accepted utterances in this version")
    required: int = Field(description="Utterances needed to activate a version")
    activated: bool = Field(description="This upload completed the version and made it active")
    utterance: UtteranceOut
    linked_accounts: int | None = Field(
        None,
        description="On activation: how many other accounts have a voice within the search "
        "threshold (ids only through the admin search)",
    )


class ChallengeOut(BaseModel):
    challenge_id: str
    prompt: str = Field(description="Digits the user must read aloud in the verification recording")
    expires_at: dt.datetime


class VerificationOut(BaseModel):
    verification_id: str
    user_id: str
    challenge_id: str
    prompt: str
    decision: Literal["accept", "reject"]
    score: float = Field(description="Raw cosine similarity to the voiceprint")
    normalized_score: float | None = Field(description="AS-norm score (None without a cohort)")
    threshold: float = Field(description="Threshold the decision used, on the scale of `method`")
    method: Literal["cosine", "asnorm"]
    model_id: str
    cohort_size: int
    created_at: dt.datetime


class VoiceprintVersionOut(BaseModel):
    id: str
    version: int
    model_id: str
    status: Literal["enrolling", "active", "superseded"]
    active: bool
    utterances: int
    stats: dict[str, Any]
    created_at: dt.datetime
    activated_at: dt.datetime | None
    superseded_at: dt.datetime | None
    enrollment_utterances: list[UtteranceOut]
    embedding: list[float] | None = Field(None, description="Admin only, on request")


class VoiceprintOut(BaseModel):
    user_id: str
    required: int
    voiceprints: list[VoiceprintVersionOut]


class ErasureOut(BaseModel):
    user_id: str
    deleted_voiceprints: int
    deleted_utterances: int
    deleted_embeddings: int
    deleted_blobs: int


class SearchIn(BaseModel):
    model_config = {"extra": "forbid"}

    user_id: str = Field(pattern=ID_PATTERN)
    model_id: str | None = Field(
        None, max_length=200, description="Default: every model the user is enrolled with"
    )
    k: int = Field(10, ge=1, le=100)
    threshold: float | None = Field(
        None, ge=-1.0, le=1.0, description="Default: the model's search threshold"
    )


class SearchMatch(BaseModel):
    user_id: str
    voiceprint_id: str
    score: float


class SearchGroup(BaseModel):
    model_id: str
    threshold: float
    matches: list[SearchMatch]


class SearchOut(BaseModel):
    user_id: str
    results: list[SearchGroup]
