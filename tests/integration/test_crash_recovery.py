"""SIGKILL a worker again and again in the middle of a replay: nothing valid is lost.

Every valid event gets its list (exactly one after de-duplication by event_id), and every
shopper's final state equals what a clean, in-order replay of the same events produces. After
the last kill the worker's state folder is deleted as well, so the final worker rebuilds every
shopper from the changelog alone (as a replacement machine would).
"""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest

from stream_rec.core.events import EVENT_TYPES, Event
from stream_rec.core.state import StateLimits, UserState, apply_event, is_duplicate
from stream_rec.tools.worker_process import WorkerProcess
from tests.integration.worker_fixtures import (
    TopicReader,
    event_bytes,
    isolated_settings,
    produce,
    wait_committed,
)

pytestmark = pytest.mark.integration

N_EVENTS, N_USERS, N_ITEMS, KILLS = 3000, 40, 60, 3


def _events(seed: int = 7) -> list[Event]:
    rng = random.Random(seed)
    return [Event(f"ev-{n}", f"user-{rng.randrange(N_USERS)}", f"item-{rng.randrange(N_ITEMS)}",
                  rng.choices(EVENT_TYPES, weights=[6, 3, 2, 1])[0], 1_700_000_000_000 + n)
            for n in range(N_EVENTS)]


def _category(item_id: str) -> str:
    return f"cat-{int(item_id.split('-')[1]) % 6}"


def _clean_replay(events: list[Event], limits: StateLimits) -> dict[str, UserState]:
    states: dict[str, UserState] = {}
    for event in events:
        state = states.get(event.user_id, UserState())
        if not is_duplicate(state, event.event_id):
            states[event.user_id] = apply_event(state, event, _category(event.item_id), limits)
    return states


def _comparable(state: dict) -> dict:  # type: ignore[type-arg]
    """What events decide; which lists were shown depends on timing, so it is left out."""
    return {k: v for k, v in state.items() if k not in {"shown", "profile_model"}}


def _online_lists(metrics: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("stream_rec_online_lists_total{"))


def test_repeated_sigkill_loses_nothing(broker: str, new_topic, tmp_path: Path) -> None:
    # STREAM_REC_TEST_GUARANTEE=exactly_once evaluates Faust's transactional mode the same way.
    guarantee = os.environ.get("STREAM_REC_TEST_GUARANTEE", "at_least_once")
    settings = isolated_settings(broker, new_topic, tmp_path, processing_guarantee=guarantee)
    events = _events()
    produce(broker, settings.items_topic,
            [(f"item-{i}".encode(), f'{{"category": "{_category(f"item-{i}")}"}}'.encode())
             for i in range(N_ITEMS)])
    recs = TopicReader(broker, settings.recommendations_topic)
    # The events go out in KILLS + 1 slices, one more before each worker: a worker killed once
    # it is half-way through its slice cannot run past the end of it before the kill lands (a
    # fast worker given every event at once had answered all of them by then).
    size = N_EVENTS // (KILLS + 1)
    slices = [events[i * size:(i + 1) * size] for i in range(KILLS)] + [events[KILLS * size:]]
    wanted = {e.event_id for e in events}

    def covered() -> set[str]:
        return {r["event_id"] for r in recs.values} & wanted

    for kill in range(KILLS):
        produce(broker, settings.events_topic, [event_bytes(e.to_dict()) for e in slices[kill]])
        worker = WorkerProcess(settings, tmp_path / f"worker-{kill}.log").start()
        target = kill * size + size // 2
        try:
            recs.wait_for(lambda _, t=target: len(covered()) >= t, 180)
        finally:
            worker.kill()  # SIGKILL: no flush, no commit, no goodbye
        assert len(covered()) < N_EVENTS, "the replay finished before the crash"
    # The machine is lost with its disk: only the changelog topics hold the state now.
    shutil.rmtree(settings.state_dir)

    produce(broker, settings.events_topic, [event_bytes(e.to_dict()) for e in slices[KILLS]])
    worker = WorkerProcess(settings, tmp_path / "worker-final.log").start()
    try:
        recs.wait_for(lambda _: covered() == wanted, 480)
        wait_committed(broker, settings.app_id, settings.events_topic, 120)
        users = sorted({e.user_id for e in events})
        states = {u: worker.get_json(f"/users/{u}/state/") for u in users}
        # Each partition resumed exactly at its committed offset: no event jumped over.
        assert "stream_rec_offsets_skipped_total 0.0\n" in worker.get_text("/metrics/")
        # The online figures count each event's list once, whatever was replayed (the final
        # worker owns every partition; its gauge is refreshed every 5 s).
        deadline = time.monotonic() + 60
        while (lists := _online_lists(worker.get_text("/metrics/"))) != N_EVENTS:
            assert lists < N_EVENTS, f"{lists} lists counted for {N_EVENTS} events"
            assert time.monotonic() < deadline, f"{lists} lists counted for {N_EVENTS} events"
            time.sleep(0.5)
    finally:
        worker.stop()
        recs.close()

    assert covered() == wanted
    assert {r["event_id"] for r in recs.values} == wanted  # nothing that was not sent
    duplicates = len(recs.values) - len(wanted)
    print(f"guarantee={guarantee}: {len(recs.values)} lists for {len(wanted)} events "
          f"({duplicates} re-sent after crashes)")
    limits = replace(StateLimits(), history=settings.history_length)
    expected = _clean_replay(events, limits)
    for user in users:
        clean = expected[user]
        got = _comparable(states[user])
        assert got["n_events"] == clean.n_events, user
        assert [h["item_id"] for h in got["history"]] == clean.history_items, user
        assert got["purchased"] == list(clean.purchased), user
        assert got["category_affinity"] == dict(clean.category_affinity), user
        assert got["last_ts"] == clean.last_ts_ms, user
