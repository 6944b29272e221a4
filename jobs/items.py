"""Per-item work of a batch job, run inside a worker process or a Ray actor.

Nothing here re-implements domain logic: recordings go through :func:`pipeline.recording.analyze_recording`
(the exact function the upload API runs), voiceprint audio through the voiceprint service's
``prepare_utterance`` + ``embed_samples`` (what its API runs per utterance). This module only
dispatches an item to that code and turns any failure into ``{error_code, detail}`` so one bad item
never stops the batch.

A worker builds a :class:`WorkerState` once (:func:`init_state`: settings, and the speaker embedder
when the job re-embeds voiceprints) and then calls :func:`run_item` for each item. Everything that
crosses the process boundary (:class:`WorkerSpec`, :class:`ItemTask`, :class:`Outcome`) is a plain
picklable dataclass. Database writes happen in the job's runner, not here (see jobs.writeback).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from audio.checks.config import CheckSettings
from audio.limits import AudioLimits
from core.errors import SonggateError
from effects.config import EffectSettings
from voiceprint.config import VoiceprintSettings

log = logging.getLogger("songgate.jobs")
WHATS = ("checks", "effects", "voiceprint")


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What every worker needs, built once per job (picklable; sent to each worker/actor once)."""

    what: tuple[str, ...]
    limits: AudioLimits
    checks: CheckSettings
    effects: EffectSettings
    embedder: str | None = None  # backend name for voiceprint.embedders.load_embedder, or "module:attr"
    model_dir: str | None = None
    voiceprint: VoiceprintSettings | None = None


@dataclasses.dataclass(frozen=True)
class ItemTask:
    """One item to process.

    ``path`` is the audio file (a recording's blob, a manifest file, an attempt's audio);
    ``inputs`` are (utterance id, blob path) pairs of a voiceprint item.
    """

    seq: int
    item_type: str  # recording | file | voiceprint | attempt
    key: str
    path: str | None = None
    kind: str | None = None
    inputs: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass
class Outcome:
    """What a worker sends back for one item.

    ``result`` is the JSON row kept on ``job_items`` and exported; ``report``, ``artifacts``,
    ``vectors`` and ``info`` are what the runner writes back to the domain tables.
    ``vectors`` maps an utterance id (or ``"probe"``) to a float32 vector [shape=(dimension,)].
    """

    seq: int
    status: str  # done | failed
    result: dict[str, Any] = dataclasses.field(default_factory=dict)
    error_code: str | None = None
    error_detail: str | None = None
    report: dict[str, Any] | None = None
    artifacts: list[Any] = dataclasses.field(default_factory=list)
    vectors: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    model_id: str | None = None
    elapsed_s: float = 0.0
    worker_pid: int = 0


@dataclasses.dataclass
class WorkerState:
    spec: WorkerSpec
    embedder: Any = None
    model_id: str | None = None


def load_embedder(name: str, *, model_dir: str | None, settings: VoiceprintSettings | None = None) -> Any:
    """A speaker embedder: a backend name (``voiceprint.embedders.load_embedder``) or ``module:attr``,
    an importable factory called without arguments (plug-in models, test doubles)."""
    if ":" in name:
        module, _, attr = name.partition(":")
        return getattr(importlib.import_module(module), attr)()
    from voiceprint.embedders import load_embedder as load

    return load(name, model_dir=Path(model_dir or "var/models"), settings=settings)


def warm_up(spec: WorkerSpec) -> None:
    """Run the recording pipeline once on a short synthetic file so that its one-off costs (lazy
    imports, numba compilation or cache loading: seconds per process) are paid when the worker
    starts, not by its first item (whose timing, and the progress rate, would be off)."""
    import tempfile

    import soundfile as sf

    from pipeline.recording import analyze_recording

    sr = 22050
    t = np.arange(sr, dtype=np.float64) / sr
    y = (0.25 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="songgate-warmup-") as tmp:
        path = os.path.join(tmp, "warmup.wav")
        sf.write(path, y, sr, subtype="PCM_16")
        try:
            analyze_recording(
                path,
                kind="mix",
                limits=spec.limits,
                checks=spec.checks,
                effects=spec.effects if "effects" in spec.what else None,
            )
        except Exception as exc:  # best effort: a real problem shows up, per item, on the items
            log.warning("worker warm-up failed: %s: %s", type(exc).__name__, exc)


def init_state(spec: WorkerSpec, *, warm: bool = True) -> WorkerState:
    """Load what every item of the job needs, once per worker (the embedder is the expensive part)."""
    state = WorkerState(spec)
    if warm and ("checks" in spec.what or "effects" in spec.what):
        warm_up(spec)
    if "voiceprint" in spec.what:
        if not spec.embedder:
            raise ValueError("a voiceprint job needs an embedder")
        state.embedder = load_embedder(spec.embedder, model_dir=spec.model_dir, settings=spec.voiceprint)
        state.model_id = str(state.embedder.model_id)
    return state


def error_code_of(exc: BaseException) -> str:
    """The stable code recorded for a failed item."""
    if isinstance(exc, SonggateError):
        return exc.code
    if isinstance(exc, FileNotFoundError):
        return "file_not_found"
    if isinstance(exc, PermissionError):
        return "permission_denied"
    if isinstance(exc, MemoryError):
        return "out_of_memory"
    return "internal_error"


