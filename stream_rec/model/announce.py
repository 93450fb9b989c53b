"""Telling running workers that a new model version is current (topic ``model-updates``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from stream_rec.config import Settings, load_settings
from stream_rec.connection import kafka_python_config
from stream_rec.errors import UserError
from stream_rec.model.artifact import MANIFEST, sha256_of, verify_folder

log = logging.getLogger("stream_rec.registry")


def announcement_for(folder: Path) -> dict[str, Any]:
    """The JSON message for one version folder: version, path, created_at, manifest sha256."""
    manifest = verify_folder(folder)
    return {"version": str(manifest["version"]), "path": str(Path(folder).resolve()),
            "created_at": manifest.get("created_at"),
            "manifest_sha256": sha256_of(Path(folder) / MANIFEST)}


def announce_model(folder: Path, settings: Settings | None = None, timeout_s: float = 30.0
                   ) -> dict[str, Any]:
    """Send the announcement (key = version) and wait until the broker has it."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    settings = settings or load_settings()
    message = announcement_for(folder)
    try:
        producer = KafkaProducer(**kafka_python_config(settings), acks="all",
                                 value_serializer=lambda v: json.dumps(v).encode("utf-8"),
                                 key_serializer=lambda k: k.encode("utf-8"))
        try:
            producer.send(settings.model_updates_topic, key=message["version"],
                          value=message).get(timeout=timeout_s)
        finally:
            producer.close(timeout=timeout_s)
    except KafkaError as exc:
        raise UserError(f"cannot announce model {message['version']} on "
                        f"{settings.model_updates_topic!r} at {settings.broker}: {exc}") from None
    log.info("announced model version %s on %s", message["version"],
             settings.model_updates_topic)
    return message
