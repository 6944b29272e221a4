"""Voiceprint service: enrollment, challenges, verification, reads, erasure and voice search.

The HTTP layer (api/routers/voiceprints.py) streams the upload to the blob store, runs
:func:`prepare_utterance` in the worker pool, embeds the samples with the lifespan's embedder in a
thread, and hands the vector to :class:`VoiceprintService`, which owns every database step. Each
step is its own short transaction (SQLite takes the write lock at BEGIN): rate-limit hits and
challenge consumption commit before the expensive work, so a failed or aborted attempt still counts.

Every stored vector carries its model id; a verification against a voiceprint of another model is
refused (``model_mismatch``), and thresholds are looked up for the embedder's exact model id
(registry first, settings second), never inherited from another version.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from audio.limits import AudioLimits
from core.clock import Clock
from core.errors import Conflict
from core.settings import Settings
from db.base import new_id
from db.blobrefs import is_referenced
from voiceprint import challenges, ratelimit
from voiceprint.cohort import CohortProvider
from voiceprint.config import VoiceprintSettings
from voiceprint.enrollment import (
    Quality,
    consistency,
    energy_speech_only,
    gate_failures,
    measure,
    voiceprint_stats,
)
from voiceprint.errors import ModelMismatch
from voiceprint.scoring import (
    ModelVector,
    ScoreResult,
    Thresholds,
    as_unit_vectors,
    mean_voiceprint,
    resolve_thresholds,
    score_verification,
)
from voiceprint.search import IndexParams, IndexRegistry, Neighbor, record_change, registry_for
from voiceprint.service_errors import (
    DuplicateUtterance,
    EnrollmentInconsistent,
    EnrollmentNotFound,
    NotEnoughEnrollments,
    QualityGateFailed,
    ReplayedAudio,
    ThresholdUnavailable,
)
from voiceprint.tables import (
    Challenge,
    Embedding,
    EnrollmentUtterance,
    VerificationAttempt,
    Voiceprint,
    vector_from_bytes,
    vector_to_bytes,
)

log = logging.getLogger("songgate.voiceprint")

SAMPLE_RATE = 16000
#: Backend names whose registry entries may hold thresholds for a given model id.
KNOWN_BACKENDS = ("ecapa", "resemblyzer")


# --- worker-pool step ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PreparedUtterance:
    """A decoded utterance, reduced to its speech.

    speech : np.ndarray [shape=(m,)], float32, mono, 16 kHz: the VAD's speech regions, what the
        embedder gets
    duration_s : float, the whole decoded recording, seconds
    quality : measurements for the enrollment gate (None when not asked for)
    """

    speech: np.ndarray
    duration_s: float
    quality: Quality | None
    speech_s: float = 0.0  # measured speech, without the context padding kept around it


def speech_of(y: np.ndarray, vp: VoiceprintSettings) -> tuple[np.ndarray, float]:
    """The speech in 16 kHz mono ``y`` with the configured detector [shape=(m,)], float32, and the
    seconds measured as speech (the samples keep some context padding; the measure does not)."""
    if vp.service_vad == "energy":
        samples = energy_speech_only(y, sr=SAMPLE_RATE)
        return samples, samples.size / SAMPLE_RATE
    from voiceprint.speech import extract_speech

    sp = extract_speech(
        y,
        sr=SAMPLE_RATE,
        threshold=vp.vad_threshold,
        min_silence_ms=vp.vad_min_silence_ms,
        pad_ms=vp.vad_pad_ms,
        speech_threshold=vp.vad_speech_threshold,
    )
    return sp.samples, float(sp.speech_s)


def prepare_utterance(
    path: str | Path, *, limits: AudioLimits, vp: VoiceprintSettings, measure_quality: bool
) -> PreparedUtterance:
    """Decode ``path`` to 16 kHz mono under ``limits``, keep its speech, and optionally measure it.

    Top-level and picklable: runs in the API's worker pool.
    """
    from audio.decode import decode_file

    decoded = decode_file(Path(path), limits=limits, sr=SAMPLE_RATE, mono=True)
    y = np.ascontiguousarray(decoded.samples[0], dtype=np.float32)
    speech, speech_s = speech_of(y, vp)
    quality = measure(y, sr=SAMPLE_RATE, speech_s=speech_s) if measure_quality else None
    return PreparedUtterance(speech, float(y.size / SAMPLE_RATE), quality, speech_s)


def embed_samples(embedder: Any, samples: np.ndarray, *, speech_s: float | None = None) -> np.ndarray:
    """Embed with ``embedder`` and validate the answer: unit-norm float32 [shape=(dimension,)].

    ``speech_s`` is the measured speech; the padded samples alone would overstate it.
    """
    if speech_s is not None and speech_s < float(embedder.min_duration_s):
        from voiceprint.errors import TooLittleSpeech

        raise TooLittleSpeech(
            f"{speech_s:.2f} s of speech; at least {float(embedder.min_duration_s):.2f} s is needed"
        )
    vec = embedder.embed(samples, sr=SAMPLE_RATE)
    return as_unit_vectors(np.asarray(vec), dimension=int(embedder.dimension))


# --- thresholds ------------------------------------------------------------------------------------


def _registry_thresholds(name: str, model_dir: Path) -> dict[str, Any] | None:
    try:
        from models.registry import thresholds
        from voiceprint.embedders import BACKENDS
    except ImportError:
        return None
    name = BACKENDS.get(name, name)
    try:
        value = thresholds(name, model_dir)
    except Exception as exc:  # unknown name, unreadable file: not a calibration for us
        log.warning("ignoring the registry thresholds of %s: %s", name, exc)
        return None
    return dict(value) if value else None


def thresholds_for(model_id: str, settings: Settings) -> Thresholds:
    """Thresholds for the exact ``model_id``: a registry calibration made for that id, else the
    settings' fallback for that id.

    Raises
    ------
    ThresholdUnavailable : neither exists.
    """
    vp = settings.voiceprint
    names = list(dict.fromkeys([vp.backend, *KNOWN_BACKENDS]))
    for name in names:
        entry = _registry_thresholds(name, settings.resolved_model_dir)
        if not entry:
            continue
        if entry.get("model_id") is None and name != vp.backend:
            continue  # an unlabeled calibration only counts for the configured backend
        try:
            return resolve_thresholds(model_id, calibrated=entry, fallbacks={}, target_far=vp.target_far)
        except (ModelMismatch, ThresholdUnavailable):
            continue  # calibrated for another model version: never reuse it
    return resolve_thresholds(model_id, calibrated=None, fallbacks=vp.thresholds, target_far=vp.target_far)


# --- results -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EnrollmentResult:
    voiceprint: Voiceprint
    utterance: EnrollmentUtterance
    activated: bool
    required: int
    linked_accounts: int | None


@dataclasses.dataclass(frozen=True)
class VerificationResult:
    attempt: VerificationAttempt
    score: ScoreResult


@dataclasses.dataclass(frozen=True)
class ErasureResult:
    voiceprints: int
    utterances: int
    embeddings: int
    blobs: int


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


def blob_referenced(session: Session, sha256: str) -> bool:
    """Whether any row still points at blob ``sha256`` (every column declared as a blob reference)."""
    return is_referenced(session, sha256)


class VoiceprintService:
    """Database-side orchestration; one per app (``app.state.voiceprints``). Thread-safe.

    Parameters
    ----------
    settings : the full Settings (voiceprint section, limits, model dir)
    factory : session factory of the app's database
    clock : server clock
    registry : the database's search indexes (default: the process-wide one for the engine)
    cohorts : cohort provider (default: from settings, cached under DATA_DIR/cohorts)
    """

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        *,
        clock: Clock,
        registry: IndexRegistry | None = None,
        cohorts: CohortProvider | None = None,
    ) -> None:
        self.settings = settings
        self.vp = settings.voiceprint
        self.factory = factory
        self.clock = clock
        if registry is None:
            engine = factory.kw["bind"]
            index_dir = self.vp.index_dir or settings.data_dir / "voice_index"
            registry = registry_for(engine, params=IndexParams.from_settings(self.vp), index_dir=index_dir)
        self.registry = registry
        registry.settings = settings
        self.cohorts = cohorts or CohortProvider(
            self.vp, cache_dir=settings.data_dir / "cohorts", monotonic=clock.monotonic
        )

    def warm_index(self, model_id: str) -> None:
        """Bring ``model_id``'s search index up to date (start-up; failures only logged)."""
        try:
            with self.factory() as s:
                self.registry.get(s, model_id)
        except Exception:  # a warm-up must never take the process down
            log.exception("voice index warm-up for %s failed", model_id)

    # --- helpers ----------------------------------------------------------------------------
    def utterance_limits(self) -> AudioLimits:
        limits = self.settings.limits
        return limits.model_copy(
            update={"max_duration_s": min(limits.max_duration_s, self.vp.max_utterance_s)}
        )

    def thresholds(self, model_id: str) -> Thresholds:
        return thresholds_for(model_id, self.settings)

    def _thresholds_or_none(self, model_id: str) -> Thresholds | None:
        try:
            return self.thresholds(model_id)
        except ThresholdUnavailable:
            return None

    def gate(self, quality: Quality) -> None:
        """Raise :class:`QualityGateFailed` listing every failed check."""
        failures = gate_failures(quality, self.vp)
        if failures:
            raise QualityGateFailed(
                "; ".join(f["message"] for f in failures), failures=failures, quality=quality.as_dict()
            )

    # --- enrollment -------------------------------------------------------------------------
    def add_enrollment(
        self,
        user_id: str,
        *,
        model_id: str,
        embedding: np.ndarray,
        sha256: str,
        size_bytes: int,
        prepared: PreparedUtterance,
    ) -> EnrollmentResult:
        """Add one gated, embedded utterance to the user's enrolling version of ``model_id`` (creating
        it, as version max+1, if needed); activate the version once it has ``min_enrollments``."""
        if prepared.quality is None:
            raise ValueError("enrollment utterances must be measured")
        self.gate(prepared.quality)
        vec = as_unit_vectors(embedding)
        thr = self._thresholds_or_none(model_id)
        limit = (
            self.vp.enroll_min_consistency
            if self.vp.enroll_min_consistency is not None
            else (thr.cosine if thr is not None else None)
        )
        now = self.clock.now()
        for attempt in range(2):
            try:
                with self.factory() as s, s.begin():
                    result = self._add_enrollment_tx(
                        s, user_id, model_id, vec, sha256, size_bytes, prepared, limit, now
                    )
                break
            except IntegrityError:
                # A concurrent upload created the enrolling version first (PostgreSQL): join it.
                if attempt == 1:
                    raise Conflict("concurrent enrollment for this user; retry") from None
        linked = None
        if result.activated and thr is not None:
            with self.factory() as s:
                linked = len(
                    self.registry.search_user(s, user_id, model_id, k=self.vp.search_k, threshold=thr.search)
                )
        return dataclasses.replace(result, linked_accounts=linked)

    def _add_enrollment_tx(
        self,
        s: Session,
        user_id: str,
        model_id: str,
        vec: np.ndarray,
        sha256: str,
        size_bytes: int,
        prepared: PreparedUtterance,
        limit: float | None,
        now: Any,
    ) -> EnrollmentResult:
        vp = s.scalar(
            select(Voiceprint)
            .where(
                Voiceprint.user_id == user_id,
                Voiceprint.model_id == model_id,
                Voiceprint.status == "enrolling",
            )
            .with_for_update()
        )
        if vp is None:
            last = s.scalar(
                select(func.max(Voiceprint.version)).where(
                    Voiceprint.user_id == user_id, Voiceprint.model_id == model_id
                )
            )
            vp = Voiceprint(
                id=new_id("vp"),
                user_id=user_id,
                model_id=model_id,
                version=(last or 0) + 1,
                status="enrolling",
                active=False,
                n_utterances=0,
                stats={},
                created_at=now,
            )
            s.add(vp)
            s.flush()
        if s.scalar(
            select(EnrollmentUtterance.id).where(
                EnrollmentUtterance.voiceprint_id == vp.id, EnrollmentUtterance.sha256 == sha256
            )
        ):
            raise DuplicateUtterance("this recording was already added to the enrollment")
        rows = s.execute(
            select(Embedding.vector, Embedding.dimension, Embedding.model_id).where(
                Embedding.voiceprint_id == vp.id, Embedding.kind == "utterance"
            )
        ).all()
        others = (
            np.stack([vector_from_bytes(r.vector, r.dimension) for r in rows])
            if rows
            else np.zeros((0, vec.size))
        )
        if any(r.model_id != model_id for r in rows):
            raise ModelMismatch("enrollment utterances of different models in one voiceprint")
        cons = consistency(vec, others)
        if cons is not None and limit is not None and cons < limit:
            raise EnrollmentInconsistent(
                "this utterance does not sound like the earlier ones of this enrollment",
                consistency=round(cons, 4),
                limit=limit,
            )
        quality = prepared.quality.as_dict() if prepared.quality else {}
        if cons is not None:
            quality["consistency"] = round(cons, 4)
        utt = EnrollmentUtterance(
            id=new_id("utt"),
            voiceprint_id=vp.id,
            user_id=user_id,
            sha256=sha256,
            size_bytes=size_bytes,
            duration_s=prepared.duration_s,
            speech_s=prepared.quality.speech_s if prepared.quality else 0.0,
            quality=quality,
            created_at=now,
        )
        s.add(utt)
        s.flush()
        s.add(
            Embedding(
                id=new_id("emb"),
                voiceprint_id=vp.id,
                utterance_id=utt.id,
                kind="utterance",
                model_id=model_id,
                dimension=int(vec.size),
                vector=vector_to_bytes(vec),
                created_at=now,
            )
        )
        vp.n_utterances += 1
        activated = False
        if vp.n_utterances >= self.vp.min_enrollments:
            vectors = np.concatenate([others.reshape(-1, vec.size), vec[None, :]])
            qualities = [
                u.quality
                for u in s.scalars(
                    select(EnrollmentUtterance).where(EnrollmentUtterance.voiceprint_id == vp.id)
                )
            ]
            self._activate(s, vp, vectors, qualities, now)
            activated = True
        s.flush()
        return EnrollmentResult(vp, utt, activated, self.vp.min_enrollments, None)

    def _activate(
        self, s: Session, vp: Voiceprint, vectors: np.ndarray, qualities: list[dict[str, Any]], now: Any
    ) -> None:
        center = mean_voiceprint(vectors)
        old = s.scalar(
            select(Voiceprint)
            .where(
                Voiceprint.user_id == vp.user_id,
                Voiceprint.model_id == vp.model_id,
                Voiceprint.active.is_(True),
            )
            .with_for_update()
        )
        if old is not None:
            old.active, old.status, old.superseded_at = False, "superseded", now
            s.flush()  # the partial unique index allows one active row: retire the old one first
        vp.status, vp.active, vp.activated_at = "active", True, now
        vp.stats = voiceprint_stats(vectors, center, qualities)
        s.add(
            Embedding(
                id=new_id("emb"),
                voiceprint_id=vp.id,
                utterance_id=None,
                kind="voiceprint",
                model_id=vp.model_id,
                dimension=int(center.size),
                vector=vector_to_bytes(center),
                created_at=now,
            )
        )
        s.flush()
        record_change(s, vp.model_id, vp.user_id, vp.id, retention=self.vp.index_event_retention)

    # --- verification -----------------------------------------------------------------------
    def require_voiceprint(self, user_id: str, model_id: str) -> Voiceprint:
        """The active voiceprint of ``user_id`` for ``model_id``.

        Raises
        ------
        ModelMismatch : the user is enrolled, but only with another model (re-enrollment needed).
        NotEnoughEnrollments : enrollment started but is not complete.
        EnrollmentNotFound : nothing enrolled.
        """
        with self.factory() as s:
            rows = s.scalars(
                select(Voiceprint).where(
                    Voiceprint.user_id == user_id, Voiceprint.status.in_(("active", "enrolling"))
                )
            ).all()
        for vp in rows:
            if vp.model_id == model_id and vp.active:
                return vp
        pending = [vp for vp in rows if vp.model_id == model_id and vp.status == "enrolling"]
        if pending:
            raise NotEnoughEnrollments(
                f"{pending[0].n_utterances} of {self.vp.min_enrollments} enrollment utterances so far",
                utterances=pending[0].n_utterances,
                required=self.vp.min_enrollments,
            )
        others = sorted({vp.model_id for vp in rows if vp.active})
        if others:
            raise ModelMismatch(
                f"the voiceprint was enrolled with model {others[0]!r}; the current model is {model_id!r}, "
                "whose scores are not comparable: re-enroll",
                expected_model_id=model_id,
                model_id=others[0],
            )
        raise EnrollmentNotFound(f"no voiceprint enrolled for user {user_id!r}")

    def issue_challenge(self, user_id: str) -> Challenge:
        """Rate-limited (``challenge_rate_limit`` per window) fresh challenge for ``user_id``."""
        now = self.clock.now()
        with self.factory() as s, s.begin():
            ratelimit.check(
                s,
                f"challenge:{user_id}",
                limit=self.vp.challenge_rate_limit,
                window_s=self.vp.rate_window_s,
                now=now,
            )
        with self.factory() as s, s.begin():
            return challenges.issue(
                s, user_id, now=now, ttl_s=self.vp.challenge_ttl_s, digits=self.vp.challenge_digits
            )

    def spend_attempt(self, user_id: str) -> None:
        """Count one verification attempt (committed at once); :class:`RateLimited` past the limit."""
        with self.factory() as s, s.begin():
            ratelimit.check(
                s,
                f"verify:{user_id}",
                limit=self.vp.verify_rate_limit,
                window_s=self.vp.rate_window_s,
                now=self.clock.now(),
            )

    def consume_challenge(self, user_id: str, challenge_id: str, *, audio_sha256: str) -> Challenge:
        """Use up the challenge (committed at once), then refuse byte-identical replayed audio."""
        with self.factory() as s, s.begin():
            challenge = challenges.consume(s, challenge_id, user_id, now=self.clock.now())
        if self.vp.reject_replayed_audio:
            with self.factory() as s:
                seen = s.scalar(
                    select(VerificationAttempt.id)
                    .where(VerificationAttempt.audio_sha256 == audio_sha256)
                    .limit(1)
                )
                enrolled = s.scalar(
                    select(EnrollmentUtterance.id).where(EnrollmentUtterance.sha256 == audio_sha256).limit(1)
                )
            if seen or enrolled:
                raise ReplayedAudio(
                    "this exact recording was submitted before; record a new one that speaks the prompt"
                )
        return challenge

    def verify(
        self,
        user_id: str,
        *,
        challenge: Challenge,
        model_id: str,
        embedding: np.ndarray,
        audio_sha256: str | None,
    ) -> VerificationResult:
        """Score ``embedding`` against the user's voiceprint, decide, and record the attempt."""
        thresholds = self.thresholds(model_id)
        vp = self.require_voiceprint(user_id, model_id)
        with self.factory() as s:
            row = s.scalar(
                select(Embedding).where(Embedding.voiceprint_id == vp.id, Embedding.kind == "voiceprint")
            )
            if row is None:
                raise EnrollmentNotFound(f"voiceprint {vp.id} has no embedding")
            enrolled = ModelVector(row.model_id, row.array())
            cohort = self.cohorts.for_verification(s, model_id, exclude_user=user_id)
        result = score_verification(
            ModelVector(model_id, embedding),
            enrolled,
            thresholds=thresholds,
            cohort=cohort,
            top_n=thresholds.asnorm_top_n or self.vp.asnorm_top_n,
            min_cohort=self.vp.cohort_min_size,
        )
        attempt = VerificationAttempt(
            id=new_id("ver"),
            user_id=user_id,
            challenge_id=challenge.id,
            prompt=challenge.prompt,
            voiceprint_id=vp.id,
            model_id=model_id,
            score=result.score,
            normalized_score=result.normalized_score,
            threshold=result.threshold,
            method=result.method,
            cohort_size=result.cohort_size,
            decision=result.decision,
            audio_sha256=audio_sha256,
            created_at=self.clock.now(),
        )
        with self.factory() as s, s.begin():
            s.add(attempt)
        return VerificationResult(attempt, result)

    def discard_blob(self, sha256: str, delete_blob: Callable[[str], None]) -> bool:
        """Delete blob ``sha256`` unless a row references it (a rejected or transient upload)."""
        with self.factory() as s:
            if blob_referenced(s, sha256):
                return False
        delete_blob(sha256)
        return True

    # --- reads, erasure, search -------------------------------------------------------------
    def voiceprints_of(
        self, user_id: str
    ) -> list[tuple[Voiceprint, list[EnrollmentUtterance], np.ndarray | None]]:
        """Every voiceprint version of the user (newest first), its utterances and its vector."""
        with self.factory() as s:
            vps = s.scalars(
                select(Voiceprint)
                .where(Voiceprint.user_id == user_id)
                .order_by(Voiceprint.model_id, Voiceprint.version.desc())
            ).all()
            out = []
            for vp in vps:
                utts = s.scalars(
                    select(EnrollmentUtterance)
                    .where(EnrollmentUtterance.voiceprint_id == vp.id)
                    .order_by(EnrollmentUtterance.created_at)
                ).all()
                emb = s.scalar(
                    select(Embedding).where(Embedding.voiceprint_id == vp.id, Embedding.kind == "voiceprint")
                )
                out.append((vp, list(utts), emb.array() if emb is not None else None))
        return out

    def erase(self, user_id: str, *, delete_blob: Callable[[str], None]) -> ErasureResult:
        """Right to erasure: delete every voiceprint version, utterance and embedding of the user,
        and each enrollment audio blob no other row still references."""
        with self.factory() as s, s.begin():
            vps = s.scalars(select(Voiceprint).where(Voiceprint.user_id == user_id).with_for_update()).all()
            if not vps:
                raise EnrollmentNotFound(f"no voiceprint enrolled for user {user_id!r}")
            ids = [vp.id for vp in vps]
            active_models = sorted({vp.model_id for vp in vps if vp.active})
            shas = set(
                s.scalars(
                    select(EnrollmentUtterance.sha256).where(EnrollmentUtterance.voiceprint_id.in_(ids))
                ).all()
            )
            n_emb = _rowcount(s.execute(delete(Embedding).where(Embedding.voiceprint_id.in_(ids))))
            n_utt = _rowcount(
                s.execute(delete(EnrollmentUtterance).where(EnrollmentUtterance.voiceprint_id.in_(ids)))
            )
            s.execute(delete(Voiceprint).where(Voiceprint.id.in_(ids)))
            for model_id in active_models:
                record_change(s, model_id, user_id, None, retention=self.vp.index_event_retention)
            s.flush()
            orphans = [sha for sha in sorted(shas) if not blob_referenced(s, sha)]
        deleted = 0
        for sha in orphans:  # after commit: a rolled-back erasure never loses audio
            try:
                delete_blob(sha)
                deleted += 1
            except OSError as exc:
                log.error("could not delete enrollment blob %s: %s", sha, exc)
        for model_id in active_models:
            self.cohorts.invalidate(model_id)
        return ErasureResult(len(ids), n_utt, n_emb, deleted)

    def search(
        self, user_id: str, *, model_id: str | None, k: int, threshold: float | None
    ) -> list[tuple[str, float, list[Neighbor]]]:
        """Other accounts whose active voiceprint is within the threshold of ``user_id``'s, per model
        (``model_id`` or every model the user has an active voiceprint for): (model, threshold, hits)."""
        with self.factory() as s:
            models = s.scalars(
                select(Voiceprint.model_id).where(Voiceprint.user_id == user_id, Voiceprint.active.is_(True))
            ).all()
            if model_id is not None:
                models = [m for m in models if m == model_id]
            if not models:
                raise EnrollmentNotFound(
                    f"no active voiceprint for user {user_id!r}"
                    + (f" with model {model_id!r}" if model_id else "")
                )
            out = []
            for m in sorted(set(models)):
                thr = threshold if threshold is not None else self.thresholds(m).search
                out.append((m, thr, self.registry.search_user(s, user_id, m, k=k, threshold=thr)))
        return out


def linked_account_ids(
    session: Session, user_id: str, settings: Settings, registry: IndexRegistry
) -> list[str]:
    """Accounts whose active voiceprint is within the search threshold of any of ``user_id``'s.
    Models without a threshold are skipped (logged)."""
    models = session.scalars(
        select(Voiceprint.model_id).where(Voiceprint.user_id == user_id, Voiceprint.active.is_(True))
    ).all()
    found: set[str] = set()
    for m in sorted(set(models)):
        try:
            thr = thresholds_for(m, settings).search
        except ThresholdUnavailable:
            log.warning("linked_accounts: no search threshold for model %s; skipped", m)
            continue
        for hit in registry.search_user(session, user_id, m, k=settings.voiceprint.search_k, threshold=thr):
            found.add(hit.user_id)
    return sorted(found)
