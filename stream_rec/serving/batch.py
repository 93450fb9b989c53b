"""One batch of event messages in; state writes, deletions, lists and dead letters out.

This is the worker's per-batch logic without Kafka or Faust, so that the agent, bench-core and
the property tests run the very same code. The agent's part is to take a batch, hand over its
messages and a way to read stored state, and then write and send what comes back.

A batch is handled in three steps, because the middle one may run on another thread:

1. ``BatchHandler.take``: in message order, pass over re-deliveries, validate, check the key,
   apply forget requests, de-duplicate and apply each event or impression to its shopper's
   state (read once per batch), attribute interactions to the list they came from and count
   them in the partition's online-metrics record (``online_metrics.py``). Each valid
   interaction event becomes one ``RecRequest``, with its experiment arm's policy if any.
   Last, what the events taught about items the model never saw is turned into their
   vectors (``Recommender.learn``).
2. ``recommend_isolated``: the lists, one per request (``Recommender.recommend``).
3. ``BatchHandler.finish``: record lists and impressions as shown (``shown_source``), remember
   the lists sent, encode states, lists and metrics records, and say which table entries to
   write or delete, and on whose partition.

Nothing that one message carries can stop the batch: a rejection and any unexpected error
while handling one message both make a dead letter for that message, and the rest goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import orjson

from stream_rec.core.attribution import (
    CLICK_TYPES,
    IMPRESSION_ITEMS_KEPT,
    attribute,
    group_key,
    record_impression,
    record_sent,
)
from stream_rec.core.events import Event, ForgetUser, Impression, InvalidEvent, parse_message
from stream_rec.core.experiments import Experiment, assign
from stream_rec.core.record import record
from stream_rec.core.state import (
    Shown,
    StateLimits,
    UserState,
    already_applied,
    interacted,
    is_duplicate,
    mark_seen,
    note_retry,
    shown_after,
)
from stream_rec.core.state_codec import StateDecodeError, decode_state, encode_state
from stream_rec.core.tally import add_to_tally, list_diversity
from stream_rec.serving.dead_letter import Message, dead_letter
from stream_rec.serving.error_log import ErrorSampler
from stream_rec.serving.lists import RecList, RecRequest, list_id_for, with_pool
from stream_rec.serving.online_metrics import (
    PartitionMetrics,
    decode_partition_metrics,
    metrics_key,
)
from stream_rec.serving.positions import redelivered, skipped_offsets
from stream_rec.serving.recommender import Recommender
from stream_rec.serving.stage_clock import StageClock

log = logging.getLogger(__name__)

# (key, index of the batch message to act for) -> the stored bytes, or None. The index lets the
# worker read from the partition of that message (Faust picks a table's partition from the
# message being processed).
StateReader = Callable[[bytes, int], bytes | None]
# (table key, index of a batch message of the record's partition) -> the stored record, or None
MetricsReader = Callable[[bytes, int], bytes | None]
CommittedOffset = Callable[[Message], int | None]


@dataclass(frozen=True)
class BatchConfig:
    """What one event may be and change: its size, the state bounds, its time ahead."""

    max_event_bytes: int = 65536
    limits: StateLimits = field(default_factory=StateLimits)
    # How far ahead of the worker's clock an event's time may count, in ms: later times are
    # clamped to it, so one event from a wrong clock cannot take over trending and recency.
    max_ahead_ms: int = 600_000
    # What counts as shown to a shopper: "impressions", "published" or "auto" (published
    # lists until an impression came within ``attribution_window_ms``, then impressions).
    shown_source: str = "auto"
    attribution_window_ms: int = 1_800_000


@dataclass
class BatchCounts:
    """What one batch did, for the worker's metrics."""

    events_in: int = 0
    redelivered: int = 0
    offsets_skipped: int = 0
    valid: int = 0
    duplicate: int = 0
    dead_letters: int = 0
    internal_errors: int = 0
    forget_requests: int = 0
    clamped: int = 0
    state_unreadable: int = 0
    impressions: int = 0
    lists: int = 0
    fallback_lists: int = 0


