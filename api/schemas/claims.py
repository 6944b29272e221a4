"""Request/response schemas for red packets, listen sessions, heartbeats and claims.

Amounts are integer fen; ids are opaque strings of at most 128 characters.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ID_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"
MAX_FEN = 10**12


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PacketIn(_In):
    sender_id: str = Field(pattern=ID_PATTERN)
    recording_id: str = Field(pattern=ID_PATTERN, description="The song the claimant must listen to")
    total_fen: int = Field(ge=1, le=MAX_FEN, description="Total amount in fen (1 CNY = 100 fen)")
    count: int = Field(ge=1, le=100_000, description="Number of shares")
    mode: Literal["fixed", "lucky"] = "lucky"
    greeting: str = Field("", max_length=200)
    condition: Literal["listen_full"] = "listen_full"
    expires_at: dt.datetime | None = Field(None, description="Timezone-aware; default now + 24 h")
    verification_id: str | None = Field(None, pattern=ID_PATTERN, description="A passed voiceprint step-up")


class PacketOut(BaseModel):
    id: str
    sender_id: str
    recording_id: str
    duration_s: float
    mode: str
    condition: str
    greeting: str
    total_fen: int
    count: int
    remaining_count: int
    remaining_fen: int
    refunded_fen: int
    status: Literal["active", "empty", "expired"]
    expires_at: dt.datetime
    created_at: dt.datetime


class ListenSessionIn(_In):
    claimant_id: str = Field(pattern=ID_PATTERN)
    device_id: str = Field(pattern=ID_PATTERN)


class ListenSessionOpened(BaseModel):
    session_id: str
    packet_id: str
    claimant_id: str
    device_id: str
    duration_s: float
    heartbeat_interval_s: float
    nonce: str = Field(description="The first nonce to chain")
    token: str = Field(description="Send as X-Listen-Token on heartbeats")
    heartbeat_key: str = Field(description="base64url HMAC key for heartbeat MACs; never send it back")
    expires_at: dt.datetime


class HeartbeatIn(_In):
    seq: int = Field(ge=1, le=1_000_000)
    position_ms: int = Field(ge=0, le=86_400_000, description="Playback position, ms into the song")
    playback_rate: float = Field(gt=0.0, le=16.0, description="1.0 = normal speed")
    paused: bool
    mac: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex HMAC-SHA256, see docs/claims.md")
    client_time_ms: int | None = Field(
        None, ge=0, le=10**14, description="Device clock (recorded for audits, never trusted)"
    )


class HeartbeatOut(BaseModel):
    status: Literal["accepted", "duplicate"]
    seq: int
    next_nonce: str
    coverage: float
    elapsed_s: float
    complete: bool


class VerdictOut(BaseModel):
    complete: bool
    coverage: float
    covered_seconds: int
    song_seconds: int
    elapsed_s: float
    required_elapsed_s: float
    reasons: list[dict[str, Any]]


class ListenSessionOut(BaseModel):
    id: str
    packet_id: str
    claimant_id: str
    device_id: str
    status: str
    duration_s: float
    started_at: dt.datetime
    expires_at: dt.datetime
    server_elapsed_s: float
    heartbeats_accepted: int
    heartbeats_rejected: int
    verdict: VerdictOut
    last_seq: int | None = Field(None, description="Only with a valid X-Listen-Token (resync)")
    next_nonce: str | None = Field(None, description="Only with a valid X-Listen-Token (resync)")


class ClaimIn(_In):
    session_id: str = Field(pattern=ID_PATTERN)
    claimant_id: str = Field(pattern=ID_PATTERN)
    verification_id: str | None = Field(None, pattern=ID_PATTERN)


class ClaimOut(BaseModel):
    claim_id: str
    packet_id: str
    claimant_id: str
    session_id: str
    amount_fen: int
    share_index: int
    payout_id: str
    remaining_count: int
    created_at: dt.datetime
