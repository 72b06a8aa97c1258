"""The base of every task: a message runs only once it fits its schema, and the task knows its
database and settings; the retry policy of transient failures and of the LLM samplers.

The per-problem tasks build on it in orchestrator.workflow.problem_task (stage timing, continuing
the workflow, failing the problem).
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import Reject
from celery.utils.log import get_task_logger
from kombu.exceptions import OperationalError as BrokerOperationalError
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError as DatabaseOperationalError

from orchestrator.core.config import Settings
from orchestrator.core.errors import InvalidMessageError, TransientBackendError
from orchestrator.runtime.messages import bind_message

# A database or broker that is briefly away (a restart, a failover) is waited for, not failed on.
TRANSIENT_ERRORS = (DatabaseOperationalError, BrokerOperationalError)

LLM_RETRY: dict[str, Any] = {
    "autoretry_for": (TransientBackendError, *TRANSIENT_ERRORS),
    "max_retries": 3,
    "retry_backoff": 30,
    "retry_backoff_max": 600,
    "retry_jitter": True,
}
"""Task options of the LLM samplers. The HTTP client already retries each request a few times
within seconds; a server still down after that gets minutes, as a retry of the whole task."""

logger = get_task_logger(__name__)


class CodermTask(Task):
    """Base of our tasks: a message runs only once it fits the task's `arguments_model`.

    A message that does not fit (a missing, surplus or mistyped argument, a job that breaks the
    problem schema) is rejected without requeueing: logged with its reason, dropped by the broker
    (or dead-lettered where the queue has a dead-letter exchange), never retried, and the worker
    goes on with the next one.
    """

    arguments_model: type[BaseModel]

    @property
    def database_url(self) -> str:
        return str(self.app.conf.coderm_database_url)

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.conf.coderm_settings
        return settings

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # A task may refuse its message too, for what only the database can tell (InvalidMessageError).
        try:
            return super().__call__(**bind_message(self.run, self.arguments_model, args, kwargs))
        except InvalidMessageError as exc:
            logger.error("rejected message %s[%s]: %s", self.name, self.request.id, exc)
            raise Reject(f"invalid message: {exc}", requeue=False) from exc
