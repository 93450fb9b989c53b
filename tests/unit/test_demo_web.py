"""The demo page's web server without a broker or worker: routing, the host check, refusals.

A click that passes validation needs Kafka; that path runs in test_demo_page.py.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from stream_rec.config import load_settings
from stream_rec.tools.demo.experiment import ExperimentSampler
from stream_rec.tools.demo.site import DemoSite, FigureSampler, WorkerClient
from stream_rec.tools.demo.traffic import Shoppers
from stream_rec.tools.demo.web import DemoServer
from tests.helpers import free_port


@pytest.fixture
def server() -> Iterator[DemoServer]:
    settings = load_settings(environ={}, web_port=free_port())  # no worker listens there
    client = WorkerClient(settings)
    site = DemoSite(settings, client, FigureSampler(client), None,  # type: ignore[arg-type]
                    Shoppers(), {"i1": {"category": "shoes"}}, "storefront",
                    ExperimentSampler(lambda: {"running": False}))
    running = DemoServer(site, 0).start()
    yield running
    running.stop()


def request(server: DemoServer, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_serves_the_page_and_the_overview(server: DemoServer) -> None:
    status, page = request(server, "GET", "/")
    assert status == 200 and b'id="recs"' in page and b"/api/click" in page
    status, body = request(server, "GET", "/api/overview")
    overview = json.loads(body)
    assert status == 200 and overview["worker_status"] == "unreachable"
    assert overview["data"] == "storefront" and overview["shoppers"] == []
    status, body = request(server, "GET", "/api/experiment")
    assert status == 200 and json.loads(body) == {"running": False}


def test_says_when_the_worker_does_not_answer(server: DemoServer) -> None:
    status, body = request(server, "GET", "/api/shoppers/u1")
    assert status == 502 and "worker did not answer" in json.loads(body)["error"]
    assert request(server, "GET", "/api/shoppers/")[0] == 404
    assert request(server, "GET", "/nothing")[0] == 404


def test_answers_only_to_local_host_names(server: DemoServer) -> None:
    status, body = request(server, "GET", "/", headers={"Host": "shop.example:8080"})
    assert status == 403 and b"127.0.0.1 or localhost" in body
    assert request(server, "GET", "/", headers={"Host": "localhost"})[0] == 200


def test_refuses_clicks_it_cannot_take(server: DemoServer) -> None:
    as_json = {"Content-Type": "application/json"}
    good = json.dumps({"user_id": "u1", "item_id": "i1"}).encode()
    assert request(server, "POST", "/api/click", good, {"Content-Type": "text/plain"})[0] == 415
    status, body = request(server, "POST", "/api/click", b"[]", as_json)
    assert status == 400 and "JSON object" in json.loads(body)["error"]
    status, body = request(server, "POST", "/api/click",
                           json.dumps({"user_id": "u1", "item_id": "i9"}).encode(), as_json)
    assert status == 400 and "not in the catalog" in json.loads(body)["error"]
    assert request(server, "POST", "/api/click", b"x" * 5000, as_json)[0] == 413
    assert request(server, "POST", "/api/elsewhere", good, as_json)[0] == 404
