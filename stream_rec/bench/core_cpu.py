"""CPU per event of the worker's own work, in one process, without Kafka or Faust.

``stream-rec bench`` measures the pipeline end to end on a broker that shares the machine with
the worker and the load generator, so its events/s move with whatever else the cores are
doing. This measures the part of each event that is the worker's own code, with
``time.process_time`` (CPU seconds of this process), on the same workload, model and settings:
the numbers to compare when changing that code. Batches are consecutive slices of the event
stream, as the worker's ``take_events`` batches are under a backlog; one thread does everything
(the worker splits it between the event loop and a helper thread, which changes wall time, not
CPU time).

Parts, in the order the worker runs them per batch:

- ``decode_validate``: ``parse_message`` of each raw event;
- ``state_in``: decode each shopper's stored state once per batch, apply each event
  (``Recommender.observe``);
- ``recommend``: ``Recommender.recommend`` for the batch (retrieval, scoring, re-ranking;
  split further in ``recommend_stages_us``, wall time from the recommender's own clock);
- ``state_out``: record each list as shown, encode each shopper's state once per batch;
- ``encode_list``: each list as the JSON message the worker publishes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from stream_rec.bench.workload import BenchEvent
from stream_rec.core.events import Event, parse_message
from stream_rec.core.state import StateLimits, UserState, record_shown
from stream_rec.core.state_codec import decode_state, encode_state
from stream_rec.serving.recommender import Recommender, RecRequest
from stream_rec.stage_clock import StageClock

PARTS: tuple[str, ...] = ("decode_validate", "state_in", "recommend", "state_out", "encode_list")


@dataclass
class CoreResult:
    events: int
    batch: int
    cpu_us: dict[str, float]  # per event, by part
    recommend_stages_us: dict[str, float]  # per event, wall time inside recommend
    lists: int

    def to_dict(self) -> dict[str, object]:
        return {"events": self.events, "batch": self.batch,
                "cpu_us_per_event": self.cpu_us,
                "cpu_us_per_event_total": round(sum(self.cpu_us.values()), 1),
                "recommend_stages_us": self.recommend_stages_us, "lists": self.lists}


def run_core(recommender: Recommender, events: Sequence[BenchEvent], *, batch: int,
             warmup: int, limits: StateLimits, max_event_bytes: int = 1 << 20,
             progress: Callable[[int, int], None] | None = None) -> CoreResult:
    """Run ``events`` through the worker's per-batch work; time all but the first ``warmup``.

    Shopper state lives in a dict of encoded bytes, as in the worker's table, so the warm-up
    events give the measured ones realistic (grown) states to decode and encode.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    if not 0 <= warmup < len(events):
        raise ValueError("need more events than warm-up events")
    store: dict[bytes, bytes] = {}
    cpu = dict.fromkeys(PARTS, 0.0)
    clock = StageClock()
    lists = measured_events = 0
    for start in range(0, len(events), batch):
        chunk = events[start:start + batch]
        measured = start >= warmup
        spent, made = _one_batch(recommender, chunk, store, limits, max_event_bytes,
                                 clock if measured else StageClock())
        if measured:
            for part, seconds in spent.items():
                cpu[part] += seconds
            lists += made
            measured_events += len(chunk)
        if progress is not None:
            progress(min(start + batch, len(events)), len(events))
    n = measured_events
    return CoreResult(
        events=n, batch=batch,
        cpu_us={part: round(seconds / n * 1e6, 1) for part, seconds in cpu.items()},
        recommend_stages_us={name: round(seconds / n * 1e6, 1)
                             for name, seconds in clock.seconds.items() if seconds},
        lists=lists)


def _one_batch(recommender: Recommender, chunk: Sequence[BenchEvent], store: dict[bytes, bytes],
               limits: StateLimits, max_event_bytes: int, clock: StageClock
               ) -> tuple[dict[str, float], int]:
    """One batch, as the worker's ``handle_batch`` does it; CPU seconds per part."""
    tick = time.process_time
    t0 = tick()
    parsed = [parse_message(e.value, max_event_bytes) for e in chunk]
    t1 = tick()
    states: dict[bytes, UserState] = {}
    requests: list[RecRequest] = []
    for offset, event in enumerate(parsed):
        if not isinstance(event, Event):
            continue
        key = event.user_id.encode()
        if key not in states:
            states[key] = decode_state(store.get(key))
        states[key] = recommender.observe(states[key], event, limits, (0, offset))
        requests.append(RecRequest(event.user_id, event.event_id, states[key], 0.0))
    t2 = tick()
    out = recommender.recommend(requests, clock)
    t3 = tick()
    for rec in out:
        key = rec.user_id.encode()
        states[key] = record_shown(states[key], (i.item_id for i in rec.items), limits)
    for key, state in states.items():
        store[key] = encode_state(state)
    t4 = tick()
    for rec in out:
        orjson.dumps(rec.to_dict())
    t5 = tick()
    return dict(zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True)), len(out)
