"""annotation queue: annotation_tasks and annotations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 16:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "annotation_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset_version_id", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("suggested_label", sa.String(length=256), nullable=True),
        sa.Column("suggested_confidence", sa.Float(), nullable=True),
        sa.Column("annotators_required", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_version_id"], ["dataset_versions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dataset_version_id", "record_id"),
    )
    with op.batch_alter_table("annotation_tasks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_annotation_tasks_dataset_version_id"), ["dataset_version_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_annotation_tasks_status"), ["status"], unique=False)

    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("annotator", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["annotation_tasks.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id", "annotator"),
    )
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_annotations_task_id"), ["task_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotations_task_id"))
    op.drop_table("annotations")
    with op.batch_alter_table("annotation_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotation_tasks_status"))
        batch_op.drop_index(batch_op.f("ix_annotation_tasks_dataset_version_id"))
    op.drop_table("annotation_tasks")
