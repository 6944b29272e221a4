"""Claim-gating settings (pure pydantic: imported by core.settings).

Every threshold the evidence, proof, risk and relay code uses lives here, so an operator can tune
it with an env override such as ``SONGGATE_CLAIMS__COVERAGE_THRESHOLD=0.97``. Amounts are in fen
(1 CNY = 100 fen); durations in seconds unless the name says ``_ms``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class RiskSettings(BaseModel):
    """Risk rules: each can be switched off by id (``disabled_rules``) and every limit tuned."""

    disabled_rules: list[str] = Field(
        default_factory=list, description="Rule ids to skip, e.g. ['minor_curfew']"
    )
    window_s: int = Field(86_400, ge=60, description="Trailing window of the per-day rules")
    # --- sender side: step-up before a packet is created -------------------------------------
    max_packets_per_day: int = Field(
        5, ge=0, description="A sender with more packets than this in the window needs step-up"
    )
    amount_deviation: float = Field(
        2.0, gt=0.0, description="Step-up if |amount - trailing average| > this x average (2.0 = 200 %)"
    )
    amount_history_min: int = Field(
        3, ge=1, description="Previous packets needed before the amount anomaly rule applies"
    )
    amount_history_days: int = Field(30, ge=1, description="Trailing average window (days)")
    # --- money limits --------------------------------------------------------------------------
    max_packet_fen: int = Field(500_000, ge=1, description="At most 5000 CNY per packet")
    max_user_daily_fen: int = Field(
        1_000_000, ge=1, description="At most 10000 CNY sent plus claimed per user per window"
    )
    # --- minors --------------------------------------------------------------------------------
    curfew_start_hour: int = Field(22, ge=0, le=23, description="Local hour the minor curfew starts")
    curfew_end_hour: int = Field(8, ge=0, le=23, description="Local hour the minor curfew ends")
    default_timezone: str = Field("Asia/Shanghai", description="IANA zone for users with none set")
    # --- device / IP caps ----------------------------------------------------------------------
    max_accounts_per_device_per_packet: int = Field(1, ge=1)
    max_accounts_per_device_per_day: int = Field(3, ge=1)
    max_accounts_per_ip_per_packet: int = Field(5, ge=1)
    max_accounts_per_ip_per_day: int = Field(50, ge=1)
    # --- step-up -------------------------------------------------------------------------------
    stepup_max_age_s: int = Field(600, ge=1, description="A passed verification is valid this long")


class RelaySettings(BaseModel):
    sink: str | None = Field(
        None, description="JSONL file path or http(s) webhook URL; default DATA_DIR/payouts.jsonl"
    )
    batch_size: int = Field(100, ge=1, le=10_000)
    poll_interval_s: float = Field(1.0, gt=0.0)
    lease_s: float = Field(30.0, gt=0.0, description="A leased row is retried after this long")
    backoff_base_s: float = Field(1.0, gt=0.0)
    backoff_max_s: float = Field(300.0, gt=0.0)
    webhook_timeout_s: float = Field(10.0, gt=0.0)
    expire_every_s: float = Field(30.0, gt=0.0, description="Run packet expiry this often in the loop")


class ClaimSettings(BaseModel):
    # --- heartbeat protocol --------------------------------------------------------------------
    heartbeat_interval_s: float = Field(5.0, gt=0.0, description="What clients are told to use")
    jitter_tolerance_ms: int = Field(
        3000,
        ge=0,
        description="How far reported position may run ahead of server time in total (network jitter)",
    )
    max_gap_s: float = Field(
        17.0,
        gt=0.0,
        description="Heartbeat gaps longer than this (background) earn no coverage; the default, "
        "3 intervals + 2 s, tolerates two heartbeats in a row lost",
    )
    max_rejected_heartbeats: int = Field(
        50, ge=1, description="A session with more rejected heartbeats is burned (no proof)"
    )
    session_ttl_factor: float = Field(3.0, ge=1.0, description="Session lives factor x song length")
    session_ttl_min_s: float = Field(1800.0, gt=0.0, description="... but at least this long")
    store_heartbeats: bool = Field(True, description="Keep every accepted heartbeat as evidence")
    heartbeat_batch: int = Field(
        64,
        ge=1,
        le=1024,
        description="Heartbeats committed together at most (group commit, one writer thread)",
    )
    heartbeat_fast_path: bool = Field(
        True,
        description="Serve well-formed heartbeats on a pure-ASGI fast path (off: all through the FastAPI route)",
    )
    # --- proof ---------------------------------------------------------------------------------
    coverage_threshold: float = Field(0.98, gt=0.0, le=1.0, description="Heard seconds / song seconds")
    elapsed_tolerance_s: float = Field(
        2.0, ge=0.0, description="Server elapsed must be at least duration minus this"
    )
    # --- packets -------------------------------------------------------------------------------
    max_count: int = Field(1000, ge=1, description="Shares per packet")
    default_ttl_s: int = Field(86_400, ge=60, description="Packet lifetime when expires_at is absent")
    max_ttl_s: int = Field(7 * 86_400, ge=60)

    risk: RiskSettings = Field(default_factory=RiskSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
