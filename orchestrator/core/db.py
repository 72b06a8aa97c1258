"""Database access: engines, sessions and schema migrations.

One engine per URL per process. Schema changes go through Alembic for Postgres and the embedded
SQLite file alike, so both always have the same schema.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.core.errors import ConfigurationError


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the progress display read while the in-process worker writes; the busy timeout makes
    # concurrent writers wait instead of failing; SQLite only enforces foreign keys when asked.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@functools.cache
def get_engine(url: str) -> Engine:
    """The process' engine for `url`, created on first use."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # Plain postgresql:// would pick psycopg2, which we do not install; psycopg 3 is the driver.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    # A short connect timeout turns an unreachable database into an error within seconds, not a hang.
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


@functools.cache
def _session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back when it raises."""
    session = _session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(resources.files("migrations")))
    config.attributes["database_url"] = url
    return config


def upgrade_schema(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (the newest by default)."""
    try:
        command.upgrade(alembic_config(url), revision)
    except Exception as exc:  # the driver's errors name the host and what failed
        raise ConfigurationError(f"cannot migrate the database at {_safe_url(url)}: {exc}") from exc


def ensure_schema_current(url: str) -> None:
    """Refuse to work on a database that `coderm db upgrade` has not brought to the newest schema."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    with get_engine(url).connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current != head:
        state = "has no coderm schema" if current is None else f"is at schema {current}, not {head}"
        raise ConfigurationError(f"the database at {_safe_url(url)} {state}: run `coderm db upgrade`")


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
