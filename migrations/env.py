"""Alembic environment: the URL comes from `orchestrator.core.db.alembic_config`, never from a file."""

from alembic import context

from orchestrator.core.db import get_engine
from orchestrator.core.models import Base

url = context.config.attributes.get("database_url")
if not url:
    raise RuntimeError("run migrations through `coderm db upgrade`, which supplies the database URL")

engine = get_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=engine.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
