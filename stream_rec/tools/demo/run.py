"""`stream-rec demo`: stream-rec end to end on the embedded default, a local Kafka broker.

Starts the broker (unless one already answers) and creates the topics; writes the synthetic
storefront (or reads the dataset named by ``--data``); trains and publishes a small model when
the registry has none trained on that data; publishes the catalog; starts a worker; streams
shoppers into ``storefront.events``; serves a live page on 127.0.0.1 and prints, every few
seconds, what the worker made of the traffic. Ctrl-C (or ``duration_s``) stops all of it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from stream_rec.config import Settings
from stream_rec.datasets import Dataset, load_dataset
from stream_rec.errors import UserError
from stream_rec.offline.replay import catalog_messages, dataset_events
from stream_rec.tools.broker import LocalBroker
from stream_rec.tools.demo.experiment import ExperimentSampler
from stream_rec.tools.demo.site import DemoSite, FigureSampler, WorkerClient
from stream_rec.tools.demo.traffic import EventSender, Shoppers, storefront_traffic, stream_traffic
from stream_rec.tools.demo.web import DemoServer
from stream_rec.tools.storefront import StorefrontConfig, ensure_storefront, make_storefront
from stream_rec.tools.worker_process import WorkerProcess, settings_env
from stream_rec.topics import ensure_topics
from stream_rec.worker.state_folder import check_local_state, reset_local_state, tables_dir

STOREFRONT_FOLDER = "storefront"
# Epochs of the model the demo trains: the storefront trains in seconds per epoch, a real
# dataset can take minutes, so it gets a short run (retrain with `stream-rec train`).
STOREFRONT_EPOCHS = 8
DATASET_EPOCHS = 2


def run_demo(settings: Settings, data: str | None = None, duration_s: float | None = None,
             rate: float = 20.0) -> int:
    """Run `stream-rec demo` until Ctrl-C or ``duration_s`` is up; the process's exit status."""
    stop = threading.Event()
    with _stop_on_signals(stop):
        broker = LocalBroker(settings)
        was_running = broker.status().running
        status = broker.start()
        settings = settings.with_overrides(broker=status.bootstrap)
        try:
            ensure_topics(settings)
            _say(f"Kafka {settings.kafka_version} is up at {status.bootstrap}.")
            spec = data or _storefront_spec(settings)
            dataset = load_dataset(spec, settings)
            epochs = DATASET_EPOCHS if data else STOREFRONT_EPOCHS
            if not ensure_model(settings, spec, dataset, epochs, stop):
                return 0
            return _serve(settings, dataset, data is None, duration_s, rate, stop)
        finally:
            if not was_running:
                broker.stop()
                _say("Stopped Kafka.")


def _storefront_spec(settings: Settings) -> str:
    folder = Path(settings.state_dir).expanduser() / STOREFRONT_FOLDER
    ensure_storefront(folder)
    _say(f"Synthetic storefront (seed {StorefrontConfig().seed}) in {folder}.")
    return f"events:{folder}"


def ensure_model(settings: Settings, spec: str, dataset: Dataset, epochs: int,
                 stop: threading.Event | None = None, say: Any = None) -> bool:
    """Train and publish a model unless the current one was trained on this dataset; ``say``
    (default: print) gets the progress lines, and the trainer's output goes to stdout, or to
    stderr when ``say`` is given (a caller whose stdout is JSON).

    False when Ctrl-C stopped the training (it reaches the trainer too).
    """
    say = say or _say
    from stream_rec.model import FileRegistry

    registry = FileRegistry(settings.registry_dir)  # the demo's own local folder
    current = registry.current()
    trained_on = _trained_on(registry.root / current) if current else None
    if current is not None and trained_on == _data_identity(dataset):
        say(f"Serving model {current} from {registry.root}.")
        return True
    why = "yet" if current is None else f"for this data ({current} was trained on " \
        f"{(trained_on or {}).get('dataset', 'something else')})"
    say(f"No model in {registry.root} {why}: training a small one on {spec} "
        f"({epochs} epochs) ...")
    command = [sys.executable, "-m", "stream_rec.cli", "train", "--data", spec,
               "--registry", str(registry.root), "--epochs", str(epochs), "--publish"]
    # The trainer announces the new version on this broker, so it gets the demo's settings.
    env = {**os.environ, **settings_env(settings)}
    out = None if say is _say else sys.stderr
    if subprocess.run(command, check=False, env=env, stdout=out).returncode == 0:
        return True
    if stop is not None and stop.is_set():
        return False
    raise UserError("training the demo model failed (see the messages above)")


