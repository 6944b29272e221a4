"""Impostor cohorts for AS-norm, per model id.

Two sources:

* a **cohort set**: a configurable directory of speech files (``voiceprint.cohort_dir``, optionally one
  sub-folder per speaker). Each file is decoded to 16 kHz mono and embedded once per model; the
  vectors are cached in ``cache_dir`` under a key of the model id and the files' names, sizes and
  mtimes, so a new model version or a changed set is recomputed, never reused;
* the **enrolled voiceprints** of other users with the same model, once there are at least
  ``cohort_min_size`` of them (at most ``cohort_max_size`` most recent, refreshed every
  ``cohort_refresh_s``), always excluding the claimed user.

``cohort_source='auto'`` prefers the set, falls back to enrolled voiceprints, and yields None (raw
cosine with its own threshold) when neither is large enough.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from voiceprint.config import VoiceprintSettings
from voiceprint.scoring import Cohort, as_unit_vectors
from voiceprint.tables import Embedding, Voiceprint, vector_from_bytes

log = logging.getLogger("songgate.voiceprint.cohort")

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a"}


def cohort_files(directory: Path) -> list[Path]:
    """Audio files under ``directory`` (recursive), sorted for a stable order."""
    return sorted(p for p in Path(directory).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _set_key(model_id: str, files: list[Path], root: Path) -> str:
    h = hashlib.sha256(model_id.encode())
    for p in files:
        st = p.stat()
        h.update(f"\0{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def embed_file(
    path: Path, embedder: Any, *, speech: Callable[[np.ndarray], np.ndarray] | None = None
) -> np.ndarray:
    """Decode ``path`` to 16 kHz mono, keep its speech (``speech``: samples -> speech samples;
    default :func:`voiceprint.speech.speech_only`) and embed it. Returns [shape=(dimension,)], float32."""
    from audio.decode import decode_file

    decoded = decode_file(path, sr=embedder.sample_rate, mono=True)
    y = np.ascontiguousarray(decoded.samples[0], dtype=np.float32)
    if speech is None:
        from voiceprint.speech import speech_only

        y = speech_only(y, sr=embedder.sample_rate)
    else:
        y = speech(y)
    return np.asarray(embedder.embed(y, sr=embedder.sample_rate), dtype=np.float32)


def build_cohort_set(
    directory: Path,
    embedder: Any,
    *,
    cache_dir: Path | None = None,
    embed: Callable[[Path, Any], np.ndarray] = embed_file,
) -> Cohort | None:
    """Embed every file of a cohort set with ``embedder`` (cached per model id and file set).

    Files that fail (too little speech, undecodable) are skipped and logged. Returns None when the
    directory holds no usable file.
    """
    directory = Path(directory)
    files = cohort_files(directory)
    if not files:
        return None
    key = _set_key(embedder.model_id, files, directory)
    cache = Path(cache_dir) / f"cohort-{key}.npz" if cache_dir is not None else None
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as data:
            if str(data["model_id"]) == embedder.model_id:
                return Cohort(embedder.model_id, as_unit_vectors(data["vectors"]), f"set:{directory}")
    vectors = []
    for path in files:
        try:
            vectors.append(embed(path, embedder))
        except Exception as exc:  # one bad file must not lose the whole cohort
            log.warning("cohort file %s skipped: %s", path, exc)
    if not vectors:
        return None
    x = as_unit_vectors(np.stack(vectors), dimension=embedder.dimension)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, model_id=np.array(embedder.model_id), vectors=x)
        tmp.replace(cache)
    return Cohort(embedder.model_id, x, f"set:{directory}")


@dataclasses.dataclass
class _Enrolled:
    loaded_at: float
    users: np.ndarray
    vectors: np.ndarray


class CohortProvider:
    """Chooses and caches the cohort for each verification (thread-safe).

    Parameters
    ----------
    settings : VoiceprintSettings
    cache_dir : where cohort-set embeddings are cached (None: not cached)
    monotonic : clock for the enrolled-cohort cache lifetime
    """

    def __init__(
        self,
        settings: VoiceprintSettings,
        *,
        cache_dir: Path | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.cache_dir = cache_dir
        self._monotonic = monotonic
        self._sets: dict[str, Cohort] = {}
        self._enrolled: dict[str, _Enrolled] = {}
        self._lock = threading.Lock()

    # --- cohort set -------------------------------------------------------------------------
    def prepare_set(self, embedder: Any) -> Cohort | None:
        """Compute (or load from cache) the cohort set for ``embedder``'s model. Blocking: run it at
        start-up or in a background thread; until it is done, verification uses the fallback."""
        directory = self.settings.cohort_dir
        if directory is None or self.settings.cohort_source in ("none", "enrolled"):
            return None
        if not Path(directory).is_dir():
            log.warning("cohort_dir %s does not exist", directory)
            return None
        from voiceprint.service import speech_of

        def embed(path: Path, emb: Any) -> np.ndarray:
            return embed_file(path, emb, speech=lambda y: speech_of(y, self.settings)[0])

        cohort = build_cohort_set(Path(directory), embedder, cache_dir=self.cache_dir, embed=embed)
        if cohort is not None:
            with self._lock:
                self._sets[cohort.model_id] = cohort
        return cohort

    def add_set(self, cohort: Cohort) -> None:
        """Install a precomputed cohort set (tests, or vectors built elsewhere)."""
        with self._lock:
            self._sets[cohort.model_id] = cohort

    # --- enrolled voiceprints ---------------------------------------------------------------
    def _load_enrolled(self, session: Session, model_id: str) -> _Enrolled:
        now = self._monotonic()
        with self._lock:
            hit = self._enrolled.get(model_id)
        if hit is not None and now - hit.loaded_at < self.settings.cohort_refresh_s:
            return hit
        rows = session.execute(
            select(Voiceprint.user_id, Embedding.vector, Embedding.dimension)
            .join(Embedding, (Embedding.voiceprint_id == Voiceprint.id) & (Embedding.kind == "voiceprint"))
            .where(
                Voiceprint.model_id == model_id, Voiceprint.active.is_(True), Embedding.model_id == model_id
            )
            .order_by(Voiceprint.activated_at.desc())
            .limit(self.settings.cohort_max_size + 1)  # +1: still max_size after excluding the claimant
        ).all()
        if rows:
            vectors = np.stack([vector_from_bytes(r.vector, r.dimension) for r in rows])
        else:
            vectors = np.zeros((0, 0), dtype=np.float32)
        entry = _Enrolled(now, np.array([r.user_id for r in rows], dtype=object), vectors)
        with self._lock:
            self._enrolled[model_id] = entry
        return entry

    def invalidate(self, model_id: str | None = None) -> None:
        """Forget cached enrolled cohorts (all, or one model's)."""
        with self._lock:
            if model_id is None:
                self._enrolled.clear()
            else:
                self._enrolled.pop(model_id, None)

    def enrolled(self, session: Session, model_id: str, *, exclude_user: str) -> Cohort | None:
        entry = self._load_enrolled(session, model_id)
        keep = entry.users != exclude_user
        n = int(keep.sum())
        if n < self.settings.cohort_min_size:
            return None
        vectors = entry.vectors[keep][: self.settings.cohort_max_size]
        return Cohort(model_id, vectors, "enrolled")

    # --- choice -----------------------------------------------------------------------------
    def for_verification(self, session: Session, model_id: str, *, exclude_user: str) -> Cohort | None:
        """The cohort to normalize a verification of ``exclude_user`` with, or None (raw cosine)."""
        source = self.settings.cohort_source
        if source == "none":
            return None
        if source in ("auto", "set"):
            with self._lock:
                s = self._sets.get(model_id)
            if s is not None and len(s) >= self.settings.cohort_min_size:
                return s
            if source == "set":
                return None
        return self.enrolled(session, model_id, exclude_user=exclude_user)
