"""The producers in docs/enqueueing.md, run exactly as written, against RabbitMQ and real workers."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from orchestrator import client
from orchestrator.core.config import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).parents[2]
DOC = (REPO / "docs" / "enqueueing.md").read_text(encoding="utf-8")

# Runs an example as a script and fails if it imported any of coderm's packages.
RUN_WITHOUT_CODERM = """
import runpy, sys
runpy.run_path(sys.argv[1], run_name="__main__")
ours = sorted(m for m in sys.modules if m.split(".")[0] in ("orchestrator", "agents", "sandbox"))
assert not ours, f"the example imported coderm: {ours}"
"""


def sql_block(starts_with: str) -> str:
    blocks = re.findall(r"```sql\n(.*?)```", DOC, flags=re.DOTALL)
    return next(block for block in blocks if block.startswith(starts_with))


def find_job(engine: Engine, key: str, timeout: float = 120) -> str:
    """The id of the job with this idempotency key, once a worker has written it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            row = connection.execute(text(sql_block("SELECT id, status")), {"key": key}).one_or_none()
        if row is not None:
            return str(row.id)
        time.sleep(0.2)
    raise AssertionError(f"no job with idempotency key {key} after {timeout} s")


@pytest.mark.parametrize("example", ["enqueue_with_amqp.py", "enqueue_with_celery.py"])
def test_the_documented_producer_submits_a_job_that_completes(
    example: str, service_env: dict[str, str], workers: list, tmp_path: Path
) -> None:
    source = (REPO / "examples" / example).read_text(encoding="utf-8")
    assert f"```python\n{source}```" in DOC, f"docs/enqueueing.md does not show examples/{example} as it is"

    # No CODERM_* variables, and a working directory away from the repository.
    env = {k: v for k, v in service_env.items() if not k.startswith("CODERM_")}
    env.update(
        BROKER_URL=service_env["CODERM_BROKER_URL"], RESULT_BACKEND=service_env["CODERM_RESULT_BACKEND"]
    )
    ran = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_CODERM, str(REPO / "examples" / example)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    printed = ran.stdout.strip()

    engine = create_engine(service_env["CODERM_DATABASE_URL"])
    try:
        # The AMQP producer prints its idempotency key, the Celery one the job id the task returned.
        job_id = find_job(engine, printed) if example == "enqueue_with_amqp.py" else printed
        settings = Settings(
            database_url=service_env["CODERM_DATABASE_URL"], home=Path(service_env["CODERM_HOME"])
        )
        assert client.wait(job_id, timeout=180, poll_s=0.2, settings=settings).status == "completed"
        with engine.connect() as connection:
            rows = connection.execute(text(sql_block("SELECT p.task_id")), {"job_id": job_id}).all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    assert rows[0].task_id == "add" and rows[0].status == "completed"
    assert rows[0].solution == "def add(a, b):\n    return a + b\n"
    assert rows[0].pass_count == 1 and rows[0].tests_used == 1
