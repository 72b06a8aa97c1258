"""dynamic scaling

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 23:00:21.431410
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "probes",
        sa.Column("version", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("feature_source", sa.String(length=512), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("trained_on", sa.JSON(), nullable=False),
        sa.Column("checkpoint", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_probes")),
    )
    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_probes_feature_source"), ["feature_source"], unique=False)

    with op.batch_alter_table("problems", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allocation", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("predicted_pass_rate", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("features", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("feature_source", sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("problems", schema=None) as batch_op:
        batch_op.drop_column("feature_source")
        batch_op.drop_column("features")
        batch_op.drop_column("predicted_pass_rate")
        batch_op.drop_column("allocation")

    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_probes_feature_source"))

    op.drop_table("probes")
