"""`stream-rec demo`: stream-rec end to end on the embedded default, a local Kafka broker.

Starts the broker (unless one already answers) and creates the topics; trains and publishes a
small model when the registry has none; starts a worker; then streams a dataset's shoppers into
``storefront.events`` at a steady rate and prints, every few seconds, what the worker made of
them. Ctrl-C (or ``duration_s``) stops the traffic, the worker and a broker it started.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from stream_rec.broker import LocalBroker
from stream_rec.config import Settings
from stream_rec.errors import UserError
from stream_rec.topics import ensure_topics
from stream_rec.worker_process import WorkerProcess

log = logging.getLogger(__name__)


def default_data(settings: Settings) -> str:
    """The first bundled dataset with item attributes that is present on this machine."""
    root = Path(settings.data_dir).expanduser()
    for spec, folder in (("events", "jdata2018"), ("categories", "cosmetics"),
                         ("sessions", "diginetica")):
        if (root / folder).is_dir():
            return f"{spec}:{root / folder}"
    raise UserError(f"no dataset found under {root}: pass --data SPEC "
                    "(sessions:PATH, categories:PATH or events:PATH)")


def run_demo(settings: Settings, data: str | None = None, duration_s: float | None = None,
             rate: float = 50.0) -> int:
    stop = threading.Event()
    with _stop_on_signals(stop):
        broker = LocalBroker(settings)
        was_running = broker.status().running
        status = broker.start()
        settings = settings.with_overrides(broker=status.bootstrap)
        try:
            ensure_topics(settings)
            _say(f"Kafka {settings.kafka_version} is up at {status.bootstrap}.")
            spec = data or default_data(settings)
            _ensure_model(settings, spec)
            return _serve(settings, spec, duration_s, rate, stop)
        finally:
            if not was_running:
                broker.stop()
                _say("Stopped Kafka.")


def _ensure_model(settings: Settings, spec: str) -> None:
    from stream_rec.model import FileRegistry

    registry = FileRegistry(settings.registry_dir)
    if registry.current() is not None:
        _say(f"Serving model {registry.current()} from {registry.root}.")
        return
    _say(f"No model in {registry.root} yet: training a small one on {spec} ...")
    command = [sys.executable, "-m", "stream_rec.cli", "train", "--data", spec,
               "--registry", str(registry.root), "--epochs", "2", "--publish"]
    if subprocess.run(command, check=False).returncode != 0:
        raise UserError("training the demo model failed (see the messages above)")


def _serve(settings: Settings, spec: str, duration_s: float | None, rate: float,
           stop: threading.Event) -> int:
    from stream_rec.datasets import load_dataset
    from stream_rec.replay import dataset_events

    worker = WorkerProcess(settings, Path(settings.state_dir).expanduser() / "worker.log")
    _say("Starting the worker ...")
    worker.start()
    _say(f"Worker ready: {worker.base_url}/health/ ; lists at "
         f"{worker.base_url}/users/USER_ID/recommendations/")
    events = dataset_events(load_dataset(spec, settings), "test")
    sender = threading.Thread(target=_stream, args=(settings, events, rate, stop), daemon=True)
    sender.start()
    deadline = None if duration_s is None else time.monotonic() + duration_s
    try:
        while not stop.wait(5.0):
            _report(worker, events)
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        stop.set()
        sender.join(timeout=10)
        worker.stop()
        _say("Stopped the worker.")
    return 0


def _stream(settings: Settings, events: list, rate: float, stop: threading.Event) -> None:
    from kafka import KafkaProducer

    from stream_rec.connection import kafka_python_config
    from stream_rec.replay import RateLimiter

    producer = KafkaProducer(**kafka_python_config(settings), linger_ms=5)
    limiter = RateLimiter(rate)
    try:
        for event in events:
            if stop.is_set():
                break
            limiter.wait()
            producer.send(settings.events_topic, key=event.key, value=event.value)
    finally:
        producer.close(timeout=10)


def _report(worker: WorkerProcess, events: list) -> None:
    try:
        metrics = dict(line.rsplit(" ", 1) for line in worker.get_text("/metrics/").splitlines()
                       if line and not line.startswith("#") and "{" not in line)
        health = worker.get_json("/health/")
    except (OSError, ValueError):
        return
    done = int(float(metrics.get("stream_rec_recommendations_total", "0")))
    _say(f"events in {int(float(metrics.get('stream_rec_events_in_total', '0')))}, "
         f"lists out {done}, dead letters {int(float(metrics.get('stream_rec_dlq_total', '0')))}"
         f", model {health.get('model_version')}")
    if done:
        user = json.loads(events[min(done, len(events)) - 1].value)["user_id"]
        try:
            rec = worker.get_json(f"/users/{user}/recommendations/")
        except (OSError, ValueError):
            return
        top = ", ".join(f"{i['item_id']} ({i['reason']})" for i in rec["items"][:3])
        _say(f"  shopper {user}: {top} ...  [{rec['policy']['method']}]")


def _say(text: str) -> None:
    print(text, flush=True)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
