"""Per-process state of a worker that is not in a table: the recommender, catalog, metrics.

One ``WorkerRuntime`` lives in each worker process. The catalog and model feeds write into it,
the event agent reads from it; all of them run on the one event loop. The one exception is
``Recommender.recommend``, which may run on a helper thread (setting ``recommend_in_thread``)
while the loop goes on taking in events: catalog changes that arrive meanwhile wait in a queue
and are applied on the loop between two batches, so the recommender never sees a half-applied
change (a model swap is one attribute assignment, read once per batch).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from aiokafka import ConsumerRecord
from threadpoolctl import threadpool_limits

from stream_rec.config import Settings
from stream_rec.core.catalog import catalog_item_id, parse_catalog_item
from stream_rec.core.events import InvalidEvent
from stream_rec.core.experiments import parse_experiment
from stream_rec.core.state import StateLimits
from stream_rec.core.trending import Trending
from stream_rec.rerank import BusinessRules, RerankPolicy, warm_up
from stream_rec.serving.batch import BatchConfig, BatchHandler, recommend_isolated
from stream_rec.serving.error_log import OncePerInterval
from stream_rec.serving.lists import RecList, RecRequest
from stream_rec.serving.recommender import Recommender, RecommenderConfig
from stream_rec.serving.retrieval_kernels import warm_up as warm_up_retrieval
from stream_rec.serving.stage_clock import StageClock
from stream_rec.worker.heap import GrowthFreezer
from stream_rec.worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)


def recommender_config(settings: Settings) -> RecommenderConfig:
    """List length, candidate pool, default re-ranking policy and business rules."""
    return RecommenderConfig(
        k=settings.list_length, pool=settings.candidate_pool, pool_kept=settings.pool_kept,
        policy=RerankPolicy.parse(settings.rerank_policy),
        rules=BusinessRules(exclude_purchased=settings.rerank_exclude_purchased,
                            max_shows_without_click=settings.rerank_max_shows_without_click,
                            max_per_category=settings.rerank_max_per_category),
        category_weight=settings.rerank_category_weight,
        stream_item_candidates=settings.stream_item_candidates,
        stream_item_min_observations=settings.stream_item_min_observations,
        stream_items_max=settings.stream_items_max,
        stream_item_neighbours=settings.stream_item_neighbours)


def batch_config(settings: Settings) -> BatchConfig:
    """Limits of what one event may be and change (size, state bounds, time ahead), and what
    counts as shown."""
    return BatchConfig(max_event_bytes=settings.max_event_bytes,
                       limits=StateLimits(history=settings.history_length),
                       max_ahead_ms=round(settings.max_event_ahead_s * 1000),
                       shown_source=settings.shown_source,
                       attribution_window_ms=round(settings.attribution_window_s * 1000))


class WorkerRuntime:
    """The worker process's recommender, batch handler and metrics, shared by its agents."""

    def __init__(self, settings: Settings) -> None:
        # Retrieval is one small matmul per batch: BLAS threads only add hand-off latency,
        # and spin badly when the cores are shared with Kafka, onnxruntime and other workers.
        threadpool_limits(settings.blas_threads)
        # Compile the re-rankers' loops now (seconds; a disk cache makes later starts quick),
        # not inside the first batch's latency.
        warm_up()
        warm_up_retrieval()
        self.settings = settings
        self.metrics = WorkerMetrics()
        self.recommender = Recommender(recommender_config(settings),
                                       trending=Trending(settings.trending_half_life_s * 1000.0))
        self.handler = BatchHandler(self.recommender, batch_config(settings))
        self._events: dict[str, asyncio.Event] = {}
        self._thread = (ThreadPoolExecutor(1, thread_name_prefix="recommend")
                        if settings.recommend_in_thread else None)
        self._holds = 0  # catalog_held scopes open now
        self._deferred: list[ConsumerRecord] = []  # catalog records that arrived meanwhile
        self._catalog_faults = OncePerInterval(60.0)  # one traceback per exception type
        self._catalog_growth = GrowthFreezer() if settings.gc_freeze else None

    async def recommend(self, requests: Sequence[RecRequest], clock: StageClock
                        ) -> list[RecList | None]:
        """The batch's lists (``recommend_isolated``), computed off the event loop when
        configured."""
        errors = self.handler.errors
        if self._thread is None or not requests:
            return recommend_isolated(self.recommender, requests, clock, errors)
        with self.catalog_held():
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread, recommend_isolated,
                                              self.recommender, requests, clock, errors)

    @contextmanager
    def catalog_held(self) -> Iterator[None]:
        """Catalog records wait while a thread reads the catalog and item tables (a batch
        being recommended, an item table being built); they are applied, in order, when the
        last such scope ends."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            if not self._holds:
                deferred, self._deferred = self._deferred, []
                for record in deferred:
                    self.apply_catalog_record(record)

    def _event(self, name: str) -> asyncio.Event:
        # Created on first use so that it binds to the worker's running loop.
        return self._events.setdefault(name, asyncio.Event())

    @property
    def catalog_ready(self) -> asyncio.Event:
        """Set once the whole catalog topic has been read."""
        return self._event("catalog")

    @property
    def model_checked(self) -> asyncio.Event:
        """Set once the registry's current model is serving, or known to be absent/refused."""
        return self._event("model")

    @property
    def experiments_ready(self) -> asyncio.Event:
        """Set once the whole experiments topic has been read."""
        return self._event("experiments")

    @property
    def ready(self) -> bool:
        return self.catalog_ready.is_set() and self.model_checked.is_set()

    def apply_experiment_record(self, record: ConsumerRecord) -> None:
        """One message of the compacted experiments topic: a definition, or a tombstone that
        ends the experiment. Never raises; a record that cannot be used is counted, logged
        and leaves the experiment as it was."""
        experiments = dict(self.handler.experiments)  # swapped whole: a batch sees one set
        try:
            if record.key is None:
                raise InvalidEvent("experiment message has no key (experiment id)")
            experiment_id = bytes(record.key).decode("utf-8")
            if record.value is None:
                experiments.pop(experiment_id, None)
            else:
                experiment = parse_experiment(experiment_id, record.value)
                experiments[experiment_id] = experiment
                log.info("experiment %s: %s, arms %s", experiment_id,
                         "running" if experiment.running else "stopped",
                         ", ".join(f"{a.name}={a.policy} ({w:g})" for a, w in
                                   zip(experiment.arms, experiment.weights, strict=True)))
        except (InvalidEvent, UnicodeDecodeError) as exc:
            self.metrics.experiments_rejected += 1
            log.warning("experiment message %s rejected: %s", _where(record),
                        getattr(exc, "reason", exc))
            return
        except Exception as exc:  # a fault of ours: still only this message's loss
            self.metrics.experiments_rejected += 1
            log.error("experiment message %s could not be applied (%r); skipped",
                      _where(record), exc, exc_info=self._catalog_faults.allow(type(exc)))
            return
        self.handler.experiments = experiments

    def apply_catalog_record(self, record: ConsumerRecord) -> None:
        """One message of the compacted catalog topic: an item, or a tombstone that delists.

        Never raises: the topic is re-read from its first offset at every start, so a message
        that stopped the feed would stop every worker at every start. A message that cannot be
        used is skipped, counted (``catalog_rejected``) and logged with where it is.
        """
        if self._holds:
            self._deferred.append(record)
            return
        try:
            self._apply_catalog_record(record)
            if self._catalog_growth is not None and not self.catalog_ready.is_set():
                self._catalog_growth.grew()  # the first read: settled when the agent starts
        except InvalidEvent as exc:
            self.metrics.catalog_rejected += 1
            log.warning("catalog message %s rejected: %s", _where(record), exc.reason)
        except Exception as exc:  # a fault of ours: still only this message's loss
            self.metrics.catalog_rejected += 1
            log.error("catalog message %s could not be applied (%r); skipped", _where(record),
                      exc, exc_info=self._catalog_faults.allow(type(exc)))

    def _apply_catalog_record(self, record: ConsumerRecord) -> None:
        item_id = catalog_item_id(record.key)
        if record.value is None:
            self.recommender.delist_item(item_id)
            return
        self.recommender.upsert_item(parse_catalog_item(item_id, record.value))


def _where(record: ConsumerRecord) -> str:
    """Key, partition and offset of a catalog message, safe to log whatever the key holds."""
    key = record.key
    shown = "no key" if key is None else f"key {repr(key)[:90]}"
    return f"{record.topic}[{record.partition}]@{record.offset} ({shown})"
