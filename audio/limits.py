"""Hard limits enforced while decoding (never after): size, duration, channels, sample rate."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AudioLimits(BaseModel):
    """Bounds on what the decoder accepts. Memory used by a decode is bounded by
    ``max_duration_s * max_sample_rate * max_channels * 4`` bytes."""

    max_upload_bytes: int = Field(200 * 1024 * 1024, ge=1, description="Largest upload accepted")
    max_duration_s: float = Field(900.0, gt=0, description="Longest recording accepted (15 min)")
    min_duration_s: float = Field(0.0, ge=0)
    max_channels: int = Field(2, ge=1, le=8)
    min_sample_rate: int = Field(8000, ge=1000)
    max_sample_rate: int = Field(192000, le=768000)
