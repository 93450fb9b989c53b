"""The Faust app is built from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from stream_rec.config import SettingsError, load_settings


@pytest.mark.parametrize("session_s", [6.0, 12.0, 45.0])
def test_the_group_session_follows_the_setting(tmp_path: Path, session_s: float) -> None:
    from stream_rec.app import create_app

    conf = create_app(load_settings({}, state_dir=str(tmp_path), session_timeout_s=session_s)).conf
    assert conf.broker_session_timeout == session_s
    # A member that misses two heartbeats in a row is still in the group.
    assert conf.broker_heartbeat_interval * 3 < session_s


def test_a_session_shorter_than_the_broker_allows_is_refused() -> None:
    with pytest.raises(SettingsError, match="SESSION_TIMEOUT_S"):
        load_settings({}, session_timeout_s=3)


@pytest.mark.parametrize(("min_bytes", "wait_ms"), [(1, 1500), (65536, 3)])
def test_the_worker_consumer_fetches_as_the_settings_say(tmp_path: Path, min_bytes: int,
                                                          wait_ms: int) -> None:
    import asyncio

    from stream_rec.app import create_app

    app = create_app(load_settings({}, state_dir=str(tmp_path), fetch_min_bytes=min_bytes,
                                   fetch_max_wait_ms=wait_ms))

    async def build() -> tuple[int, int]:  # aiokafka builds its consumer inside a loop
        consumer = cast(Any, app.consumer)._thread._create_worker_consumer(app.transport)
        return consumer._fetch_min_bytes, consumer._fetch_max_wait_ms

    assert asyncio.run(build()) == (min_bytes, wait_ms)
