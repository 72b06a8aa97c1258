"""Jobs from other services: the `coderm.orchestrator.submit_job` task.

Any producer that can publish a Celery message (Celery's `send_task` by name, or any AMQP client
writing Celery's message protocol) submits a job as a JSON `JobRequest` (schemas/submit_job.schema.json;
docs/enqueueing.md). The task writes the job in one transaction and starts its problems' workflows,
exactly as `coderm submit` does; a request that breaks the schema is rejected before anything is
written (`CodermTask`).
"""

from __future__ import annotations

from celery import shared_task
from celery.utils.log import get_task_logger

from orchestrator.core.config import JobConfig
from orchestrator.core.errors import InvalidMessageError, NotFoundError
from orchestrator.inputs.problem_files import ProblemSpec
from orchestrator.runtime.messages import JobRequest
from orchestrator.runtime.task_base import CodermTask
from orchestrator.workflow.submit import submit

logger = get_task_logger(__name__)


@shared_task(
    base=CodermTask,
    bind=True,
    name="coderm.orchestrator.submit_job",
    arguments_model=JobRequest,
    # Safe to run again: the idempotency key (the message's own id when none is given) returns the
    # job a first delivery wrote, and sends only what that delivery wrote but never sent.
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=False,
)
def submit_job(
    self: CodermTask,
    problems: list[ProblemSpec],
    config: JobConfig,
    idempotency_key: str | None = None,
    source: str | None = None,
) -> str:
    """Create the job and start its workflows; returns the job id (also in the result backend)."""
    if idempotency_key is None and self.request.id is not None:
        idempotency_key = f"celery-task:{self.request.id}"
    try:
        submitted = submit(
            self.app, self.database_url, problems, config, source=source, idempotency_key=idempotency_key
        )
    except NotFoundError as exc:  # a greedy or threshold job, and no probe to predict with
        raise InvalidMessageError(str(exc)) from exc
    if submitted.differs:
        logger.warning(
            "idempotency key %r names job %s, whose problems or options differ from this message's; "
            "the first job stands",
            idempotency_key,
            submitted.job_id,
        )
    return submitted.job_id
