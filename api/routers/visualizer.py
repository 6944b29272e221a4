"""Visualizer data of a recording: spectrum frames, waveform peaks and beats.

``/v1/recordings/{id}/visualizer``, ``/waveform.dat``, ``/waveform.json`` and ``/beats``. The defaults
are computed on upload; other parameters are computed on first request and cached per parameters
(effects.store). Responses carry a strong ETag (hash of the bytes) and Cache-Control; a matching
``If-None-Match`` answers 304. Parameters are parsed here (not by FastAPI's validation) so a bad
value answers 422 problem+json with the stable code ``invalid_effect_params`` and the parameter name.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session, sessionmaker

from api.deps import Principal, get_recording, require_scope
from db.tables import Recording
from effects.artifacts import Artifact, ArtifactSpec, beats_spec, spectrum_spec, waveform_spec
from effects.config import EffectSettings
from effects.errors import InvalidEffectParams
from effects.store import get_or_compute

router = APIRouter(tags=["visualizer"])

ReadScope = Annotated[Principal, Depends(require_scope("upload", "claim"))]
_RESPONSES: dict[int | str, dict[str, str]] = {
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
    404: {"description": "No such recording"},
    422: {"description": "Invalid parameters (problem+json, code invalid_effect_params)"},
}


def _int_param(name: str, raw: str | None, default: int) -> int:
    if raw is None:
        return default
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 6:
        raise InvalidEffectParams(f"{name} must be a positive integer", parameter=name)
    return int(raw)


def _etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match uses weak comparison (RFC 9110 13.1.2): ``W/`` prefixes are ignored."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = [t.strip() for t in header.split(",")]
    return any((t[2:] if t.startswith("W/") else t) == etag for t in tags)


def _recording(factory: sessionmaker[Session], recording_id: str) -> Recording:
    with factory() as session:
        return get_recording(session, recording_id)


async def _serve(
    request: Request, recording_id: str, spec: ArtifactSpec, filename: str | None = None
) -> Response:
    state = request.app.state
    # A short session of our own, in a thread: on SQLite every transaction takes the write lock
    # (BEGIN IMMEDIATE), so none may stay open while the artifact is computed and stored, and a wait
    # for that lock must not block the event loop.
    recording = await asyncio.to_thread(_recording, state.session_factory, recording_id)
    settings: EffectSettings = state.settings.effects
    artifact: Artifact = await get_or_compute(
        session_factory=state.session_factory, pool=state.pool, blobs=state.blobs, recording=recording,
        spec=spec, settings=settings, limits=state.settings.limits,
    )  # fmt: skip
    headers = {"ETag": artifact.etag, "Cache-Control": settings.cache_control}
    if _etag_matches(request.headers.get("if-none-match"), artifact.etag):
        return Response(status_code=304, headers=headers)
    if filename:
        headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return Response(content=artifact.data, media_type=artifact.media_type, headers=headers)


@router.get("/recordings/{recording_id}/visualizer", responses=_RESPONSES, response_class=Response)
async def visualizer_frames(
    recording_id: str,
    request: Request,
    _: ReadScope,
    fps: Annotated[str | None, Query(description="Frames per second (1..60, default 30)")] = None,
    bands: Annotated[str | None, Query(description="Log-spaced bands (8..128, default 64)")] = None,
    format: Annotated[str | None, Query(description="bin (default) or json")] = None,
) -> Response:
    """Spectrum frames (AnalyserNode byte levels per band), binary layout of docs/visualizer-format.md
    (``application/vnd.songgate.frames``) or its JSON variant."""
    settings: EffectSettings = request.app.state.settings.effects
    spec = spectrum_spec(
        fps=_int_param("fps", fps, settings.default_fps),
        bands=_int_param("bands", bands, settings.default_bands),
        fmt=(format or "bin").strip().lower(),
        settings=settings,
    )
    return await _serve(request, recording_id, spec)


def _waveform(request: Request, samples_per_pixel: str | None, bits: str | None, fmt: str) -> ArtifactSpec:
    settings: EffectSettings = request.app.state.settings.effects
    return waveform_spec(
        samples_per_pixel=_int_param(
            "samples_per_pixel", samples_per_pixel, settings.waveform_samples_per_pixel
        ),
        bits=_int_param("bits", bits, 16),
        fmt=fmt,
        settings=settings,
    )


SppQuery = Annotated[str | None, Query(description="256 (default), 512, 1024, 2048 or 4096")]
BitsQuery = Annotated[str | None, Query(description="16 (default) or 8")]


@router.get("/recordings/{recording_id}/waveform.dat", responses=_RESPONSES, response_class=Response)
async def waveform_dat(
    recording_id: str, request: Request, _: ReadScope,
    samples_per_pixel: SppQuery = None, bits: BitsQuery = None,
) -> Response:  # fmt: skip
    """Waveform peaks as a BBC audiowaveform ``.dat`` file (version 1 mono, version 2 multichannel)."""
    spec = _waveform(request, samples_per_pixel, bits, "dat")
    return await _serve(request, recording_id, spec, filename=f"{recording_id}.dat")


@router.get("/recordings/{recording_id}/waveform.json", responses=_RESPONSES, response_class=Response)
async def waveform_json(
    recording_id: str, request: Request, _: ReadScope,
    samples_per_pixel: SppQuery = None, bits: BitsQuery = None,
) -> Response:  # fmt: skip
    """Waveform peaks in audiowaveform's JSON format (peaks.js / waveform-data.js read it)."""
    spec = _waveform(request, samples_per_pixel, bits, "json")
    return await _serve(request, recording_id, spec)


@router.get("/recordings/{recording_id}/beats", responses=_RESPONSES, response_class=Response)
async def beats(recording_id: str, request: Request, _: ReadScope) -> Response:
    """Tempo, beat times and the onset-strength envelope:
    ``{"version", "tempo_bpm", "beats_s", "onset_envelope": {"frame_rate_hz", "values"}}``."""
    spec = beats_spec(settings=request.app.state.settings.effects)
    return await _serve(request, recording_id, spec)
