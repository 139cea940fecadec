"""content items: request id, channel, review status, safety verdicts, timings, review log

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 21:50:00

Items generated before this migration passed no safety checks and were published as
they came, so they start as `ready` on the `gallery` channel with no verdicts.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # columns with server defaults: existing rows get them, SQLite adds them in place
    with op.batch_alter_table("content_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("channel", sa.String(length=64), server_default="gallery", nullable=False)
        )
        batch_op.add_column(sa.Column("status", sa.String(length=16), server_default="ready", nullable=False))
        batch_op.add_column(sa.Column("verdicts", sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
        batch_op.add_column(sa.Column("timings", sa.JSON(), server_default=sa.text("'{}'"), nullable=False))
        batch_op.add_column(
            sa.Column("review_log", sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
        )
        batch_op.create_index(batch_op.f("ix_content_items_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_content_items_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("content_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_content_items_status"))
        batch_op.drop_index(batch_op.f("ix_content_items_request_id"))
        for column in ("review_log", "timings", "verdicts", "status", "channel", "request_id"):
            batch_op.drop_column(column)
