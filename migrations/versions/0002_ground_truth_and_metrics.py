"""ground truth and metrics

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 22:07:03.414819
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "problem_metrics",
        sa.Column("problem_id", sa.Integer(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("correct_samples", sa.Integer(), nullable=False),
        sa.Column("vanilla", sa.Float(), nullable=False),
        sa.Column("best_of_n", sa.Float(), nullable=False),
        sa.Column("oracle", sa.Boolean(), nullable=False),
        sa.Column("individual", sa.JSON(), nullable=False),
        sa.Column("combined", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["problem_id"],
            ["problems.id"],
            name=op.f("fk_problem_metrics_problem_id_problems"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("problem_id", name=op.f("pk_problem_metrics")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("benchmark", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("metrics", sa.JSON(), nullable=True))

    with op.batch_alter_table("problems", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replay_labels", sa.JSON(), nullable=True))

    with op.batch_alter_table("solutions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ground_truth_outcome", sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column("correct", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("solutions", schema=None) as batch_op:
        batch_op.drop_column("correct")
        batch_op.drop_column("ground_truth_outcome")

    with op.batch_alter_table("problems", schema=None) as batch_op:
        batch_op.drop_column("replay_labels")

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("metrics")
        batch_op.drop_column("benchmark")

    op.drop_table("problem_metrics")
