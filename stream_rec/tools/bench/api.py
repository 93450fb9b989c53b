"""`stream-rec bench-api`: what it asks of the worker's HTTP API, and how it reports it.

The worker answers HTTP on the same event loop that runs its event batches, so a request's
latency depends on what the stream is doing at that moment. The benchmark streams events at a
fixed rate into one real worker for the whole run and, meanwhile, sends each endpoint below
``requests`` times from ``concurrency`` keep-alive clients, one concurrency after another
(``api_client`` sends, ``api_run`` puts the run together). This module is the pure part:
the endpoints, the request paths, the per-cell summary, the JSON object and its table.

A *cell* is one endpoint at one concurrency. Its latency is the wall time of one request on
the client, from sending it to having read the whole answer, on a connection already open.
By default the clients are closed loop (each sends its next request when the last one is
answered), so ``requests_per_s`` is what the worker managed at that concurrency, and the
worker answers requests as fast as it can, leaving the events only what remains. With a
request rate they are open loop: requests are due at that rate, and a request's latency runs
from when it was due.
"""

from __future__ import annotations

import os
import platform
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from stream_rec.tools.bench.stats import percentile

RERANK_N = "20"
RERANK_POLICY = "dpp:0.3"
SIMILAR_N = "10"
SIMILAR_DIVERSE = "0.3"
EXCLUDE_COUNT = 3  # items a page already shows, left out of a filtered re-rank
NEW_SHOPPER_PREFIX = "never-seen"


@dataclass(frozen=True)
class Endpoint:
    """One request shape: the path it takes and whom or what it asks about.

    ``subject`` says where each request's id comes from: ``shopper`` (a shopper with a list),
    ``shown`` (a shopper whose list the bench has read, for ``category`` and ``exclude``),
    ``new_shopper`` (an id no event ever named), ``context`` (a new shopper looking at an item
    seen in the events) or ``item`` (an item seen in the events).
    """

    name: str
    subject: str
    params: tuple[tuple[str, str], ...]
    summary: str


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("stored", "shopper", (), "the stored list, as published"),
    Endpoint("rerank_dpp", "shopper", (("n", RERANK_N), ("policy", RERANK_POLICY)),
             f"the kept pool re-ranked at request time ({RERANK_POLICY})"),
    Endpoint("rerank_filtered", "shown", (("n", RERANK_N),),
             "the kept pool re-ranked with category and exclude filters"),
    Endpoint("new_shopper", "new_shopper", (), "a new shopper: trending and new items"),
    Endpoint("new_shopper_context", "context", (),
             "a new shopper looking at an item: one model call"),
    Endpoint("similar", "item", (("n", SIMILAR_N),), "items like this one"),
    Endpoint("similar_diverse", "item", (("n", SIMILAR_N), ("diverse", SIMILAR_DIVERSE)),
             "items like this one, diversity re-ranked"),
)
ENDPOINT_NAMES = tuple(e.name for e in ENDPOINTS)
CELL_KEYS = ("requests", "errors", "requests_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms",
             "worker_cpu_ms_per_request", "client_cpu_ms_per_request", "stopped_by_timeout")


@dataclass(frozen=True)
class ApiPlan:
    """What `stream-rec bench-api` measures; see its ``--help`` for each field."""

    endpoints: tuple[str, ...] = ENDPOINT_NAMES
    concurrency: tuple[int, ...] = (1, 4, 16)
    requests: int = 2000
    cell_timeout_s: float = 60.0
    warmup_requests: int = 50  # per endpoint, before its first cell, not recorded
    request_rate: float | None = None  # requests/s per cell (open loop); None: closed loop
    rate: float = 200.0  # events/s streamed into the worker for the whole run
    min_shoppers: int = 500  # shoppers with a list before the first request
    shoppers_timeout_s: float = 180.0
    baseline_s: float = 5.0  # worker CPU with events only, to attribute CPU to requests
    open_sessions: int = 1000  # shoppers with an open session in the event stream
    seed: int = 0


@dataclass(frozen=True)
class ShownList:
    """A shopper's stored list as the bench read it: what a filtered request asks for."""

    user_id: str
    exclude: tuple[str, ...]  # the list's top items (a page already shows them)
    category: str | None  # the category of its top item, when the dataset has categories


