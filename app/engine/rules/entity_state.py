"""Rule entity_state: nothing about an entity in a blocking status.

The entity statuses come from lifecycle events mapped by the policy; this
module also keeps them (entity_window reads the same entity records).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from app.engine.decision import Reason
from app.engine.policy import Policy, RuleSet
from app.engine.records import EntityRef, Intent, LifecycleEvent
from app.engine.rules import NO_OBJECTIONS, Objection
from app.engine.state import CustomerState, EntityKey, EntityState
from app.engine.times import format_us, parse_time, to_us

logger = logging.getLogger(__name__)

RULE = "entity_state"


def entities_after(
    state: CustomerState, event: LifecycleEvent, policy: Policy
) -> tuple[Mapping[EntityKey, EntityState], tuple[EntityRef, ...]]:
    """The entities once `event` is applied, and those it newly blocks.

    An event older (by occurred_at) than the entity's current status does not
    change the status: the two topics are not aligned in time, so a late
    booking.created must not revive a cancelled booking.
    """
    transitions = policy.transitions.get(event.type)
    entity = event.entity
    if transitions is None or entity is None:
        return state.entities, ()
    entity_type = entity.type
    status = None
    for kind, to_status in transitions:
        if kind == entity_type:
            status = to_status
            break
    if status is None:
        logger.debug(
            "event entity type not mapped event_id=%s type=%s entity_type=%s",
            event.event_id,
            event.type,
            entity.type,
        )
        return state.entities, ()

    key = (entity.type, entity.id)
    old = state.entities.get(key)
    times = _time_attributes(event, policy.window_attributes.get(entity.type, ()))
    occurred_us = event.occurred_us
    if old is None:
        new = EntityState(status, occurred_us, occurred_us, times)
    elif occurred_us >= old.status_us:
        new = EntityState(
            status, occurred_us, max(old.last_us, occurred_us), {**old.times, **times}
        )
    else:
        new = EntityState(
            old.status, old.status_us, old.last_us, {**times, **old.times}
        )
    entities = dict(state.entities)
    entities[key] = new
    blocking = policy.entities[entity.type].blocking
    was_blocked = old is not None and old.status in blocking
    newly_blocked = (entity,) if new.status in blocking and not was_blocked else ()
    return entities, newly_blocked


def forget_stale(
    entities: Mapping[EntityKey, EntityState], now_us: int, policy: Policy
) -> Mapping[EntityKey, EntityState]:
    """Entities without those whose last event is older than their `retain`."""
    if not entities:
        return entities
    kept = {
        key: e for key, e in entities.items() if is_retained(key, e, now_us, policy)
    }
    return entities if len(kept) == len(entities) else kept


def is_retained(
    key: EntityKey, entity: EntityState, now_us: int, policy: Policy
) -> bool:
    spec = policy.entities.get(key[0])
    return spec is not None and now_us - entity.last_us < spec.retain_us


def known_entity(
    state: CustomerState, ref: EntityRef, now_us: int, policy: Policy
) -> EntityState | None:
    """The entity's record if it is still remembered at `now_us`."""
    key = (ref.type, ref.id)
    entity = state.entities.get(key)
    if entity is None or not is_retained(key, entity, now_us, policy):
        return None
    return entity


def check(
    intent: Intent, state: CustomerState, now_us: int, policy: Policy, rules: RuleSet
) -> tuple[Objection, ...]:
    if not intent.about:
        return NO_OBJECTIONS
    objections = []
    for ref in intent.about:
        spec = policy.entities.get(ref.type)
        if spec is None:
            continue
        entity = known_entity(state, ref, now_us, policy)
        if entity is None:
            if spec.is_unknown_suppressed:
                detail = (
                    f"{ref} has never been seen, and messages about unknown "
                    f"{ref.type}s are suppressed"
                )
                objections.append(Objection(Reason(RULE, detail)))
        elif entity.status in spec.blocking:
            detail = f"{ref} was {entity.status} at {format_us(entity.status_us)}"
            objections.append(Objection(Reason(RULE, detail)))
    return tuple(objections)


def _time_attributes(
    event: LifecycleEvent, names: frozenset[str] | tuple[()]
) -> dict[str, int]:
    times = {}
    for name in names:
        value = event.attributes.get(name)
        if value is None:
            continue
        moment = parse_time(value) if isinstance(value, str) else None
        if moment is None:
            logger.warning(
                "entity time attribute ignored event_id=%s attribute=%s value=%r",
                event.event_id,
                name,
                value,
            )
            continue
        times[name] = to_us(moment)
    return times
