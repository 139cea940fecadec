"""loop: rounds of `genloop loop` and the allocation decisions between champion and challenger

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 01:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loop_rounds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("champion_id", sa.String(length=160), nullable=True),
        sa.Column("challenger_id", sa.String(length=160), nullable=True),
        sa.Column("new_challenger_id", sa.String(length=160), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_name", "round"),
    )
    op.create_index("ix_loop_rounds_model_name", "loop_rounds", ["model_name"])
    op.create_table(
        "allocation_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("round", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("champion_id", sa.String(length=160), nullable=True),
        sa.Column("challenger_id", sa.String(length=160), nullable=False),
        sa.Column("p_challenger_better", sa.Float(), nullable=True),
        sa.Column("numbers", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_allocation_decisions_model_name", "allocation_decisions", ["model_name"])


def downgrade() -> None:
    op.drop_index("ix_allocation_decisions_model_name", table_name="allocation_decisions")
    op.drop_table("allocation_decisions")
    op.drop_index("ix_loop_rounds_model_name", table_name="loop_rounds")
    op.drop_table("loop_rounds")
