"""The Alembic migrations build exactly the schema the models describe, on Postgres and SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from orchestrator.core.db import get_engine, upgrade_schema
from orchestrator.core.models import Base

pytestmark = pytest.mark.integration

TABLES = {"jobs", "problems", "solutions", "unit_tests", "execution_results", "selections", "stage_runs"}


def schema_differences(url: str) -> list[object]:
    with get_engine(url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_postgres_migrates_to_the_models(migrated_postgres_url: str) -> None:
    assert set(inspect(get_engine(migrated_postgres_url)).get_table_names()) >= TABLES
    assert schema_differences(migrated_postgres_url) == []


def test_sqlite_gets_the_same_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    upgrade_schema(url)
    assert set(inspect(get_engine(url)).get_table_names()) >= TABLES
    assert schema_differences(url) == []


def test_db_upgrade_command_migrates_postgres(
    postgres_url: str, service_env: dict[str, str], coderm_cli
) -> None:
    result = coderm_cli(["db", "upgrade"], env=service_env, timeout=60)
    assert result.returncode == 0, result.stderr
    engine = create_engine(service_env["CODERM_DATABASE_URL"])
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


def test_unreachable_database_is_a_clear_error(embedded_env: dict[str, str], coderm_cli) -> None:
    env = dict(embedded_env, CODERM_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    result = coderm_cli(["db", "upgrade"], env=env, timeout=30)
    assert result.returncode == 2
    assert "cannot migrate the database at postgresql://nobody@127.0.0.1:1/none" in result.stderr
