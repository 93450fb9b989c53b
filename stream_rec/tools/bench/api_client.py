"""The HTTP side of `stream-rec bench-api`: keep-alive clients, one thread each.

Every client thread holds one ``http.client`` connection, opened before the cell's clock
starts. Without a rate, a client sends its next request as soon as the last one is answered
(closed loop). With ``rate``, request n is due ``n / rate`` seconds after the start and a free
client sends it then (open loop); its latency runs from when it was due, so a request that
waited for a free client counts that wait (as `stream-rec bench` counts a late event). The
requests of a cell are one shared list, taken in order; a cell ends when the list is used up
or its time is up. A request counts as an error when it fails or answers other than 200; its
time is left out of the percentiles.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

REQUEST_TIMEOUT_S = 10.0  # one request; a cell's own limit stops the cell


@dataclass
class CellRun:
    """What one cell's clients recorded."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0
    stopped_by_timeout: bool = False
    statuses: dict[str, int] = field(default_factory=dict)  # errors by status or exception
    first_error: str | None = None


class _Shared:
    """The cell's request list and results, behind one lock."""

    def __init__(self, paths: Sequence[str], rate: float | None) -> None:
        self.paths, self.rate = paths, rate
        self.start = 0.0  # perf_counter at the cell's start
        self.deadline = float("inf")
        self.next = 0
        self.lock = threading.Lock()
        self.run = CellRun()

    def take(self) -> tuple[str, float | None] | None:
        """The next request and when it is due (None: now), or None when the cell is over."""
        with self.lock:
            if self.next >= len(self.paths):
                return None
            due = self.start + self.next / self.rate if self.rate else None
            if (due or time.perf_counter()) > self.deadline:
                self.run.stopped_by_timeout = True
                return None
            path = self.paths[self.next]
            self.next += 1
            return path, due

    def record(self, latencies: list[float], errors: dict[str, int],
               first_error: str | None) -> None:
        with self.lock:
            self.run.latencies_ms.extend(latencies)
            for key, n in errors.items():
                self.run.statuses[key] = self.run.statuses.get(key, 0) + n
                self.run.errors += n
            if self.run.first_error is None:
                self.run.first_error = first_error


def _client(host: str, port: int, headers: dict[str, str], shared: _Shared,
            start: threading.Barrier) -> None:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    first_error: str | None = None
    conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT_S)
    try:
        # Before the clock: the cell measures keep-alive requests. A failure here is
        # counted on the first request, which connects again.
        with contextlib.suppress(OSError):
            conn.connect()
        start.wait()
        perf = time.perf_counter
        while (taken := shared.take()) is not None:
            path, due = taken
            if due is not None and (wait := due - perf()) > 0:
                time.sleep(wait)
            t0 = perf() if due is None else due
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                body = response.read()
                elapsed = (perf() - t0) * 1000.0
            except (OSError, http.client.HTTPException) as exc:
                key = type(exc).__name__
                errors[key] = errors.get(key, 0) + 1
                first_error = first_error or f"{path}: {exc!r}"
                conn.close()  # the next request opens a fresh connection
                continue
            if response.status == 200:
                latencies.append(elapsed)
            else:
                key = str(response.status)
                errors[key] = errors.get(key, 0) + 1
                first_error = first_error or f"{path}: {response.status} {body[:200]!r}"
    finally:
        conn.close()
        shared.record(latencies, errors, first_error)


def run_cell(host: str, port: int, paths: Sequence[str], concurrency: int, timeout_s: float,
             headers: dict[str, str] | None = None, rate: float | None = None) -> CellRun:
    """Send ``paths`` from ``concurrency`` keep-alive clients, as fast as they are answered
    or (``rate``) that many a second; stop after ``timeout_s``."""
    shared = _Shared(paths, rate)

    def set_clock() -> None:  # run once every client has connected, before any may take
        shared.start = time.perf_counter()
        shared.deadline = shared.start + timeout_s

    start = threading.Barrier(concurrency + 1, action=set_clock)
    threads = [threading.Thread(target=_client, name=f"bench-api-client-{n}",
                                args=(host, port, dict(headers or {}), shared, start),
                                daemon=True)
               for n in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join(timeout_s + REQUEST_TIMEOUT_S + 5.0)
    shared.run.wall_s = time.perf_counter() - shared.start
    return shared.run


def get_json(host: str, port: int, path: str, headers: dict[str, str] | None = None,
             conn: http.client.HTTPConnection | None = None) -> Any:
    """One GET's decoded JSON body; None when it fails or answers other than 200."""
    own = conn is None
    conn = conn or http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT_S)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return json.loads(body) if response.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        conn.close()
        return None
    finally:
        if own:
            conn.close()