@dataclass
class _Shopper:
    """One shopper's state while the batch is handled."""

    state: UserState
    owner: int  # index of the shopper's last message in the batch: table writes act for it
    forgets: int = 0  # forget requests seen so far in this batch
    # The shown counters as the batch found them (or as the last forget left them): ``finish``
    # rebuilds them in event order, each list recorded before the shopper's next event.
    shown: Shown = ((), ())
    sent: list[tuple[str, str]] = field(default_factory=list)  # (list_id, group), this batch
    # Ids of the messages a successor replays (the stored state already has them) that were
    # applied, not retried, when first handled: a replayed message repeating one of them was
    # a retry, even where a forget request later in the batch (or more retries than
    # ``RETRIES_KEPT``) left the stored state without its note.
    replayed_ids: tuple[str, ...] = ()


@dataclass
class _Pending:
    """An event or impression applied in ``take``, whose shown counters ``finish`` records."""

    key: bytes
    index: int
    item_id: str  # the event's item ("" for an impression)
    forgets: int  # the shopper's forget count when the event came: older lists are not kept
    fresh: bool  # False for a duplicate: its list is sent again, nothing is recorded
    # An interaction event's list counts as shown (shown_source); an impression's items do.
    counts_shown: bool
    shown_items: tuple[str, ...] | None = None  # an impression's items; None for an event
    counted: bool = False  # its list counts in the online metrics (see online_metrics.py)


@dataclass
class TakenBatch:
    """Step 1's result: the requests to recommend for, and what ``finish`` needs."""

    messages: Sequence[Message]
    requests: list[RecRequest] = field(default_factory=list)
    counts: BatchCounts = field(default_factory=BatchCounts)
    dead_letters: list[tuple[int, bytes]] = field(default_factory=list)  # (index, record)
    _pending: list[_Pending] = field(default_factory=list)
    _shoppers: dict[bytes, _Shopper] = field(default_factory=dict)
    # partition -> (its online-metrics record, the last message of it in the batch)
    _metrics: dict[int, tuple[PartitionMetrics, int]] = field(default_factory=dict)
    _read_metrics: MetricsReader | None = None

    def metrics_for(self, index: int) -> PartitionMetrics:
        """The online-metrics record of the message's partition (read once per batch)."""
        partition = self.messages[index].partition
        entry = self._metrics.get(partition)
        if entry is None:
            reader = self._read_metrics
            record = decode_partition_metrics(
                None if reader is None else reader(metrics_key(partition), index))
        else:
            record = entry[0]
        self._metrics[partition] = (record, index)
        return record

    def reject(self, index: int, reason: str) -> None:
        self.dead_letters.append((index, dead_letter(reason, self.messages[index])))
        self.counts.dead_letters += 1


@record
class TableWrite:
    """One table entry to write or delete, on the partition of the message ``owner``."""

    key: bytes
    value: bytes | None  # None deletes the entry (a tombstone on its changelog)
    owner: int  # index of the batch message whose partition the write belongs to


@record
class Outgoing:
    """One recommendation message: key, encoded value, and the list it encodes."""

    key: bytes
    value: bytes
    rec: RecList


@dataclass
class BatchResult:
    """Everything the worker writes and sends for one batch."""

    state: list[TableWrite]  # user-state
    latest: list[TableWrite]  # latest-recs
    metrics: list[TableWrite]  # online-metrics, one record per partition in the batch
    lists: list[Outgoing]  # recommendation messages, in event order
    dead_letters: list[tuple[int, bytes]]  # (message index, record), in message order
    counts: BatchCounts


