"""Fault tests get services of their own: a database and a RabbitMQ virtual host no other test's
workers consume from, and workers they may kill."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from services import rabbitmq_vhost, scratch_database, services_environment

from orchestrator.core.db import upgrade_schema


@pytest.fixture
def fault_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with scratch_database("coderm_fault") as url, rabbitmq_vhost() as broker_url:
        upgrade_schema(url)
        yield services_environment(url, broker_url, tmp_path / "home")
