"""What the engine hands back: decisions, reasons, late vetoes and steps."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any, NamedTuple

from app.engine.state import CustomerState
from app.engine.times import format_us, from_us

APPROVED = "approved"
SUPPRESSED = "suppressed"
DEFERRED = "deferred"
OUTCOMES = (APPROVED, SUPPRESSED, DEFERRED)

# Fixed namespace so decision ids are the same on every machine and replay.
DECISION_NAMESPACE = uuid.UUID("6f1c1f3e-2b8e-5d3a-9a57-7d1c3e0b5a21")
_NAMESPACE_BYTES = DECISION_NAMESPACE.bytes
_VARIANT_DIGIT = {digit: "89ab"[int(digit, 16) & 0b11] for digit in "0123456789abcdef"}


class Reason(NamedTuple):
    """One rule's objection, with a detail a CRM person can read."""

    rule: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "detail": self.detail}


class Decision(NamedTuple):
    """One decision about an intent; `to_dict` is the decision record."""

    decision_id: str
    intent_id: str
    customer_id: str
    channel: str
    category: str
    campaign_id: str | None
    outcome: str
    reasons: tuple[Reason, ...]
    release_us: int | None
    decided_us: int
    policy_version: str

    @property
    def release_at(self) -> datetime | None:
        return None if self.release_us is None else from_us(self.release_us)

    @property
    def decided_at(self) -> datetime:
        return from_us(self.decided_us)

    @property
    def is_approved(self) -> bool:
        return self.outcome == APPROVED

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "intent_id": self.intent_id,
            "customer_id": self.customer_id,
            "channel": self.channel,
            "category": self.category,
            "campaign_id": self.campaign_id,
            "outcome": self.outcome,
            "reasons": [reason.to_dict() for reason in self.reasons],
            "release_at": None
            if self.release_us is None
            else format_us(self.release_us),
            "decided_at": format_us(self.decided_us),
            "policy_version": self.policy_version,
        }


class LateVeto(NamedTuple):
    """A send approved before a lifecycle event arrived that should have stopped it.

    The event happened (occurred_at) before the approval but reached Tact
    after it, so the send went out; the Faust layer reports these.
    """

    rule: str
    entity_type: str | None
    entity_id: str | None
    intent_id: str
    approved_us: int
    event_id: str

    @property
    def approved_at(self) -> datetime:
        return from_us(self.approved_us)


class Step(NamedTuple):
    """The result of one engine call: the new state and what to emit."""

    state: CustomerState
    decisions: tuple[Decision, ...] = ()
    approved: tuple[dict[str, Any], ...] = ()
    late_vetoes: tuple[LateVeto, ...] = ()


def decision_id(intent_id: str, number: int | str) -> str:
    """The id of an intent's `number`-th decision, the same on every run.

    A name-based (version 5) UUID, built directly from the hash because the
    uuid module's objects cost more than the hash on the hot path.
    """
    name = f"{intent_id}#{number}".encode()
    # SHA-1 because version 5 UUIDs are defined on it; nothing here is secret.
    text = hashlib.sha1(_NAMESPACE_BYTES + name).hexdigest()
    # Digit 12 becomes the version (5); the top bits of digit 16 the RFC 4122
    # variant (binary 10), which maps each hex digit to one of 8, 9, a, b.
    return (
        f"{text[:8]}-{text[8:12]}-5{text[13:16]}-"
        f"{_VARIANT_DIGIT[text[16]]}{text[17:20]}-{text[20:32]}"
    )
