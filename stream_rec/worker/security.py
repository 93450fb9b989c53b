"""Who may use a worker's HTTP server: the token check, the routes served, the bind check.

The token is checked by one aiohttp middleware in front of every route, so a route added
later is covered without doing anything, and a request for another worker's shopper is
refused here before Faust forwards it. Only ``/health/`` is open, for probes. Faust's own web
pages (``/router/``: every worker's address; ``/table/``: any table's raw values, shoppers'
state included; statistics and graph pages) are switched off: the API does not use them and
Faust's request forwarding does not need them.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from stream_rec.config import Settings, env_name
from stream_rec.secret import Secret

log = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/health/", "/health"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def authorized(header: str | None, token: Secret) -> bool:
    """Whether an ``Authorization`` header carries the token (anything goes without one)."""
    if not token:
        return True
    try:
        # Bytes: compare_digest refuses str with non-ASCII characters (a 500, not a 401).
        # aiohttp decodes header bytes with surrogateescape, which this undoes exactly.
        sent = (header or "").encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(sent, b"Bearer " + token.reveal().encode("utf-8"))


class HasHeaders(Protocol):
    """An aiohttp request, or Faust's view of one."""

    @property
    def headers(self) -> Mapping[str, str]: ...


def request_authorized(request: HasHeaders, token: Secret) -> bool:
    """Whether a request carries the worker's bearer token (any request does if none is set)."""
    return authorized(request.headers.get("Authorization"), token)


def token_middleware(token: Secret) -> Callable[[web.Request, Handler],
                                                Awaitable[web.StreamResponse]]:
    """Refuse (401) every request but ``/health/`` that lacks ``Bearer <token>``."""

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or request_authorized(request, token):
            return await handler(request)
        return web.json_response({"error": "missing or wrong bearer token"}, status=401,
                                 headers={"WWW-Authenticate": "Bearer"})

    return require_token


def faust_web_options(settings: Settings) -> dict[str, Any]:
    """``faust.App`` keyword arguments: Faust's own pages off, the token check in front."""
    return {"web_router_enabled": False, "web_tables_enabled": False,
            "web_stats_enabled": False, "web_graph_enabled": False,
            "web_metrics_enabled": False,
            "web_application_options": {"middlewares": [token_middleware(settings.http_token)]}}


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


def open_http_refusal(settings: Settings) -> str | None:
    """Why this worker must not start its HTTP server as configured; None when it may."""
    if settings.http_token or settings.http_open or is_loopback(settings.web_host):
        return None
    return (f"refusing to serve shoppers' lists and state on {settings.web_host or 'every address'}"
            f":{settings.web_port} without a token: set {env_name('http_token')}, bind "
            f"{env_name('web_host')}=127.0.0.1, or set {env_name('http_open')}=true to serve "
            "it open on purpose")


def refuse_open_http(settings: Settings) -> None:
    """Exit with one line when ``open_http_refusal`` has a reason."""
    reason = open_http_refusal(settings)
    if reason is not None:
        raise SystemExit(f"stream-rec worker: {reason}")
    if not settings.http_token and not is_loopback(settings.web_host):
        log.warning("the HTTP API on %s:%s is open to anyone who can reach it (%s=true)",
                    settings.web_host, settings.web_port, env_name("http_open"))
