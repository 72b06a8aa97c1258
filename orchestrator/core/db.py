"""Database access: engines, sessions and schema migrations.

One engine per URL per process. Schema changes go through Alembic for Postgres and the embedded
SQLite file alike, so both always have the same schema.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, Insert, create_engine, event, exc
from sqlalchemy.dialects import postgresql, sqlite
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
    engine = create_engine(url, connect_args={"connect_timeout": 10})
    _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE_S = 5.0
"""A pooled connection idle this long is pinged before it is lent out: a database restart (or an
idle timeout) may have closed it meanwhile. One in steady use is not: a worker's steps are short
transactions, and a ping before each would add a round trip to every one of them. A connection that
breaks while in use fails its step, which retries (TRANSIENT_ERRORS), on a new connection."""


def _ping_when_idle(engine: Engine) -> None:
    """`pool_pre_ping`, for connections idle `PING_AFTER_IDLE_S` or longer only."""

    @event.listens_for(engine, "checkin")
    def note_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool then discards this connection and lends a new one (SQLAlchemy's protocol).
            raise exc.DisconnectionError(f"the database closed this pooled connection: {error}") from error


@functools.cache
def _session_factory(url: str, autocommit: bool = False) -> sessionmaker[Session]:
    engine = get_engine(url)
    if autocommit:
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    return sessionmaker(engine, expire_on_commit=False)


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


@contextmanager
def read_scope(url: str) -> Iterator[Session]:
    """A session without a transaction: each statement commits on its own, and a block that only
    reads (or writes one row in one statement) saves the BEGIN and COMMIT round trips. Postgres
    gives each statement of a READ COMMITTED transaction its own snapshot anyway, so reads see no
    less here than in a transaction."""
    session = _session_factory(url, autocommit=True)()
    try:
        yield session
    finally:
        session.close()


def upsert(session: Session, model: Any, key: Sequence[str], updated: Sequence[str]) -> Insert:
    """`INSERT ... ON CONFLICT (key) DO UPDATE` setting the `updated` columns to the new row's, on
    Postgres and SQLite alike; execute it with the rows as its parameters. One statement where a
    rerun of a step replaces what it wrote before, instead of a DELETE and an INSERT."""
    return _upsert(session.get_bind().dialect.name, model.__table__, tuple(key), tuple(updated))


@functools.cache
def _upsert(dialect_name: str, table: Any, key: tuple[str, ...], updated: tuple[str, ...]) -> Insert:
    # Built once: statements are immutable, and building `excluded` costs more than running one.
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    statement = dialect.insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(key), set_={column: statement.excluded[column] for column in updated}
    )


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
