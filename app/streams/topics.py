"""Create Tact's topics at start-up and refuse to run on a broken layout."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.errors import TactError
from app.security import client_options
from app.settings import Settings

logger = logging.getLogger(__name__)

MISMATCHED_INPUTS = (
    "input topics {counts} have different partition counts; a customer's events "
    "and intents must land on the same partition number. Recreate one of them "
    "with the other's count (or repartition it) before starting Tact."
)
MISMATCHED_INTERNAL = (
    "topic {topic} has {actual} partitions but the input topics have {expected}. "
    "Tact's internal topics must match the inputs; if it is the changelog, the "
    "customer state must be migrated, not dropped."
)


TABLE_NAME = "customers"


def changelog_topic(settings: Settings) -> str:
    """The customer table's changelog, as Faust names it."""
    return f"{settings.app_id}-{TABLE_NAME}-changelog"


class TopicLayoutError(TactError):
    """The topics exist in a layout that would mis-join customers."""


async def ensure_topics(settings: Settings) -> int:
    """Create missing topics and return the partition count of the inputs.

    1. Read the partition counts of the topics that already exist.
    2. Pick the input partition count: the existing one, else the setting.
    3. Check that existing inputs and internal topics agree with it.
    4. Create whatever is missing.
    """
    admin = AIOKafkaAdminClient(
        client_id=f"{settings.app_id}-admin", **client_options(settings)
    )
    await admin.start()
    try:
        # 1. Existing counts.
        wanted = [
            *settings.input_topics,
            *settings.internal_topics,
            *settings.output_topics,
        ]
        existing = await _partition_counts(admin, wanted)

        # 2. The input count.
        input_counts = {t: existing[t] for t in settings.input_topics if t in existing}
        partitions = next(iter(input_counts.values()), settings.partitions)

        # 3. Agreement.
        if len(set(input_counts.values())) > 1:
            raise TopicLayoutError(MISMATCHED_INPUTS.format(counts=input_counts))
        changelog = changelog_topic(settings)
        existing.update(await _partition_counts(admin, [changelog]))
        for topic in (*settings.internal_topics, changelog):
            if topic in existing and existing[topic] != partitions:
                raise TopicLayoutError(
                    MISMATCHED_INTERNAL.format(
                        topic=topic, actual=existing[topic], expected=partitions
                    )
                )

        # 4. Create.
        missing = [
            NewTopic(topic, partitions, settings.replication_factor)
            for topic in wanted
            if topic not in existing
        ]
        if missing:
            await admin.create_topics(missing)
            logger.info(
                "created topics=%s partitions=%d",
                ",".join(t.name for t in missing),
                partitions,
            )
        return partitions
    finally:
        await admin.close()


async def _partition_counts(
    admin: AIOKafkaAdminClient, topics: list[str]
) -> dict[str, int]:
    names = set(await admin.list_topics())
    present = [t for t in topics if t in names]
    if not present:
        return {}
    described = await admin.describe_topics(present)
    return {d["topic"]: len(d["partitions"]) for d in described}
