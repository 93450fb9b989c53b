"""All of stream-rec's settings, in one place.

Every setting has a default, an environment variable (``STREAM_REC_<NAME>``), a one-line
description and a rule its value must follow. CLI flags override the environment: commands call
``load_settings(**overrides)``. A value that breaks its rule, from the environment, a flag or
code, raises ``SettingsError`` naming the variable, the value and what is expected, so that
a typo stops a command at once instead of deep inside Kafka, RocksDB or TensorFlow.
``docs/operations.md`` lists them; a test keeps that table in step with this module.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_rec.errors import SettingsError
from stream_rec.secret import Secret

ENV_PREFIX = "STREAM_REC_"
REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_PORT = 65535


@dataclass(frozen=True)
class Rule:
    """What a setting's value must be: a test, and the words an error message says it with."""

    accepts: Callable[[Any], bool]
    expected: str

    def holds(self, value: Any) -> bool:
        """True when ``value`` follows the rule (a test that trips over the type says no)."""
        try:
            return bool(self.accepts(value))
        except (TypeError, ValueError):
            return False


def _setting(default: Any, doc: str, rule: Rule | None = None) -> Any:
    return field(default=default, metadata={"doc": doc, "rule": rule})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _integer(at_least: int) -> Rule:
    return Rule(lambda v: _is_int(v) and v >= at_least, f"an integer >= {at_least}")


def _number(at_least: float | None = None, above: float | None = None) -> Rule:
    if above is not None:
        return Rule(lambda v: _is_number(v) and v > above, f"a number > {above:g}")
    low = 0.0 if at_least is None else at_least
    return Rule(lambda v: _is_number(v) and v >= low, f"a number >= {low:g}")


def _fraction(above_zero: bool = False, below_one: bool = False) -> Rule:
    def accepts(v: Any) -> bool:
        return (_is_number(v) and (v > 0 if above_zero else v >= 0)
                and (v < 1 if below_one else v <= 1))

    if not above_zero and not below_one:
        return Rule(accepts, "a number from 0 to 1")
    return Rule(accepts, f"a number {'>' if above_zero else '>='} 0 and "
                         f"{'<' if below_one else '<='} 1")


def _port(allow_zero: bool) -> Rule:
    low = 0 if allow_zero else 1
    return Rule(lambda v: _is_int(v) and low <= v <= MAX_PORT,
                f"a port number from {low} to {MAX_PORT}")


def _one_of(*options: str, ignore_case: bool = False) -> Rule:
    def accepts(v: Any) -> bool:
        return isinstance(v, str) and (v.upper() if ignore_case else v) in options

    named = [o for o in options if o]
    words = ", ".join(named[:-1]) + f" or {named[-1]}"
    return Rule(accepts, ("one of " if len(named) > 2 else "") + words
                + (" (or empty for none)" if "" in options else ""))


def _matching(pattern: str, expected: str) -> Rule:
    compiled = re.compile(pattern)
    return Rule(lambda v: isinstance(v, str) and compiled.fullmatch(v) is not None, expected)


