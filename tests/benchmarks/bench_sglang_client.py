"""CPU cost of the sglang client per sample, against a server that answers at once (issue #4).

    python tests/benchmarks/bench_sglang_client.py [--problems 164] [--samples 100] [--in-flight 512]
        [--per-request 10] [--prompts-per-request 1] [--parallel-sampling repeat|n]
        [--mode batch|tasks] [--answer-delay 0]

The fake SGLang server (tests/fake_llm_server.py) runs in a process of its own, so its CPU time is
not counted; what is measured is this process' CPU time (all its threads: the callers and the HTTP
event loop) while it asks for problems x samples completions. `batch` asks for all of them in one
`sample_many` call; `tasks` calls `sample(prompt, samples)` once per problem from as many threads at
once, as a threads-pool worker does. Goal: under 2 ms of client CPU per sample with at least 256
requests in flight (the server reports the most it saw at once). A server that answers at once
rarely has that many in flight, since each answer comes back before the client has sent many more;
`--answer-delay` makes every answer take that long, as generation on a GPU does, so that the
client's bound on requests in flight is reached.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from agents.llm.sglang import SGLangBackend  # noqa: E402
from orchestrator.core.config import SamplingParams, Settings  # noqa: E402
from orchestrator.core.errors import BackendError  # noqa: E402

SHARED_PROMPTS = TESTS.parent.parent / "shared" / "data" / "coderm-benchmarks" / "input_humaneval+_sol.jsonl"
LOCAL_PROMPTS = TESTS / "data" / "input_humaneval+_sol.jsonl"


def load_prompts(count: int) -> list[str]:
    """HumanEval+ policy prompts (the shared file's 164, else the 3 in tests/data, made distinct)."""
    source = SHARED_PROMPTS if SHARED_PROMPTS.is_file() else LOCAL_PROMPTS
    prompts = [json.loads(line)["messages"][0]["content"] for line in source.read_text().splitlines()]
    return [
        prompts[i % len(prompts)] + ("" if i < len(prompts) else f"\n# variant {i}") for i in range(count)
    ]


def start_server(delay_s: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, str(TESTS / "fake_llm_server.py"), "--delay", str(delay_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=164)
    parser.add_argument("--samples", type=int, default=100, help="samples per problem")
    parser.add_argument("--in-flight", type=int, default=512, help="CODERM_LLM_MAX_IN_FLIGHT")
    parser.add_argument("--per-request", type=int, default=10, help="CODERM_SGLANG_SAMPLES_PER_REQUEST")
    parser.add_argument(
        "--prompts-per-request", type=int, default=1, help="CODERM_SGLANG_PROMPTS_PER_REQUEST"
    )
    parser.add_argument(
        "--parallel-sampling",
        choices=["repeat", "n"],
        default="repeat",
        help="CODERM_SGLANG_PARALLEL_SAMPLING",
    )
    parser.add_argument("--mode", choices=["batch", "tasks"], default="batch")
    parser.add_argument("--answer-delay", type=float, default=0.0, help="seconds each answer takes")
    args = parser.parse_args()

    prompts = load_prompts(args.problems)
    params = SamplingParams(max_new_tokens=2048)
    server, url = start_server(args.answer_delay)
    try:
        settings = Settings(
            policy_url=url,
            llm_max_in_flight=args.in_flight,
            sglang_samples_per_request=args.per_request,
            sglang_prompts_per_request=args.prompts_per_request,
            sglang_parallel_sampling=args.parallel_sampling,
        )
        backend = SGLangBackend("policy", url, None, "llama3.1", settings)
        backend.sample(prompts[0], 1, params, seed=0)  # the server check and a first connection
        before = httpx.get(f"{url}/_fake/stats").json()

        wall, cpu = time.perf_counter(), time.process_time()
        if args.mode == "batch":
            results = backend.sample_many(prompts, args.samples, params, seed=0)
        else:
            with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
                results = list(pool.map(lambda p: backend.sample(p, args.samples, params, 0), prompts))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall

        stats = httpx.get(f"{url}/_fake/stats").json()
    finally:
        server.terminate()
        server.wait()

    failed = [r for r in results if isinstance(r, BackendError)]
    assert not failed, failed[:3]
    samples = sum(len(r) for r in results)
    assert samples == args.problems * args.samples, samples
    requests = stats["requests"] - before["requests"] - 1  # less the stats request itself
    print(
        f"mode={args.mode} problems={args.problems} samples/problem={args.samples} "
        f"samples/request={args.per_request} prompts/request={args.prompts_per_request} "
        f"max_in_flight={args.in_flight} answer_delay={args.answer_delay}s"
    )
    print(f"samples            {samples}")
    print(f"requests           {requests}")
    print(f"most in flight     {stats['max_in_flight']} (seen by the server)")
    print(f"wall time          {wall:.2f} s ({samples / wall:,.0f} samples/s)")
    print(f"client CPU         {cpu:.2f} s")
    print(f"client CPU/sample  {cpu / samples * 1000:.3f} ms (goal < 2 ms)")
    print(f"client CPU/request {cpu / requests * 1000:.3f} ms")


if __name__ == "__main__":
    main()
