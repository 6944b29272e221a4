"""Errors of the voiceprint service (enrollment, verification, challenges, rate limits, search).

The embedder-level errors (TooLittleSpeech, ModelMismatch, ModelUnavailable) live in
:mod:`voiceprint.errors`; everything here subclasses its :class:`VoiceprintError`, so api/ serves
each as problem+json with the stable ``code`` below.
"""

from __future__ import annotations

from voiceprint.errors import VoiceprintError


class EnrollmentNotFound(VoiceprintError):
    code = "voiceprint_not_found"
    status = 404
    title = "No voiceprint enrolled for this user"


class NotEnoughEnrollments(VoiceprintError):
    """Enrollment started but fewer utterances than ``min_enrollments`` were accepted so far."""

    code = "not_enough_enrollments"
    status = 409
    title = "Enrollment is not complete yet"


class QualityGateFailed(VoiceprintError):
    """An enrollment utterance failed the quality gate; ``failures`` lists each failed check."""

    code = "quality_gate_failed"
    status = 422
    title = "The recording is not good enough for enrollment"


class EnrollmentInconsistent(VoiceprintError):
    """The new utterance does not sound like the other utterances of the same enrollment."""

    code = "enrollment_inconsistent"
    status = 422
    title = "The utterance does not match the other enrollment utterances"


class DuplicateUtterance(VoiceprintError):
    code = "duplicate_utterance"
    status = 409
    title = "This recording is already part of the enrollment"


class ChallengeInvalid(VoiceprintError):
    code = "challenge_invalid"
    status = 422
    title = "Unknown challenge, or issued to another user"


class ChallengeUsed(ChallengeInvalid):
    code = "challenge_used"
    title = "The challenge was already used"


class ChallengeExpired(ChallengeInvalid):
    code = "challenge_expired"
    title = "The challenge has expired"


class RateLimited(VoiceprintError):
    """Too many attempts; ``retry_after_s`` says when the next one is allowed."""

    code = "rate_limited"
    status = 429
    title = "Too many attempts"


class ReplayedAudio(VoiceprintError):
    """A byte-identical recording was already submitted for a verification."""

    code = "replayed_audio"
    status = 422
    title = "This recording was already used for a verification"


class ThresholdUnavailable(VoiceprintError):
    """No calibrated (or configured) threshold exists for the embedder's exact model id."""

    code = "threshold_unavailable"
    status = 503
    title = "No decision threshold is calibrated for this model"


class EmbeddingAccessDenied(VoiceprintError):
    code = "embedding_access_denied"
    status = 403
    title = "Only an admin may read embeddings"


class InvalidEmbedding(VoiceprintError):
    """A vector that is not a finite, non-zero float vector of the expected dimension."""

    code = "invalid_embedding"
    status = 422
    title = "Invalid embedding"
