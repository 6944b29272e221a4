"""Artifacts: the stored byte forms of the visualizer data, keyed by kind and parameters.

An :class:`ArtifactSpec` names one artifact (kind + every parameter that changes its bytes, including
the relevant settings and the algorithm version), so a cache row can never be served for other
parameters. Specs are computed from audio (:func:`compute`) or derived exactly from another stored
artifact without the audio (:func:`derive_source` / :func:`derive`): JSON twins, coarser waveform
zoom levels and 8-bit waveforms.

Everything here is a plain top-level function on arrays or bytes, so it runs in worker processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from effects import beats as beats_mod
from effects import frames_format
from effects import waveform as waveform_mod
from effects.config import EffectSettings
from effects.errors import InvalidEffectParams
from effects.spectrum import band_levels, check_params

#: Bumped whenever an algorithm changes its output for the same parameters.
ALGORITHM_VERSION = "1"

SPECTRUM = "spectrum"
SPECTRUM_JSON = "spectrum_json"
WAVEFORM_DAT = "waveform_dat"
WAVEFORM_JSON = "waveform_json"
BEATS = "beats"
KINDS = (SPECTRUM, SPECTRUM_JSON, WAVEFORM_DAT, WAVEFORM_JSON, BEATS)


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One computed artifact: what the upload path stores and the routes serve."""

    kind: str
    params_key: str
    media_type: str
    data: bytes

    @property
    def etag(self) -> str:
        """Strong ETag: a hash of the bytes (quoted, as sent in the header)."""
        return '"' + hashlib.sha256(self.data).hexdigest()[:32] + '"'


@dataclasses.dataclass(frozen=True)
class ArtifactSpec:
    """What to compute. ``params`` holds only request parameters; ``key`` adds the settings."""

    kind: str
    params: tuple[tuple[str, int | str], ...]
    key: str
    media_type: str

    def get(self, name: str) -> int | str:
        return dict(self.params)[name]


def _settings_hash(settings: EffectSettings, fields: tuple[str, ...]) -> str:
    subset = {f: getattr(settings, f) for f in fields}
    return hashlib.sha256(json.dumps(subset, sort_keys=True).encode()).hexdigest()[:12]


_SPECTRUM_FIELDS = ("fft_size", "smoothing", "min_db", "max_db", "band_min_hz", "band_max_hz")
_BEAT_FIELDS = (
    "onset_sample_rate", "onset_n_fft", "onset_hop", "onset_n_mels", "tempo_min_bpm", "tempo_max_bpm",
    "tempo_start_bpm", "tempo_std_octaves", "double_tempo_ratio", "double_tempo_max_bpm",
    "beat_tightness", "snap_before_ms", "snap_after_ms",
)  # fmt: skip


def _spec(kind: str, media_type: str, settings_fields: tuple[str, ...], settings: EffectSettings,
          **params: int | str) -> ArtifactSpec:  # fmt: skip
    items = tuple(sorted(params.items()))
    body = ";".join(f"{k}={v}" for k, v in items)
    key = (
        f"a{ALGORITHM_VERSION};{body};s={_settings_hash(settings, settings_fields)}"
        if settings_fields
        else (f"a{ALGORITHM_VERSION};{body}")
    )
    return ArtifactSpec(kind, items, key, media_type)


def spectrum_spec(*, fps: int, bands: int, fmt: str, settings: EffectSettings) -> ArtifactSpec:
    """Spectrum frames, ``fmt`` "bin" (the binary layout) or "json"."""
    check_params(fps=fps, bands=bands, settings=settings)
    if fmt == "bin":
        return _spec(SPECTRUM, frames_format.MEDIA_TYPE, _SPECTRUM_FIELDS, settings, fps=fps, bands=bands)
    if fmt == "json":
        return _spec(
            SPECTRUM_JSON, frames_format.JSON_MEDIA_TYPE, _SPECTRUM_FIELDS, settings, fps=fps, bands=bands
        )
    raise InvalidEffectParams("format must be 'bin' or 'json'", parameter="format")


def waveform_spec(*, samples_per_pixel: int, bits: int, fmt: str, settings: EffectSettings) -> ArtifactSpec:
    """Waveform peaks (all channels: ``.dat`` v1 for mono, v2 otherwise), ``fmt`` "dat" or "json"."""
    if samples_per_pixel not in settings.waveform_zoom_levels:
        levels = ", ".join(str(z) for z in settings.waveform_zoom_levels)
        raise InvalidEffectParams(f"samples_per_pixel must be one of {levels}", parameter="samples_per_pixel")
    if bits not in (8, 16):
        raise InvalidEffectParams("bits must be 8 or 16", parameter="bits")
    if fmt == "dat":
        return _spec(
            WAVEFORM_DAT, waveform_mod.DAT_MEDIA_TYPE, (), settings, spp=samples_per_pixel, bits=bits
        )
    if fmt == "json":
        return _spec(
            WAVEFORM_JSON, waveform_mod.JSON_MEDIA_TYPE, (), settings, spp=samples_per_pixel, bits=bits
        )
    raise InvalidEffectParams("format must be 'dat' or 'json'", parameter="format")


