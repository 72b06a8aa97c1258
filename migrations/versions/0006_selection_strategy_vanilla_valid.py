"""selection strategy, vanilla over valid samples

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("selections", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("strategy", sa.String(length=16), nullable=False, server_default="paper")
        )
    with op.batch_alter_table("problem_metrics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vanilla_valid", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("problem_metrics", schema=None) as batch_op:
        batch_op.drop_column("vanilla_valid")
    with op.batch_alter_table("selections", schema=None) as batch_op:
        batch_op.drop_column("strategy")
