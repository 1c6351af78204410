"""The decision engine: pure Python, no Kafka and no Faust.

The Faust layer (and `tact replay`) call `apply`, `decide` and `release` with
a customer's state, one input and the clock, and write back the new state.
"""

from app.engine.core import apply, decide, release
from app.engine.decision import Decision, LateVeto, Reason, Step
from app.engine.policy import Policy, load_policy, parse_policy
from app.engine.records import (
    DEFAULT_LIMITS,
    Intent,
    LifecycleEvent,
    Limits,
    dead_letter,
    decode_event,
    decode_intent,
)
from app.engine.state import (
    CustomerState,
    decode_state,
    encode_state,
    encoded_pending,
)

__all__ = [
    "DEFAULT_LIMITS",
    "CustomerState",
    "Decision",
    "Intent",
    "LateVeto",
    "LifecycleEvent",
    "Limits",
    "Policy",
    "Reason",
    "Step",
    "apply",
    "dead_letter",
    "decide",
    "decode_event",
    "decode_intent",
    "decode_state",
    "encode_state",
    "encoded_pending",
    "load_policy",
    "parse_policy",
    "release",
]