def beats_spec(*, settings: EffectSettings) -> ArtifactSpec:
    return _spec(BEATS, beats_mod.JSON_MEDIA_TYPE, _BEAT_FIELDS, settings, v=1)


def default_specs(settings: EffectSettings) -> list[ArtifactSpec]:
    """The artifacts computed on upload."""
    return [
        spectrum_spec(fps=settings.default_fps, bands=settings.default_bands, fmt="bin", settings=settings),
        waveform_spec(
            samples_per_pixel=settings.waveform_samples_per_pixel, bits=settings.waveform_bits, fmt="dat",
            settings=settings,
        ),
        beats_spec(settings=settings),
    ]  # fmt: skip


def compute(spec: ArtifactSpec, y: np.ndarray, *, sr: int, settings: EffectSettings) -> Artifact:
    """Compute ``spec`` from audio ``y`` [shape=(channels, n)], float32 at its native rate ``sr``."""
    if spec.kind in (SPECTRUM, SPECTRUM_JSON):
        frames = band_levels(
            y, sr=sr, fps=int(spec.get("fps")), bands=int(spec.get("bands")), settings=settings
        )
        data = frames_format.encode(frames) if spec.kind == SPECTRUM else frames_format.to_json_bytes(frames)
    elif spec.kind in (WAVEFORM_DAT, WAVEFORM_JSON):
        wf = waveform_mod.peaks(y, sr=sr, samples_per_pixel=int(spec.get("spp")))
        data = _waveform_bytes(spec, wf)
    elif spec.kind == BEATS:
        data = beats_mod.to_json_bytes(beats_mod.beats(y, sr=sr, settings=settings))
    else:
        raise InvalidEffectParams(f"unknown artifact kind {spec.kind}")
    return Artifact(spec.kind, spec.key, spec.media_type, data)


def _waveform_bytes(spec: ArtifactSpec, wf: waveform_mod.WaveformData) -> bytes:
    bits = int(spec.get("bits"))
    if spec.kind == WAVEFORM_DAT:
        return waveform_mod.encode_dat(wf, bits=bits)
    return waveform_mod.to_json_bytes(wf, bits=bits)


def derive_source(spec: ArtifactSpec, settings: EffectSettings) -> ArtifactSpec | None:
    """The stored artifact ``spec`` can be derived from exactly, or None (compute from audio)."""
    if spec.kind == SPECTRUM_JSON:
        return spectrum_spec(
            fps=int(spec.get("fps")), bands=int(spec.get("bands")), fmt="bin", settings=settings
        )
    if spec.kind in (WAVEFORM_DAT, WAVEFORM_JSON):
        base = waveform_spec(
            samples_per_pixel=settings.waveform_samples_per_pixel, bits=16, fmt="dat", settings=settings
        )
        return None if base.key == spec.key else base
    return None


def derive(spec: ArtifactSpec, source: bytes) -> Artifact:
    """Build ``spec`` from the bytes of its :func:`derive_source` artifact."""
    if spec.kind == SPECTRUM_JSON:
        data = frames_format.to_json_bytes(frames_format.decode(source))
    elif spec.kind in (WAVEFORM_DAT, WAVEFORM_JSON):
        wf, _ = waveform_mod.decode_dat(source)
        data = _waveform_bytes(spec, waveform_mod.rescale(wf, samples_per_pixel=int(spec.get("spp"))))
    else:
        raise InvalidEffectParams(f"{spec.kind} cannot be derived")
    return Artifact(spec.kind, spec.key, spec.media_type, data)


def compute_default_artifacts(
    y: np.ndarray, *, sr: int, settings: EffectSettings | None = None
) -> list[Artifact]:
    """The artifacts stored on upload: spectrum frames (default fps/bands, binary), waveform ``.dat``
    (256 samples per pixel, 16-bit, version 2 when multichannel) and beats JSON.

    Parameters
    ----------
    y : np.ndarray [shape=(channels, n)], float32, native sample rate
    sr : int, Hz
    settings : ``EffectSettings()`` when omitted
    """
    s = settings or EffectSettings()
    return [compute(spec, y, sr=sr, settings=s) for spec in default_specs(s)]


def compute_from_file(
    path: str | Path, spec: ArtifactSpec, settings: EffectSettings, limits: object = None
) -> Artifact:
    """Worker-pool entry point: decode the stored recording and compute ``spec``."""
    from audio.decode import decode_file

    decoded = decode_file(path, limits=limits)  # type: ignore[arg-type]
    return compute(spec, decoded.samples, sr=decoded.sample_rate, settings=settings)


def derive_bytes(spec: ArtifactSpec, source: bytes) -> Artifact:
    """Worker-pool entry point for :func:`derive` (keeps JSON encoding off the event loop)."""
    return derive(spec, source)


def warm_up() -> None:
    """Import librosa and JIT-compile its beat tracker (numba, not cached on disk) in this process,
    about 2-4 s once, so a worker's first upload does not pay it. Safe to call from a pool."""
    t = np.arange(3 * 11025) / 11025
    y = (np.sin(2 * np.pi * 440 * t) * (t % 0.5 < 0.05)).astype(np.float32)
    compute_default_artifacts(y[None, :], sr=11025)
