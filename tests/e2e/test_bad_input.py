"""Bad input gets one clear line, within seconds, and nothing is written."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from replay_problems import write_replay_file
from services import scratch_database
from sqlalchemy import create_engine, func, select

from orchestrator.core.models import Job

pytestmark = pytest.mark.e2e


def job_count(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(Job)).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "holds no problems"),
        (
            b'{"task_id": "a", "question": "q"}\n{"task_id": "a", "question": "q"}\n',
            ":2: task_id 'a' already appears",
        ),
        (b'{"task_id": "a"}\n', ":1: unknown problem form"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary junk\n", ":1: not UTF-8 text"),
        ('{"task_id": "a", "question": "caf\u00e9"}\n'.encode("utf-16"), ":1: not UTF-8 text"),
        (b'{"task_id": "a", "question": "' + b"x" * (50 << 20) + b'"}\n', "the limit is 1,000,000"),
    ],
    ids=["empty", "duplicate ids", "missing fields", "binary junk", "wrong encoding", "50 MB statement"],
)
def test_bad_problem_files_are_refused(
    tmp_path: Path, service_env: dict[str, str], coderm_cli, content: bytes, message: str
) -> None:
    path = tmp_path / "problems.jsonl"
    path.write_bytes(content)
    before = job_count(service_env["CODERM_DATABASE_URL"])
    result = coderm_cli(["submit", str(path)], env=service_env, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert job_count(service_env["CODERM_DATABASE_URL"]) == before


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--n-solutions", "-1"], "--n-solutions"),
        (["--n-tests", "0"], "--n-tests"),
        (["--top-p", "2"], "--top-p"),
    ],
)
def test_invalid_option_values_are_refused(
    tmp_path: Path, service_env: dict[str, str], coderm_cli, option: list[str], message: str
) -> None:
    problems = write_replay_file(tmp_path / "replay.jsonl", count=1)
    result = coderm_cli(["submit", str(problems), *option], env=service_env, timeout=60)
    assert result.returncode == 2 and message in result.stderr


def test_an_unreachable_broker_fails_fast_and_writes_nothing(
    tmp_path: Path, service_env: dict[str, str], coderm_cli
) -> None:
    problems = write_replay_file(tmp_path / "replay.jsonl", count=1)
    env = dict(service_env, CODERM_BROKER_URL="amqp://guest:guest@127.0.0.1:1//")
    before = job_count(service_env["CODERM_DATABASE_URL"])
    started = time.monotonic()
    result = coderm_cli(["submit", str(problems)], env=env, timeout=60)
    assert time.monotonic() - started < 10
    assert (
        result.returncode == 2
        and "the broker at amqp://guest:**@127.0.0.1:1// is unreachable" in result.stderr
    )
    assert job_count(service_env["CODERM_DATABASE_URL"]) == before


def test_an_unreachable_database_fails_fast(tmp_path: Path, service_env: dict[str, str], coderm_cli) -> None:
    problems = write_replay_file(tmp_path / "replay.jsonl", count=1)
    env = dict(service_env, CODERM_DATABASE_URL="postgresql://postgres@127.0.0.1:1/none")
    started = time.monotonic()
    result = coderm_cli(["submit", str(problems)], env=env, timeout=60)
    assert time.monotonic() - started < 10
    assert result.returncode == 2 and "database unreachable" in result.stderr


def test_a_database_without_the_schema_is_named(
    tmp_path: Path, service_env: dict[str, str], coderm_cli
) -> None:
    problems = write_replay_file(tmp_path / "replay.jsonl", count=1)
    with scratch_database("coderm_unmigrated") as unmigrated_url:
        env = dict(service_env, CODERM_DATABASE_URL=unmigrated_url)
        result = coderm_cli(["submit", str(problems)], env=env, timeout=60)
    assert result.returncode == 2 and "has no coderm schema: run `coderm db upgrade`" in result.stderr