class BatchHandler:
    """The worker's per-batch logic, with the little it remembers between batches: the last
    offset taken from each partition (to pass over re-deliveries) and the topic-id digests."""

    def __init__(self, recommender: Recommender, config: BatchConfig) -> None:
        self.recommender = recommender
        self.config = config
        # (topic, partition) -> (consumer generation, offset) of the last message taken in
        self.processed: dict[tuple[str, int], tuple[int, int]] = {}
        # topic name -> digest of its Kafka topic id (see UserState.source_topic)
        self.topic_tags: dict[str, str] = {}
        # Kafka time of the last impression taken in (shown_source "auto")
        self.last_impression_ms: int | None = None
        # Experiments by id, as the experiments topic has them (the worker's feed sets them)
        self.experiments: dict[str, Experiment] = {}
        self.errors = ErrorSampler(log)

    # -- step 1 ----------------------------------------------------------------------------
    def take(self, messages: Sequence[Message], read_state: StateReader, now_ms: float,
             committed: CommittedOffset | None = None, taken_ms: float | None = None,
             clock: StageClock | None = None, read_metrics: MetricsReader | None = None
             ) -> TakenBatch:
        """Validate and apply every message, in order; one request per valid interaction."""
        batch = TakenBatch(messages, _read_metrics=read_metrics)
        clock = clock or StageClock()
        counts = batch.counts
        for index, message in enumerate(messages):
            position = (message.topic, message.partition)
            last = self.processed.get(position)
            if redelivered(message.offset, message.generation, last):
                counts.redelivered += 1
                continue
            counts.events_in += 1
            if committed is not None and last != (message.generation, message.offset - 1):
                skipped = skipped_offsets(message.offset, message.generation, last,
                                          committed(message))
                if skipped:
                    # Transactional producers leave one offset per commit marker; anything
                    # else means the consumer dropped events (docs/operations.md).
                    counts.offsets_skipped += skipped
                    log.warning("partition %s: %d offset(s) before %d never reached this "
                                "worker", message.partition, skipped, message.offset)
            self.processed[position] = (message.generation, message.offset)
            try:
                self._take_one(batch, index, read_state, now_ms if taken_ms is None
                               else taken_ms, now_ms, clock)
            except Exception as exc:  # the second wall: one message never stops the batch
                self._internal_error(batch, index, exc)
        with clock.stage("state"):
            try:
                # Here, on the thread that applies events, not where the lists are made
                # (maybe another thread): the learnt vectors change only between batches.
                self.recommender.learn()
            except Exception as exc:  # noqa: BLE001 - learning is optional; lists go on
                self.errors.report(exc, "learning from the batch's events")
        return batch

    def _take_one(self, batch: TakenBatch, index: int, read_state: StateReader,
                  taken_ms: float, now_ms: float, clock: StageClock) -> None:
        message = batch.messages[index]
        with clock.stage("decode_validate"):
            try:
                parsed = parse_message(message.value, self.config.max_event_bytes)
            except InvalidEvent as exc:
                batch.reject(index, exc.reason)
                return
        key = parsed.user_id.encode()
        if message.key != key:
            # State lives on the partition the key hashes to: a copy kept under another key's
            # partition is one that the shopper's other events and forget requests never reach.
            batch.reject(index, f"message key {_show_key(message.key)} is not the event's "
                                f"user_id {parsed.user_id[:80]!r}: events must be keyed by "
                                "user_id")
            return
        if isinstance(parsed, ForgetUser):
            shopper = batch._shoppers.get(key)
            forgets = shopper.forgets + 1 if shopper else 1
            batch._shoppers[key] = _Shopper(UserState(), index, forgets)
            batch.counts.forget_requests += 1
            log.info("forgetting user %r (request %s)", parsed.user_id, parsed.request_id)
            return
        if isinstance(parsed, Impression):
            self._take_impression(batch, index, parsed, key, read_state, now_ms, clock)
            return
        event = self._clamped(parsed, now_ms, batch.counts)
        with clock.stage("state"):
            shopper = self._shopper(batch, key, index, read_state)
            state = shopper.state
            tag = self.topic_tags.get(message.topic, "")
            replayed = already_applied(state, message.partition, message.offset, tag)
            duplicate = replayed or is_duplicate(state, event.event_id)
            record = batch.metrics_for(index)
            retry = _was_retry(shopper, state, message.offset, event.event_id, replayed,
                               duplicate)
            counted = record.counts(message.offset, tag) and not retry
            seen_ms = message.timestamp_ms or int(now_ms)
            attributed, group, position = attribute(
                state, event, seen_ms, self.config.attribution_window_ms, message.offset,
                replayed)
            if group is not None:
                figures = _interaction_figures(event)
                if counted:
                    for name, amount in figures.items():
                        record.add(group, name, amount)
                    if position is not None and event.type_code in CLICK_TYPES:
                        record.add(group, "position_sum", position)
                        record.add(group, "positioned_clicks")
                if not duplicate:  # the shopper's own tally, written with their state
                    attributed = add_to_tally(attributed, group, figures)
            if duplicate and not replayed:  # a storefront's retry
                state = note_retry(state, message.offset)
            if not duplicate:
                # Active as of Kafka's time of the message: the same on every replay of it.
                state = self.recommender.observe(attributed, event, self.config.limits,
                                                 (message.partition, message.offset), tag,
                                                 seen_ms)
            record.advance(message.offset, tag)
            # Only now, with nothing left to fail, does the shopper's state change.
            _note_replayed(shopper, event.event_id, replayed, retry, self.config.limits)
            shopper.state, shopper.owner = state, index
            batch._shoppers[key] = shopper
        batch.counts.valid += 1
        batch.counts.duplicate += duplicate
        assigned = assign(self.experiments, event.user_id) if self.experiments else None
        list_id = list_id_for(tag or message.topic, message.partition, message.offset)
        request = (
            RecRequest(event.user_id, event.event_id, state, taken_ms, list_id=list_id)
            if assigned is None else
            RecRequest(event.user_id, event.event_id, state, taken_ms, assigned[1].policy,
                       assigned[0].tag(assigned[1]), assigned[1].model, list_id))
        batch.requests.append(request)
        # The list's id and group are known already: remember it as sent now, so that an
        # impression or click naming it in this same batch (a replay after a crash merges
        # them) finds it. ``finish`` corrects the group if the list was made otherwise.
        shopper.state = record_sent(shopper.state, list_id,
                                    self.recommender.planned_group(request))
        batch._pending.append(_Pending(key, index, event.item_id, shopper.forgets,
                                       not duplicate, self._published_counts(now_ms),
                                       counted=counted))

    def _take_impression(self, batch: TakenBatch, index: int, impression: Impression,
                         key: bytes, read_state: StateReader, now_ms: float,
                         clock: StageClock) -> None:
        """Mark it applied (de-duplication, activity); ``finish`` records its items as shown."""
        message = batch.messages[index]
        with clock.stage("state"):
            shopper = self._shopper(batch, key, index, read_state)
            state = shopper.state
            tag = self.topic_tags.get(message.topic, "")
            replayed = already_applied(state, message.partition, message.offset, tag)
            duplicate = replayed or is_duplicate(state, impression.event_id)
            seen_ms = message.timestamp_ms or int(now_ms)
            record = batch.metrics_for(index)
            remembered, group = record_impression(state, impression, seen_ms, message.offset)
            displayed = impression.item_ids[:IMPRESSION_ITEMS_KEPT]
            category = self.recommender.catalog.category
            figures = _impression_figures(impression.item_ids, [category(i) for i in displayed])
            retry = _was_retry(shopper, state, message.offset, impression.event_id, replayed,
                               duplicate)
            if record.counts(message.offset, tag) and not retry:
                for name, amount in figures.items():
                    record.add(group, name, amount)
            record.impressed(group, impression.item_ids)
            if not duplicate:
                remembered = add_to_tally(remembered, group, figures)
                state = replace(mark_seen(remembered, impression.event_id, self.config.limits),
                                source=(message.partition, message.offset),
                                source_topic=tag, active_ms=seen_ms)
                self.last_impression_ms = max(self.last_impression_ms or 0, seen_ms)
            elif not replayed:  # a storefront's retry
                state = note_retry(state, message.offset)
            record.advance(message.offset, tag)
            _note_replayed(shopper, impression.event_id, replayed, retry, self.config.limits)
            shopper.state, shopper.owner = state, index
            batch._shoppers[key] = shopper
        batch.counts.impressions += not duplicate
        batch.counts.duplicate += duplicate
        batch._pending.append(_Pending(key, index, "", shopper.forgets, not duplicate,
                                       self.config.shown_source != "published",
                                       impression.item_ids))

    def _shopper(self, batch: TakenBatch, key: bytes, index: int,
                 read_state: StateReader) -> _Shopper:
        shopper = batch._shoppers.get(key)
        if shopper is None:
            stored = self._read(read_state, key, index, batch.counts)
            shopper = _Shopper(stored, index, shown=(stored.shown_items, stored.shown_counts))
        return shopper

    def _published_counts(self, now_ms: float) -> bool:
        """Whether a list published now counts as shown (``BatchConfig.shown_source``)."""
        source = self.config.shown_source
        if source != "auto":
            return source == "published"
        last = self.last_impression_ms
        return last is None or now_ms - last > self.config.attribution_window_ms

    def _clamped(self, event: Event, now_ms: float, counts: BatchCounts) -> Event:
        latest = int(now_ms) + self.config.max_ahead_ms
        if event.ts_ms <= latest:
            return event
        counts.clamped += 1
        return replace(event, ts_ms=latest)

    @staticmethod
    def _read(read_state: StateReader, key: bytes, index: int, counts: BatchCounts
              ) -> UserState:
        try:
            return decode_state(read_state(key, index))
        except StateDecodeError as exc:
            # A corrupt record must not stop the partition: start the shopper afresh, loudly.
            counts.state_unreadable += 1
            log.error("user state for %r unreadable (%s); starting from empty", key[:80], exc)
            return UserState()

    def _internal_error(self, batch: TakenBatch, index: int, exc: Exception) -> None:
        batch.counts.internal_errors += 1
        message = batch.messages[index]
        self.errors.report(exc, f"the message at {message.topic}:{message.partition}:"
                                f"{message.offset}")
        try:
            batch.reject(index, f"internal error: {type(exc).__name__}")
        except Exception as again:  # nothing about one message may stop the batch
            self.errors.report(again, "a dead letter")

    # -- step 3 ----------------------------------------------------------------------------
    def finish(self, batch: TakenBatch, lists: Sequence[RecList | None]) -> BatchResult:
        """Record the lists as shown; the table writes and messages that follow."""
        limits = self.config.limits
        shoppers = batch._shoppers
        outgoing: list[Outgoing] = []
        latest: dict[bytes, TableWrite] = {}
        counts = batch.counts
        made = iter(lists)
        for pending in batch._pending:
            shopper = shoppers[pending.key]
            current = pending.forgets == shopper.forgets  # made after the last forget
            if pending.shown_items is not None:  # an impression: no list of its own
                if pending.fresh and current and pending.counts_shown:
                    shopper.shown = shown_after(shopper.shown, pending.shown_items, limits)
                continue
            rec = next(made)
            if pending.fresh and current:
                # As if each list had been sent before the shopper's next event was applied:
                # an event on an item that an earlier list showed resets its count.
                shown = interacted(shopper.shown, pending.item_id)
                if rec is not None and pending.counts_shown:
                    shown = shown_after(shown, (i.item_id for i in rec.items), limits)
                shopper.shown = shown
            if rec is None:  # no list could be made for it, not even a fallback one
                self._internal_error(batch, pending.index, RuntimeError("no list"))
                continue
            group = group_key(rec.model_version, str(rec.policy), rec.experiment)
            if current:  # the group it was made in (``take`` recorded the one planned)
                shopper.sent.append((rec.list_id, group))
                if pending.fresh and rec.experiment is not None:
                    shopper.state = add_to_tally(shopper.state, group, {"lists": 1.0})
            if pending.counted:
                batch.metrics_for(pending.index).add(group, "lists")
            value = orjson.dumps(rec.to_dict())
            outgoing.append(Outgoing(pending.key, value, rec))
            counts.lists += 1
            counts.fallback_lists += rec.fallback
            # A list made before a forget request is still delivered, but not kept.
            if current:
                latest[pending.key] = TableWrite(pending.key, with_pool(value, rec.pool),
                                                 shopper.owner)
        state_writes: list[TableWrite] = []
        for key, shopper in shoppers.items():
            state = shopper.state
            if (state.shown_items, state.shown_counts) != shopper.shown or shopper.sent:
                made_in = dict(shopper.sent)
                shopper.state = replace(
                    state, shown_items=shopper.shown[0], shown_counts=shopper.shown[1],
                    sent_lists=tuple((lid, made_in.get(lid, group))
                                     for lid, group in state.sent_lists))
            if shopper.forgets and shopper.state == UserState():
                # Tombstones: the changelog (and so every standby) forgets too.
                state_writes.append(TableWrite(key, None, shopper.owner))
            else:
                state_writes.append(TableWrite(key, encode_state(shopper.state), shopper.owner))
            if shopper.forgets and key not in latest:
                latest[key] = TableWrite(key, None, shopper.owner)
        metrics = [TableWrite(metrics_key(partition), record.encode(), owner)
                   for partition, (record, owner) in batch._metrics.items()]
        batch.dead_letters.sort(key=lambda d: d[0])
        return BatchResult(state_writes, list(latest.values()), metrics, outgoing,
                           batch.dead_letters, counts)


