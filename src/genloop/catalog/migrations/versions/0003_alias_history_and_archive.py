"""alias history (model_alias_events) and archived model versions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 19:50:00

Aliases that exist already get one `migrated` event each, so `genloop models history`
starts from the alias's current version instead of from nothing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_alias_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("from_version_id", sa.String(length=160), nullable=True),
        sa.Column("to_version_id", sa.String(length=160), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=2048), nullable=True),
        sa.Column("gates", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["from_version_id"], ["model_versions.id"]),
        sa.ForeignKeyConstraint(["to_version_id"], ["model_versions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("model_alias_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_alias_events_name"), ["name"], unique=False)

    # a nullable column: SQLite adds it in place (no table copy), PostgreSQL too
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))

    aliases = sa.table(
        "model_aliases",
        sa.column("name", sa.String),
        sa.column("alias", sa.String),
        sa.column("model_version_id", sa.String),
        sa.column("updated_at", sa.DateTime),
    )
    events = sa.table(
        "model_alias_events",
        sa.column("name"),
        sa.column("alias"),
        sa.column("from_version_id"),
        sa.column("to_version_id"),
        sa.column("action"),
        sa.column("actor"),
        sa.column("forced"),
        sa.column("reason"),
        sa.column("gates"),
        sa.column("created_at"),
    )
    op.execute(
        events.insert().from_select(
            [c.name for c in events.columns],
            sa.select(
                aliases.c.name,
                aliases.c.alias,
                sa.null(),
                aliases.c.model_version_id,
                sa.literal_column("'migrated'"),
                sa.literal_column("'genloop'"),
                sa.false(),
                sa.literal_column("'alias present before alias history was recorded'"),
                sa.literal_column("'[]'"),  # untyped: PostgreSQL casts it to json
                aliases.c.updated_at,
            ),
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("archived_at")
    with op.batch_alter_table("model_alias_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_alias_events_name"))
    op.drop_table("model_alias_events")
