"""Dataset readers shared by training, evaluation and replay (no TensorFlow here).

``load_dataset("sessions:../shared/data/diginetica")`` returns a ``Dataset``: training and test
sessions of ``Interaction(item_id, event_type, ts_ms, user_id)`` with raw string ids and the
event contract's type names, plus item attributes ``item_id -> {name: raw value}``.
"""

from __future__ import annotations

from stream_rec.config import Settings, load_settings
from stream_rec.datasets.event_files import read_events_format
from stream_rec.datasets.event_names import EVENT_NAME_MAP, contract_type
from stream_rec.datasets.session_files import read_categories_format, read_sessions_format
from stream_rec.datasets.spec import FORMATS, DataSpec, parse_spec
from stream_rec.datasets.split import hide_items, split_by_time
from stream_rec.datasets.types import (
    Dataset,
    Interaction,
    ItemAttributes,
    Session,
    TestCase,
    iter_cases,
)


def load_dataset(spec: str | DataSpec, settings: Settings | None = None,
                 window_ms: int | None = None, now_ms: int | None = None) -> Dataset:
    """Read a dataset by spec; raise ``UserError`` when it is missing, empty or unreadable.

    ``window_ms`` bounds a ``kafka:`` read (default: the ``train_window`` setting).
    """
    settings = settings or load_settings()
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if spec.kind == "kafka":
        from stream_rec.datasets.kafka_source import read_kafka_window

        return read_kafka_window(spec.location, settings,
                                 window_ms=window_ms or settings.train_window_ms,
                                 holdout_fraction=settings.holdout_fraction, now_ms=now_ms)
    folder = spec.folder(settings.data_dir)
    if spec.kind == "sessions":
        return read_sessions_format(folder)
    if spec.kind == "categories":
        return read_categories_format(folder)
    return read_events_format(folder)


__all__ = [
    "EVENT_NAME_MAP",
    "FORMATS",
    "DataSpec",
    "Dataset",
    "Interaction",
    "ItemAttributes",
    "Session",
    "TestCase",
    "contract_type",
    "hide_items",
    "iter_cases",
    "load_dataset",
    "parse_spec",
    "split_by_time",
]
