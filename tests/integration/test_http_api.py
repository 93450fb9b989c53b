"""The HTTP API a storefront integrates with, against a live worker with a trained model.

Every route is called with its parameters and its errors, and every answer is validated
against schemas/openapi.yaml; the behaviour behind each parameter is checked too (a filter
that is ignored would still validate).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from stream_rec.tools.worker_process import WorkerProcess
from tests.integration.test_worker_pipeline import _catalog, _jdata_events
from tests.integration.worker_fixtures import TopicReader, event_bytes, isolated_settings, produce
from tests.openapi_contract import Contract

pytestmark = pytest.mark.integration

RECS = "/users/{user_id}/recommendations/"
SIMILAR = "/items/{item_id}/similar/"
STATE = "/users/{user_id}/state/"


def _price(n: int) -> float:
    return float(5 + (n * 37) % 120)


def test_every_route_answers_as_the_contract_says(broker: str, new_topic, tmp_path: Path,
                                                  data_dir: Path,
                                                  trained_registry: Path) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(trained_registry, registry)
    settings = isolated_settings(broker, new_topic, tmp_path, registry_dir=str(registry))
    catalog: dict[str, dict[str, Any]] = {}
    for n, (key, value) in enumerate(_catalog(data_dir)):
        catalog[key.decode()] = {**json.loads(value), "price": _price(n)}
    produce(broker, settings.items_topic,
            [(k.encode(), json.dumps(v).encode()) for k, v in catalog.items()])
    events = _jdata_events(data_dir)
    users = list(dict.fromkeys(e["user_id"] for e in events))[:4]
    mine = [e for e in events if e["user_id"] in users]
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    recs = TopicReader(broker, settings.recommendations_topic)
    contract = Contract()

    def get(template: str, path: str, status: int = 200) -> Any:
        try:
            with urllib.request.urlopen(worker.base_url + path, timeout=30) as response:
                got, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            got, body = error.code, error.read()
        assert got == status, (path, got, body[:300])
        parsed = json.loads(body)
        contract.validate(template, status, parsed)
        return parsed

    try:
        produce(broker, settings.events_topic, [event_bytes(e) for e in mine])
        wanted = {e["event_id"] for e in mine}
        recs.wait_for(lambda v: {r["event_id"] for r in v} >= wanted, 180)
        user = users[0]
        published = [r for r in recs.values if r["user_id"] == user][-1]

        # The stored list, as published (the pool it keeps is not part of it).
        plain = get(RECS, f"/users/{quote(user)}/recommendations/")
        assert plain == published and "pool" not in plain
        top = [i["item_id"] for i in plain["items"]]

        five = get(RECS, f"/users/{quote(user)}/recommendations/?n=5")
        assert len(five["items"]) == 5 and five["source"] == "request"
        assert five["list_id"] == plain["list_id"] and not five["policy_override"]
        assert five["pool"]["kind"] == "shopper" and five["pool"]["size"] >= len(top)
        assert five["pool"]["age_s"] >= 0 and five["model_version"] == plain["model_version"]
        many = get(RECS, f"/users/{quote(user)}/recommendations/?n=60")
        assert len(many["items"]) > len(top)  # the pool holds more than the list

        shown = get(RECS, f"/users/{quote(user)}/recommendations/?exclude={','.join(top[:3])}")
        assert not set(top[:3]) & {i["item_id"] for i in shown["items"]}

        category = catalog[top[0]]["category"]
        same = get(RECS, f"/users/{quote(user)}/recommendations/?category={category}&n=50")
        assert same["items"] and all(catalog[i["item_id"]]["category"] == category
                                     for i in same["items"])

        cheap = get(RECS, f"/users/{quote(user)}/recommendations/?min_price=20&max_price=60"
                          "&n=50")
        assert cheap["items"] and all(20 <= catalog[i["item_id"]]["price"] <= 60
                                      for i in cheap["items"])

        diverse = get(RECS, f"/users/{quote(user)}/recommendations/?policy=dpp:0.9")
        assert diverse["policy_override"] and diverse["list_id"] != plain["list_id"]
        assert diverse["policy"] == {"method": "dpp", "param": 0.9}
        assert diverse["experiment"] is None

        # Stock and delisting reach request-time lists as they reach the stream's.
        gone, out = top[0], top[1]
        produce(broker, settings.items_topic,
                [(gone.encode(), None),
                 (out.encode(), json.dumps({**catalog[out], "in_stock": False}).encode())])
        deadline = time.monotonic() + 60
        while True:
            ids = {i["item_id"] for i in get(
                RECS, f"/users/{quote(user)}/recommendations/?n=60")["items"]}
            if not {gone, out} & ids:
                break
            assert time.monotonic() < deadline, "catalog changes never reached the lists"
            time.sleep(0.5)
        with_out = {i["item_id"] for i in get(
            RECS, f"/users/{quote(user)}/recommendations/?n=60&in_stock=false")["items"]}
        assert out in with_out and gone not in with_out

        # A shopper the worker never saw: trending and new items, or what goes with an item.
        fresh = get(RECS, "/users/never-seen/recommendations/")
        assert fresh["items"] and fresh["pool"]["kind"] == "new_shopper"
        context = top[2]
        going = get(RECS, f"/users/never-seen/recommendations/?context={context}&n=10")
        assert going["pool"]["kind"] == "context" and going["pool"]["context"] == context
        assert len(going["items"]) == 10 and context not in {i["item_id"] for i in going["items"]}

        # Item-to-item, plain and diversified.
        similar = get(SIMILAR, f"/items/{context}/similar/?n=10")
        assert len(similar["items"]) == 10 and context not in {
            i["item_id"] for i in similar["items"]}
        scores = [i["score"] for i in similar["items"]]
        assert scores == sorted(scores, reverse=True)  # most similar first
        varied = get(SIMILAR, f"/items/{context}/similar/?n=10&diverse=0.9")

        def categories(body: dict[str, Any]) -> int:
            return len({catalog[i["item_id"]]["category"] for i in body["items"]})

        assert categories(varied) >= categories(similar)
        get(SIMILAR, "/items/no-such-item/similar/", 404)

        state = get(STATE, f"/users/{quote(user)}/state/")
        assert state["n_events"] == sum(e["user_id"] == user for e in mine)
        get(STATE, "/users/never-seen/state/", 404)

        for bad in ("n=0", "n=201", "nn=3", "policy=dpp:2", "min_price=9&max_price=1",
                    "n=1&n=2", "in_stock=maybe", "min_price=-1"):
            error = get(RECS, f"/users/{quote(user)}/recommendations/?{bad}", 400)
            assert error["error"], bad
        get(SIMILAR, f"/items/{context}/similar/?diverse=dpp:5", 400)
        health = get("/health/", "/health/")
        assert health["status"] == "ok"
        assert get("/", "/") == {"status": "OK"}
        with urllib.request.urlopen(worker.base_url + "/metrics/", timeout=30) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
    finally:
        worker.stop()
        recs.close()


def test_the_contract_documents_every_route_the_worker_serves() -> None:
    from tests.integration.test_http_security import served_routes

    documented = set(Contract().doc["paths"])
    served = {path for method, path in served_routes() if method == "GET"}
    # Every route also answers without its trailing slash; the contract lists the canonical.
    assert {p.rstrip("/") + "/" for p in served} == documented