def _trained_on(folder: Path) -> dict[str, Any] | None:
    """The identity of the data a registry version was trained on (see _data_identity)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        trained = manifest["training"]["data_range"]
        return {key: trained[key] for key in ("dataset", "from_ms", "to_ms", "train_events")}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _data_identity(dataset: Dataset) -> dict[str, Any]:
    """Name, time span and size of the training split: a model trained on other data (or on
    a storefront of another seed) does not know the items the demo is about to stream."""
    span = dataset.time_range_ms()
    return {"dataset": dataset.name, "from_ms": span[0] if span else None,
            "to_ms": span[1] if span else None,
            "train_events": sum(len(s) for s in dataset.train)}


def _serve(settings: Settings, dataset: Dataset, synthetic: bool, duration_s: float | None,
           rate: float, stop: threading.Event) -> int:
    shoppers = Shoppers()
    with ExitStack() as stack:
        sender = EventSender(settings, shoppers)
        stack.callback(sender.close)
        for key, value in catalog_messages(dataset):
            sender.producer.send(settings.items_topic, key=key, value=value)
        sender.producer.flush(timeout=60)
        _say(f"Published {len(dataset.items)} catalog items to {settings.items_topic}.")

        client = WorkerClient(settings)
        sampler = FigureSampler(client)
        experiments = ExperimentSampler.for_settings(settings)
        site = DemoSite(settings, client, sampler, sender, shoppers, dataset.items, dataset.name,
                        experiments)
        server = _bind_page(site, settings.demo_port)  # a taken port fails before the worker
        stack.callback(_say, "Stopped the web page.")
        stack.callback(server.stop)

        worker = WorkerProcess(settings, Path(settings.state_dir).expanduser() / "worker.log")
        if (said := start_state_afresh_if_stale(settings)) is not None:
            _say(said)
        _say("Starting the worker ...")
        stack.callback(_stop_worker, worker)
        worker.start()
        _say(f"Worker ready: {worker.base_url}/health/ ; lists at "
             f"{worker.base_url}/users/USER_ID/recommendations/")
        sampler.start()
        stack.callback(sampler.stop)
        experiments.start()
        stack.callback(experiments.stop)
        server.start()
        _say(f"Live page: {server.url}  (pick a shopper, click an item, watch the list react)")

        events = (storefront_traffic(make_storefront(), shoppers) if synthetic
                  else _replayed(dataset))
        sender_thread = threading.Thread(target=stream_traffic, name="demo-traffic",
                                         args=(sender, events, rate, stop), daemon=True)
        sender_thread.start()
        stack.callback(sender_thread.join, 10)
        stack.callback(stop.set)
        _report_until(site, stop, duration_s)
    return 0


def start_state_afresh_if_stale(settings: Settings) -> str | None:
    """Discard the worker's local state when the broker can no longer restore it (it was
    reset, say); the line to tell the user, or None when the state was kept.

    A worker stops on such state and leaves the choice to its operator (`--reset-state`); the
    demo's state is disposable and its broker local, so the demo makes the choice itself.
    """
    if check_local_state(settings) is None:
        return None
    reset_local_state(settings)
    return (f"The worker's state in {tables_dir(settings)} does not match this broker (it "
            "was reset or lost its topics): starting the worker from empty state.")


def _bind_page(site: DemoSite, port: int) -> DemoServer:
    try:
        return DemoServer(site, port)
    except OSError as exc:
        raise UserError(f"cannot serve the demo page on 127.0.0.1:{port} ({exc.strerror}): "
                        "pass --page-port or set STREAM_REC_DEMO_PORT") from None


def _replayed(dataset: Dataset) -> Iterator[dict[str, Any]]:
    for event in dataset_events(dataset, "test"):
        yield json.loads(event.value)


def _report_until(site: DemoSite, stop: threading.Event, duration_s: float | None) -> None:
    deadline = None if duration_s is None else time.monotonic() + duration_s
    while not stop.wait(5.0 if deadline is None else
                        max(min(5.0, deadline - time.monotonic()), 0.0)):
        _report(site)
        if deadline is not None and time.monotonic() >= deadline:
            break


def _report(site: DemoSite) -> None:
    figures = site.sampler.figures()
    if figures["events_in"] is None:
        return
    _say(f"events in {figures['events_in']}, lists out {figures['lists_out']}, "
         f"dead letters {figures['dead_letters']}, {figures['events_per_s'] or 0} events/s, "
         f"p99 {figures['p99_label']}, model {figures['model_version']}")
    active = site.shoppers.active(1, 0)
    if not active:
        return
    user = active[0]["user_id"]
    try:
        view = site.shopper(user)
    except (OSError, ValueError):
        return
    recs = view["recommendations"]
    if recs:
        top = ", ".join(f"{i['item_id']} ({i.get('category') or i['reason']})"
                        for i in recs["items"][:3])
        _say(f"  shopper {user}: {top} ...  [{recs['policy']['method']}]")


def _stop_worker(worker: WorkerProcess) -> None:
    worker.stop()
    _say("Stopped the worker.")


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
