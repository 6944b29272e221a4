"""Defaults and limits of the visualizer data (pure pydantic: imported by core.settings).

Everything that changes the bytes of an artifact is part of its cache key (see
``effects.artifacts``), so changing a setting here never serves stale cached data.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator


class EffectSettings(BaseModel):
    # --- spectrum frames (Web Audio AnalyserNode definition) --------------------------------
    default_fps: int = Field(30, ge=1, le=60, description="Frames per second computed on upload")
    default_bands: int = Field(64, ge=8, le=128, description="Band count computed on upload")
    min_fps: int = Field(1, ge=1, le=60)
    max_fps: int = Field(60, ge=1, le=60)
    min_bands: int = Field(8, ge=1, le=256)
    max_bands: int = Field(128, ge=1, le=256)
    fft_size: int = Field(2048, description="AnalyserNode.fftSize (power of two, 32..32768)")
    smoothing: float = Field(0.8, ge=0.0, lt=1.0, description="AnalyserNode.smoothingTimeConstant")
    min_db: float = Field(-100.0, description="AnalyserNode.minDecibels")
    max_db: float = Field(-30.0, description="AnalyserNode.maxDecibels")
    band_min_hz: float = Field(40.0, gt=0, description="Lower edge of the lowest band (Hz)")
    band_max_hz: float = Field(16000.0, gt=0, description="Upper edge of the highest band (Hz)")

    # --- waveform peaks (BBC audiowaveform .dat / JSON) -------------------------------------
    waveform_samples_per_pixel: int = Field(256, description="Zoom level computed on upload")
    waveform_zoom_levels: list[int] = Field(
        default_factory=lambda: [256, 512, 1024, 2048, 4096],
        description="samples_per_pixel values the API serves (multiples of the upload level)",
    )
    waveform_bits: int = Field(16, description="Resolution stored on upload (8 can be derived exactly)")

    # --- beats (librosa) --------------------------------------------------------------------
    onset_sample_rate: int = Field(11025, description="Rate the onset envelope is computed at (Hz)")
    onset_n_fft: int = Field(512, description="STFT size of the onset envelope (samples)")
    onset_hop: int = Field(256, description="Hop of the onset envelope (samples): 43 frames/s")
    onset_n_mels: int = Field(40, ge=8, le=128)
    tempo_min_bpm: float = Field(40.0, gt=0)
    tempo_max_bpm: float = Field(240.0, gt=0)
    tempo_start_bpm: float = Field(120.0, gt=0, description="Centre of the log-normal tempo prior")
    tempo_std_octaves: float = Field(1.0, gt=0, description="Width of the tempo prior (octaves)")
    double_tempo_ratio: float = Field(
        0.8,
        gt=0,
        le=1.0,
        description="Prefer twice the tempo when the autocorrelation at half the period is at least "
        "this fraction of the chosen one (evenly spaced pulses, e.g. a click track at 180 BPM)",
    )
    double_tempo_max_bpm: float = Field(200.0, gt=0)
    beat_tightness: float = Field(100.0, gt=0, description="librosa beat_track tightness")
    snap_before_ms: float = Field(60.0, ge=0, description="Beat refinement search window before a beat")
    snap_after_ms: float = Field(30.0, ge=0, description="... and after it")

    # --- HTTP caching -----------------------------------------------------------------------
    cache_control: str = Field(
        "public, max-age=86400",
        description="Cache-Control of artifact responses (content is fixed per recording+params)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> EffectSettings:
        if self.fft_size < 32 or self.fft_size > 32768 or self.fft_size & (self.fft_size - 1):
            raise ValueError("fft_size must be a power of two in 32..32768 (AnalyserNode limits)")
        if not self.min_fps <= self.default_fps <= self.max_fps:
            raise ValueError("default_fps must lie in min_fps..max_fps")
        if not self.min_bands <= self.default_bands <= self.max_bands:
            raise ValueError("default_bands must lie in min_bands..max_bands")
        if self.min_db >= self.max_db:
            raise ValueError("min_db must be below max_db")
        if self.band_min_hz >= self.band_max_hz:
            raise ValueError("band_min_hz must be below band_max_hz")
        if self.waveform_bits not in (8, 16):
            raise ValueError("waveform_bits must be 8 or 16")
        base = self.waveform_samples_per_pixel
        if (
            base < 2
            or any(z % base for z in self.waveform_zoom_levels)
            or base not in self.waveform_zoom_levels
        ):
            raise ValueError(
                "waveform_zoom_levels must contain waveform_samples_per_pixel and its multiples only"
            )
        if self.tempo_min_bpm >= self.tempo_max_bpm:
            raise ValueError("tempo_min_bpm must be below tempo_max_bpm")
        return self