def _was_retry(shopper: _Shopper, state: UserState, offset: int, event_id: str,
               replayed: bool, duplicate: bool) -> bool:
    """Whether a valid message was a storefront's retry of an applied event when first
    handled, so that it does not count in the online metrics. A message the stored state
    already includes (``replayed``: a successor handles the batch again after a crash between
    the state write and the metrics write) was one if the state noted it (``note_retry``) or
    it repeats an id this batch applied before it."""
    if not duplicate:
        return False
    if not replayed:
        return True
    return offset in state.retries or event_id in shopper.replayed_ids


def _note_replayed(shopper: _Shopper, event_id: str, replayed: bool, retry: bool,
                   limits: StateLimits) -> None:
    """Remember a replayed message that was applied when first handled, as the state's
    de-duplication window did (the last ``dedup_window`` ids)."""
    if replayed and not retry:
        shopper.replayed_ids = (*shopper.replayed_ids, event_id)[-limits.dedup_window:]


def _interaction_figures(event: Event) -> dict[str, float]:
    """What an attributed interaction adds to its list's figures (position aside)."""
    if event.type_code in CLICK_TYPES:
        return {"clicks": 1.0}
    if event.type == "add_to_cart":
        return {"add_to_carts": 1.0}
    if event.price is None:
        return {"purchases": 1.0}
    return {"purchases": 1.0, "revenue": event.price * (event.quantity or 1)}


