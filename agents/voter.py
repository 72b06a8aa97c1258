"""The voter: picks each problem's solution and, where ground truth exists, scores the pick.

The selection rule itself is `agents.selection`; this is the Celery task around it.
"""

from __future__ import annotations

import random

from celery import shared_task

from agents.selection import vote
from orchestrator.core.db import upsert
from orchestrator.core.models import ProblemStatus, Selection, utcnow
from orchestrator.observability.metrics import after_commit, observe_problem_scored, observe_problem_voted
from orchestrator.reporting.evaluation import store_problem_score
from orchestrator.reporting.pass_matrix import load_pass_matrix
from orchestrator.workflow.finish import finish_problem
from orchestrator.workflow.problem_task import ProblemTask


@shared_task(base=ProblemTask, bind=True, name="coderm.voter.select_solution")
def select_solution(self: ProblemTask, problem_id: int) -> None:
    """Pick the problem's solution; where ground truth exists, also score the pick and the tests."""
    with self.step(problem_id, "vote").run() as loaded:
        if loaded is None:
            return
        session, problem, config = loaded.session, loaded.problem, loaded.config
        stored = load_pass_matrix(session, problem_id)
        samples, candidates, matrix = stored.samples, stored.candidates, stored.matrix
        decision = vote(matrix, random.Random(f"{config.seed}/{problem.task_id}"), config.selection)
        selection = {
            "problem_id": problem_id,
            "solution_id": None if decision.selected is None else samples[candidates[decision.selected]].id,
            "pass_count": decision.pass_count,
            "tests_used": stored.tests_used,
            "tie_set": [samples[candidates[r]].id for r in decision.tie_set],
            "top_set_size": decision.top_set_size,
            "seed": config.seed,
            "strategy": config.selection,
            "reason": "selected" if decision.selected is not None else "no valid solution",
            "created_at": utcnow(),
        }
        # A rerun of the vote (a redelivery) replaces the pick it made before.
        replaced = [column for column in selection if column != "problem_id"]
        session.execute(upsert(session, Selection, ["problem_id"], replaced), selection)
        benchmark, allocated = loaded.benchmark, problem.n_tests or stored.tests_stored
        after_commit(session, lambda: observe_problem_voted(benchmark, allocated, config.n_tests))
        if problem.has_ground_truth:
            score = store_problem_score(session, problem, samples, candidates, matrix, decision.tie_set)
            after_commit(session, lambda: observe_problem_scored(benchmark, score, allocated))
        finish_problem(session, problem, ProblemStatus.COMPLETED, benchmark)
