"""Every request body the sglang client builds, checked with SGLang 0.5.23's own request types.

SGLang needs CUDA and has no CPU wheel, so it is not run; its wheel is installed without its
dependencies into a cache folder (once per machine; pip keeps the download), beside a few small
packages its request modules import, and `sglang_checker.py` runs its checks in a process of its own
with the GPU-only packages stubbed. Given the bodies of every layout, sampling setting and seed the
client can send, expect SGLang to accept each; given bodies it must refuse, expect it to.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import unavailable

from agents.llm.openai import completion_request
from agents.llm.sglang import features_payload, generate_payload, plan_requests, tokenize_payload
from orchestrator.core.config import ChatFormat, SamplingParams

pytestmark = pytest.mark.slow

SGLANG = "sglang==0.5.23"
# What SGLang's request modules import beyond this project's venv (torch, transformers, numpy,
# pydantic), as checked with 0.5.23.
COMPANIONS = (
    "msgspec==0.23.0",
    "pyzmq==27.3.0",
    "dill==0.4.1",
    "orjson==3.13.0",
    "pybase64==1.5.1",
    "starlette==1.10.0",
    "openai==2.8.0",
    "jiter==0.19.0",
    "distro==1.9.0",
)
SITE = Path(
    os.environ.get(
        "CODERM_SGLANG_CONTRACT_DIR", Path.home() / ".cache" / "coderm" / SGLANG.replace("==", "-")
    )
)
CHECKER = Path(__file__).with_name("sglang_checker.py")

TEXTS = ["<|start_header_id|>user<|end_header_id|>\n\nWrite add.<|eot_id|>", "Solve B.", "Solve C ü."]
PARAMS = [
    SamplingParams(),  # the paper's
    SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=1),
    SamplingParams(temperature=2.0, top_p=0.01, max_new_tokens=32768, stop=["\n```\n"]),
    SamplingParams(stop=["\n```", "```", "\n\n\n", "ü", *(f"stop {k}" for k in range(12))]),
]
SEEDS = [0, 41, -7, 2**63 - 1, 10**30]  # problem seeds grow with the job's, which has no bound
SHAPES = [([1], 8, 8), ([5], 2, 8), ([3, 7, 2], 4, 2), ([100, 100, 100], 8, 8)]


@pytest.fixture(scope="module")
def sglang_site() -> Path:
    """The folder with the sglang wheel and its companions, installed on first use."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        unavailable("SGLang's request types import torch and transformers, which this venv lacks")
    if not (SITE / "sglang").is_dir():
        SITE.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=SITE.parent, prefix=f".{SITE.name}."))
        installed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(staging),
                SGLANG,
                *COMPANIONS,
            ],
            capture_output=True,
            text=True,
        )
        if installed.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            unavailable(f"{SGLANG} could not be installed: {installed.stderr.strip()[-300:]}")
        try:
            staging.rename(SITE)
        except OSError:  # another session was quicker
            shutil.rmtree(staging, ignore_errors=True)
    return SITE


def check(site: Path, bodies: dict[str, list[object]]) -> dict[str, list[str | None]]:
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(CHECKER)],
        input=json.dumps(bodies),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    verdicts: dict[str, list[str | None]] = json.loads(done.stdout)
    return verdicts


def generate_bodies() -> Iterator[dict[str, object]]:
    for (counts, per_request, prompts_per_request), layout in itertools.product(SHAPES, ("n", "repeat")):
        plan = plan_requests(counts, per_request, prompts_per_request, layout)
        for params, seed in itertools.product(PARAMS, SEEDS):
            for request in plan:
                yield generate_payload(TEXTS, request, params, seed)
    yield features_payload(TEXTS[0])


def test_every_body_the_client_builds_passes_sglangs_own_checks(sglang_site: Path) -> None:
    formats: list[ChatFormat] = ["chat", "llama3.1", "llama3", "raw"]
    openai = [
        completion_request("org/Model", "Write add.", f, p) for f, p in itertools.product(formats, PARAMS)
    ]
    bodies: dict[str, list[object]] = {
        "generate": list(generate_bodies()),
        "tokenize": [tokenize_payload("org/Model", TEXTS), tokenize_payload("org/Model", TEXTS[:1])],
        "completions": [body for path, body in openai if path == "/v1/completions"],
        "chat": [body for path, body in openai if path == "/v1/chat/completions"],
    }
    verdicts = check(sglang_site, bodies)
    refused = {
        (kind, json.dumps(body)[:300], verdict)
        for kind in bodies
        for body, verdict in zip(bodies[kind], verdicts[kind], strict=True)
        if verdict is not None
    }
    assert not refused
    assert len(verdicts["generate"]) > 1000 and verdicts["chat"] and verdicts["completions"]


def test_bodies_sglang_refuses_are_refused(sglang_site: Path) -> None:
    """The checks are SGLang's and bite: what its servers answer 400 to fails here too."""
    params = {"n": 1, "temperature": 0.8, "max_new_tokens": 8}
    bodies: dict[str, list[object]] = {
        "generate": [
            {
                "text": ["a"],
                "sampling_params": params,
                "return_hidden_states": "last",
            },  # the schema's BoolOrList
            {"text": ["a"], "sampling_params": params | {"sampling_seed": 2**63}},  # beyond int64
            {"text": ["a", "b"], "sampling_params": [params, params | {"n": 2}]},  # n differs
            {"text": ["a"], "sampling_params": params | {"temperature": -1.0}},
            {"text": ["a"], "sampling_params": params | {"seed": 1}},  # not a sampling parameter
        ]
    }
    verdicts = check(sglang_site, bodies)
    assert all(verdict is not None for verdict in verdicts["generate"]), verdicts
