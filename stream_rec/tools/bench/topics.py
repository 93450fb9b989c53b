"""Topics of one bench run: created with the worker's partition count, deleted afterwards.

Every name a run creates (its own topics, and the changelog and assignor topics Faust makes
for the run's app ids) contains ``bench-<run id>``, so clean-up deletes exactly those and
nothing another user of the broker owns.
"""

from __future__ import annotations

import contextlib
import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stream_rec.config import Settings
from stream_rec.connection import kafka_python_config

log = logging.getLogger(__name__)


def run_marker(run_id: str) -> str:
    """The substring every topic and consumer group of run ``run_id`` contains."""
    return f"bench-{run_id}"


def create_topics(settings: Settings, names: list[str], partitions: int) -> None:
    """Create ``names`` with ``partitions`` each (existing ones are left as they are)."""
    admin = KafkaAdminClient(**kafka_python_config(settings))
    try:
        for name in names:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(name, partitions, settings.replication_factor)])
    finally:
        admin.close()


def delete_run_topics(settings: Settings, run_id: str) -> list[str]:
    """Delete every topic whose name contains the run's marker; best effort, never raises."""
    return delete_topics_containing(settings, run_marker(run_id))


def delete_topics_containing(settings: Settings, marker: str) -> list[str]:
    """Delete every topic whose name contains ``marker``; best effort, never raises."""
    try:
        admin = KafkaAdminClient(**kafka_python_config(settings))
    except KafkaError as exc:
        log.warning("could not connect to delete the run's topics: %s", exc)
        return []
    try:
        doomed = sorted(t for t in admin.list_topics() if marker in t)
        if doomed:
            admin.delete_topics(doomed, timeout_ms=30_000)
        return doomed
    except KafkaError as exc:
        log.warning("could not delete the run's topics %s*: %s", marker, exc)
        return []
    finally:
        admin.close()
