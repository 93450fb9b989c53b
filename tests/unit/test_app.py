"""The Faust app is built from the settings."""

from __future__ import annotations

from pathlib import Path

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
