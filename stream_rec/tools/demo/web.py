"""The demo's own small web server (stdlib, threads, 127.0.0.1 only) for its live page.

It serves the page and its JSON API and nothing else; it is part of the demo process, not the
worker, whose HTTP API stays read-only. Requests must name 127.0.0.1 or localhost as their
host (a web page elsewhere cannot reach it through DNS rebinding), and a click must be sent as
``application/json`` (so a browser will not send one cross-site without a CORS preflight, which
this server never grants).
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from stream_rec.tools.demo.api import MAX_BODY_BYTES, BadRequest
from stream_rec.tools.demo.site import DemoSite

log = logging.getLogger(__name__)
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def page_html() -> bytes:
    """The live demo page (``page/index.html``), read from the installed package."""
    return resources.files("stream_rec.tools.demo").joinpath("page/index.html").read_bytes()


class DemoServer(ThreadingHTTPServer):
    """The demo page's HTTP server on 127.0.0.1, serving from a background thread."""

    daemon_threads = True

    def __init__(self, site: DemoSite, port: int) -> None:
        super().__init__(("127.0.0.1", port), DemoHandler)
        self.site = site
        self.page = page_html()
        self._thread = threading.Thread(target=self.serve_forever, name="demo-web",
                                        kwargs={"poll_interval": 0.2}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def start(self) -> DemoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join(timeout=10)
        self.server_close()


class DemoHandler(BaseHTTPRequestHandler):
    """Answers the demo page: the page itself, its JSON API and the clicks it posts."""

    server: DemoServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if not self._local_host():
            return
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._reply(200, self.server.page, "text/html; charset=utf-8")
        elif path == "/api/overview":
            self._json(200, self.server.site.overview())
        elif path == "/api/experiment":
            self._json(200, self.server.site.experiment())
        elif path.startswith("/api/shoppers/") and path.count("/") == 3:
            user_id = urllib.parse.unquote(path.rsplit("/", 1)[1])
            if not user_id:
                self._json(404, {"error": "no shopper named"})
                return
            try:
                self._json(200, self.server.site.shopper(user_id))
            except (OSError, ValueError) as exc:
                self._json(502, {"error": f"the worker did not answer: {exc}"})
        else:
            self._json(404, {"error": f"no page at {path}"})

    def do_POST(self) -> None:
        if not self._local_host():
            return
        path = urllib.parse.urlsplit(self.path).path
        if path != "/api/click":
            self._json(404, {"error": f"nothing to post to at {path}"})
            return
        if self.headers.get_content_type() != "application/json":
            self._json(415, {"error": "send the click as Content-Type: application/json"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._json(411, {"error": "Content-Length is required"})
            return
        if not 0 <= length <= MAX_BODY_BYTES:
            self._json(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
            self.close_connection = True
            return
        body = self.rfile.read(length)
        try:
            self._json(202, self.server.site.click(body))
        except BadRequest as exc:
            self._json(400, {"error": str(exc)})
        except Exception as exc:  # the producer's errors: the page says so, the demo runs on
            log.warning("click not sent: %s", exc)
            self._json(503, {"error": f"could not send the event to Kafka: {exc}"})

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _local_host(self) -> bool:
        host = urllib.parse.urlsplit(f"//{self.headers.get('Host', '')}").hostname
        if host in LOCAL_HOSTS:
            return True
        self._json(403, {"error": "the demo page answers only to 127.0.0.1 or localhost"})
        return False

    def _json(self, status: int, body: Any) -> None:
        self._reply(status, json.dumps(body).encode(), "application/json")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)
