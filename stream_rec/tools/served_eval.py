"""`stream-rec replay --evaluate`: replay a split through a real worker and score what it served.

Starts (or uses) a broker, gives the run topics and state of its own, publishes the dataset's
catalog, starts a `stream-rec worker` on the registry's current model with the default
settings, sends the split's events in time order, each shopper's next event only once the
list for the previous one is back (``TurnTaking``: no list may know its own target), and
scores every list against the shopper's next event (``stream_rec.offline.served``). The waits
are on the lists themselves: the run ends when every event has one, or when none has come for
``stall_s`` (then the missing ones are counted, not hidden).
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from stream_rec.config import Settings
from stream_rec.datasets import Dataset
from stream_rec.errors import UserError
from stream_rec.offline.evaluate import CATEGORY_ATTRIBUTE, candidate_universe
from stream_rec.offline.progress import Progress
from stream_rec.offline.replay import ReplayEvent, catalog_messages, dataset_events
from stream_rec.offline.served import (
    ServedList,
    TurnTaking,
    next_event_targets,
    served_metrics,
)
from stream_rec.tools.bench.topics import delete_topics_containing
from stream_rec.tools.broker import kafka_for
from stream_rec.tools.worker_process import WorkerProcess, isolated_settings
from stream_rec.topics import ensure_topics

IN_FLIGHT = 256  # shoppers taking turns at once (offline.served.TurnTaking)
STALL_S = 120.0  # no new list for this long: the worker is stuck or gone; count what is missing


def evaluate_served(settings: Settings, dataset: Dataset, *, split: str = "test",
                    warm_up_events: int = 0, limit: int | None = None, k: int = 20,
                    broker_flag: str | None = None, stall_s: float = STALL_S,
                    keep_topics: bool = False, in_flight: int = IN_FLIGHT,
                    say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Replay ``split`` (after the last ``warm_up_events`` of the training split, which get
    lists but are not scored) through a worker and return the served metrics."""
    from stream_rec.model.registry import RegistryError, open_registry

    if split not in {"train", "test"}:
        raise UserError("--evaluate scores one split: use --split test (or train)")
    try:
        artifact = open_registry(settings).load(None)
    except RegistryError as exc:
        raise UserError(f"--evaluate needs a model in {settings.registry_dir}: {exc}") from None
    sessions = dataset.test if split == "test" else dataset.train
    targets = next_event_targets(dataset.name, split, sessions)
    scored = dataset_events(dataset, split)[:limit]
    sent_ids = {_event_id(e) for e in scored}
    targets = {e: t for e, t in targets.items() if e in sent_ids}
    warm = dataset_events(dataset, "train")[-warm_up_events:] if warm_up_events else []
    if warm and split == "train":
        raise UserError("--warm-up-events replays the end of the training split before the "
                        "test split: use it with --split test")
    with ExitStack() as stack:
        settings = stack.enter_context(kafka_for(settings, broker_flag, say=say))
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stream-rec-eval-")))
        run_id = f"eval-{secrets.token_hex(4)}"
        settings = isolated_settings(settings, run_id, work)
        ensure_topics(settings)
        if not keep_topics:  # registered first: runs last, after the worker has stopped
            stack.callback(delete_topics_containing, settings, f"{run_id}.")
        _produce(settings, [(settings.items_topic, key, value)
                            for key, value in catalog_messages(dataset)], None)
        worker = WorkerProcess(settings, work / "worker.log")
        say(f"starting a worker on {settings.broker} (topics {run_id}.*, model "
            f"{artifact.version}) ...")
        worker.start()
        stack.callback(worker.stop)
        events = [*warm, *scored]
        started = time.monotonic()
        lists = _take_turns(settings, TurnTaking(events, in_flight), stall_s,
                            Progress(len(events), f"replay {dataset.name}:{split} -> lists",
                                     unit="lists"))
        seconds = time.monotonic() - started
    categories = {item: attrs[CATEGORY_ATTRIBUTE] for item, attrs in dataset.items.items()
                  if attrs.get(CATEGORY_ATTRIBUTE)}
    metrics = served_metrics({e: lists[e] for e in targets if e in lists}, targets,
                             candidate_universe(artifact.item_ids, dataset),
                             set(artifact.item_ids), categories or None, k)
    return {**metrics, "events_sent": len(events), "warm_up_events": len(warm),
            "lists_received": len(lists), "model_version": artifact.version,
            "topics": f"{run_id}.*" if keep_topics else None,
            "seconds": round(seconds, 1),
            "events_per_s": round(len(events) / seconds, 1) if seconds else None}


def _event_id(event: ReplayEvent) -> str:
    return str(json.loads(event.value)["event_id"])


def _produce(settings: Settings, messages: Sequence[tuple[str, bytes, bytes]],
             progress: Progress | None) -> None:
    from kafka import KafkaProducer

    from stream_rec.connection import kafka_python_config

    producer = KafkaProducer(**kafka_python_config(settings), linger_ms=5, acks="all")
    try:
        for topic, key, value in messages:
            producer.send(topic, key=key, value=value)
            if progress is not None:
                progress.update()
        producer.flush(timeout=120)
    finally:
        producer.close()
        if progress is not None:
            progress.close()


def _take_turns(settings: Settings, turns: TurnTaking, stall_s: float,
                progress: Progress) -> dict[str, ServedList]:
    """Send the events as ``turns`` allows and keep the first list published for each, until
    every event is answered or no list has come for ``stall_s``."""
    from kafka import KafkaConsumer, KafkaProducer

    from stream_rec.connection import kafka_python_config

    consumer = KafkaConsumer(settings.recommendations_topic, **kafka_python_config(settings),
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=None)
    producer = KafkaProducer(**kafka_python_config(settings), linger_ms=2, acks="all")
    lists: dict[str, ServedList] = {}
    last_new = time.monotonic()
    try:
        while not turns.done and time.monotonic() - last_new < stall_s:
            for event in turns.ready():
                producer.send(settings.events_topic, key=event.key, value=event.value)
            producer.flush(timeout=60)
            for records in consumer.poll(timeout_ms=200, max_records=5000).values():
                for record in records:
                    message = json.loads(record.value)
                    event_id = message.get("event_id")
                    if event_id in turns.waiting and event_id not in lists:
                        lists[event_id] = ServedList.from_message(message)
                        turns.answered(event_id)
                        last_new = time.monotonic()
                        progress.update()
    finally:
        producer.close()
        consumer.close()
        progress.close()
    return lists
