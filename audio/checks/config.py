"""Thresholds of the recording checks (pure pydantic: imported by core.settings).

Every verdict threshold lives here, never as a function default. Thresholds that depend on what was
uploaded (a full ``mix`` or a solo ``vocal`` take) sit in :class:`KindThresholds`, one instance per
kind. Change any default and bump :attr:`CheckSettings.version`: stored reports carry the version
that produced them. Env override: ``SONGGATE_CHECKS__VOCAL__SNR_FAIL_DB=12``.

A threshold set to ``None`` turns that verdict off (the value is still reported, as ``pass``).
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class KindThresholds(BaseModel):
    """Thresholds that differ between a full mix and a solo vocal recording."""

    min_duration_s: float = Field(10.0, ge=0, description="Shorter fails format.duration")
    max_duration_s: float = Field(900.0, gt=0, description="Longer fails format.duration")
    min_sample_rate_hz: int = Field(22050, ge=1, description="Lower fails format.sample_rate")
    recommended_sample_rate_hz: int = Field(44100, ge=1, description="Lower warns format.sample_rate")
    max_channels: int = Field(2, ge=1, description="More fails format.channels")

    integrated_fail_below_lufs: float | None = -45.0
    integrated_warn_below_lufs: float | None = -32.0
    integrated_warn_above_lufs: float | None = -5.0

    noise_floor_warn_dbfs: float | None = Field(None, description="Noise floor above this warns")
    noise_floor_fail_dbfs: float | None = None
    snr_warn_db: float | None = Field(None, description="SNR below this warns")
    snr_fail_db: float | None = None

    leading_silence_warn_s: float | None = 10.0
    trailing_silence_warn_s: float | None = 10.0
    silence_share_warn: float | None = Field(0.3, ge=0, le=1)
    silence_share_fail: float | None = Field(0.9, ge=0, le=1)

    vocal_activity_warn_below: float | None = Field(None, ge=0, le=1)
    vocal_activity_fail_below: float | None = Field(None, ge=0, le=1)


def _mix() -> KindThresholds:
    # A music mix: noise floor and percentile SNR measure arrangement dynamics, not noise, so they
    # are reported without a verdict.
    return KindThresholds()


def _vocal() -> KindThresholds:
    return KindThresholds(
        min_duration_s=1.0,
        min_sample_rate_hz=8000,
        recommended_sample_rate_hz=16000,
        noise_floor_warn_dbfs=-50.0,
        noise_floor_fail_dbfs=-35.0,
        snr_warn_db=20.0,
        snr_fail_db=10.0,
        silence_share_warn=0.6,
        silence_share_fail=0.95,
        vocal_activity_warn_below=0.2,
        vocal_activity_fail_below=0.05,
    )


class CheckSettings(BaseModel):
    """Everything the recording checks decide with. See docs/checks.md for each definition."""

    version: str = "checks-1"

    # --- silence, dropouts, noise (10 ms frames, level = RMS over all channels) ---------------
    silence_threshold_dbfs: float = Field(-60.0, description="A 10 ms frame below this is silent")
    dropout_min_zero_ms: float = Field(
        2.0, gt=0, description="Digital-zero run inside the signal at least this long is a dropout"
    )
    dropout_gap_max_ms: float = Field(
        250.0, gt=0, description="Longest sudden gap still counted as a dropout (not a pause)"
    )
    dropout_context_dbfs: float = Field(
        -35.0, description="Both sides of a dropout (30 ms) must be at least this loud"
    )
    dropouts_warn: int | None = Field(1, ge=1, description="This many dropouts warn")
    dropouts_fail: int | None = Field(3, ge=1, description="This many dropouts fail")
    noise_frame_ms: float = Field(50.0, gt=0, description="Frame length for noise floor and SNR")
    noise_percentile: float = Field(10.0, gt=0, lt=50, description="Noise floor = this percentile")
    signal_percentile: float = Field(95.0, gt=50, lt=100, description="Signal level = this percentile")

    # --- loudness and peaks ---------------------------------------------------------------
    loudness_range_warn_above_lu: float | None = 20.0
    true_peak_warn_above_dbtp: float | None = -1.0
    true_peak_fail_above_dbtp: float | None = 2.0

    # --- clipping ------------------------------------------------------------------------
    clip_tolerance_db: float = Field(
        0.0001,
        gt=0,
        description="Samples this close to the file's positive (or negative) peak are at full scale",
    )
    clip_min_level_dbfs: float = Field(-20.0, description="Peaks below this are never clipped")
    clip_min_run: int = Field(3, ge=1, description="Consecutive full-scale samples that make a clip")
    clip_count_warn: int | None = Field(1, ge=1)
    clip_count_fail: int | None = Field(100, ge=1)
    clip_share_fail: float | None = Field(0.001, ge=0, le=1, description="Share of time in clipped runs")

    # --- DC, stereo ------------------------------------------------------------------------
    dc_warn_fs: float | None = Field(0.01, ge=0, description="|mean| of a channel, fraction of full scale")
    dc_fail_fs: float | None = Field(0.1, ge=0)
    false_stereo_side_db: float = Field(
        -40.0, description="Side/mid energy ratio at or below this means L and R are practically identical"
    )
    channel_imbalance_warn_db: float | None = Field(6.0, ge=0)
    channel_imbalance_fail_db: float | None = Field(30.0, ge=0)

    # --- bandwidth (spectral cliff) ----------------------------------------------------------
    cliff_min_drop_db: float = Field(30.0, gt=0, description="Level drop across a cliff")
    cliff_width_hz: float = Field(1000.0, gt=0, description="...within this band (steepness)")
    cliff_max_ratio: float = Field(
        0.9,
        gt=0,
        le=1,
        description="A cliff above this fraction of Nyquist is the file's own anti-alias filter",
    )
    bandwidth_warn_below_hz: float | None = Field(18000.0, description="A cliff below this warns")
    bandwidth_fail_below_hz: float | None = Field(12000.0, description="A cliff below this fails")

    # --- hum -------------------------------------------------------------------------------
    hum_min_prominence_db: float = Field(12.0, gt=0, description="Peak over local spectral median")
    hum_max_harmonic: int = Field(6, ge=1, le=12)
    hum_detect_dbfs: float = Field(-80.0, description="Quieter components are ignored")
    hum_warn_dbfs: float | None = -65.0
    hum_fail_dbfs: float | None = -45.0

    # --- vocal activity --------------------------------------------------------------------
    vad_backend: str = Field("spectral", pattern="^(spectral|silero)$")

    mix: KindThresholds = Field(default_factory=_mix)
    vocal: KindThresholds = Field(default_factory=_vocal)

    def for_kind(self, kind: str) -> KindThresholds:
        return self.vocal if kind == "vocal" else self.mix
