"""`stream-rec bench-api`: request paths, cell summaries, the JSON shape, flags, the clients.

The pure parts run here against no broker; one small HTTP server on 127.0.0.1 checks the
keep-alive clients' counting. The end-to-end run (broker, worker, events) is marked slow.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from stream_rec.cli import build_parser
from stream_rec.commands import bench_api as command
from stream_rec.config import Settings
from stream_rec.tools.bench.api import (
    CELL_KEYS,
    ENDPOINT_NAMES,
    ENDPOINTS,
    RESULT_KEYS,
    ApiPlan,
    RequestPools,
    ShownList,
    api_result,
    attributed_cpu_ms,
    cell_summary,
    endpoint,
    endpoint_cpu_ms,
    format_table,
    item_path,
    machine,
    parse_concurrency,
    parse_endpoints,
    request_path,
    request_paths,
    shown_list,
    user_path,
)
from stream_rec.tools.bench.api_client import get_json, run_cell
from stream_rec.tools.bench.workload import DEFAULT_DATA
from tests.unit.test_cli import OPTION, VOCABULARY


def _pools() -> RequestPools:
    return RequestPools(shoppers=("u1", "u 2"), items=("i1", "i/2"),
                        shown=(ShownList("u1", ("a", "b", "c"), "shoes"),),
                        new_prefix="never-seen-run")


def _query(path: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(path)
    return parts.path, parse_qs(parts.query)


# --- request paths --------------------------------------------------------------------------

def test_paths_escape_ids_and_keep_the_apis_own_separators() -> None:
    assert user_path("u1") == "/users/u1/recommendations/"
    assert user_path("a b/c?") == "/users/a%20b%2Fc%3F/recommendations/"
    assert user_path("u1", [("n", "20"), ("policy", "dpp:0.3")]) == \
        "/users/u1/recommendations/?n=20&policy=dpp:0.3"
    assert user_path("u1", [("exclude", "a,b&c")]) == "/users/u1/recommendations/?exclude=a,b%26c"
    assert item_path("i/2", [("n", "10"), ("diverse", "0.3")]) == \
        "/items/i%2F2/similar/?n=10&diverse=0.3"
    assert item_path("42") == "/items/42/similar/"


def test_every_endpoint_asks_what_the_issue_names() -> None:
    pools, rng = _pools(), random.Random(0)
    paths = {spec.name: request_path(spec, pools, rng) for spec in ENDPOINTS}
    path, query = _query(paths["stored"])
    assert re.fullmatch(r"/users/u(1|%202)/recommendations/", path) and not query
    path, query = _query(paths["rerank_dpp"])
    assert path.startswith("/users/") and query == {"n": ["20"], "policy": ["dpp:0.3"]}
    path, query = _query(paths["rerank_filtered"])
    assert path == "/users/u1/recommendations/"
    assert query == {"n": ["20"], "category": ["shoes"], "exclude": ["a,b,c"]}
    path, query = _query(paths["new_shopper"])
    assert path == "/users/never-seen-run-0/recommendations/" and not query
    path, query = _query(paths["new_shopper_context"])
    assert path == "/users/never-seen-run-1/recommendations/"
    assert query["context"][0] in ("i1", "i/2")
    path, query = _query(paths["similar"])
    assert path in ("/items/i1/similar/", "/items/i%2F2/similar/") and query == {"n": ["10"]}
    _, query = _query(paths["similar_diverse"])
    assert query == {"n": ["10"], "diverse": ["0.3"]}


def test_new_shoppers_are_never_asked_about_twice() -> None:
    pools = _pools()
    paths = request_paths(endpoint("new_shopper"), pools, 50, random.Random(1))
    paths += request_paths(endpoint("new_shopper_context"), pools, 50, random.Random(1))
    assert len(set(_query(p)[0] for p in paths)) == 100


def test_requests_are_reproducible_and_drawn_from_the_pools() -> None:
    first = request_paths(endpoint("rerank_dpp"), _pools(), 200, random.Random(3))
    again = request_paths(endpoint("rerank_dpp"), _pools(), 200, random.Random(3))
    assert first == again
    assert {_query(p)[0] for p in first} == {"/users/u1/recommendations/",
                                             "/users/u%202/recommendations/"}


def test_a_filtered_request_without_categories_or_shown_items() -> None:
    pools = RequestPools(("u1",), ("i1",), (ShownList("u1", (), None),))
    _, query = _query(request_path(endpoint("rerank_filtered"), pools, random.Random(0)))
    assert query == {"n": ["20"], "category": ["none"]}


def test_nothing_to_draw_from_is_said_by_name() -> None:
    empty = RequestPools((), ())
    for name in ("stored", "rerank_filtered", "similar", "new_shopper_context"):
        with pytest.raises(ValueError, match=name):
            request_paths(endpoint(name), empty, 1, random.Random(0))
    assert len(request_paths(endpoint("new_shopper"), empty, 3, random.Random(0))) == 3


def test_shown_list_takes_the_top_items_and_the_first_ones_category() -> None:
    body = {"items": [{"item_id": "a"}, {"item_id": "b"}, {"item_id": "c"}, {"item_id": "d"}]}
    attributes = {"a": {"category": "shoes"}}
    assert shown_list("u", body, attributes) == ShownList("u", ("a", "b", "c"), "shoes")
    assert shown_list("u", body, {}) == ShownList("u", ("a", "b", "c"), None)
    assert shown_list("u", {"items": []}, attributes) == ShownList("u", (), None)
    assert shown_list("u", None, attributes) == ShownList("u", (), None)


# --- parsing the lists of names and numbers ---------------------------------------------------

def test_parse_concurrency_and_endpoints() -> None:
    assert parse_concurrency("1,4,16") == (1, 4, 16)
    assert parse_concurrency(" 8 , 2,8") == (8, 2)
    for bad in ("", "0", "1,x", "-1", "1.5"):
        with pytest.raises(ValueError):
            parse_concurrency(bad)
    assert parse_endpoints("similar, stored,similar") == ("similar", "stored")
    with pytest.raises(ValueError, match="unknown endpoint 'nope'"):
        parse_endpoints("stored,nope")
    with pytest.raises(ValueError):
        parse_endpoints(" , ")


# --- cells and the result ---------------------------------------------------------------------

def test_cell_summary_percentiles_and_rate() -> None:
    latencies = [float(v) for v in range(1, 101)]
    cell = cell_summary(latencies, errors=2, wall_s=0.5, cpu_ms_per_request=0.25,
                        client_cpu_s=0.051)
    assert tuple(cell) == CELL_KEYS
    assert cell["requests"] == 102 and cell["errors"] == 2
    assert cell["requests_per_s"] == 204.0
    for q in (50, 95, 99):
        assert cell[f"p{q}_ms"] == pytest.approx(round(float(np.percentile(latencies, q)), 3))
    assert cell["max_ms"] == 100.0 and cell["worker_cpu_ms_per_request"] == 0.25
    assert cell["client_cpu_ms_per_request"] == 0.5 and cell["stopped_by_timeout"] is False


def test_a_cell_with_only_errors_has_no_percentiles() -> None:
    cell = cell_summary([], errors=3, wall_s=0.0, stopped_by_timeout=True)
    assert cell["requests"] == 3 and cell["requests_per_s"] is None
    assert cell["p50_ms"] is cell["p99_ms"] is cell["max_ms"] is None
    assert cell["stopped_by_timeout"] is True


def test_worker_cpu_is_what_the_requests_added() -> None:
    # 2 s of cell, events alone use 0.5 CPU s/s, the worker used 1.5 CPU s: 0.5 s for 1000.
    assert attributed_cpu_ms(1.5, 2.0, 0.5, 1000) == 0.5
    assert attributed_cpu_ms(None, 2.0, 0.5, 1000) is None
    assert attributed_cpu_ms(1.5, 2.0, None, 1000) is None
    assert attributed_cpu_ms(1.5, 2.0, 0.5, 0) is None
    cells = {"1": {"requests": 100}, "4": {"requests": 300}}
    assert endpoint_cpu_ms(cells, {"1": (1.0, 0.6), "4": (1.0, 0.8)}, 0.5) == 1.0
    assert endpoint_cpu_ms(cells, {"1": (1.0, None), "4": (1.0, 0.8)}, 0.5) is None


def test_the_result_has_the_issues_shape_and_reads_as_a_table() -> None:
    cells = {"1": cell_summary([1.0, 2.0, 3.0], 0, 0.01, 0.2),
             "16": cell_summary([5.0, 9.0], 1, 0.02, None, None, True)}
    result = api_result({"rerank_dpp": cells}, 200.0, 198.5, {"rerank_dpp": 0.2}, machine(),
                        rate=200.0, notes=["a note"])
    assert tuple(result)[:len(RESULT_KEYS)] == RESULT_KEYS
    decoded = json.loads(json.dumps(result))
    assert set(decoded["endpoints"]["rerank_dpp"]) == {"1", "16"}
    assert decoded["endpoints"]["rerank_dpp"]["16"]["errors"] == 1
    assert {"cpus", "load_avg_1m", "python"} <= set(decoded["machine"])
    table = format_table(result)
    assert re.search(r"^rerank_dpp\s+1\s+3\s+0\s+300\.0\s+2\.00\s", table, re.MULTILINE)
    assert re.search(r"^rerank_dpp\s+16\s+3\s+1\s.*\(timed out\)$", table, re.MULTILINE)
    assert "events_per_s_handled             198.5" in table and "a note" in table


# --- the command line -------------------------------------------------------------------------

def test_the_command_names_match_the_benchmark() -> None:
    assert command.ENDPOINTS == ENDPOINT_NAMES
    from stream_rec.commands.bench import BENCH_DATA

    assert BENCH_DATA == DEFAULT_DATA


def _args(*argv: str) -> argparse.Namespace:
    return build_parser(Settings()).parse_args(["bench-api", *argv])


def test_defaults_are_the_issues() -> None:
    options = command.plan_from_args(_args())
    plan = options.plan
    assert plan == ApiPlan()
    assert (plan.rate, plan.concurrency, plan.requests) == (200.0, (1, 4, 16), 2000)
    assert plan.request_rate is None  # closed loop
    assert plan.endpoints == ENDPOINT_NAMES
    assert options.data == DEFAULT_DATA and options.broker is None
    assert options.registry is None and options.use_model


def test_flags_reach_the_plan() -> None:
    options = command.plan_from_args(_args(
        "--rate", "50", "--requests", "10", "--concurrency", "2,1", "--cell-timeout", "5",
        "--endpoints", "similar,stored", "--warmup-requests", "0", "--min-shoppers", "3",
        "--broker", "127.0.0.1:19092", "--registry", "reg", "--data", "sessions:x",
        "--no-model", "--seed", "7", "--keep", "--request-rate", "25"))
    plan = options.plan
    assert plan.request_rate == 25.0
    assert (plan.rate, plan.requests, plan.concurrency, plan.cell_timeout_s) == \
        (50.0, 10, (2, 1), 5.0)
    assert plan.endpoints == ("similar", "stored")
    assert (plan.warmup_requests, plan.min_shoppers, plan.seed) == (0, 3, 7)
    assert options.broker == "127.0.0.1:19092" and options.registry == Path("reg")
    assert options.data == "sessions:x" and not options.use_model and options.keep


@pytest.mark.parametrize(("argv", "words"), [
    (("--concurrency", "0"), "expected whole numbers >= 1"),
    (("--concurrency", "1,a"), "expected whole numbers >= 1"),
    (("--endpoints", "stored,nope"), "expected a comma-separated subset"),
    (("--requests", "0"), "expected an integer >= 1"),
    (("--rate", "0"), "expected a number > 0"),
    (("--cell-timeout", "-1"), "expected a number > 0"),
])
def test_bad_flags_are_one_line(argv: tuple[str, ...], words: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        _args(*argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and words in err


def test_help_uses_the_shared_words() -> None:
    parser = build_parser(Settings())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    page = sub.choices["bench-api"].format_help()
    metavars = {m.group(2) for line in page.split("options:", 1)[-1].splitlines()
                if (m := OPTION.match(line)) and m.group(2)}
    assert metavars and metavars <= VOCABULARY
    assert "bench-api" in parser.format_help()
    for name in ENDPOINT_NAMES:
        assert name in page


# --- the keep-alive clients, against a small local server -------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the worker's aiohttp server
    connections: set[int] = set()

    def do_GET(self) -> None:
        type(self).connections.add(id(self.connection))
        status = 200 if self.path.startswith("/ok") else 404
        if self.path.startswith("/auth") and self.headers.get("Authorization") == "Bearer t":
            status = 200
        body = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.connections = set()
    try:
        yield "127.0.0.1", int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_clients_count_answers_and_errors_on_kept_alive_connections(
        server: tuple[str, int]) -> None:
    host, port = server
    paths = [f"/ok/{n}" for n in range(40)] + ["/missing"] * 5
    cell = run_cell(host, port, paths, concurrency=3, timeout_s=30.0)
    assert len(cell.latencies_ms) == 40 and cell.errors == 5 and cell.statuses == {"404": 5}
    assert cell.first_error is not None and "404" in cell.first_error
    assert not cell.stopped_by_timeout and cell.wall_s > 0
    assert all(ms > 0 for ms in cell.latencies_ms)
    assert len(_Handler.connections) == 3  # one connection per client, reused


def test_clients_send_the_token_and_stop_at_the_cell_timeout(server: tuple[str, int]) -> None:
    host, port = server
    cell = run_cell(host, port, ["/auth"] * 5, 1, 30.0, {"Authorization": "Bearer t"})
    assert cell.errors == 0 and len(cell.latencies_ms) == 5
    cell = run_cell(host, port, ["/ok"] * 1_000_000, 2, timeout_s=0.3)
    assert cell.stopped_by_timeout and 0 < len(cell.latencies_ms) < 1_000_000
    assert cell.wall_s < 5.0


def test_open_loop_clients_keep_the_rate(server: tuple[str, int]) -> None:
    host, port = server
    cell = run_cell(host, port, ["/ok"] * 30, 2, 30.0, rate=100.0)
    assert cell.errors == 0 and len(cell.latencies_ms) == 30
    assert 0.29 <= cell.wall_s < 2.0  # the last request is due 0.29 s after the start
    cell = run_cell(host, port, ["/ok"] * 30, 1, 0.1, rate=100.0)
    assert cell.stopped_by_timeout and len(cell.latencies_ms) <= 11  # due by 0.1 s


def test_clients_count_a_refused_connection_as_errors() -> None:
    from stream_rec.tools.bench.processes import free_port

    cell = run_cell("127.0.0.1", free_port(), ["/ok"] * 4, 2, 10.0)
    assert cell.errors == 4 and not cell.latencies_ms
    assert set(cell.statuses) == {"ConnectionRefusedError"}


def test_get_json(server: tuple[str, int]) -> None:
    host, port = server
    assert get_json(host, port, "/ok/x") == {"path": "/ok/x"}
    assert get_json(host, port, "/missing") is None


# --- end to end (slow: a worker on the broker) ------------------------------------------------

@pytest.mark.slow
@pytest.mark.integration
def test_a_tiny_run_measures_every_endpoint(broker: str, tmp_path: Path) -> None:
    from stream_rec.tools.bench.api_run import ApiBenchOptions, run

    folder = tmp_path / "shop"
    folder.mkdir()
    rng = random.Random(5)
    for name, count in (("train", 300), ("valid", 20), ("test", 20)):
        rows = [f"{n}\t" + " ".join(str(rng.randrange(300)) for _ in range(rng.randrange(2, 7)))
                for n in range(count)]
        (folder / f"{name}_sessions.tsv").write_text("session_id\titems\n" + "\n".join(rows))
    (folder / "item_categories.tsv").write_text(
        "item_id\tcategory\n" + "\n".join(f"{i}\tc{i % 7}" for i in range(300)))
    registry = tmp_path / "no-model"
    registry.mkdir()
    plan = ApiPlan(requests=15, concurrency=(1, 2), cell_timeout_s=30.0, warmup_requests=2,
                   rate=50.0, min_shoppers=20, baseline_s=1.0, open_sessions=50)
    result = run(ApiBenchOptions(plan=plan, data=f"categories:{folder}", broker=broker,
                                 registry=registry, use_model=False))
    assert tuple(result)[:len(RESULT_KEYS)] == RESULT_KEYS
    assert tuple(result["endpoints"]) == ENDPOINT_NAMES
    for name, cells in result["endpoints"].items():
        assert set(cells) == {"1", "2"}, name
        for cell in cells.values():
            assert cell["requests"] == 15 and cell["errors"] == 0, (name, cell)
            assert 0 < cell["p50_ms"] <= cell["p99_ms"] <= cell["max_ms"]
    assert result["events_per_s_offered"] > 0 and result["events_per_s_handled"] > 0
    assert result["notes"] == []  # this dataset has categories
    json.dumps(result)
