"""The evaluation driver behind ``songgate eval voiceprint``.

For one backend and one condition it embeds every utterance twice on the same trials:

- **pipeline**: the project's path: VAD speech-only audio (voiceprint.speech) -> ``embed_batch``;
- **reference**: the backend's own documented usage on the raw (conditioned) audio: speechbrain's
  ``EncoderClassifier.encode_batch(wav)`` for ECAPA; ``preprocess_wav`` + ``embed_utterance`` for
  Resemblyzer.

Both are scored raw (cosine) and with AS-norm against a cohort of speakers that appear in no trial
(``cohort_fraction`` of the dataset's speakers, or a separate ``cohort_dir``). Utterances the
pipeline refuses (too little speech after VAD) are removed from both systems' trials and counted.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voiceprint.embedders.base import SpeakerEmbedder, l2_normalize
from voiceprint.eval import conditions
from voiceprint.eval.asnorm import asnorm, cohort_stats
from voiceprint.eval.data import SR, Utterance, all_pairs, build_utterances, list_speakers, load, read_trials
from voiceprint.eval.metrics import summarize
from voiceprint.speech import Speech, extract_speech


@dataclass
class EvalConfig:
    """What to evaluate (see ``songgate eval voiceprint --help`` for each option)."""

    root: Path
    condition: str = "clean"
    speaker_regex: str | None = None
    segments: int = 1
    concat: int = 1
    max_speakers: int | None = None
    max_per_speaker: int | None = None
    trials_file: Path | None = None
    cohort_fraction: float = 0.2
    cohort_dir: Path | None = None
    cohort_regex: str | None = None
    cohort_segments: int | None = None
    cohort_max_speakers: int | None = None
    top_n: int = 100
    reference: bool = True
    p_target: float = 0.01
    target_far: float = 0.01
    seed: int = 0
    vad_threshold: float = 0.2
    vad_min_silence_ms: int = 800
    vad_pad_ms: int = 400
    vad_speech_threshold: float = 0.5


def _rng(seed: int, key: str) -> np.random.Generator:
    """A generator per utterance, independent of processing order."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _condition(utts: list[Utterance], cfg: EvalConfig) -> None:
    for u in utts:
        u.audio = conditions.apply(cfg.condition, u.audio, rng=_rng(cfg.seed, u.key))


def reference_embed(embedder: SpeakerEmbedder, audios: Sequence[np.ndarray]) -> tuple[np.ndarray, str]:
    """The backend's documented plain usage on raw audio, one utterance at a time; unit rows."""
    classifier = getattr(embedder, "classifier", None)
    if classifier is not None:  # speechbrain ECAPA
        with torch.no_grad():
            rows = [classifier.encode_batch(torch.from_numpy(a)[None]).reshape(-1).numpy() for a in audios]
        return l2_normalize(np.stack(rows)), "speechbrain EncoderClassifier.encode_batch(wav)"
    encoder = getattr(embedder, "encoder", None)
    if encoder is not None:  # Resemblyzer
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from resemblyzer import preprocess_wav
        rows = [encoder.embed_utterance(preprocess_wav(a, source_sr=SR)) for a in audios]
        return l2_normalize(np.stack(rows)), "resemblyzer preprocess_wav + VoiceEncoder.embed_utterance"
    raise ValueError(f"no reference implementation for {embedder!r}")


def _pipeline_speech(utts: Sequence[Utterance], cfg: EvalConfig) -> list[Speech]:
    return [
        extract_speech(
            u.audio,
            sr=SR,
            threshold=cfg.vad_threshold,
            min_silence_ms=cfg.vad_min_silence_ms,
            pad_ms=cfg.vad_pad_ms,
            speech_threshold=cfg.vad_speech_threshold,
        )
        for u in utts
    ]


