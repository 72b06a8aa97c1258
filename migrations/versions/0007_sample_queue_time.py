"""sample queue time

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("solutions", "unit_tests"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("queue_s", sa.Float(), nullable=True))


def downgrade() -> None:
    for table in ("solutions", "unit_tests"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("queue_s")
