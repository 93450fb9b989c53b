"""Read-only HTTP API on Faust's web server.

``GET /users/{user_id}/recommendations`` is routed to the worker that owns the shopper's
partition; ``/health`` and ``/metrics`` answer locally. When ``http_token`` is set, every
route but ``/health`` needs ``Authorization: Bearer <token>``: the check is a middleware in
front of all of them (``security.py``), so it runs before a request is forwarded.
"""

from __future__ import annotations

from typing import Any

from faust import web

from stream_rec.app import app, settings
from stream_rec.core.events import EVENT_TYPES
from stream_rec.core.state import UserState
from stream_rec.core.state_codec import decode_state
from stream_rec.worker.agents import latest_recs, runtime, user_state
from stream_rec.worker.security import request_authorized


@app.page("/users/{user_id}/recommendations/")
class UserRecommendations(web.View):
    """``GET /users/{user_id}/recommendations/``: the shopper's latest list."""

    @app.table_route(table=latest_recs, match_info="user_id")  # type: ignore[arg-type]
    async def get(self, request: web.Request, user_id: str) -> web.Response:
        raw = latest_recs.get(user_id.encode())
        if raw is None:
            return self.json({"error": f"no recommendations for user {user_id!r} yet"},
                             status=404)
        return self.bytes(raw, content_type="application/json")


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
        # Ready once catalog and model are checked and no table is being restored. Without a
        # servable model the worker is ready all the same (it serves fallback lists), so
        # readiness passes and the body says "degraded" and why.
        ready = runtime.ready and not app.in_recovery and not app.rebalancing
        metrics = runtime.metrics
        body: dict[str, Any] = {"status": "starting" if not ready else
                                "ok" if metrics.model_version else "degraded",
                                "model_version": metrics.model_version or None}
        if body["status"] == "degraded":
            body["reason"] = metrics.model_unservable or "no_model"
        # The open probe learns readiness only; anything about the data needs the token.
        if settings.http_token and not request_authorized(request, settings.http_token):
            return self.json(body, status=200 if ready else 503)
        body["catalog_items"] = len(runtime.recommender.catalog.items)
        if body["status"] == "degraded" and metrics.model_refusal:
            body["detail"] = metrics.model_refusal
        return self.json(body, status=200 if ready else 503)


@app.page("/metrics/")
class Metrics(web.View):
    """``GET /metrics/``: the worker's counters and latency histogram, as Prometheus text."""

    async def get(self, request: web.Request) -> web.Response:
        return self.text(runtime.metrics.render(),
                         content_type="text/plain; version=0.0.4")


# Each route also answers without its trailing slash (``/health`` as well as ``/health/``).
for _view in (UserRecommendations, UserStateView, Health, Metrics):
    app.page(_view.view_path.rstrip("/"), name=f"{_view.__name__}Bare")(
        type(f"{_view.__name__}Bare", (_view,), {}))


def state_summary(state: UserState) -> dict[str, Any]:
    """A shopper's state as readable JSON: history, purchases, affinities, items shown."""
    return {
        "history": [{"item_id": h.item_id, "type": EVENT_TYPES[h.type_code], "ts": h.ts_ms}
                    for h in state.history],
        "purchased": list(state.purchased),
        "category_affinity": dict(state.category_affinity),
        "shown": dict(state.shown),
        "n_events": state.n_events,
        "last_ts": state.last_ts_ms,
        "profile_model": state.profile_model or None,
    }