def _is_broker_list(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    for server in value.split(","):
        host, colon, port = server.strip().rpartition(":")
        if not server.strip() or any(c.isspace() for c in server.strip()):
            return False
        # host:port, or a bare host (the client's default port); "[::1]:9092" ends in a port.
        if colon and (not host or not port.isdigit() or not 1 <= int(port) <= MAX_PORT):
            return False
    return True


def _is_rerank_policy(value: Any) -> bool:
    # Imported here: the re-ranking package brings numpy, which `stream-rec --help` need not load.
    from stream_rec.rerank.policy import RerankPolicy

    if not isinstance(value, str):
        return False
    RerankPolicy.parse(value)  # raises ValueError on anything it cannot use
    return True


# Kafka's own rule for topic names (and for what it derives from the app id: group, changelogs).
_TOPIC = _matching(r"(?!\.{1,2}$)[A-Za-z0-9._-]{1,249}",
                   "a Kafka topic name: up to 249 letters, digits, '.', '_' or '-'")
_APP_ID = _matching(r"[A-Za-z0-9._-]{1,200}",
                    "a name of letters, digits, '.', '_' or '-' (it prefixes topic names)")
_FOLDER = _matching(r".*\S.*", "a folder path (not empty)")
# Empty binds every address, as 0.0.0.0 does (the HTTP API then needs a token or http_open).
_HOST = _matching(r"\S*", "a host name or IP address, without spaces")
_KAFKA_RELEASE = _matching(r"\d+(\.\d+){1,3}", "an Apache Kafka release number such as 4.4.0")
_BOOLEAN = Rule(lambda v: isinstance(v, bool), "true or false (also yes/no, on/off, 1/0)")
_BROKERS = Rule(_is_broker_list, "Kafka bootstrap servers: HOST:PORT, several separated by ','")
_RERANK_POLICY = Rule(_is_rerank_policy, "none, dpp:THETA or mmr:LAMBDA, with THETA and LAMBDA "
                                         "from 0 to 1")
METRIC_NAMES = ("P", "MRR", "NDCG", "catalog_coverage", "ILD", "categories")
_METRIC = _matching(rf"({'|'.join(METRIC_NAMES)})@[1-9][0-9]*",
                    f"an offline metric at K, such as MRR@20 ({', '.join(METRIC_NAMES)})")


@dataclass(frozen=True)
class Settings:
    """Typed, immutable settings. Units are in the names (``_ms``, ``_mb``, ``_bytes``)."""

    # --- Kafka connection -------------------------------------------------------------------
    broker: str = _setting(
        "127.0.0.1:9092", "Kafka bootstrap servers, host:port[,host:port].", _BROKERS)
    security_protocol: str = _setting(
        "PLAINTEXT", "Kafka security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
        _one_of("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL", ignore_case=True))
    sasl_mechanism: str = _setting(
        "", "SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).",
        _one_of("", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))
    sasl_username: str = _setting("", "SASL user name.")
    sasl_password: Secret = _setting(Secret(), "SASL password (never printed or logged).")
    ssl_cafile: str = _setting("", "CA bundle for SSL connections to Kafka.")

    # --- Local broker (tests, benchmarks, demo) ---------------------------------------------
    kafka_version: str = _setting(
        "4.4.0", "Apache Kafka release run by `stream-rec kafka`.", _KAFKA_RELEASE)
    kafka_port: int = _setting(
        9092, "Port of the local broker's client listener (127.0.0.1).", _port(allow_zero=False))
    kafka_controller_port: int = _setting(
        0, "Port of the local KRaft controller listener; 0 means kafka_port + 1.",
        _port(allow_zero=True))
    kafka_heap_mb: int = _setting(
        512, "Java heap of the local broker, in MB.", _integer(at_least=1))
    kafka_home: str = _setting(
        "~/.cache/stream-rec", "Cache folder for the broker's jars (kafka-<version>/ inside).",
        _FOLDER)
    kafka_data_dir: str = _setting(
        "~/.local/share/stream-rec/kafka", "KRaft log and metadata folder of the local broker.",
        _FOLDER)
    demo_port: int = _setting(
        8080, "Port of `stream-rec demo`'s live web page (127.0.0.1 only); 0 = any free port.",
        _port(allow_zero=True))

    # --- Topics -----------------------------------------------------------------------------
    events_topic: str = _setting("storefront.events", "Shopper events in (key = user_id).", _TOPIC)
    dlq_topic: str = _setting("storefront.events.dlq", "Rejected input, with the reason.", _TOPIC)
    items_topic: str = _setting("storefront.items", "Catalog, compacted (key = item_id).", _TOPIC)
    recommendations_topic: str = _setting("recommendations", "Lists out (key = user_id).", _TOPIC)
    model_updates_topic: str = _setting("model-updates", "Model version announcements.", _TOPIC)
    experiments_topic: str = _setting(
        "experiments", "Experiment definitions, compacted (key = experiment id).", _TOPIC)
    partitions: int = _setting(
        4, "Partitions of the events and recommendations topics.", _integer(at_least=1))
    replication_factor: int = _setting(
        1, "Replication factor of topics stream-rec creates.", _integer(at_least=1))

    # --- Worker -----------------------------------------------------------------------------
    app_id: str = _setting(
        "stream-rec", "Faust app id: consumer group and changelog prefix.", _APP_ID)
    state_dir: str = _setting("./var/state", "Where the worker keeps its RocksDB tables.", _FOLDER)
    registry_dir: str = _setting("./registry", "File-system model registry.", _FOLDER)
    web_host: str = _setting("127.0.0.1", "Bind address of the worker's HTTP server.", _HOST)
    web_port: int = _setting(6066, "Port of the worker's HTTP server.", _port(allow_zero=False))
    http_token: Secret = _setting(
        Secret(), "Bearer token every HTTP route but /health/ requires (never printed or "
        "logged); empty = open, allowed only on loopback or with http_open.")
    http_open: bool = _setting(
        False, "Let a worker with no http_token bind an address other than loopback, serving "
        "shoppers' lists and state to anyone who can reach it; otherwise it refuses to start.",
        _BOOLEAN)
    max_event_bytes: int = _setting(
        65536, "Larger event payloads go to the DLQ, in bytes.", _integer(at_least=1))
    state_expiry_days: float = _setting(
        90.0, "Shoppers inactive this long (by the Kafka time of their last event) are deleted "
        "like a forget request, swept a few hundred records a second; 0 = keep everyone.",
        _number(at_least=0.0))
    max_event_ahead_s: float = _setting(
        600.0, "How far ahead of the worker's clock an event's `ts` may count, in s; later "
        "times are clamped to it for trending, recency and ordering (metric "
        "stream_rec_events_clamped_total).",
        _number(at_least=0.0))
    shown_source: str = _setting(
        "auto", "What counts as shown to a shopper (for rerank_max_shows_without_click): "
        "impressions (only impression events), published (every list sent), or auto "
        "(published lists until an impression arrived within attribution_window_s, then "
        "impressions only).", _one_of("auto", "impressions", "published"))
    attribution_window_s: float = _setting(
        1800.0, "How long an impression keeps shown_source=auto on impressions, and how long "
        "after an impression (or click) a click (or purchase) is attributed to its list, in s.",
        _number(above=0.0))
    bandit_interval_s: float = _setting(
        60.0, "How often the group leader re-weights running thompson experiments, in s.",
        _number(above=0.0))
    batch_max_events: int = _setting(
        256, "Most events scored together in one batch.", _integer(at_least=1))
    batch_wait_ms: int = _setting(
        0, "0: a batch is the events that arrived while the previous batch ran (none wait for "
        "a window); above 0, Faust's take_events, which waits up to this long, in ms, for a "
        "batch to fill. 0 gives the lowest latency, but a worker with events arriving is never "
        "idle and pays each batch's fixed costs on batches of one or two: at 200 events/s ~0.95 "
        "of a core against ~0.73 with 10.", _integer(at_least=0))
    stop_timeout_s: float = _setting(
        30.0, "Longest a worker's stop (SIGTERM) may take before it exits anyway; keep it under "
        "the orchestrator's grace period. Events not yet committed are processed again.",
        _number(above=0.0))
    session_timeout_s: float = _setting(
        30.0, "How long the consumer group waits for a worker that stopped answering (killed, "
        "machine lost) before its partitions move to the others: its shoppers get no lists "
        "meanwhile. Shorter fails over sooner; too short and a worker stalled by a long pause "
        "is dropped from the group and rejoins (a rebalance, no lost event). At least 6 s, the "
        "broker's default group.min.session.timeout.ms.",
        _number(at_least=6.0))
    produce_timeout_s: float = _setting(
        30.0, "How long the worker's producer keeps trying to deliver a list or a state change "
        "(aiokafka's request timeout; one send may take up to twice this) before the worker "
        "gives up and exits with status 75, to be restarted: a broker away for longer costs a "
        "restart, no event. Bounds a running worker; a stop is bounded by stop_timeout_s "
        "(docs/operations.md).",
        _number(above=0.0))
    commit_repair_after_s: float = _setting(
        20.0, "How long a partition's offset commits may stay stopped (acked offsets past a gap, "
        "or a commit recorded past the processed events) before the worker rejoins its group, "
        "so that every partition resumes from its committed offset as after a restart; 0 only "
        "reports it (docs/operations.md).",
        _number(at_least=0.0))
    producer_linger_ms: int = _setting(
        5, "How long the worker's producer gathers messages into one request, in ms.",
        _integer(at_least=0))
    fetch_min_bytes: int = _setting(
        1, "Bytes the broker gathers for one fetch of the worker's consumer before it answers "
        "(or until fetch_max_wait_ms). A worker near its capacity queues less with 65536 and "
        "a wait of 3 ms, at the price of those ms at low rates (docs/performance.md).",
        _integer(at_least=1))
    fetch_max_wait_ms: int = _setting(
        1500, "Longest the broker holds a fetch of the worker's consumer that has fewer than "
        "fetch_min_bytes, in ms. Also how often an idle worker fetches: a few ms costs ~0.15 "
        "cores while there are no events.", _integer(at_least=0))
    standby_replicas: int = _setting(
        1, "Standby copies of each state partition on other workers.", _integer(at_least=0))
    rocksdb_write_buffer_mb: int = _setting(
        8, "RocksDB memtable size per table partition, in MB (two are kept); Faust's default "
        "of 3 x 64 MB per partition lets a worker's memory grow by gigabytes.",
        _integer(at_least=1))
    rocksdb_block_cache_mb: int = _setting(
        32, "RocksDB block cache per table partition, in MB (Faust's default: 2 GB each).",
        _integer(at_least=1))
    processing_guarantee: str = _setting(
        "at_least_once", "at_least_once (supported); exactly_once only to re-run its "
        "evaluation: it lost state updates in our crash test (docs/operations.md).",
        _one_of("at_least_once", "exactly_once"))
    recommend_in_thread: bool = _setting(
        True, "Score and re-rank each batch on a helper thread, so Kafka I/O and the next "
        "batch's intake use the second core meanwhile (numpy and onnxruntime free the GIL).",
        _BOOLEAN)
    onnx_threads: int = _setting(
        1, "onnxruntime intra-op threads per worker process.", _integer(at_least=1))
    gc_freeze: bool = _setting(
        True, "Once the catalog and model are loaded (and after each model swap), collect and "
        "freeze the heap so Python's garbage collector stops re-walking long-lived objects.",
        _BOOLEAN)
    blas_threads: int = _setting(
        1, "numpy (BLAS) threads per worker process; more only helps with idle cores.",
        _integer(at_least=1))
    history_length: int = _setting(50, "Recent events kept per shopper.", _integer(at_least=1))
    trending_half_life_s: float = _setting(
        3600.0, "Half-life of trending counts, in seconds.", _number(above=0.0))
    candidate_pool: int = _setting(
        200, "Candidates retrieved and scored per event.", _integer(at_least=1))
    list_length: int = _setting(20, "Items per recommendation list.", _integer(at_least=1))
    retrieval_index: bool = _setting(
        True, "Retrieve candidates through the model artifact's approximate-nearest-neighbour "
        "graph when it ships one (see retrieval_index_min_items; needs faiss: pip install "
        "'stream-rec[ann]'); false retrieves over the whole catalog (see retrieval_scan).",
        _BOOLEAN)
    retrieval_scan: str = _setting(
        "int8", "How retrieval scores the model's vocabulary when no graph is used: int8 "
        "(its rows as 8-bit codes in onnxruntime, the best candidate_pool + a quarter scored "
        "again from the float rows: a quarter of the bytes read a batch, the exact top 200 "
        "kept on diginetica) or float32 (the exact product in numpy).",
        _one_of("int8", "float32"))
    retrieval_ef_search: int = _setting(
        256, "Beam width of the approximate-retrieval graph search (at least candidate_pool "
        "is used): wider finds more of the exact candidates and costs more CPU.",
        _integer(at_least=1))
    pool_kept: int = _setting(
        200, "Candidates kept with each shopper's latest list, which requests with parameters "
        "re-rank (GET /users/{id}/recommendations/?n=...); 0 keeps none (requests then "
        "re-rank the list itself).", _integer(at_least=0))
    stream_item_candidates: int = _setting(
        50, "Candidates per list among items the served model never saw, found by what the "
        "live stream taught about them (the known items shoppers view just before and after "
        "them, matched with the shopper's latest items) and scored as the model would had it "
        "seen those sessions; 0 = learn nothing. Learnt per worker process from its own "
        "shoppers, and again after a restart.", _integer(at_least=0))
    stream_item_min_observations: int = _setting(
        1, "Events that must have taught an unseen item something before its learnt vector "
        "counts.", _integer(at_least=1))
    stream_items_max: int = _setting(
        5_000, "Most unseen items a worker process remembers (the least recently seen is "
        "forgotten first); at most about 8 KB each, and 5 KB more per served model (an "
        "experiment arm's too): 65 MB for 5,000 with one model.", _integer(at_least=1))
    stream_item_neighbours: int = _setting(
        32, "Most known items remembered per unseen item (the least seen is forgotten "
        "first).", _integer(at_least=1))

    # --- Re-ranking -------------------------------------------------------------------------
    # Pool size and list length are `candidate_pool` and `list_length` (Worker, above).
    rerank_policy: str = _setting(
        "dpp:0.15",
        "Default re-ranking policy: none, dpp:THETA (THETA = weight of diversity, 0..1) or "
        "mmr:LAMBDA (LAMBDA = weight of relevance, 0..1); a request may name its own.",
        _RERANK_POLICY)
    rerank_category_weight: float = _setting(
        0.5, "Weight of same-category in item similarity, 0..1 (the rest: embedding cosine).",
        _fraction())
    rerank_max_per_category: int = _setting(
        0, "Most items of one category per list; 0 = no cap.", _integer(at_least=0))
    rerank_exclude_purchased: bool = _setting(
        True, "Never recommend items already purchased.", _BOOLEAN)
    rerank_max_shows_without_click: int = _setting(
        3, "Stop recommending an item shown this many times without a click; 0 = never stop.",
        _integer(at_least=0))

    # --- Training and evaluation ---
    data_dir: str = _setting(
        "../shared/data", "Where dataset folders named in a data spec are looked up.",
        _FOLDER)
    train_epochs: int = _setting(
        12, "Most training epochs (passes over every prefix -> next pair); see train_patience.",
        _integer(at_least=1))
    train_batch_size: int = _setting(1024, "Training pairs per step.", _integer(at_least=1))
    train_time_budget_s: float = _setting(
        1680.0, "Training stops (learning-rate decay compressed) to fit this, in s; 0 = none.",
        _number(at_least=0.0))
    train_negatives: int = _setting(
        4096, "Items sampled per step for the softmax (0 = full softmax over the catalog).",
        _integer(at_least=0))
    train_validation_fraction: float = _setting(
        0.02, "Most recent share of training sessions held out to stop early (0 = none).",
        _fraction(below_one=True))
    train_patience: int = _setting(
        3, "Epochs without a better validation P@K before the best weights get one last,"
        " annealing epoch and training stops.",
        _integer(at_least=1))
    learning_rate: float = _setting(
        0.002, "Adam's peak learning rate (cosine decay to 0).", _number(above=0.0))
    embedding_dim: int = _setting(
        100, "Width of item, attribute and shopper vectors.", _integer(at_least=1))
    max_history: int = _setting(
        50, "Most recent history events the model reads.", _integer(at_least=1))
    score_scale: float = _setting(
        12.0, "Scale of the cosine scores (inverse temperature).", _number(above=0.0))
    dropout: float = _setting(
        0.1, "Dropout on history item vectors while training.", _fraction(below_one=True))
    item_dropout: float = _setting(
        0.0, "Share of the history's item vectors dropped whole while training (0 = off).",
        _fraction(below_one=True))
    item_weight_decay: float = _setting(
        0.0, "Decoupled weight decay of the item-table rows a training step touches, times the"
        " learning rate (0 = off).", _number(at_least=0.0))
    session_graph_steps: int = _setting(
        1, "Propagation steps over the session's item-transition graph (0 = attention only).",
        _integer(at_least=0))
    session_graph_star: bool = _setting(
        False, "A star node joined to every item of the session graph (SGNN-HN).", _BOOLEAN)
    session_graph_highway: bool = _setting(
        False, "A highway gate between the item vectors before and after the session graph"
        " (SGNN-HN).", _BOOLEAN)
    cold_item_rate: float = _setting(
        0.1, "Share of items treated as unknown per step, so attributes learn to score them.",
        _fraction(below_one=True))
    price_buckets: int = _setting(
        10, "Quantile buckets for a numeric price attribute.", _integer(at_least=1))
    min_item_count: int = _setting(
        1, "Items seen fewer times in training stay out of the vocabulary.",
        _integer(at_least=1))
    train_window_ms: int = _setting(
        7 * 24 * 3_600_000, "History a kafka: data spec reads, in ms (before now).",
        _integer(at_least=1))
    holdout_fraction: float = _setting(
        0.1, "Most recent share of events held out to evaluate (kafka: data, trainer).",
        _fraction(above_zero=True, below_one=True))
    eval_k: int = _setting(
        20, "List length K of the offline metrics (P@K, MRR@K, ...).", _integer(at_least=1))
    eval_batch_size: int = _setting(
        256, "Test cases scored per onnxruntime call in evaluate.", _integer(at_least=1))
    retrieval_index_kind: str = _setting(
        "hnsw-sq8", "The approximate-retrieval graph the trainer builds: hnsw-flat (rows as "
        "float32, 32 links an item) or hnsw-sq8 (rows as 8-bit codes, 16 links: less than "
        "half the memory and a third less CPU per search, a little lower recall).",
        _one_of("hnsw-flat", "hnsw-sq8"))
    retrieval_index_min_items: int = _setting(
        200_000, "A trained model of at least this many items ships an approximate-retrieval "
        "graph (faiss HNSW, built by the trainer; needs faiss) that the worker retrieves "
        "through (retrieval_index); below it a full product (retrieval_scan) is faster. "
        "0 = never.",
        _integer(at_least=0))
    promotion_metric: str = _setting(
        "MRR@20", "Metric the trainer's promotion gate compares.", _METRIC)
    promotion_tolerance: float = _setting(
        0.02, "A candidate may trail the current model by this share of its metric, 0..1.",
        _fraction())
    retrain_every_ms: int = _setting(
        3_600_000, "Period of `stream-rec trainer`, in ms.", _integer(at_least=1))

    def __post_init__(self) -> None:
        # Code and CLI flags pass plain strings; keep every secret wrapped whatever the source.
        for name in _SECRET_SETTINGS:
            if not isinstance(getattr(self, name), Secret):
                object.__setattr__(self, name, Secret(getattr(self, name)))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            rule: Rule | None = f.metadata["rule"]
            # Defaults are known good (a unit test checks them): skipping them keeps a plain
            # start from importing what one rule needs (numpy, for the re-ranking policy).
            is_default = type(value) is type(f.default) and value == f.default  # 1 is not True
            if rule is not None and not is_default and not rule.holds(value):
                raise SettingsError(env_name(f.name), _shown(value), rule.expected)
        self._check_combinations()

    def _check_combinations(self) -> None:
        """Rules between settings, each reported against the setting most likely mistyped."""
        if not 0 < self.controller_port <= MAX_PORT or self.controller_port == self.kafka_port:
            raise SettingsError(
                env_name("kafka_controller_port"), _shown(self.kafka_controller_port),
                f"a port from 1 to {MAX_PORT} other than kafka_port ({self.kafka_port}); "
                "0 means kafka_port + 1")
        # The trainer's gate reads the metric from an evaluation at eval_k: at any other K the
        # metric is missing and no candidate would ever be promoted.
        if not self.promotion_metric.endswith(f"@{self.eval_k}"):
            metric = self.promotion_metric.partition("@")[0]
            raise SettingsError(
                env_name("promotion_metric"), self.promotion_metric,
                f"a metric at K = eval_k ({self.eval_k}), such as {metric}@{self.eval_k}")

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with the non-None overrides applied (CLI flags use this)."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def controller_port(self) -> int:
        """The local broker's KRaft controller port."""
        return self.kafka_controller_port or self.kafka_port + 1

    @property
    def kafka_jars_dir(self) -> Path:
        """Where the local broker's Kafka release is unpacked."""
        return Path(self.kafka_home).expanduser() / f"kafka-{self.kafka_version}"


_SECRET_SETTINGS = tuple(f.name for f in dataclasses.fields(Settings) if f.type == "Secret")


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool,
                           "Secret": Secret}


