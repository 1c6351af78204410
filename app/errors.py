"""The root of every error Tact raises on purpose.

The class says what to do with the failure: a retriable error is worth another
attempt (a broker hiccup), a non-retriable one never improves by retrying (a
malformed record goes to dead letters, a bad policy stops start-up).
"""

from __future__ import annotations


class TactError(Exception):
    """Base of Tact's own errors; `retriable` tells the caller retry or give up."""

    retriable: bool = False


class RecordError(TactError):
    """An input record breaks its schema; it is dead-lettered, never decided.

    `kind` is a short stable word (listed in the dead-letter schema) that
    dashboards can group by; `message` names the field and what was wrong.
    """

    retriable = False

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class PolicyError(TactError):
    """A policy file is invalid; every problem is listed, one per line."""

    retriable = False

    def __init__(self, source_name: str, problems: list[str]) -> None:
        self.source_name = source_name
        self.problems = tuple(problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"policy {source_name} is invalid:\n{lines}")
