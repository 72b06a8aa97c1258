"""What running one solution against one unit test can come to (DESIGN §2, §6)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.StrEnum):
    """One letter each, so a row of the execution matrix is a short string."""

    PASS = "P"  # the unittest class was successful: every test method passed
    FAIL = "F"  # a test method failed (an assertion)
    ERROR = "E"  # a test method or the program raised
    TIMEOUT = "T"  # the wall-clock or CPU limit was reached
    MEMORY = "M"  # the memory limit was reached
    KILLED = "K"  # the process died without a verdict (signal, exit, crash)
    INVALID = "I"  # the program cannot run: it does not compile, or has no test class
    NOT_RUN = "N"  # not executed: the solution could no longer reach the best pass count (pruned)


@dataclass(frozen=True)
class PairResult:
    outcome: Outcome
    duration_ms: int
    tests_run: int = 0
    failures: int = 0
    errors: int = 0
    output: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASS
