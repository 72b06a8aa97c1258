"""No honest verdict changes: the sandbox gives the verdicts recorded before its hardening.

Legitimate code uses frames and introspection (namedtuple, dataclasses, logging, warnings, typing,
inspect), so a hardening that refused them would break right answers. The recording
(`tests/data/verdicts_before_issue12.jsonl`, see its README) holds HumanEval's canonical solutions
and mutants, against HumanEval-derived unit tests and HumanEval's own test programs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.ground_truth import ground_truth_test
from orchestrator.core.config import SandboxLimits
from sandbox.executor import JailPool
from sandbox.policy import SandboxPolicy

pytestmark = pytest.mark.integration

RECORDING = Path(__file__).parents[1] / "data" / "verdicts_before_issue12.jsonl"


def test_every_recorded_honest_verdict_is_given_again() -> None:
    records = [json.loads(line) for line in RECORDING.read_text().splitlines() if line]
    assert len(records) == 164
    pool = JailPool(SandboxPolicy())
    changed = []
    try:
        for record in records:
            truth = ground_truth_test(f"{record['test']}\ncheck({record['entry_point']})\n")
            matrix = pool.run_matrix(
                record["solutions"], [*record["tests"], truth], SandboxLimits(time_limit_s=1.0)
            )
            for i, row in enumerate(matrix):
                now = "".join(cell.outcome.value for cell in row)
                before = record["outcomes"][i] + record["ground_truth"][i]
                if now != before:
                    changed.append(f"{record['task_id']} solution {i}: {before} -> {now}")
    finally:
        pool.close()
    assert not changed, "\n".join(changed)
