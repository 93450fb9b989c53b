"""Every URL a worker answers needs the token, except /health/, which tells readiness only.

One real worker, with ``http_token`` set and a registry whose current model checksums right
but is no ONNX graph: it must start, serve fallback lists and say so, not crash. The routes
are read from the Faust web server of the worker's own app (the same modules the worker
process imports), so a route added later is walked by this test without editing it.
"""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path

import pytest

from stream_rec.model import FileRegistry
from stream_rec.tools.worker_process import WorkerProcess
from tests.integration.worker_fixtures import TopicReader, event_bytes, isolated_settings, produce
from tests.unit.fake_artifact import make_artifact

pytestmark = pytest.mark.integration

TOKEN = "t0ken-only-this-test-knows"
HEALTH = {"/health/", "/health"}
# Faust's own pages, switched off: with the token they must not exist either.
FAUST_PAGES = ["/router/", "/router/user-state/", "/table/", "/table/user-state/shopper-1/",
               "/stats/", "/assignment/", "/graph/", "/performance/"]
PARAMETER = re.compile(r"\{(\w+)[^}]*\}")
VALUES = {"user_id": "shopper-1", "name": "user-state", "key": "shopper-1", "item_id": "item-1"}
BAD_HEADERS: list[bytes | None] = [None, b"Bearer wrong", f"Bearer {TOKEN}x".encode(),
                                   TOKEN.encode(), b"Bearer \xc3\xbc", b"Bearer \xff\xfe"]


def _value(parameter: re.Match[str]) -> str:
    return VALUES.get(parameter[1], "shopper-1")  # a new route's parameter gets a value too


def served_routes() -> set[tuple[str, str]]:
    """(method, path template) of every route the worker's Faust web server registers."""
    from stream_rec.app import app
    from stream_rec.worker import agents, views  # noqa: F401 - they register the routes

    app.web.blueprints.apply(app.web)  # Faust's own pages, as the server does when it starts
    return {(route.method, route.resource.canonical)
            for route in app.web.web_app.router.routes() if route.resource is not None}


def call(base: tuple[str, int], method: str, path: str, authorization: bytes | None
         ) -> tuple[int, bytes]:
    """One request with the header's raw bytes (urllib would refuse the non-ASCII ones)."""
    connection = http.client.HTTPConnection(*base, timeout=10)
    try:
        connection.putrequest(method, path)
        if authorization is not None:
            connection.putheader("Authorization", authorization)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_every_route_needs_the_token_and_health_says_only_status(broker: str, new_topic,
                                                                 tmp_path: Path) -> None:
    registry = FileRegistry(tmp_path / "registry")
    registry.add(make_artifact(tmp_path / "artifact", version="v1"))  # model.onnx: not a graph
    registry.promote("v1")
    settings = isolated_settings(broker, new_topic, tmp_path, http_token=TOKEN,
                                 registry_dir=str(registry.root))
    produce(broker, settings.items_topic, [(b"item-1", b'{"category": "shoes"}')])
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    recs = TopicReader(broker, settings.recommendations_topic)
    base = (settings.web_host, settings.web_port)
    try:
        produce(broker, settings.events_topic, [event_bytes(
            {"event_id": "e1", "user_id": "shopper-1", "item_id": "item-1", "type": "view",
             "ts": 1_700_000_000_000})])
        [rec] = recs.wait_for(lambda v: len(v) >= 1, 120)
        assert rec["fallback"] is True  # the refused model left fallback lists, not a crash

        routes = served_routes()
        assert {("GET", "/users/{user_id}/state/"), ("GET", "/metrics/"),
                ("GET", "/health/")} <= routes
        faust_prefixes = tuple(page.split("/")[1] for page in FAUST_PAGES)
        assert not [p for _, p in routes if p.split("/")[1] in faust_prefixes], routes
        paths = sorted({(m, PARAMETER.sub(_value, p)) for m, p in routes}
                       | {("GET", page) for page in FAUST_PAGES})
        bearer = f"Bearer {TOKEN}".encode()
        for method, path in paths:
            for header in BAD_HEADERS:
                status, _ = call(base, method, path, header)
                expected = 200 if path in HEALTH else 401
                assert status == expected, (method, path, header, status)
            status, _ = call(base, method, path, bearer)
            faust_page = path in FAUST_PAGES
            assert status == (404 if faust_page else 200), (method, path, status)

        # The open probe: ready, degraded (fallback lists) and why, nothing about the data.
        status, body = call(base, "GET", "/health/", None)
        assert status == 200
        assert json.loads(body) == {"status": "degraded", "reason": "refused",
                                    "model_version": None}
        status, body = call(base, "GET", "/health/", bearer)
        full = json.loads(body)
        assert full["catalog_items"] == 1 and "InvalidProtobuf" in full["detail"]
        metrics = call(base, "GET", "/metrics/", bearer)[1].decode()
        assert "stream_rec_model_servable 0" in metrics
        assert 'stream_rec_model_unservable_info{reason="refused"} 1' in metrics
        assert "stream_rec_model_rejected_total 1" in metrics
        status, body = call(base, "GET", "/users/shopper-1/recommendations/", bearer)
        assert json.loads(body)["event_id"] == "e1"
    finally:
        worker.stop()
        recs.close()
    assert TOKEN not in worker.log_path.read_text(errors="replace")
