"""Fault tests get services of their own: a database and a RabbitMQ virtual host no other test's
workers consume from, and workers they may kill."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import ADMIN_POSTGRES_URL, rabbitmq_vhost, services_environment
from sqlalchemy import create_engine, text

from orchestrator.db import upgrade_schema


@pytest.fixture
def fault_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    name = f"coderm_fault_{uuid.uuid4().hex[:10]}"
    admin = create_engine(ADMIN_POSTGRES_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    upgrade_schema(url)
    try:
        with rabbitmq_vhost() as broker_url:
            yield services_environment(url, broker_url, tmp_path / "home")
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
