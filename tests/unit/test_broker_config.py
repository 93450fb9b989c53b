"""The local broker's configuration and its errors, without starting Java."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_rec.config import load_settings
from stream_rec.errors import UserError
from stream_rec.tools import broker


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_server_properties_bind_loopback_on_configured_ports(tmp_path: Path) -> None:
    props = _props(broker.server_properties(load_settings({}, kafka_port=19092), tmp_path))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["process.roles"] == "broker,controller"
    assert props["log.dirs"] == str(tmp_path / "logs")
    assert props["offsets.topic.replication.factor"] == "1"


def test_missing_java_is_one_clear_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(broker.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="install a JDK"):
        broker.java_binary()


def test_missing_maven_is_one_clear_sentence(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setattr(broker.shutil, "which", lambda name: None)
    settings = load_settings({}, kafka_home=str(tmp_path))
    with pytest.raises(UserError, match="Maven is needed"):
        broker.ensure_jars(settings)


def test_cached_jars_are_reused_without_maven(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    settings = load_settings({}, kafka_home=str(tmp_path))
    settings.kafka_jars_dir.mkdir(parents=True)
    (settings.kafka_jars_dir / ".complete").write_text("x")
    monkeypatch.setattr(broker.shutil, "which", lambda name: None)
    assert broker.ensure_jars(settings) == settings.kafka_jars_dir


def test_pom_pins_the_configured_kafka_version() -> None:
    pom = (broker.DEPLOY_DIR / "pom.xml").read_text()
    assert f"<kafka.version>{load_settings({}).kafka_version}</kafka.version>" in pom


def test_stale_pid_file_is_not_a_running_broker(tmp_path: Path) -> None:
    local = broker.LocalBroker(load_settings({}, kafka_port=1), data_dir=tmp_path)
    tmp_path.mkdir(exist_ok=True)
    local.pid_file.write_text("999999\n")
    assert local.pid() is None
    assert not local.stop()


def test_cluster_ids_never_look_like_flags() -> None:
    ids = {broker.new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
