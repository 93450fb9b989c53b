"""The HTTP token check and the refusal to serve an open API on a reachable address."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stream_rec.config import REPO_ROOT, load_settings
from stream_rec.secret import Secret
from stream_rec.worker.security import (
    authorized,
    faust_web_options,
    is_loopback,
    open_http_refusal,
    token_middleware,
)

TOKEN = Secret("s3cret-tøken")


def test_the_header_must_carry_the_token_exactly():
    assert authorized("Bearer s3cret-tøken", TOKEN)
    for header in (None, "", "s3cret-tøken", "Bearer s3cret-tøke", "bearer s3cret-tøken",
                   "Bearer s3cret-tøken ", "Basic s3cret-tøken"):
        assert not authorized(header, TOKEN), header


@pytest.mark.parametrize("header", ["Bearer ü", "Bearer \udcff\udcfe", "Bearer \ud800",
                                    "Bearer 🙂" * 50])
def test_non_ascii_headers_are_refused_not_errors(header):
    assert authorized(header, TOKEN) is False
    assert authorized(header, Secret()) is True  # no token: the API is open


def test_without_a_token_everything_is_allowed():
    assert authorized(None, Secret()) and authorized("Bearer x", Secret())


async def _statuses(token: Secret, requests: list[tuple[str, dict[str, str]]],
                    reached: list[str] | None = None) -> list[int]:
    async def ok(request: web.Request) -> web.Response:
        if reached is not None:  # a route handler is where Faust forwards to another worker
            reached.append(request.path)
        return web.json_response({"status": "ok"})

    app = web.Application(middlewares=[token_middleware(token)])
    for path in ("/health/", "/health", "/metrics/", "/users/{user_id}/state/"):
        app.router.add_get(path, ok)
    async with TestClient(TestServer(app)) as client:
        statuses = []
        for path, headers in requests:
            async with client.get(path, headers=headers) as response:
                statuses.append(response.status)
        return statuses


def test_the_middleware_guards_every_path_but_health():
    bearer = {"Authorization": f"Bearer {TOKEN.reveal()}"}
    requests = [("/health/", {}), ("/health", {}), ("/metrics/", {}), ("/users/u/state/", {}),
                ("/no/such/route/", {}), ("/health/x", {}), ("/metrics/", bearer),
                ("/users/u/state/", bearer), ("/no/such/route/", bearer)]
    assert asyncio.run(_statuses(TOKEN, requests)) == [200, 200, 401, 401, 401, 401, 200, 200,
                                                        404]
    assert asyncio.run(_statuses(Secret(), requests[:5])) == [200, 200, 200, 200, 404]


def test_a_refused_request_never_reaches_a_route_so_is_never_forwarded():
    reached: list[str] = []
    wrong = [("/users/u/state/", {"Authorization": "Bearer nope"}), ("/metrics/", {})]
    assert asyncio.run(_statuses(TOKEN, wrong, reached)) == [401, 401]
    assert reached == []


def test_faust_pages_are_switched_off_and_the_middleware_installed():
    options = faust_web_options(load_settings({}))
    for page in ("router", "tables", "stats", "graph", "metrics"):
        assert options[f"web_{page}_enabled"] is False
    assert len(options["web_application_options"]["middlewares"]) == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_binds_may_be_open(host):
    assert is_loopback(host)
    assert open_http_refusal(load_settings({}, web_host=host)) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "worker-0.stream-rec", ""])
def test_a_reachable_bind_needs_a_token_or_an_explicit_open(host):
    assert not is_loopback(host)
    refusal = open_http_refusal(load_settings({}, web_host=host))
    assert refusal and "STREAM_REC_HTTP_TOKEN" in refusal and "STREAM_REC_HTTP_OPEN" in refusal
    assert open_http_refusal(load_settings({}, web_host=host, http_token="t")) is None
    assert open_http_refusal(load_settings({"STREAM_REC_WEB_HOST": host,
                                            "STREAM_REC_HTTP_OPEN": "true"})) is None


def test_the_worker_refuses_to_start_open_with_one_line():
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_REC_")}
    env.update(STREAM_REC_WEB_HOST="0.0.0.0", STREAM_REC_BROKER="127.0.0.1:1")
    done = subprocess.run([sys.executable, "-m", "stream_rec.cli", "worker"], env=env,
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "stream-rec worker: refusing to serve shoppers' lists and state on 0.0.0.0:6066 "
        "without a token: set STREAM_REC_HTTP_TOKEN, bind STREAM_REC_WEB_HOST=127.0.0.1, or "
        "set STREAM_REC_HTTP_OPEN=true to serve it open on purpose"]
