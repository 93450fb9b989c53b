"""Read-only HTTP API on Faust's web server.

``GET /users/{user_id}/recommendations`` is routed to the worker that owns the shopper's
partition; ``/health`` and ``/metrics`` answer locally. When ``http_token`` is set, every
route but ``/health`` needs ``Authorization: Bearer <token>``: the check is a middleware in
front of all of them (``security.py``), so it runs before a request is forwarded.
"""

from __future__ import annotations

import time

import orjson
from faust import web

from stream_rec.app import app, settings
from stream_rec.core.state_codec import decode_state, state_summary
from stream_rec.serving.lists import without_pool
from stream_rec.serving.request_lists import (
    QueryError,
    as_params,
    new_shopper_pool,
    parse_list_query,
    parse_similar_query,
    request_list,
    similar_items,
    stored_pool,
)
from stream_rec.worker.agents import latest_recs, runtime, user_state
from stream_rec.worker.health import health_report
from stream_rec.worker.security import request_authorized


@app.page("/users/{user_id}/recommendations/")
class UserRecommendations(web.View):
    """``GET /users/{user_id}/recommendations/``: the shopper's latest list as published;
    with parameters (``n``, ``exclude``, ``category``, ``in_stock``, ``min_price``,
    ``max_price``, ``policy``, ``context``), that list's pool re-ranked at request time
    (``stream_rec.serving.request_lists``). A shopper with no list yet gets trending and new
    items, or with ``context`` the items that go with the one being looked at."""

    @app.table_route(table=latest_recs, match_info="user_id")  # type: ignore[arg-type]
    async def get(self, request: web.Request, user_id: str) -> web.Response:
        try:
            query = parse_list_query(as_params(request.query.items()))
        except QueryError as exc:
            return self.json({"error": str(exc)}, status=400)
        raw = latest_recs.get(user_id.encode())
        if raw is not None and query.plain:
            return self.bytes(without_pool(raw), content_type="application/json")
        now_ms = time.time() * 1000
        recommender = runtime.recommender
        if raw is not None:
            pool, source = stored_pool(orjson.loads(raw))
        else:
            pool, source = new_shopper_pool(recommender, user_id, query.context, now_ms)
        body = request_list(recommender, user_id, pool, source, query, now_ms)
        return self.bytes(orjson.dumps(body), content_type="application/json")


@app.page("/items/{item_id}/similar/")
class SimilarItems(web.View):
    """``GET /items/{item_id}/similar/?n=&diverse=&in_stock=``: items like this one, for a
    product page (any worker answers: every worker holds the whole catalog and model)."""

    async def get(self, request: web.Request, item_id: str) -> web.Response:
        try:
            n, policy, in_stock = parse_similar_query(as_params(request.query.items()))
        except QueryError as exc:
            return self.json({"error": str(exc)}, status=400)
        body = similar_items(runtime.recommender, item_id, n, policy, in_stock)
        if body is None:
            return self.json({"error": f"unknown item {item_id[:80]!r}"}, status=404)
        return self.bytes(orjson.dumps(body), content_type="application/json")


@app.page("/users/{user_id}/state/")
class UserStateView(web.View):
    """What stream-rec remembers about a shopper (for support and privacy requests)."""

    @app.table_route(table=user_state, match_info="user_id")  # type: ignore[arg-type]
    async def get(self, request: web.Request, user_id: str) -> web.Response:
        raw = user_state.get(user_id.encode())
        if raw is None:
            return self.json({"error": f"no state for user {user_id!r}"}, status=404)
        return self.json(state_summary(decode_state(raw)))


@app.page("/health/")
class Health(web.View):
    """``GET /health/``: readiness for probes; with the token, the catalog size and details."""

    async def get(self, request: web.Request) -> web.Response:
        # Ready once catalog and model are checked and no table is being restored.
        body, status = health_report(
            runtime.ready and not app.in_recovery and not app.rebalancing, runtime.metrics,
            not settings.http_token or request_authorized(request, settings.http_token),
            len(runtime.recommender.catalog.items))
        return self.json(body, status=status)


@app.page("/metrics/")
class Metrics(web.View):
    """``GET /metrics/``: the worker's metrics, as Prometheus text (``prometheus_client``)."""

    async def get(self, request: web.Request) -> web.Response:
        metrics = runtime.metrics
        # The content type carries the charset, so it goes in as a header: aiohttp refuses a
        # charset in its content_type argument.
        return self.bytes(metrics.exposition(), headers={"Content-Type": metrics.content_type})


# Each route also answers without its trailing slash (``/health`` as well as ``/health/``).
for _view in (UserRecommendations, SimilarItems, UserStateView, Health, Metrics):
    app.page(_view.view_path.rstrip("/"), name=f"{_view.__name__}Bare")(
        type(f"{_view.__name__}Bare", (_view,), {}))
