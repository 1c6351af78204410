"""What the engine hands back: decisions, reasons, late vetoes and steps."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.engine.state import CustomerState
from app.engine.times import format_us, from_us

APPROVED = "approved"
SUPPRESSED = "suppressed"
DEFERRED = "deferred"
OUTCOMES = (APPROVED, SUPPRESSED, DEFERRED)

# Fixed namespace so decision ids are the same on every machine and replay.
DECISION_NAMESPACE = uuid.UUID("6f1c1f3e-2b8e-5d3a-9a57-7d1c3e0b5a21")
_NAMESPACE_BYTES = DECISION_NAMESPACE.bytes


@dataclass(frozen=True, slots=True)
class Reason:
    """One rule's objection, with a detail a CRM person can read."""

    rule: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Decision:
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


@dataclass(frozen=True, slots=True)
class LateVeto:
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


@dataclass(frozen=True, slots=True)
class Step:
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
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
