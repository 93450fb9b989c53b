"""A worker creates its tables' changelogs itself, before Faust starts, and waits until the
broker lists them: Faust's own creation raced its first partition assignment on a busy
broker, which then skipped the new changelog and left every write to that table failing."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_rec.commands.topics import check_topics, describe_topics, expected_topics
from stream_rec.topics import changelog_specs, prepare_worker_topics
from tests.integration.worker_fixtures import isolated_settings

pytestmark = pytest.mark.integration


def test_every_topic_and_changelog_is_there_as_expected_before_the_worker_starts(
        broker: str, new_topic, tmp_path: Path) -> None:
    # isolated_settings creates the app's topics (``ensure_topics``): another app id's
    # changelogs are new to the broker.
    settings = isolated_settings(broker, new_topic, tmp_path, partitions=3).with_overrides(
        app_id=new_topic("app"))
    changelogs = sorted(t.name for t in changelog_specs(settings))

    assert prepare_worker_topics(settings) == changelogs  # the app's topics were there
    expected = expected_topics(settings)
    found = describe_topics(settings, [t.name for t in expected])
    checks = check_topics(expected, found)
    assert [c.problems for c in checks if c.problems] == []
    assert all(found[name].partitions == 3 for name in changelogs)
    assert {found[name].cleanup_policy for name in changelogs} == {"compact"}
    assert prepare_worker_topics(settings) == []  # a second worker creates nothing
