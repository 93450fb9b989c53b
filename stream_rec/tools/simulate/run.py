"""`stream-rec experiment simulate`: a real worker, simulated shoppers, the experiment's report.

Starts (or uses) a broker, gives the run topics of its own, publishes the synthetic
storefront's catalog and the experiment, starts a worker, lets the simulated shoppers shop
(``driver.py``), waits until the worker has handled every event and its changelogs hold every
figure, and prints ``stream-rec experiment report``'s JSON with what the simulator sent.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stream_rec.commands.experiment import checked, experiment_report, start_record
from stream_rec.config import Settings, load_settings
from stream_rec.errors import UserError
from stream_rec.offline.replay import catalog_messages
from stream_rec.tools.broker import kafka_for
from stream_rec.tools.simulate.driver import Ledger, SimConfig, Simulation, drain
from stream_rec.tools.storefront import make_storefront
from stream_rec.tools.storefront.files import ensure_storefront
from stream_rec.tools.worker_process import WorkerProcess, isolated_settings
from stream_rec.topics import ensure_topics, publish_experiment

BANDIT_INTERVAL_S = 5.0  # a simulation compresses hours into a minute: re-weight often
SIM_REGISTRY = "registry-sim"


def run_simulation(args: argparse.Namespace) -> int:
    """The command: simulate, then print the report (JSON with --json)."""
    settings = load_settings(broker=args.broker)
    if not args.arms:
        raise UserError("simulate needs --arms, e.g. control=dpp:0.15,diverse=dpp:0.3")
    lift = parse_lift(args.lift)
    config = SimConfig(shoppers=args.shoppers, events=args.events, seed=args.seed, lift=lift)
    with ExitStack() as stack:
        settings = stack.enter_context(kafka_for(settings, args.broker))
        registry = args.registry or _storefront_model(settings, _say_on_stderr)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stream-rec-sim-")))
        result = simulate(settings, args.id or "sim", args.arms, config, Path(registry), work,
                          allocation=args.allocation, weights=args.weights, floor=args.floor,
                          progress=_say_on_stderr)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


def parse_lift(text: str | None) -> dict[str, float]:
    """``name=factor,...`` (the planted click multipliers)."""
    lift: dict[str, float] = {}
    for pair in (text or "").split(","):
        if not pair.strip():
            continue
        name, equals, factor = pair.partition("=")
        try:
            lift[name.strip()] = float(factor)
        except ValueError:
            equals = ""
        if not equals or not lift.get(name.strip(), -1.0) >= 0:
            raise UserError(f"--lift: {pair!r} is not name=factor with a factor >= 0")
    return lift


def simulate(settings: Settings, experiment_id: str, arms: str, config: SimConfig,
             registry: Path, work: Path, *, allocation: str = "fixed",
             weights: str | None = None, floor: float | None = None,
             bandit_interval_s: float = BANDIT_INTERVAL_S,
             progress: Any = None) -> dict[str, Any]:
    """One simulation on ``settings``' broker, in topics of its own: the report, with what
    the simulator sent under ``"simulation"``."""
    say = progress or (lambda _: None)
    run_id = f"sim-{config.seed}-{secrets.token_hex(3)}"
    settings = run_settings(settings, run_id, registry, work, bandit_interval_s)
    ensure_topics(settings)
    storefront = make_storefront()
    publish_catalog(settings)
    record = start_record(experiment_id, arms, weights, allocation, floor)
    publish_experiment(settings, checked(experiment_id, record))
    worker = WorkerProcess(settings, work / "worker.log")
    say(f"starting a worker on {settings.broker} (topics {run_id}.*) ...")
    worker.start()
    simulation = Simulation(settings, storefront, config, say)
    try:
        ledger = simulation.run()
        drain(simulation, 120.0)
        report = settled_report(settings, experiment_id, ledger, 120.0)
    finally:
        simulation.close()
        worker.stop()
    report["simulation"] = {
        "shoppers": config.shoppers, "events": len(ledger.event_ids), "seed": config.seed,
        "lift": config.lift, "topics": run_id,
        "sent": {arm or "(none)": {**{k: v for k, v in asdict(a).items() if k != "shoppers"},
                                   "shoppers": len(a.shoppers)}
                 for arm, a in sorted(ledger.arms.items())}}
    return report


def run_settings(settings: Settings, run_id: str, registry: Path, work: Path,
                 bandit_interval_s: float) -> Settings:
    """Settings whose topics, consumer group and state belong to this run alone."""
    return isolated_settings(settings, run_id, work).with_overrides(
        registry_dir=str(registry), bandit_interval_s=bandit_interval_s)


def publish_catalog(settings: Settings) -> None:
    """The synthetic storefront's catalog on the run's items topic."""
    from kafka import KafkaProducer

    from stream_rec.connection import kafka_python_config
    from stream_rec.datasets import load_dataset

    dataset = load_dataset(f"events:{_storefront_folder(settings)}", settings)
    producer = KafkaProducer(**kafka_python_config(settings), acks="all")
    try:
        for key, value in catalog_messages(dataset):
            producer.send(settings.items_topic, key=key, value=value)
        producer.flush(timeout=60)
    finally:
        producer.close()


def settled_report(settings: Settings, experiment_id: str, ledger: Ledger, timeout_s: float
                   ) -> dict[str, Any]:
    """The report once the changelogs hold every impression and click the simulator sent
    (the worker writes them a moment after it publishes the lists)."""
    deadline = time.monotonic() + timeout_s
    while True:
        report = experiment_report(settings, experiment_id)
        arms = report["arms"]
        want = {name: (a.lists, a.clicks) for name, a in ledger.arms.items() if name in arms}
        have = {name: (arms[name]["impressions"], arms[name]["clicks"]) for name in want}
        if have == want or time.monotonic() > deadline:
            return report
        time.sleep(1.0)


def _storefront_folder(settings: Settings) -> Path:
    return ensure_storefront(Path(settings.state_dir).expanduser() / "storefront")


def _storefront_model(settings: Settings, say: Any) -> str:
    """A registry with a model trained on the synthetic storefront (trained once)."""
    from stream_rec.datasets import load_dataset
    from stream_rec.tools.demo.run import STOREFRONT_EPOCHS, ensure_model

    registry = str(Path(SIM_REGISTRY).resolve())
    spec = f"events:{_storefront_folder(settings)}"
    model_settings = settings.with_overrides(registry_dir=registry)
    ensure_model(model_settings, spec, load_dataset(spec, settings), STOREFRONT_EPOCHS, say=say)
    return registry


def _say_on_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
