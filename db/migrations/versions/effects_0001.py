"""effects: effect_artifacts (cache of computed visualizer data per recording + parameters)

Revision ID: effects_0001
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

from db.base import UTCDateTime

revision = "effects_0001"
down_revision = "0001_foundation"
branch_labels = ("effects",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "effect_artifacts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("recording_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("params_key", sa.String(200), nullable=False),
        sa.Column("etag", sa.String(66), nullable=False),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_effect_artifacts"),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            ondelete="CASCADE",
            name="fk_effect_artifacts_recording_id_recordings",
        ),
        sa.UniqueConstraint(
            "recording_id", "kind", "params_key", name="uq_effect_artifacts_recording_kind_params"
        ),
    )
    op.create_index("ix_effect_artifacts_recording_id", "effect_artifacts", ["recording_id"])


def downgrade() -> None:
    op.drop_index("ix_effect_artifacts_recording_id", table_name="effect_artifacts")
    op.drop_table("effect_artifacts")
