"""Alembic migrations of the coderm schema; run them with `coderm db upgrade`."""
