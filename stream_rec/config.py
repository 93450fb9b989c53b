"""All of stream-rec's settings, in one place.

Every setting has a default, an environment variable (``STREAM_REC_<NAME>``) and a one-line
description. CLI flags override the environment: commands call ``load_settings(**overrides)``.
``docs/operations.md`` lists them; a test keeps that table in step with this module.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_rec.secret import Secret

ENV_PREFIX = "STREAM_REC_"
REPO_ROOT = Path(__file__).resolve().parent.parent


def _setting(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Settings:
    """Typed, immutable settings. Units are in the names (``_ms``, ``_mb``, ``_bytes``)."""

    # --- Kafka connection -------------------------------------------------------------------
    broker: str = _setting("127.0.0.1:9092", "Kafka bootstrap servers, host:port[,host:port].")
    security_protocol: str = _setting(
        "PLAINTEXT", "Kafka security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: str = _setting("", "SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).")
    sasl_username: str = _setting("", "SASL user name.")
    sasl_password: Secret = _setting(Secret(), "SASL password (never printed or logged).")
    ssl_cafile: str = _setting("", "CA bundle for SSL connections to Kafka.")

    # --- Local broker (tests, benchmarks, demo) ---------------------------------------------
    kafka_version: str = _setting("4.4.0", "Apache Kafka release run by `stream-rec kafka`.")
    kafka_port: int = _setting(9092, "Port of the local broker's client listener (127.0.0.1).")
    kafka_controller_port: int = _setting(
        0, "Port of the local KRaft controller listener; 0 means kafka_port + 1."
    )
    kafka_heap_mb: int = _setting(512, "Java heap of the local broker, in MB.")
    kafka_home: str = _setting(
        "~/.cache/stream-rec", "Cache folder for the broker's jars (kafka-<version>/ inside)."
    )
    kafka_data_dir: str = _setting(
        "~/.local/share/stream-rec/kafka", "KRaft log and metadata folder of the local broker."
    )
    demo_port: int = _setting(
        8080, "Port of `stream-rec demo`'s live web page (127.0.0.1 only); 0 = any free port.")

    # --- Topics -----------------------------------------------------------------------------
    events_topic: str = _setting("storefront.events", "Shopper events in (key = user_id).")
    dlq_topic: str = _setting("storefront.events.dlq", "Rejected input, with the reason.")
    items_topic: str = _setting("storefront.items", "Catalog, compacted (key = item_id).")
    recommendations_topic: str = _setting("recommendations", "Lists out (key = user_id).")
    model_updates_topic: str = _setting("model-updates", "Model version announcements.")
    partitions: int = _setting(4, "Partitions of the events and recommendations topics.")
    replication_factor: int = _setting(1, "Replication factor of topics stream-rec creates.")

    # --- Worker -----------------------------------------------------------------------------
    app_id: str = _setting("stream-rec", "Faust app id: consumer group and changelog prefix.")
    state_dir: str = _setting("./var/state", "Where the worker keeps its RocksDB tables.")
    registry_dir: str = _setting("./registry", "File-system model registry.")
    web_host: str = _setting("127.0.0.1", "Bind address of the worker's HTTP server.")
    web_port: int = _setting(6066, "Port of the worker's HTTP server.")
    http_token: Secret = _setting(
        Secret(), "Bearer token every HTTP route but /health/ requires (never printed or "
        "logged); empty = open, allowed only on loopback or with http_open.")
    http_open: bool = _setting(
        False, "Let a worker with no http_token bind an address other than loopback, serving "
        "shoppers' lists and state to anyone who can reach it; otherwise it refuses to start.")
    max_event_bytes: int = _setting(65536, "Larger event payloads go to the DLQ, in bytes.")
    state_expiry_days: float = _setting(
        90.0, "Shoppers inactive this long (by the Kafka time of their last event) are deleted "
        "like a forget request, swept a few hundred records a second; 0 = keep everyone.")
    max_event_ahead_s: float = _setting(
        600.0, "How far ahead of the worker's clock an event's `ts` may count, in s; later "
        "times are clamped to it for trending, recency and ordering (metric "
        "stream_rec_events_clamped_total).")
    batch_max_events: int = _setting(256, "Events scored together in one stream.take batch.")
    batch_wait_ms: int = _setting(10, "Longest wait to fill a batch, in ms.")
    stop_timeout_s: float = _setting(
        30.0, "Longest a worker's stop (SIGTERM) may take before it exits anyway; keep it under "
        "the orchestrator's grace period. Events not yet committed are processed again.")
    produce_timeout_s: float = _setting(
        30.0, "How long the worker's producer keeps trying to deliver a list or a state change "
        "(aiokafka's request timeout; one send may take up to twice this) before the worker "
        "gives up and exits with status 75, to be restarted: a broker away for longer costs a "
        "restart, no event. Bounds a running worker; a stop is bounded by stop_timeout_s "
        "(docs/operations.md).")
    commit_repair_after_s: float = _setting(
        20.0, "How long a partition's offset commits may stay stopped (acked offsets past a gap, "
        "or a commit recorded past the processed events) before the worker rejoins its group, "
        "so that every partition resumes from its committed offset as after a restart; 0 only "
        "reports it (docs/operations.md).")
    producer_linger_ms: int = _setting(
        5, "How long the worker's producer gathers messages into one request, in ms.")
    standby_replicas: int = _setting(1, "Standby copies of each state partition on other workers.")
    rocksdb_write_buffer_mb: int = _setting(
        8, "RocksDB memtable size per table partition, in MB (two are kept); Faust's default "
        "of 3 x 64 MB per partition lets a worker's memory grow by gigabytes.")
    rocksdb_block_cache_mb: int = _setting(
        32, "RocksDB block cache per table partition, in MB (Faust's default: 2 GB each).")
    processing_guarantee: str = _setting(
        "at_least_once", "at_least_once (supported); exactly_once only to re-run its "
        "evaluation: it lost state updates in our crash test (docs/operations.md).")
    recommend_in_thread: bool = _setting(
        True, "Score and re-rank each batch on a helper thread, so Kafka I/O and the next "
        "batch's intake use the second core meanwhile (numpy and onnxruntime free the GIL).")
    onnx_threads: int = _setting(1, "onnxruntime intra-op threads per worker process.")
    gc_freeze: bool = _setting(
        True, "Once the catalog and model are loaded (and after each model swap), collect and "
        "freeze the heap so Python's garbage collector stops re-walking long-lived objects.")
    blas_threads: int = _setting(
        1, "numpy (BLAS) threads per worker process; more only helps with idle cores.")
    history_length: int = _setting(50, "Recent events kept per shopper.")
    trending_half_life_s: float = _setting(3600.0, "Half-life of trending counts, in seconds.")
    candidate_pool: int = _setting(200, "Candidates retrieved and scored per event.")
    list_length: int = _setting(20, "Items per recommendation list.")

    # --- Re-ranking -------------------------------------------------------------------------
    # Pool size and list length are `candidate_pool` and `list_length` (Worker, above).
    rerank_policy: str = _setting(
        "dpp:0.15",
        "Default re-ranking policy: none, dpp:THETA (THETA = weight of diversity, 0..1) or "
        "mmr:LAMBDA (LAMBDA = weight of relevance, 0..1); a request may name its own.",
    )
    rerank_category_weight: float = _setting(
        0.5, "Weight of same-category in item similarity, 0..1 (the rest: embedding cosine)."
    )
    rerank_max_per_category: int = _setting(0, "Most items of one category per list; 0 = no cap.")
    rerank_exclude_purchased: bool = _setting(True, "Never recommend items already purchased.")
    rerank_max_shows_without_click: int = _setting(
        3, "Stop recommending an item shown this many times without a click; 0 = never stop."
    )

    # --- Training and evaluation ---
    data_dir: str = _setting(
        "../shared/data", "Where dataset folders named in a data spec are looked up.")
    train_epochs: int = _setting(
        12, "Most training epochs (passes over every prefix -> next pair); see train_patience.")
    train_batch_size: int = _setting(1024, "Training pairs per step.")
    train_time_budget_s: float = _setting(
        1680.0, "Training stops (learning-rate decay compressed) to fit this, in s; 0 = none.")
    train_negatives: int = _setting(
        4096, "Items sampled per step for the softmax (0 = full softmax over the catalog).")
    train_validation_fraction: float = _setting(
        0.02, "Most recent share of training sessions held out to stop early (0 = none).")
    train_patience: int = _setting(
        3, "Epochs without a better validation P@K before the best weights get one last,"
        " annealing epoch and training stops.")
    learning_rate: float = _setting(0.002, "Adam's peak learning rate (cosine decay to 0).")
    embedding_dim: int = _setting(100, "Width of item, attribute and shopper vectors.")
    max_history: int = _setting(50, "Most recent history events the model reads.")
    score_scale: float = _setting(16.0, "Scale of the cosine scores (inverse temperature).")
    dropout: float = _setting(0.1, "Dropout on history item vectors while training.")
    session_graph_steps: int = _setting(
        1, "Propagation steps over the session's item-transition graph (0 = attention only).")
    cold_item_rate: float = _setting(
        0.1, "Share of items treated as unknown per step, so attributes learn to score them.")
    price_buckets: int = _setting(10, "Quantile buckets for a numeric price attribute.")
    min_item_count: int = _setting(
        1, "Items seen fewer times in training stay out of the vocabulary.")
    train_window_ms: int = _setting(
        7 * 24 * 3_600_000, "History a kafka: data spec reads, in ms (before now).")
    holdout_fraction: float = _setting(
        0.1, "Most recent share of events held out to evaluate (kafka: data, trainer).")
    eval_k: int = _setting(20, "List length K of the offline metrics (P@K, MRR@K, ...).")
    eval_batch_size: int = _setting(256, "Test cases scored per onnxruntime call in evaluate.")
    promotion_metric: str = _setting("MRR@20", "Metric the trainer's promotion gate compares.")
    promotion_tolerance: float = _setting(
        0.02, "A candidate may trail the current model by this share of its metric, 0..1.")
    retrain_every_ms: int = _setting(3_600_000, "Period of `stream-rec trainer`, in ms.")

    def __post_init__(self) -> None:
        # Code and CLI flags pass plain strings; keep every secret wrapped whatever the source.
        for name in _SECRET_SETTINGS:
            if not isinstance(getattr(self, name), Secret):
                object.__setattr__(self, name, Secret(getattr(self, name)))

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with the non-None overrides applied (CLI flags use this)."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def controller_port(self) -> int:
        return self.kafka_controller_port or self.kafka_port + 1

    @property
    def kafka_jars_dir(self) -> Path:
        return Path(self.kafka_home).expanduser() / f"kafka-{self.kafka_version}"


_SECRET_SETTINGS = tuple(f.name for f in dataclasses.fields(Settings) if f.type == "Secret")


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _parse(raw: str, kind: type) -> Any:
    if kind is bool:
        if raw.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.strip().lower() in {"0", "false", "no", "off", ""}:
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    return kind(raw)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Defaults, then ``STREAM_REC_*`` variables, then explicit overrides (CLI flags)."""
    env = os.environ if environ is None else environ
    types = {"str": str, "int": int, "float": float, "bool": bool, "Secret": Secret}
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        raw = env.get(env_name(f.name))
        if raw is None:
            continue
        kind = types[f.type if isinstance(f.type, str) else f.type.__name__]
        try:
            values[f.name] = _parse(raw, kind)
        except ValueError as exc:
            raise ValueError(f"{env_name(f.name)}={raw!r}: expected {kind.__name__}") from exc
    return Settings(**values).with_overrides(**overrides)


def settings_reference() -> Iterator[tuple[str, str, Any, str]]:
    """(name, environment variable, default, description) for every setting, in order."""
    for f in dataclasses.fields(Settings):
        yield f.name, env_name(f.name), f.default, f.metadata["doc"]