def _score_block(
    emb: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    labels: np.ndarray,
    cohort: np.ndarray | None,
    cfg: EvalConfig,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    raw = np.einsum("ij,ij->i", emb[a].astype(np.float64), emb[b].astype(np.float64))
    out = {"raw": summarize(raw, labels, p_target=cfg.p_target, target_far=cfg.target_far).as_dict()}
    scores = {"raw": raw}
    if cohort is not None:
        mu, sd = cohort_stats(emb, cohort, top_n=cfg.top_n)
        norm = asnorm(raw, (mu[a], sd[a]), (mu[b], sd[b]))
        out["asnorm"] = summarize(norm, labels, p_target=cfg.p_target, target_far=cfg.target_far).as_dict()
        scores["asnorm"] = norm
    return out, scores


def evaluate(
    cfg: EvalConfig,
    *,
    embedder: SpeakerEmbedder,
    progress: Callable[[str], None] = lambda s: None,
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]], np.ndarray]:
    """Run the evaluation.

    Returns
    -------
    report : dict (JSON-serializable), see docs/voiceprint.md
    scores : {"pipeline" | "reference": {"raw" | "asnorm": np.ndarray (trials,)}}
    labels : np.ndarray [shape=(trials,)], int8
    """
    if cfg.condition not in conditions.CONDITIONS:
        raise ValueError(f"unknown condition {cfg.condition!r}; known: {', '.join(conditions.CONDITIONS)}")
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)

    # --- utterances and cohort -------------------------------------------------------------
    cohort_utts: list[Utterance] = []
    pair_a: np.ndarray | None = None
    pair_b: np.ndarray | None = None
    pair_labels: np.ndarray | None = None
    if cfg.trials_file is not None:
        listed = read_trials(cfg.trials_file, cfg.root)
        paths = sorted({p for _, e, t in listed for p in (e, t)})
        index = {p: i for i, p in enumerate(paths)}
        trial_utts = [Utterance(str(p), "?", load(p), [str(p)]) for p in paths]
        pair_a = np.array([index[e] for _, e, _ in listed])
        pair_b = np.array([index[t] for _, _, t in listed])
        pair_labels = np.array([lab for lab, _, _ in listed], dtype=np.int8)
    else:
        speakers = list_speakers(cfg.root, speaker_regex=cfg.speaker_regex, max_speakers=cfg.max_speakers)
        names = sorted(speakers)
        cohort_names: list[str] = []
        if cfg.cohort_dir is None and cfg.cohort_fraction > 0:
            n_c = int(round(cfg.cohort_fraction * len(names)))
            if n_c >= 2 and len(names) - n_c >= 2:
                cohort_names = sorted(rng.permutation(names)[:n_c].tolist())
        trial_speakers = {s: speakers[s] for s in names if s not in cohort_names}
        trial_utts = build_utterances(
            trial_speakers,
            segments=cfg.segments,
            concat=cfg.concat,
            max_per_speaker=cfg.max_per_speaker,
            rng=rng,
        )
        if cohort_names:
            cohort_utts = build_utterances(
                {s: speakers[s] for s in cohort_names},
                segments=cfg.segments,
                concat=cfg.concat,
                max_per_speaker=cfg.max_per_speaker,
                rng=rng,
            )
    if cfg.cohort_dir is not None:
        cohort_speakers = list_speakers(
            cfg.cohort_dir, speaker_regex=cfg.cohort_regex, max_speakers=cfg.cohort_max_speakers
        )
        cohort_utts = build_utterances(
            cohort_speakers, segments=cfg.cohort_segments or 1, max_per_speaker=cfg.max_per_speaker, rng=rng
        )
    progress(
        f"{len(trial_utts)} trial utterances, {len(cohort_utts)} cohort utterances; condition {cfg.condition}"
    )
    _condition(trial_utts, cfg)
    _condition(cohort_utts, cfg)
    timing["load_and_condition"] = time.perf_counter() - t0

    # --- pipeline: VAD -> embed_batch ----------------------------------------------------------
    t = time.perf_counter()
    speech = _pipeline_speech(trial_utts, cfg)
    cohort_speech = _pipeline_speech(cohort_utts, cfg)
    timing["vad"] = time.perf_counter() - t

    def enough(s: Speech) -> bool:  # the same rule as voiceprint.speech.embed_recording
        return s.speech_s >= embedder.min_duration_s and len(s.samples) >= embedder.min_duration_s * SR

    keep = np.array([enough(s) for s in speech], dtype=bool)
    cohort_keep = [i for i, s in enumerate(cohort_speech) if enough(s)]
    progress(
        f"VAD: {int((~keep).sum())} trial and {len(cohort_utts) - len(cohort_keep)} cohort utterances "
        f"have < {embedder.min_duration_s:g} s of speech and are left out"
    )
    t = time.perf_counter()
    emb = np.zeros((len(trial_utts), embedder.dimension), dtype=np.float32)
    kept_idx = np.flatnonzero(keep)
    if kept_idx.size:
        emb[kept_idx] = embedder.embed_batch([speech[i].samples for i in kept_idx], sr=SR)
    cohort_emb = (
        embedder.embed_batch([cohort_speech[i].samples for i in cohort_keep], sr=SR)
        if len(cohort_keep) >= 2
        else None
    )
    timing["pipeline_embed"] = time.perf_counter() - t
    progress(f"pipeline embeddings: {timing['pipeline_embed']:.1f} s")

    # --- trials ------------------------------------------------------------------------------
    if pair_a is None or pair_b is None or pair_labels is None:
        kept_utts = [trial_utts[i] for i in kept_idx]
        a, b, labels = all_pairs(kept_utts)
        a, b = kept_idx[a], kept_idx[b]
    else:
        ok = keep[pair_a] & keep[pair_b]
        a, b, labels = pair_a[ok], pair_b[ok], pair_labels[ok]
    if labels.sum() == 0 or (labels == 0).sum() == 0:
        raise ValueError("the trials need both target and non-target pairs")

    report: dict[str, Any] = {
        "dataset": str(cfg.root),
        "backend": type(embedder).__name__,
        "model_id": embedder.model_id,
        "condition": cfg.condition,
        "seed": cfg.seed,
        "p_target": cfg.p_target,
        "target_far": cfg.target_far,
        "asnorm_top_n": cfg.top_n if cohort_emb is not None else None,
        "utterances": {
            "trial": len(trial_utts),
            "cohort": len(cohort_keep),
            "left_out_too_little_speech": int((~keep).sum()),
            "mean_audio_s": round(float(np.mean([len(u.audio) for u in trial_utts])) / SR, 2),
            "mean_speech_s": round(float(np.mean([s.speech_s for s in speech])), 2),
            "mean_embedded_s": round(float(np.mean([len(s.samples) for s in speech])) / SR, 2),
        },
        "trials": {"target": int(labels.sum()), "nontarget": int((labels == 0).sum())},
    }
    scores: dict[str, dict[str, np.ndarray]] = {}
    report["pipeline"], scores["pipeline"] = _score_block(emb, a, b, labels, cohort_emb, cfg)
    primary = "asnorm" if "asnorm" in report["pipeline"] else "raw"
    report["scoring"] = primary
    report["eer_percent"] = report["pipeline"][primary]["eer_percent"]
    report["min_dcf"] = report["pipeline"][primary]["min_dcf"]

    # --- reference: the backend's plain documented usage on the same trials ---------------------
    if cfg.reference:
        t = time.perf_counter()
        ref = np.zeros_like(emb)
        ref[kept_idx], name = reference_embed(embedder, [trial_utts[i].audio for i in kept_idx])
        ref_cohort = (
            reference_embed(embedder, [cohort_utts[i].audio for i in cohort_keep])[0]
            if cohort_emb is not None
            else None
        )
        timing["reference_embed"] = time.perf_counter() - t
        progress(f"reference embeddings: {timing['reference_embed']:.1f} s")
        block, scores["reference"] = _score_block(ref, a, b, labels, ref_cohort, cfg)
        report["reference"] = {"name": name, **block}
    timing["total"] = time.perf_counter() - t0
    report["timing_s"] = {k: round(v, 2) for k, v in timing.items()}
    return report, scores, labels


def calibration_record(report: dict[str, Any], command: str | None = None) -> dict[str, Any]:
    """The calibration.json content from a report: thresholds at the target FAR, and provenance."""
    pipe = report["pipeline"]
    return {
        "raw_cosine": pipe["raw"]["threshold_at_far"],
        "asnorm": pipe["asnorm"]["threshold_at_far"] if "asnorm" in pipe else None,
        "asnorm_top_n": report.get("asnorm_top_n"),
        "target_far": report["target_far"],
        "dev_set": {
            "dataset": report["dataset"],
            "condition": report["condition"],
            "trials": report["trials"],
            "utterances": report["utterances"],
        },
        "eer_percent": {k: v["eer_percent"] for k, v in pipe.items()},
        "min_dcf": {k: v["min_dcf"] for k, v in pipe.items()},
        "frr_percent_at_threshold": {k: v["frr_percent_at_threshold"] for k, v in pipe.items()},
        "command": command,
    }