@dataclass
class RequestPools:
    """Where request ids are drawn from (the shoppers and items seen so far)."""

    shoppers: Sequence[str]
    items: Sequence[str]
    shown: Sequence[ShownList] = ()
    new_prefix: str = NEW_SHOPPER_PREFIX
    fallback_category: str = "none"  # when the dataset has no categories at all
    next_new: int = field(default=0)  # new-shopper ids are never reused within a run


def parse_endpoints(text: str) -> tuple[str, ...]:
    """``stored,rerank_dpp`` -> the names, in the order given; ValueError for unknown ones."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise ValueError("no endpoint named")
    unknown = [n for n in names if n not in ENDPOINT_NAMES]
    if unknown:
        raise ValueError(f"unknown endpoint {unknown[0]!r}; choose from "
                         f"{', '.join(ENDPOINT_NAMES)}")
    return names


def parse_concurrency(text: str) -> tuple[int, ...]:
    """``1,4,16`` -> (1, 4, 16); ValueError unless every entry is a whole number >= 1."""
    levels: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise ValueError(f"{part!r} is not a whole number >= 1")
        if int(part) not in levels:
            levels.append(int(part))
    return tuple(levels)


def endpoint(name: str) -> Endpoint:
    """The endpoint called ``name``."""
    for candidate in ENDPOINTS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def _query(params: Sequence[tuple[str, str]]) -> str:
    # ',' and ':' are what the API's own examples use (exclude=a,b, policy=dpp:0.3).
    return "&".join(f"{quote(k, safe='')}={quote(v, safe=',:')}" for k, v in params)


def user_path(user_id: str, params: Sequence[tuple[str, str]] = ()) -> str:
    """``/users/{id}/recommendations/`` with ``params`` as its query, ids escaped."""
    path = f"/users/{quote(user_id, safe='')}/recommendations/"
    return f"{path}?{_query(params)}" if params else path


def item_path(item_id: str, params: Sequence[tuple[str, str]] = ()) -> str:
    """``/items/{id}/similar/`` with ``params`` as its query, ids escaped."""
    path = f"/items/{quote(item_id, safe='')}/similar/"
    return f"{path}?{_query(params)}" if params else path


def request_path(spec: Endpoint, pools: RequestPools, rng: random.Random) -> str:
    """One request of ``spec`` with an id drawn from ``pools``."""
    params = list(spec.params)
    if spec.subject == "shopper":
        return user_path(rng.choice(pools.shoppers), params)
    if spec.subject == "shown":
        shown = rng.choice(pools.shown)
        params.append(("category", shown.category or pools.fallback_category))
        if shown.exclude:
            params.append(("exclude", ",".join(shown.exclude)))
        return user_path(shown.user_id, params)
    if spec.subject in ("new_shopper", "context"):
        user = f"{pools.new_prefix}-{pools.next_new}"
        pools.next_new += 1
        if spec.subject == "context":
            params.append(("context", rng.choice(pools.items)))
        return user_path(user, params)
    if spec.subject == "item":
        return item_path(rng.choice(pools.items), params)
    raise ValueError(f"unknown subject {spec.subject!r}")


def request_paths(spec: Endpoint, pools: RequestPools, count: int,
                  rng: random.Random) -> list[str]:
    """``count`` requests of ``spec``; ValueError when ``pools`` has nothing to draw from."""
    needs = {"shopper": pools.shoppers, "shown": pools.shown, "context": pools.items,
             "item": pools.items}.get(spec.subject)
    if needs is not None and not needs:
        raise ValueError(f"{spec.name}: no {spec.subject} ids to draw requests from")
    return [request_path(spec, pools, rng) for _ in range(count)]


def shown_list(user_id: str, body: Any, attributes: dict[str, dict[str, str]]) -> ShownList:
    """What a page showing ``body`` (a stored list's JSON) would filter by."""
    items = body.get("items", []) if isinstance(body, dict) else []
    ids = [str(i["item_id"]) for i in items if isinstance(i, dict) and "item_id" in i]
    category = attributes.get(ids[0], {}).get("category") if ids else None
    return ShownList(user_id, tuple(ids[:EXCLUDE_COUNT]), category or None)


def attributed_cpu_ms(cpu_s: float | None, wall_s: float, baseline_cpu_per_s: float | None,
                      requests: int) -> float | None:
    """Worker CPU ms per request: the cell's CPU minus what events alone used in as long.

    An estimate (the events' share varies), so it can come out slightly negative for cheap
    requests on a busy machine; None when either CPU reading is missing or no request ran.
    """
    if cpu_s is None or baseline_cpu_per_s is None or requests <= 0:
        return None
    return round((cpu_s - baseline_cpu_per_s * wall_s) * 1000.0 / requests, 3)


def cell_summary(latencies_ms: Sequence[float], errors: int, wall_s: float,
                 cpu_ms_per_request: float | None = None, client_cpu_s: float | None = None,
                 stopped_by_timeout: bool = False) -> dict[str, Any]:
    """One cell's JSON: counts, throughput and latency percentiles (None without samples).

    ``client_cpu_s`` is the bench process's own CPU time during the cell: near one core's
    worth of the cell's wall time, the clients rather than the worker set the pace.
    """
    done = len(latencies_ms) + errors
    ordered = sorted(latencies_ms)

    def pct(q: float) -> float | None:
        return round(percentile(ordered, q), 3) if ordered else None

    cell = {"requests": done, "errors": errors,
            "requests_per_s": round(done / wall_s, 1) if wall_s > 0 else None,
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "max_ms": round(ordered[-1], 3) if ordered else None,
            "worker_cpu_ms_per_request": cpu_ms_per_request,
            "client_cpu_ms_per_request": None if client_cpu_s is None or done == 0 else
            round(client_cpu_s * 1000.0 / done, 3),
            "stopped_by_timeout": stopped_by_timeout}
    assert tuple(cell) == CELL_KEYS
    return cell


def endpoint_cpu_ms(cells: dict[str, dict[str, Any]],
                    walls_and_cpu: dict[str, tuple[float, float | None]],
                    baseline_cpu_per_s: float | None) -> float | None:
    """Worker CPU ms per request over all of an endpoint's cells (``walls_and_cpu``: per
    concurrency, the cell's wall seconds and worker CPU seconds)."""
    requests = sum(int(c["requests"]) for c in cells.values())
    if not walls_and_cpu or any(cpu is None for _, cpu in walls_and_cpu.values()):
        return None
    wall = sum(w for w, _ in walls_and_cpu.values())
    cpu = sum(c for _, c in walls_and_cpu.values() if c is not None)
    return attributed_cpu_ms(cpu, wall, baseline_cpu_per_s, requests)


def machine() -> dict[str, Any]:
    """The machine the numbers come from: CPUs, their model, load, Python."""
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model,
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "platform": platform.platform(terse=True)}


