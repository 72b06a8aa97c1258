"""`coderm run --metrics-port` serves the embedded run's metrics while the run works."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from services import CODERM, free_port, scrape

from orchestrator.runtime.celery_app import QUEUES

pytestmark = pytest.mark.e2e

# Its top-level code sleeps, so the sandbox step lasts long enough to be watched, even on a busy
# machine where the run takes seconds to start serving its metrics.
SLOW_SOLUTION = "import time\ntime.sleep(10)\n\ndef add(a, b):\n    return a + b\n"
TEST = "import unittest\n\nclass TestAdd(unittest.TestCase):\n    def test_it(self):\n        self.assertEqual(add(1, 2), 3)\n"


def test_an_embedded_run_serves_its_metrics_while_it_works(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    problems = tmp_path / "slow.jsonl"
    problems.write_text(
        json.dumps({"task_id": "slow", "question": "add", "solutions": [SLOW_SOLUTION], "unit_tests": [TEST]})
        + "\n"
    )
    port = free_port()
    log = (tmp_path / "run.log").open("wb")
    run = subprocess.Popen(
        [
            CODERM,
            "run",
            str(problems),
            "--metrics-port",
            str(port),
            "--metrics-address",
            "127.0.0.1",
            "--time-limit",
            "30",
        ],
        env=embedded_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    sandbox_running = ("coderm_tasks_in_progress", (("queue", "sandbox"),))
    planned = ("coderm_stage_duration_seconds_count", (("stage", "plan"),))
    try:
        deadline = time.monotonic() + 120
        while True:
            assert run.poll() is None, (
                f"the run ended before it was seen at work:\n{(tmp_path / 'run.log').read_text()}"
            )
            assert time.monotonic() < deadline, "the sandbox step was never seen running"
            try:
                samples = scrape(port)
            except httpx.HTTPError:  # not serving yet
                samples = {}
            if samples.get(sandbox_running, 0) >= 1:
                break
            time.sleep(0.1)
        assert samples[planned] == 1
        assert samples[("coderm_problems_submitted_total", (("benchmark", "custom"),))] == 1
        assert samples[("coderm_broker_up", ())] == 1
        assert {labels for name, labels in samples if name == "coderm_queue_messages"} == {
            (("queue", queue),) for queue in QUEUES
        }
        assert all(samples[("coderm_worker_up", (("queue", queue),))] == 1 for queue in QUEUES)
        assert run.wait(timeout=120) == 0, (tmp_path / "run.log").read_text()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        log.close()
