"""voiceprint: voiceprints, utterances, embeddings, challenges, attempts, rate limits, index feed

Revision ID: voiceprint_0001
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

from db.base import UTCDateTime

revision = "voiceprint_0001"
down_revision = "0001_foundation"
branch_labels = ("voiceprint",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "voiceprints",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("n_utterances", sa.Integer(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("activated_at", UTCDateTime(), nullable=True),
        sa.Column("superseded_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_voiceprints"),
        sa.UniqueConstraint("user_id", "model_id", "version", name="uq_voiceprints_user_model_version"),
    )
    op.create_index("ix_voiceprints_user_id", "voiceprints", ["user_id"])
    op.create_index("ix_voiceprints_model_active", "voiceprints", ["model_id", "active"])
    op.create_index(
        "uq_voiceprints_one_active",
        "voiceprints",
        ["user_id", "model_id"],
        unique=True,
        sqlite_where=sa.text("active = 1"),
        postgresql_where=sa.text("active = true"),
    )
    op.create_index(
        "uq_voiceprints_one_enrolling",
        "voiceprints",
        ["user_id", "model_id"],
        unique=True,
        sqlite_where=sa.text("status = 'enrolling'"),
        postgresql_where=sa.text("status = 'enrolling'"),
    )
    op.create_table(
        "voiceprint_utterances",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("voiceprint_id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("speech_s", sa.Float(), nullable=False),
        sa.Column("quality", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_voiceprint_utterances"),
        sa.ForeignKeyConstraint(
            ["voiceprint_id"], ["voiceprints.id"], ondelete="CASCADE",
            name="fk_voiceprint_utterances_voiceprint_id_voiceprints",
        ),
    )
    op.create_index("ix_voiceprint_utterances_voiceprint_id", "voiceprint_utterances", ["voiceprint_id"])
    op.create_index("ix_voiceprint_utterances_user_id", "voiceprint_utterances", ["user_id"])
    op.create_index("ix_voiceprint_utterances_sha256", "voiceprint_utterances", ["sha256"])
    op.create_table(
        "voiceprint_embeddings",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("voiceprint_id", sa.String(40), nullable=False),
        sa.Column("utterance_id", sa.String(40), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_voiceprint_embeddings"),
        sa.ForeignKeyConstraint(
            ["voiceprint_id"], ["voiceprints.id"], ondelete="CASCADE",
            name="fk_voiceprint_embeddings_voiceprint_id_voiceprints",
        ),
        sa.ForeignKeyConstraint(
            ["utterance_id"], ["voiceprint_utterances.id"], ondelete="CASCADE",
            name="fk_voiceprint_embeddings_utterance_id_voiceprint_utterances",
        ),
    )
    op.create_index(
        "ix_voiceprint_embeddings_voiceprint_kind", "voiceprint_embeddings", ["voiceprint_id", "kind"]
    )
    op.create_table(
        "voiceprint_challenges",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("prompt", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_voiceprint_challenges"),
    )
    op.create_index("ix_voiceprint_challenges_user_id", "voiceprint_challenges", ["user_id"])
    op.create_table(
        "voiceprint_attempts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("challenge_id", sa.String(40), nullable=False),
        sa.Column("prompt", sa.String(32), nullable=False),
        sa.Column("voiceprint_id", sa.String(40), nullable=True),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("normalized_score", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("cohort_size", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("audio_sha256", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_voiceprint_attempts"),
    )
    op.create_index("ix_voiceprint_attempts_user_created", "voiceprint_attempts", ["user_id", "created_at"])
    op.create_index("ix_voiceprint_attempts_challenge_id", "voiceprint_attempts", ["challenge_id"])
    op.create_index("ix_voiceprint_attempts_audio_sha256", "voiceprint_attempts", ["audio_sha256"])
    op.create_table(
        "voiceprint_rate_limits",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("tat", sa.Float(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_voiceprint_rate_limits"),
    )
    op.create_table(
        "voiceprint_index_state",
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("model_id", name="pk_voiceprint_index_state"),
    )
    op.create_table(
        "voiceprint_index_events",
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("voiceprint_id", sa.String(40), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "generation", name="pk_voiceprint_index_events"),
    )


def downgrade() -> None:
    op.drop_table("voiceprint_index_events")
    op.drop_table("voiceprint_index_state")
    op.drop_table("voiceprint_rate_limits")
    op.drop_table("voiceprint_attempts")
    op.drop_table("voiceprint_challenges")
    op.drop_table("voiceprint_embeddings")
    op.drop_table("voiceprint_utterances")
    op.drop_table("voiceprints")