RESULT_KEYS = ("endpoints", "events_per_s_offered", "events_per_s_handled",
               "worker_cpu_ms_per_request", "machine")


def api_result(endpoints: dict[str, dict[str, dict[str, Any]]], offered: float | None,
               handled: float | None, cpu_ms: dict[str, float | None],
               machine_info: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The JSON object: the keys the issue names first, then what explains them."""
    result: dict[str, Any] = {"endpoints": endpoints, "events_per_s_offered": offered,
                              "events_per_s_handled": handled,
                              "worker_cpu_ms_per_request": cpu_ms, "machine": machine_info}
    result.update(extra)
    return result


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def format_table(result: dict[str, Any]) -> str:
    """The result as a table for a terminal (``--json`` prints the object instead)."""
    header = (f"{'endpoint':<20} {'conc':>4} {'requests':>8} {'errors':>6} {'req/s':>8} "
              f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'cpu ms/req':>10}")
    lines = [header, "-" * len(header)]
    for name, cells in result.get("endpoints", {}).items():
        for concurrency, cell in cells.items():
            flag = " (timed out)" if cell.get("stopped_by_timeout") else ""
            lines.append(
                f"{name:<20} {concurrency:>4} {cell['requests']:>8} {cell['errors']:>6} "
                f"{_num(cell['requests_per_s'], 1):>8} {_num(cell['p50_ms']):>8} "
                f"{_num(cell['p95_ms']):>8} {_num(cell['p99_ms']):>8} "
                f"{_num(cell['max_ms']):>8} {_num(cell['worker_cpu_ms_per_request'], 3):>10}"
                f"{flag}")
    lines.append("cpu ms/req: the worker's CPU per request beyond what the events alone use")
    lines.append("")
    for key in ("events_per_s_offered", "events_per_s_handled"):
        lines.append(f"{key:<32} {_num(result.get(key), 1)}")
    for key, value in result.items():
        if key not in RESULT_KEYS:
            lines.append(f"{key:<32} {_plain(value)}")
    lines.append(f"{'machine':<32} {_plain(result.get('machine') or {})}")
    return "\n".join(lines)


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, list | tuple):
        return "; ".join(_plain(v) for v in value) or "-"
    return "-" if value is None else str(value)
