"""What `stream-rec bench` does around a measurement: broker, model, work folder, clean-up."""

from __future__ import annotations

import logging
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from stream_rec.config import Settings, load_settings
from stream_rec.errors import UserError
from stream_rec.tools.bench.benchmark import BenchPlan, run_benchmark
from stream_rec.tools.bench.catalog_data import (
    catalog_workload,
    ensure_catalog_data,
    ensure_catalog_model,
)
from stream_rec.tools.bench.live_swap import stage_registry
from stream_rec.tools.bench.model import current_version, ensure_bench_model
from stream_rec.tools.bench.pipeline import PipelineTarget, pipeline_settings
from stream_rec.tools.bench.soak import SoakPlan, run_soak
from stream_rec.tools.bench.state_size import measure_state_size
from stream_rec.tools.bench.synthetic_catalog import SyntheticConfig
from stream_rec.tools.bench.topics import delete_run_topics, run_marker
from stream_rec.tools.bench.workload import load_workload
from stream_rec.tools.broker import kafka_for

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchOptions:
    """Everything the command line chooses; see `stream-rec bench --help`."""

    plan: BenchPlan
    soak: SoakPlan | None = None
    state_users: int | None = None
    broker: str | None = None  # None: $STREAM_REC_BROKER, else the local broker
    registry: Path | None = None  # None: the cached bench model (trained if needed)
    use_model: bool = True
    train_epochs: int = 1
    keep: bool = False  # keep the work folder and the run's topics (debugging)
    keep_broker: bool = False  # leave a local broker this run started running
    # a synthetic catalog of this many items (``plan.data`` names its cached dataset) and a
    # model of that size, instead of a dataset
    catalog_items: int | None = None


def _stderr(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


def needs_kafka(options: BenchOptions) -> bool:
    """False for a state-size-only run (``--events 0 --state-users U``)."""
    return options.soak is not None or options.plan.events > 0


def model_registry(options: BenchOptions, work_dir: Path) -> Path:
    """The registry the worker serves from; an empty one means fallback lists."""
    if options.registry is not None:
        # Serve its newest model when none is current, rather than quietly measuring the
        # fallback lists of an unpromoted registry.
        if options.use_model and current_version(options.registry) is None:
            raise UserError(f"{options.registry} holds no model version to serve")
        return options.registry
    if options.use_model:
        cached = (ensure_catalog_model(SyntheticConfig(n_items=options.catalog_items),
                                       options.train_epochs)
                  if options.catalog_items is not None
                  else ensure_bench_model(options.plan.data, options.train_epochs))
        if cached is not None:
            return cached
    empty = work_dir / "empty-registry"
    empty.mkdir(parents=True, exist_ok=True)
    return empty


def quiet_client_logs() -> None:
    """Kafka clients log every connection at INFO: drown the progress lines otherwise."""
    for name in ("kafka", "aiokafka"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(options: BenchOptions) -> dict[str, Any]:
    """Run what ``options`` ask for and return the one JSON-able result object."""
    return in_session(options.broker, options.keep, options.keep_broker,
                      lambda settings, run_id, work_dir: _measure(options, settings, run_id,
                                                                  work_dir),
                      kafka=needs_kafka(options))


def in_session(broker: str | None, keep: bool, keep_broker: bool,
               measure: Callable[[Settings, str, Path], T], kafka: bool = True) -> T:
    """Run ``measure(settings, run_id, work_dir)`` with a broker (the one named, the one in
    the environment, or the local one, started if needed), a fresh run id and work folder;
    afterwards delete the run's topics and the folder unless ``keep``. SIGTERM is turned
    into KeyboardInterrupt meanwhile, so a killed bench still stops the processes it started
    (they run in their own sessions and would otherwise outlive it)."""
    quiet_client_logs()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _session(broker, keep, keep_broker, measure, kafka)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _session(broker: str | None, keep: bool, keep_broker: bool,
             measure: Callable[[Settings, str, Path], T], kafka: bool) -> T:
    base = load_settings(broker=broker)
    run_id = uuid.uuid4().hex[:8]
    work_dir = Path(tempfile.mkdtemp(prefix=f"stream-rec-{run_marker(run_id)}-"))
    try:
        if not kafka:
            return measure(base, run_id, work_dir)
        with kafka_for(base, broker, keep_broker, say=_stderr) as settings:
            try:
                return measure(settings, run_id, work_dir)
            finally:
                if not keep:
                    delete_run_topics(settings, run_id)
    finally:
        if keep:
            _stderr(f"kept the work folder {work_dir} and the run's topics ({run_marker(run_id)}*)")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


def _measure(options: BenchOptions, settings: Settings, run_id: str,
             work_dir: Path) -> dict[str, Any]:
    plan = options.plan
    folder = None
    if options.catalog_items is not None:
        folder = ensure_catalog_data(SyntheticConfig(n_items=options.catalog_items))
    registry = model_registry(options, work_dir) if needs_kafka(options) else work_dir
    if options.plan.hot_swap and "pipeline" in options.plan.targets:
        if current_version(registry) is None:
            raise UserError("--hot-swap needs a model to swap: leave out --no-model")
        registry = stage_registry(registry, work_dir)  # its versions are the bench's own
    _stderr(f"loading {plan.data}")
    workload = load_workload(plan.data, settings) if folder is None else catalog_workload(folder)
    _stderr(f"{len(workload.sessions)} sessions, {len(workload.catalog)} catalog items; "
            f"model registry {registry}")
    result: dict[str, Any] = {}
    if options.soak is not None:
        cfg = pipeline_settings(settings, f"{run_marker(run_id)}-soak", work_dir, registry)
        result = run_soak(options.soak, PipelineTarget(cfg, workload, work_dir), workload,
                          run_id)
    elif plan.events > 0:
        bench = run_benchmark(plan, settings, workload, run_id, work_dir, registry)
        health = bench.targets["pipeline"].health if "pipeline" in bench.targets else {}
        _stderr(f"model served: {health.get('model_version') or 'none (fallback lists)'}; "
                f"checks: " + "; ".join(f"{name} {run.checks}"
                                        for name, run in bench.targets.items()))
        result = bench.result
    if options.state_users:
        size = measure_state_size(workload, options.state_users, work_dir,
                                  partitions=settings.partitions, dim=settings.embedding_dim,
                                  seed=plan.seed)
        result.update(size.to_dict())
    return result