def run_item(state: WorkerState, task: ItemTask) -> Outcome:
    """Process one item; never raises for a per-item problem (the failure is in the Outcome)."""
    started = time.perf_counter()
    try:
        if task.item_type in ("recording", "file"):
            out = _run_recording(state, task)
        elif task.item_type == "voiceprint":
            out = _run_voiceprint(state, task)
        elif task.item_type == "attempt":
            out = _run_attempt(state, task)
        else:
            raise ValueError(f"unknown item type {task.item_type!r}")
    except Exception as exc:  # one item's failure is recorded, never propagated
        detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
        out = Outcome(task.seq, "failed", error_code=error_code_of(exc), error_detail=str(detail)[:2000])
    out.elapsed_s = time.perf_counter() - started
    out.worker_pid = os.getpid()
    return out


def _require_file(path: str | None) -> str:
    if path is None or not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    return path


def report_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The compact part of a check report kept on every result row."""
    checks = report.get("checks") or []
    return {
        "verdict": report.get("verdict"),
        "settings_version": report.get("settings_version"),
        "failed_checks": sorted(
            c["code"] for c in checks if isinstance(c, dict) and c.get("verdict") == "fail"
        ),
        "warned_checks": sorted(
            c["code"] for c in checks if isinstance(c, dict) and c.get("verdict") == "warn"
        ),
    }


def _run_recording(state: WorkerState, task: ItemTask) -> Outcome:
    from pipeline.recording import analyze_recording

    spec = state.spec
    path = _require_file(task.path)
    analysis = analyze_recording(
        path,
        kind=task.kind or "mix",
        limits=spec.limits,
        checks=spec.checks,
        effects=spec.effects if "effects" in spec.what else None,
    )
    result: dict[str, Any] = {}
    report = analysis.report if "checks" in spec.what else None
    if report is not None:
        result["checks"] = report_summary(report)
        if task.item_type == "file":
            # A manifest file has no database row to hold its report: the result row carries it.
            result["report"] = report
            info = analysis.info
            result["audio"] = {
                "container": info.container,
                "codec": info.codec,
                "sample_rate": info.sample_rate,
                "channels": info.channels,
                "duration_s": round(float(analysis.duration_s), 6),
            }
    if "effects" in spec.what:
        result["effects"] = [
            {"kind": a.kind, "params_key": a.params_key, "bytes": len(a.data), "etag": a.etag.strip('"')}
            for a in analysis.artifacts
        ]
    return Outcome(
        task.seq,
        "done",
        result=result,
        report=report,
        artifacts=list(analysis.artifacts) if task.item_type == "recording" else [],
    )


def _utterance_limits(spec: WorkerSpec) -> AudioLimits:
    """Decoding limits of a voiceprint utterance, as the voiceprint service applies them."""
    vp = spec.voiceprint or VoiceprintSettings()
    return spec.limits.model_copy(
        update={"max_duration_s": min(spec.limits.max_duration_s, vp.max_utterance_s)}
    )


def _embed(state: WorkerState, path: str) -> np.ndarray:
    """Decode and embed one utterance exactly as the voiceprint API does (prepare, then embed)."""
    from voiceprint.service import embed_samples, prepare_utterance

    prepared = prepare_utterance(
        _require_file(path),
        limits=_utterance_limits(state.spec),
        vp=state.spec.voiceprint or VoiceprintSettings(),
        measure_quality=False,
    )
    return np.asarray(
        embed_samples(state.embedder, prepared.speech, speech_s=prepared.speech_s), dtype=np.float32
    )


def _run_voiceprint(state: WorkerState, task: ItemTask) -> Outcome:
    """Re-embed every enrollment utterance of one voiceprint with the job's (new) model.

    An utterance that fails (e.g. too little speech for the new model) is counted by error code;
    the item fails only when no utterance could be embedded.
    """
    vectors: dict[str, np.ndarray] = {}
    errors: dict[str, int] = {}
    last: BaseException | None = None
    for utterance_id, path in task.inputs:
        try:
            vectors[utterance_id] = _embed(state, path)
        except Exception as exc:
            last = exc
            code = error_code_of(exc)
            errors[code] = errors.get(code, 0) + 1
    if not vectors:
        if last is None:
            raise ValueError("voiceprint has no enrollment utterances")
        raise last
    result = {
        "model_id": state.model_id,
        "utterances": len(task.inputs),
        "embedded": len(vectors),
        "utterance_errors": errors,
    }
    return Outcome(task.seq, "done", result=result, vectors=vectors, model_id=state.model_id)


def _run_attempt(state: WorkerState, task: ItemTask) -> Outcome:
    """Re-embed the audio of one past verification attempt with the new model (scored in jobs.diff)."""
    vector = _embed(state, task.path) if task.path else None
    if vector is None:
        raise FileNotFoundError("the attempt's audio is not stored")
    return Outcome(
        task.seq,
        "done",
        result={"model_id": state.model_id},
        vectors={"probe": vector},
        model_id=state.model_id,
    )
