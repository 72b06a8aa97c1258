"""Load test: many problems submitted at once through RabbitMQ to real workers on this machine.

    python tests/benchmarks/load_test.py [--problems 1000] [--solutions 4] [--tests 4]

It makes a database and a RabbitMQ virtual host of its own (the services of `.ci/run`), writes a
replay problem file, and measures, in one run:

1. the sandbox stage alone: `coderm sandbox matrix FILE`, the same matrices in one process with one
   jail per core, as many as the sandbox worker below has (its best: more jails only contend) —
   the rate orchestration cannot beat;
2. the whole system: `coderm submit FILE`, then workers until every problem has finished, laid out
   as docs/deployment.md advises for one host: the sandbox worker with one process per core and
   one jail each (a process waiting on the database leaves its core to the other's jail), and one
   worker with four threads for the other queues (their steps wait on the database, not the CPU).

It reports problems per second end to end against the sandbox-only rate, per-problem latency (p50 /
p95, from submission and from the problem's start), the peak depth of every broker queue, database
rows written per second, the peak memory (RSS of the worker and its pool processes) per worker, and
the CPU the whole machine spent in each part: on a shared machine whose speed drifts, the busy CPU
seconds of the two parts compare more steadily than their wall-clock rates.
It fails (exit 1) if a problem failed or went missing, a selection is duplicated, or a worker logged
an error. The numbers of runs on this machine are in the closing notes of issues #8 and #15.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import kombu
import psutil
from sqlalchemy import create_engine, func, select, text

sys.path.insert(0, str(Path(__file__).parent.parent))

from services import (  # noqa: E402
    rabbitmq_vhost,
    run_coderm,
    scratch_database,
    services_environment,
    spawn_worker,
    stop_worker,
    wait_ready,
)

from orchestrator.core.db import upgrade_schema  # noqa: E402
from orchestrator.core.models import Base, Problem, ProblemStatus, Selection, StageRun  # noqa: E402
from orchestrator.runtime.celery_app import QUEUES  # noqa: E402

# Per problem: a right solution (twice, as samples repeat), one that is wrong on negatives and one
# that is always wrong; tests that tell them apart. The offset makes every problem's code its own.
SOLUTIONS = (
    "def shifted_sum(a, b):\n    return a + b + {k}\n",
    "def shifted_sum(a, b):\n    return a + b + {k}\n",
    "def shifted_sum(a, b):\n    return abs(a) + abs(b) + {k}\n",
    "def shifted_sum(a, b):\n    return {k}\n",
)
TEST = (
    "import unittest\n\nclass TestShiftedSum(unittest.TestCase):\n"
    "    def test_{n}(self):\n        self.assertEqual(shifted_sum({a}, {b}), {a} + {b} + {k})\n"
)
TEST_ARGUMENTS = ((1, 2), (-3, 4), (0, 0), (-5, -6), (7, -1), (10, 20))


def write_problems(path: Path, count: int, n_solutions: int, n_tests: int) -> None:
    with path.open("w") as out:
        for k in range(count):
            solutions = [SOLUTIONS[i % len(SOLUTIONS)].format(k=k) for i in range(n_solutions)]
            tests = []
            for n in range(n_tests):
                a, b = TEST_ARGUMENTS[n % len(TEST_ARGUMENTS)]
                tests.append(TEST.format(n=n, k=k, a=a, b=b))
            problem = {
                "task_id": f"load/{k}",
                "question": f"Write shifted_sum(a, b) that returns a + b + {k}.",
                "solutions": solutions,
                "unit_tests": tests,
            }
            out.write(json.dumps(problem) + "\n")


class Sampler(threading.Thread):
    """Every `interval` seconds: broker queue depths and each worker's memory; keeps the peaks."""

    def __init__(self, broker_url: str, workers: dict[str, psutil.Process], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.workers, self.interval = workers, interval
        self.connection = kombu.Connection(broker_url)
        self.channel = self.connection.channel()
        self.queue_peaks: dict[str, int] = defaultdict(int)
        self.memory_peaks: dict[str, int] = defaultdict(int)
        self.cpu_seconds: dict[str, float] = defaultdict(float)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            for name, process in self.workers.items():
                try:
                    tree = [process, *process.children(recursive=True)]
                    rss = sum(p.memory_info().rss for p in tree)
                    times = [p.cpu_times() for p in tree]
                except psutil.NoSuchProcess:
                    continue
                self.memory_peaks[name] = max(self.memory_peaks[name], rss)
                # Pool processes live as long as their worker, so the last sum is the whole run's.
                self.cpu_seconds[name] = sum(t.user + t.system for t in times)
            # A passive declare asks the broker for a queue's depth over AMQP: far cheaper than
            # rabbitmqctl, whose Erlang start-up would load the machine being measured.
            for queue in QUEUES:
                try:
                    depth = self.channel.queue_declare(queue, passive=True).message_count
                except self.connection.channel_errors:  # not declared yet
                    self.channel = self.connection.channel()
                    continue
                self.queue_peaks[queue] = max(self.queue_peaks[queue], depth)


def service_cpu_seconds() -> dict[str, float]:
    """CPU time of the Postgres and RabbitMQ processes on this machine, so far."""
    names = {"postgres": "postgres", "beam.smp": "rabbitmq"}
    seconds: dict[str, float] = defaultdict(float)
    for process in psutil.process_iter(["name", "cpu_times"]):
        service = names.get(process.info["name"])
        if service and process.info["cpu_times"]:
            seconds[service] += process.info["cpu_times"].user + process.info["cpu_times"].system
    return seconds


def machine_busy_seconds() -> float:
    """CPU seconds this machine's cores have been busy (not idle, not waiting on I/O), so far."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def sandbox_only_seconds(problem_file: Path, env: dict[str, str]) -> float:
    result = run_coderm(["sandbox", "matrix", str(problem_file)], env=env, timeout=3600)
    found = re.search(r"pairs \(\d+ distinct, executed\) in ([\d.]+) s", result.stdout)
    if result.returncode != 0 or not found:
        raise SystemExit(f"coderm sandbox matrix failed:\n{result.stdout}\n{result.stderr}")
    return float(found.group(1))


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--solutions", type=int, default=4)
    parser.add_argument("--tests", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the job")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="coderm-load-"))
    problem_file = workdir / "problems.jsonl"
    write_problems(problem_file, args.problems, args.solutions, args.tests)

    with scratch_database("coderm_load") as database_url, rabbitmq_vhost() as broker_url:
        upgrade_schema(database_url)
        env = services_environment(database_url, broker_url, workdir / "home")

        busy_before = machine_busy_seconds()
        sandbox_seconds = sandbox_only_seconds(problem_file, env)
        sandbox_busy = machine_busy_seconds() - busy_before
        print(f"sandbox stage alone: {args.problems} problems in {sandbox_seconds:.1f} s", flush=True)

        other_queues = ",".join(q for q in QUEUES if q != "sandbox")
        cores = str(psutil.cpu_count() or 1)
        workers = {
            "sandbox": wait_ready(
                spawn_worker({**env, "CODERM_SANDBOX_JAILS": "1"}, "sandbox", workdir, ("-c", cores))
            ),
            other_queues: wait_ready(spawn_worker(env, other_queues, workdir, ("-P", "threads", "-c", "4"))),
        }
        sampler = Sampler(broker_url, {name: psutil.Process(w.process.pid) for name, w in workers.items()})
        sampler.start()
        engine = create_engine(database_url)
        try:
            services_before = service_cpu_seconds()
            busy_before = machine_busy_seconds()
            started = time.monotonic()
            submitted = run_coderm(
                ["submit", str(problem_file), "-n", str(args.solutions), "-m", str(args.tests)],
                env=env,
                timeout=600,
            )
            if submitted.returncode != 0:
                raise SystemExit(f"coderm submit failed:\n{submitted.stderr}")
            submit_seconds = time.monotonic() - started
            job_id = submitted.stdout.strip().splitlines()[-1]
            print(f"submitted job {job_id} in {submit_seconds:.1f} s", flush=True)
            finished_states = [s.value for s in (ProblemStatus.COMPLETED, ProblemStatus.FAILED)]
            while time.monotonic() - started < args.timeout:
                with engine.connect() as connection:
                    done = connection.scalar(
                        select(func.count()).select_from(Problem).where(Problem.status.in_(finished_states))
                    )
                print(f"\r{done}/{args.problems} problems finished", end="", flush=True)
                if done == args.problems:
                    break
                time.sleep(0.5)
            end_to_end_seconds = time.monotonic() - started
            services_after = service_cpu_seconds()
            end_to_end_busy = machine_busy_seconds() - busy_before
            print()
        finally:
            sampler.stopped.set()
            sampler.join()
            sampler.connection.release()
            logs = {name: worker.log_text() for name, worker in workers.items()}
            for worker in workers.values():
                stop_worker(worker)

        with engine.connect() as connection:
            problems = connection.execute(
                select(Problem.status, Problem.created_at, Problem.started_at, Problem.finished_at)
            ).all()
            duplicated_selections = connection.scalar(
                select(func.count()).select_from(
                    select(Selection.problem_id)
                    .group_by(Selection.problem_id)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
            rows = {
                table.name: connection.scalar(select(func.count()).select_from(table))
                for table in Base.metadata.sorted_tables
            }
            stage_seconds = connection.execute(
                select(StageRun.stage, func.count(), func.avg(StageRun.seconds)).group_by(StageRun.stage)
            ).all()
            database_size = connection.scalar(text("SELECT pg_database_size(current_database())"))
        engine.dispose()

    completed = [p for p in problems if p.status == ProblemStatus.COMPLETED]
    from_submit = [(p.finished_at - p.created_at).total_seconds() for p in completed]
    from_start = [(p.finished_at - p.started_at).total_seconds() for p in completed if p.started_at]
    errors = {name: log.count("ERROR/") for name, log in logs.items()}
    rate, sandbox_rate = len(completed) / end_to_end_seconds, args.problems / sandbox_seconds
    report = {
        "problems": args.problems,
        "matrix": f"{args.solutions}x{args.tests}",
        "completed": len(completed),
        "failed_or_missing": args.problems - len(completed),
        "duplicated_selections": duplicated_selections,
        "worker_errors": errors,
        "submit_seconds": round(submit_seconds, 2),
        "end_to_end_seconds": round(end_to_end_seconds, 2),
        "problems_per_second": round(rate, 2),
        "sandbox_only_problems_per_second": round(sandbox_rate, 2),
        "sandbox_only_over_end_to_end": round(sandbox_rate / rate, 2),
        "latency_from_submit_seconds": {
            "p50": round(percentile(from_submit, 50), 2),
            "p95": round(percentile(from_submit, 95), 2),
        },
        "latency_from_start_seconds": {
            "p50": round(percentile(from_start, 50), 2),
            "p95": round(percentile(from_start, 95), 2),
        },
        "queue_peaks": dict(sampler.queue_peaks),
        "rows": rows,
        "rows_per_second": round(sum(rows.values()) / end_to_end_seconds, 1),
        "database_mb": round(database_size / 2**20, 1),
        "mean_stage_ms": {stage: round(seconds * 1000, 1) for stage, _, seconds in stage_seconds},
        "worker_cpu_seconds": {name: round(cpu, 1) for name, cpu in sampler.cpu_seconds.items()},
        # All the machine's cores: the whole system's CPU against the sandbox stage's alone (which
        # includes the start of its process), whatever the wall clock did.
        "machine_busy_cpu_seconds": {
            "sandbox_only": round(sandbox_busy, 1),
            "end_to_end": round(end_to_end_busy, 1),
        },
        "service_cpu_seconds": {
            name: round(services_after[name] - services_before.get(name, 0.0), 1) for name in services_after
        },
        "peak_worker_rss_mb": {name: round(rss / 2**20, 1) for name, rss in sampler.memory_peaks.items()},
    }
    print(json.dumps(report, indent=2))
    if report["failed_or_missing"] or duplicated_selections or any(errors.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