def env_name(name: str) -> str:
    """The environment variable of setting ``name``: ``STREAM_REC_`` and the name in capitals."""
    return ENV_PREFIX + name.upper()


def _shown(value: Any) -> str:
    # Secrets have no rule, so they never reach an error message; str() masks them anyway.
    return str(value).lower() if isinstance(value, bool) else str(value)


def _parse(raw: str, kind: type) -> Any:
    if kind is bool:
        if raw.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.strip().lower() in {"0", "false", "no", "off", ""}:
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    return kind(raw)


def expected_value(name: str) -> str:
    """What setting ``name`` accepts, in words (empty when it takes any text)."""
    rule: Rule | None = _FIELDS[name].metadata["rule"]
    return "" if rule is None else rule.expected


def parse_setting(name: str, raw: str) -> Any:
    """The typed value of setting ``name`` written as text, once it has passed its rule.

    Text that cannot be read, or a value that breaks the rule, raises ``SettingsError``
    naming the setting's environment variable.
    """
    f = _FIELDS[name]
    kind = _TYPES[f.type if isinstance(f.type, str) else f.type.__name__]
    rule: Rule | None = f.metadata["rule"]
    try:
        value = _parse(raw, kind)
    except ValueError:
        value = None
    if value is None or (rule is not None and not rule.holds(value)):
        expected = rule.expected if rule is not None else f"a {kind.__name__}"
        raise SettingsError(env_name(name), raw, expected)
    return value


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Defaults, then ``STREAM_REC_*`` variables, then explicit overrides (CLI flags).

    Raises ``SettingsError`` for the first value that breaks its setting's rule.
    """
    env = os.environ if environ is None else environ
    values = {name: parse_setting(name, env[env_name(name)])
              for name in _FIELDS if env_name(name) in env}
    _warn_unknown(env)
    return Settings(**values).with_overrides(**overrides)


# STREAM_REC_* variables that are not settings but are read elsewhere on purpose (the set-up
# script, test switches), so they get no warning.
NOT_SETTINGS = frozenset({"STREAM_REC_APT_UPDATED", "STREAM_REC_TEST_GUARANTEE",
                          "STREAM_REC_SCREENSHOT"})
_warned: set[str] = set()


def _warn_unknown(env: Mapping[str, str]) -> None:
    """Say (once per name and process) which STREAM_REC_* variables are no setting: a
    misspelt or retired name would otherwise be ignored without a word, and a run would
    quietly use the default."""
    known = {env_name(name) for name in _FIELDS}
    for variable in env:
        if (variable.startswith(ENV_PREFIX) and variable not in known
                and variable not in NOT_SETTINGS and variable not in _warned):
            _warned.add(variable)
            close = difflib.get_close_matches(variable, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            logging.getLogger(__name__).warning(
                "%s is not a stream-rec setting%s: ignored", variable, hint)


def settings_reference() -> Iterator[tuple[str, str, Any, str]]:
    """(name, environment variable, default, description) for every setting, in order."""
    for f in dataclasses.fields(Settings):
        yield f.name, env_name(f.name), f.default, f.metadata["doc"]
