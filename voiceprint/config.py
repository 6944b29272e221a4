"""Voiceprint settings (pure pydantic: imported by core.settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class ModelThresholds(BaseModel):
    """Fallback decision thresholds for ONE model id (used only when its registry entry has none).

    Keyed by the exact model id in :attr:`VoiceprintSettings.thresholds`, so a new model version
    never silently inherits an old model's numbers.
    """

    cosine: float = Field(..., ge=-1.0, le=1.0, description="Raw cosine threshold (no cohort)")
    asnorm: float | None = Field(None, description="Threshold on AS-norm scores (z units)")
    search: float | None = Field(
        None, ge=-1.0, le=1.0, description="Cosine between two voiceprints that links two accounts"
    )
    target_far: float = Field(0.01, gt=0.0, lt=1.0, description="FAR these thresholds were set for")


class VoiceprintSettings(BaseModel):
    backend: str = "ecapa"

    # --- service: enrollment -----------------------------------------------------------------
    min_enrollments: int = Field(3, ge=1, le=20, description="Utterances needed to form a voiceprint")
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="Largest voiceprint upload")
    max_utterance_s: float = Field(60.0, gt=0, description="Longest enrollment/verification utterance")
    enroll_min_speech_s: float = Field(3.0, ge=0, description="Speech needed in one enrollment utterance")
    enroll_max_clipping: float = Field(0.01, ge=0, le=1, description="Largest clipped-sample fraction")
    enroll_min_snr_db: float = Field(15.0, description="Lowest speech-to-noise ratio, dB")
    enroll_min_consistency: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="Cosine a new utterance must reach against the version's others; None: the "
        "model's raw verification threshold",
    )
    # --- service: verification ---------------------------------------------------------------
    target_far: float = Field(0.01, gt=0.0, lt=1.0, description="False-accept rate thresholds target")
    thresholds: dict[str, ModelThresholds] = Field(
        default_factory=dict, description="Fallback thresholds per exact model id (registry wins)"
    )
    reject_replayed_audio: bool = Field(True, description="Refuse byte-identical re-submitted audio")
    service_vad: Literal["silero", "energy"] = Field(
        "silero",
        description="Speech detector of the service path: silero (voiceprint.speech) or a "
        "frame-energy gate (no torch; for synthetic test voices and minimal installs)",
    )
    # --- service: score normalization --------------------------------------------------------
    asnorm_top_n: int = Field(100, ge=2, le=10_000, description="AS-norm: top-N cohort scores per side")
    cohort_source: Literal["auto", "set", "enrolled", "none"] = Field(
        "auto", description="auto: the cohort set if present, else enrolled voiceprints once enough"
    )
    cohort_dir: Path | None = Field(
        None, description="Cohort set: audio files (optionally in per-speaker folders)"
    )
    cohort_min_size: int = Field(50, ge=2, description="Fewer cohort embeddings than this: raw cosine")
    cohort_max_size: int = Field(2000, ge=2, description="Most enrolled voiceprints used as a cohort")
    cohort_refresh_s: float = Field(300.0, ge=0, description="Enrolled-voiceprint cohort cache lifetime")
    # --- service: challenges and rate limits -------------------------------------------------
    challenge_ttl_s: float = Field(120.0, gt=0, le=3600, description="A challenge prompt's lifetime")
    challenge_digits: int = Field(8, ge=4, le=16, description="Digits in a challenge prompt")
    verify_rate_limit: int = Field(5, ge=1, description="Verification attempts per user per window")
    challenge_rate_limit: int = Field(10, ge=1, description="Challenges issued per user per window")
    rate_window_s: float = Field(900.0, gt=0, description="Rate-limit window, seconds")
    # --- service: cross-account voice search -------------------------------------------------
    search_k: int = Field(10, ge=1, le=100, description="Neighbours fetched per voice search")
    search_index: Literal["auto", "flat", "pq", "hnsw"] = Field(
        "auto",
        description="auto: exact below search_exact_below voiceprints, 4-bit PQ fast-scan + "
        "exact re-rank (pq) above; hnsw for collections far beyond 100k",
    )
    search_exact_below: int = Field(5000, ge=0, description="Index size under which search is exact")
    search_refine_factor: int = Field(40, ge=1, le=1000, description="pq: candidates re-ranked per result")
    hnsw_m: int = Field(32, ge=4, le=128)
    hnsw_ef_construction: int = Field(200, ge=16, le=2000)
    hnsw_ef_search: int = Field(128, ge=16, le=4096)
    index_dir: Path | None = Field(None, description="Where indexes are saved; default DATA_DIR/voice_index")
    index_event_retention: int = Field(100_000, ge=100, description="Index change events kept per model")
    # --- embedders (models/, voiceprint/embedders, voiceprint/speech) ------------------------
    min_speech_s: float = Field(
        1.0, gt=0, description="Least speech (after VAD) an embedder accepts; less is TooLittleSpeech"
    )
    ecapa_precision: Literal["auto", "bfloat16", "float32"] = Field(
        "auto",
        description="ECAPA trunk precision; auto: bfloat16 where the CPU has native bf16 "
        "(avx512_bf16/amx), else float32. Embeddings agree to cosine > 0.999 either way",
    )
    torch_threads: int = Field(
        0, ge=0, le=256, description="torch intra-op threads; 0: leave torch's default"
    )
    embed_batch_max_s: float = Field(
        120.0, gt=0, description="Most audio packed into one embedding pass by embed_batch, seconds"
    )
    vad_threshold: float = Field(
        0.2, gt=0, lt=1, description="Silero VAD probability above which audio is kept for embedding"
    )
    vad_min_silence_ms: int = Field(800, ge=0, description="Only pauses longer than this are cut, ms")
    vad_pad_ms: int = Field(400, ge=0, description="Context kept around each speech region, ms")
    vad_speech_threshold: float = Field(
        0.5, gt=0, lt=1, description="Probability above which a frame counts as speech (min-speech rules)"
    )