def _impression_figures(items: Sequence[str], categories: Sequence[str | None]
                        ) -> dict[str, float]:
    """What an impression adds to its list's figures: its items and their diversity."""
    ild, n_categories = list_diversity(categories)
    figures = {"impressions": 1.0, "impressed_items": float(len(items)),
               "categories_sum": float(n_categories)}
    if ild is not None:
        figures |= {"ild_sum": ild, "ild_lists": 1.0}
    return figures


def recommend_isolated(recommender: Recommender, requests: Sequence[RecRequest],
                       clock: StageClock | None = None, errors: ErrorSampler | None = None
                       ) -> list[RecList | None]:
    """One list per request, as ``Recommender.recommend``; if the batch fails, each request
    alone, then a fallback list, so that one shopper's state cannot cost the others their
    lists. None where not even a fallback list could be made."""
    try:
        return list(recommender.recommend(requests, clock))
    except Exception as exc:
        (errors or ErrorSampler(log)).report(exc, f"a batch of {len(requests)} lists")
    out: list[RecList | None] = []
    for request in requests:
        made: RecList | None = None
        for make in (recommender.recommend, recommender.fallback):
            try:
                made = make([request], clock)[0]
                break
            except Exception as exc:
                (errors or ErrorSampler(log)).report(exc, f"the list for {request.event_id!r}")
        out.append(made)
    return out


def handle_batch(handler: BatchHandler, messages: Sequence[Message], read_state: StateReader,
                 now_ms: float, clock: StageClock | None = None,
                 read_metrics: MetricsReader | None = None) -> BatchResult:
    """All three steps on this thread (bench-core and tests; the worker splits them)."""
    taken = handler.take(messages, read_state, now_ms, clock=clock, read_metrics=read_metrics)
    lists = recommend_isolated(handler.recommender, taken.requests, clock, handler.errors)
    return handler.finish(taken, lists)


def _show_key(key: bytes | None) -> str:
    if key is None:
        return "(none)"
    text = key[:80].decode("utf-8", "replace")
    return repr(text) + ("..." if len(key) > 80 else "")
