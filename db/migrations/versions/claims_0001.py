"""claims: packets, listen_sessions, heartbeats, claims, payouts, outbox, risk_audit, user_flags

Revision ID: claims_0001
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

from db.base import UTCDateTime

revision = "claims_0001"
down_revision = "0001_foundation"
branch_labels = ("claims",)
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "packets",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("recording_id", sa.String(40), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("condition", sa.String(16), nullable=False),
        sa.Column("greeting", sa.String(200), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("remaining_fen", sa.BigInteger(), nullable=False),
        sa.Column("remaining_count", sa.Integer(), nullable=False),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("verification_id", sa.String(128), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_packets"),
        sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"], name="fk_packets_recording_id_recordings"),
        sa.CheckConstraint("total_fen >= count", name="ck_packets_total_covers_count"),
        sa.CheckConstraint("remaining_fen >= remaining_count", name="ck_packets_remaining_covers_count"),
        sa.CheckConstraint("remaining_count >= 0", name="ck_packets_remaining_count_nonneg"),
        sa.CheckConstraint("count >= 1", name="ck_packets_count_positive"),
    )
    op.create_index("ix_packets_recording_id", "packets", ["recording_id"])
    op.create_index("ix_packets_sender_created", "packets", ["sender_id", "created_at"])
    op.create_index("ix_packets_status_expires", "packets", ["status", "expires_at"])

    op.create_table(
        "listen_sessions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("packet_id", sa.String(40), nullable=False),
        sa.Column("claimant_id", sa.String(128), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_mac", sa.String(64), nullable=True),
        sa.Column("last_position_ms", sa.Integer(), nullable=False),
        sa.Column("last_rate_milli", sa.Integer(), nullable=False),
        sa.Column("last_paused", sa.Boolean(), nullable=False),
        sa.Column("last_server_ms", sa.BigInteger(), nullable=False),
        sa.Column("lead_ms", sa.Integer(), nullable=False),
        sa.Column("coverage", sa.LargeBinary(), nullable=False),
        sa.Column("covered_seconds", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_listen_sessions"),
        sa.ForeignKeyConstraint(["packet_id"], ["packets.id"], name="fk_listen_sessions_packet_id_packets"),
    )
    op.create_index("ix_listen_sessions_packet_claimant", "listen_sessions", ["packet_id", "claimant_id"])

    op.create_table(
        "heartbeats",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("position_ms", sa.Integer(), nullable=False),
        sa.Column("rate_milli", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("server_ms", sa.BigInteger(), nullable=False),
        sa.Column("credited_ms", sa.Integer(), nullable=False),
        sa.Column("client_time_ms", sa.BigInteger(), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_heartbeats"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["listen_sessions.id"], name="fk_heartbeats_session_id_listen_sessions"
        ),
        sa.UniqueConstraint("session_id", "seq", name="uq_heartbeats_session_seq"),
    )

    op.create_table(
        "claims",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("packet_id", sa.String(40), nullable=False),
        sa.Column("claimant_id", sa.String(128), nullable=False),
        sa.Column("session_id", sa.String(40), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("share_index", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_claims"),
        sa.ForeignKeyConstraint(["packet_id"], ["packets.id"], name="fk_claims_packet_id_packets"),
        sa.ForeignKeyConstraint(["session_id"], ["listen_sessions.id"], name="fk_claims_session_id_listen_sessions"),
        sa.UniqueConstraint("packet_id", "claimant_id", name="uq_claims_packet_claimant"),
        sa.UniqueConstraint("packet_id", "share_index", name="uq_claims_packet_share"),
        sa.UniqueConstraint("session_id", name="uq_claims_session_id"),
        sa.CheckConstraint("amount_fen >= 1", name="ck_claims_amount_positive"),
    )
    op.create_index("ix_claims_device_created", "claims", ["device_id", "created_at"])
    op.create_index("ix_claims_ip_created", "claims", ["ip", "created_at"])
    op.create_index("ix_claims_claimant_created", "claims", ["claimant_id", "created_at"])

    op.create_table(
        "payouts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("dedupe_key", sa.String(80), nullable=False),
        sa.Column("packet_id", sa.String(40), nullable=False),
        sa.Column("claim_id", sa.String(40), nullable=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_payouts"),
        sa.ForeignKeyConstraint(["packet_id"], ["packets.id"], name="fk_payouts_packet_id_packets"),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name="fk_payouts_claim_id_claims"),
        sa.UniqueConstraint("dedupe_key", name="uq_payouts_dedupe_key"),
        sa.CheckConstraint("amount_fen >= 1", name="ck_payouts_amount_positive"),
    )
    op.create_index("ix_payouts_packet_id", "payouts", ["packet_id"])

    op.create_table(
        "outbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(40), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("available_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("message_id", name="uq_outbox_message_id"),
    )
    op.create_index("ix_outbox_pending", "outbox", ["delivered_at", "available_at"])

    op.create_table(
        "risk_audit",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("code", sa.String(40), nullable=True),
        sa.Column("rule_id", sa.String(64), nullable=True),
        sa.Column("packet_id", sa.String(40), nullable=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_risk_audit"),
    )
    op.create_index("ix_risk_audit_packet_id", "risk_audit", ["packet_id"])
    op.create_index("ix_risk_audit_user_created", "risk_audit", ["user_id", "created_at"])

    op.create_table(
        "user_flags",
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("minor", sa.Boolean(), nullable=False),
        sa.Column("tz", sa.String(64), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_flags"),
    )


def downgrade() -> None:
    for table in ("user_flags", "risk_audit", "outbox", "payouts", "claims", "heartbeats", "listen_sessions", "packets"):
        op.drop_table(table)
