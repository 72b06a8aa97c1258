"""Exceptions raised by coderm.

    CodermError
     ├── ConfigurationError      settings or options that cannot work (bad URL, missing service)
     ├── ProblemFileError        a problem file that cannot be read; names the file and line
     ├── InvalidMessageError     a job request or task message that does not fit its schema
     ├── BackendError            an LLM backend failed to produce samples
     │    └── TransientBackendError   worth retrying (connection lost, 429, 5xx)
     ├── NotFoundError           a job (or other object) that does not exist
     ├── PrometheusError         Prometheus could not be reached or refused a query
     ├── JobTimeoutError         a job not finished within the time a caller waited (a TimeoutError)
     └── ProblemsFailedError     a job ran to its end, but some of its problems failed

The command line turns any CodermError into a one-line message and its `exit_code`: 2, or 1 for a
job whose problems failed (its results were written first).
"""

from __future__ import annotations


class CodermError(Exception):
    """Root of every error coderm raises on purpose."""

    exit_code = 2


class ConfigurationError(CodermError):
    pass


class ProblemFileError(CodermError):
    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


class InvalidMessageError(CodermError):
    pass


class BackendError(CodermError):
    """`status_code` is the HTTP status a model server answered with, where there was one."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class TransientBackendError(BackendError):
    """`retry_after_s` is how long the server asked us to wait (its Retry-After header), if it did."""

    def __init__(
        self, message: str, status_code: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, status_code)
        self.retry_after_s = retry_after_s


class NotFoundError(CodermError):
    pass


class PrometheusError(CodermError):
    pass


class JobTimeoutError(CodermError, TimeoutError):
    pass


class IdempotencyConflictError(CodermError):
    """A submission's idempotency key names a job whose problems or options differ (strict mode)."""


class ProblemsFailedError(CodermError):
    """Some problems of a job that ran to its end failed: the command's results are out, its status
    says so."""

    exit_code = 1
