"""The rules, one module each; a rule's name is its module's name.

Each rule module has a `check` that returns its objections to an intent
(an empty tuple when it has none); rules that keep state of their own also
have the functions that update it from lifecycle events or approvals.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import NamedTuple
from zoneinfo import ZoneInfo

from app.engine.decision import Reason
from app.engine.policy import Policy
from app.engine.state import CustomerState


class Objection(NamedTuple):
    """A rule's reason against sending now; `release_us` set means "later"."""

    reason: Reason
    release_us: int | None = None

    @property
    def is_deferrable(self) -> bool:
        return self.release_us is not None


NO_OBJECTIONS: tuple[Objection, ...] = ()


def customer_zone(state: CustomerState, policy: Policy) -> tzinfo | None:
    """The customer's timezone, the policy's fallback, or None to fail closed."""
    name = state.timezone or policy.timezone_fallback
    if name is None:
        return None
    # ZoneInfo keeps its own cache, so this is a dictionary lookup after the
    # first call for a zone.
    return ZoneInfo(name)


def describe_scope(channel: str | None, category: str | None) -> str:
    """`email marketing`, `every email`, `marketing on every channel`, ..."""
    if channel and category:
        return f"{channel} {category}"
    if channel:
        return f"every {channel}"
    if category:
        return f"{category} on every channel"
    return "every notification"
