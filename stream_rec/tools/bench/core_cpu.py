"""CPU per event of the worker's own work, in one process, without Kafka or Faust.

``stream-rec bench`` measures the pipeline end to end on a broker that shares the machine with
the worker and the load generator, so its events/s move with whatever else the cores are
doing. This measures the part of each event that is the worker's own code, with
``time.process_time`` (CPU seconds of this process), on the same workload, model and settings:
the numbers to compare when changing that code. Batches are consecutive slices of the event
stream, as the worker's ``take_events`` batches are under a backlog; one thread does everything
(the worker splits it between the event loop and a helper thread, which changes wall time, not
CPU time).

Parts, in the order the worker runs them per batch (``stream_rec.serving.batch``, the very
functions the worker's agent calls):

- ``take``: validate each raw message, decode each shopper's stored state once per batch,
  de-duplicate and apply each event (``BatchHandler.take``);
- ``recommend``: the batch's lists (retrieval, scoring, re-ranking; ``recommend_isolated``);
- ``finish``: record each list as shown, encode each shopper's state and each list as the
  JSON message the worker publishes (``BatchHandler.finish``).

``stages_us`` splits the same work further by the worker's stage clock (wall time).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stream_rec.serving.batch import BatchConfig, BatchHandler, recommend_isolated
from stream_rec.serving.dead_letter import Message
from stream_rec.serving.recommender import Recommender
from stream_rec.serving.stage_clock import StageClock
from stream_rec.tools.bench.workload import BenchEvent

PARTS: tuple[str, ...] = ("take", "recommend", "finish")
TOPIC = "bench-core"


@dataclass
class CoreResult:
    """CPU microseconds per event of the worker's own work, by part and by stage."""

    events: int
    batch: int
    cpu_us: dict[str, float]  # per event, by part
    stages_us: dict[str, float]  # per event, wall time by stage
    lists: int

    def to_dict(self) -> dict[str, object]:
        return {"events": self.events, "batch": self.batch,
                "cpu_us_per_event": self.cpu_us,
                "cpu_us_per_event_total": round(sum(self.cpu_us.values()), 1),
                "stages_us": self.stages_us, "lists": self.lists}


def run_core(recommender: Recommender, events: Sequence[BenchEvent], *, batch: int,
             warmup: int, config: BatchConfig,
             progress: Callable[[int, int], None] | None = None) -> CoreResult:
    """Run ``events`` through the worker's per-batch work; time all but the first ``warmup``.

    Shopper state lives in a dict of encoded bytes, as in the worker's table, so the warm-up
    events give the measured ones realistic (grown) states to decode and encode.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    if not 0 <= warmup < len(events):
        raise ValueError("need more events than warm-up events")
    handler = BatchHandler(recommender, config)
    store: dict[bytes, bytes] = {}
    cpu = dict.fromkeys(PARTS, 0.0)
    clock = StageClock()
    lists = measured_events = 0
    # Warm-up and measured events are batched apart, so exactly the events asked for count.
    starts = [*range(0, warmup, batch), *range(warmup, len(events), batch)]
    for start in starts:
        end = min(start + batch, warmup if start < warmup else len(events))
        chunk = [Message(e.key, e.value, TOPIC, 0, start + n)
                 for n, e in enumerate(events[start:end])]
        measured = start >= warmup
        spent, made = _one_batch(handler, chunk, store, clock if measured else StageClock())
        if measured:
            for part, seconds in spent.items():
                cpu[part] += seconds
            lists += made
            measured_events += len(chunk)
        if progress is not None:
            progress(end, len(events))
    n = measured_events
    return CoreResult(
        events=n, batch=batch,
        cpu_us={part: round(seconds / n * 1e6, 1) for part, seconds in cpu.items()},
        stages_us={name: round(seconds / n * 1e6, 1)
                             for name, seconds in clock.seconds.items() if seconds},
        lists=lists)


def _one_batch(handler: BatchHandler, chunk: Sequence[Message], store: dict[bytes, bytes],
               clock: StageClock) -> tuple[dict[str, float], int]:
    """One batch, as the worker's agent runs it; CPU seconds per part."""
    tick = time.process_time
    now_ms = time.time() * 1000
    t0 = tick()
    taken = handler.take(chunk, lambda key, _index: store.get(key), now_ms, clock=clock)
    t1 = tick()
    lists = recommend_isolated(handler.recommender, taken.requests, clock, handler.errors)
    t2 = tick()
    result = handler.finish(taken, lists)
    for write in result.state:
        if write.value is None:
            store.pop(write.key, None)
        else:
            store[write.key] = write.value
    t3 = tick()
    return dict(zip(PARTS, (t1 - t0, t2 - t1, t3 - t2), strict=True)), len(result.lists)
