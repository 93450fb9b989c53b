"""`stream-rec demo` on its default data (the synthetic storefront), seen through its live page.

One demo runs for the module: it starts its own broker, trains a storefront model into an empty
registry, starts a worker and serves the page. Headless Chromium, driven over the DevTools
protocol, picks a shopper, clicks an item with the mouse and watches the list react; the API
refuses bad clicks; Ctrl-C stops every part. Set ``STREAM_REC_SCREENSHOT=docs/img/demo.png`` to
refresh the README's screenshot.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import REPO_ROOT
from tests.helpers import free_port, free_port_pair
from tests.integration.cdp import Chromium, Page, chromium_binary

pytestmark = pytest.mark.integration


@dataclass
class Demo:
    proc: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path
    ports: dict[str, int]

    def output(self) -> str:
        return self.stdout.read_text(errors="replace")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    if os.environ.get("STREAM_REC_BROKER"):
        pytest.skip("the demo starts its own broker")
    pytest.importorskip("tensorflow")  # it trains its model
    tmp = tmp_path_factory.mktemp("demo-page")
    ports = {"kafka": free_port_pair(), "worker": free_port(), "page": free_port()}
    env = {**os.environ, "STREAM_REC_KAFKA_DATA_DIR": str(tmp / "kafka"),
           "STREAM_REC_STATE_DIR": str(tmp / "state"),
           "STREAM_REC_WEB_PORT": str(ports["worker"]),
           "STREAM_REC_DEMO_PORT": str(ports["page"])}
    stdout, stderr = tmp / "demo.out", tmp / "demo.err"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream_rec.cli", "demo", "--port", str(ports["kafka"]),
             "--registry", str(tmp / "registry"), "--duration", "1500"],
            stdout=out, stderr=err, env=env, cwd=REPO_ROOT)
    running = Demo(proc, "", stdout, stderr, ports)
    try:
        deadline = time.monotonic() + 600
        while not (found := re.search(r"Live page: (\S+)", running.output())):
            assert proc.poll() is None, f"demo exited with {proc.returncode}:\n" \
                f"{running.output()}\n{stderr.read_text(errors='replace')[-3000:]}"
            assert time.monotonic() < deadline, running.output()
            time.sleep(1)
        running.url = found.group(1)
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_demo_trained_a_storefront_model_showing_progress(demo: Demo) -> None:
    out = demo.output()
    assert "Synthetic storefront" in out and "training a small one" in out
    assert "(published, current)" in out
    assert re.search(r"epoch \d+/\d+: loss", demo.stderr.read_text(errors="replace"))
    assert f"Live page: http://127.0.0.1:{demo.ports['page']}/" in out


def test_page_lists_shoppers_and_a_click_reranks_the_list(demo: Demo, tmp_path: Path) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium is not installed (deploy/setup.sh installs it as root)")
    screenshot = Path(os.environ.get("STREAM_REC_SCREENSHOT") or tmp_path / "demo.png")
    browser = Chromium(binary, tmp_path / "profile")
    try:
        seen = asyncio.run(_click_through(browser.page_websocket(), demo.url, screenshot))
    finally:
        browser.kill()
    assert seen["after"]["event_id"] == seen["click"]  # the list now answers the click
    assert seen["after"]["items"] != seen["before"]["items"]
    assert seen["clicked_event"] == {"item_id": seen["clicked_item"], "type": "click"}
    assert seen["picked"] == seen["heading"]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def _click_through(websocket: str, url: str, screenshot: Path) -> dict[str, object]:
    list_js = ("({event_id: document.getElementById('recs').dataset.eventId || null,"
               " items: [...document.querySelectorAll('#recs tbody tr')]"
               ".map(r => r.dataset.itemId)})")
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(websocket, max_msg_size=0) as socket_:
        page = Page(socket_)
        await page.send("Emulation.setDeviceMetricsOverride", width=1400, height=1000,
                        deviceScaleFactor=1, mobile=False)
        await page.send("Page.navigate", url=url)
        await page.wait_for("document.querySelectorAll('#shoppers button').length >= 2", 90,
                            "the list of active shoppers")
        # Pick the second shopper in the list with the mouse (the first is picked on load).
        picked = await page.evaluate(
            "document.querySelectorAll('#shoppers button')[1].dataset.userId")
        await page.click(f"#shoppers button[data-user-id={json.dumps(picked)}]")
        heading = await page.wait_for(
            f"document.getElementById('shopper-name').textContent === {json.dumps(picked)}"
            " && document.querySelectorAll('#recs tbody tr').length >= 5"
            " && document.getElementById('shopper-name').textContent", 60,
            f"recommendations for {picked}")
        before = await page.evaluate(list_js)
        # Click an item from another category than the top one, so the list has to move.
        row = await page.evaluate(
            "(() => { const rows = [...document.querySelectorAll('#recs tbody tr')];"
            " const top = rows[0].children[2].textContent;"
            " const other = rows.findIndex(r => r.children[2].textContent !== top);"
            " return (other < 0 ? rows.length - 1 : other) + 1; })()")
        await page.click(f"#recs tbody tr:nth-child({row}) button.act[data-type=click]")
        click = await page.wait_for("document.body.dataset.lastClick", 30, "the click to go out")
        await page.wait_for(f"document.body.dataset.reactedTo === {json.dumps(click)}", 60,
                            "the list made after the click")
        after = await page.evaluate(list_js)
        clicked_item = await page.evaluate("document.body.dataset.lastClickItem")
        # The synthetic shopper keeps browsing, so the click need not be the newest event
        # by the time the panel refreshes: look for it among the recent ones.
        clicked_event = await page.wait_for(
            f"(() => {{ const e = [...document.querySelectorAll('#events li')]"
            f".find(li => li.dataset.itemId === {json.dumps(clicked_item)}"
            f" && li.dataset.type === 'click');"
            " return e ? {item_id: e.dataset.itemId, type: e.dataset.type} : null; })()",
            30, "the click among the shopper's recent events")
        await page.screenshot(screenshot)
    return {"picked": picked, "heading": heading, "before": before, "after": after,
            "click": click, "clicked_item": clicked_item, "clicked_event": clicked_event}


def _post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_click_api_refuses_bad_input_with_the_reason(demo: Demo) -> None:
    click = demo.url + "api/click"
    assert _post(click, b"{oops") == (400, {"error": "body is not JSON"})
    status, body = _post(click, json.dumps({"user_id": "u0001", "item_id": "nope"}).encode())
    assert status == 400 and "not in the catalog" in body["error"]
    status, body = _post(click, json.dumps({"user_id": "u0001"}).encode())
    assert status == 400 and "item_id" in body["error"]
    status, _ = _post(click, json.dumps({"user_id": "u0001", "item_id": "i00001"}).encode(),
                      content_type="text/plain")
    assert status == 415
    status, body = _post(click, json.dumps({"user_id": "u0001", "item_id": "i00001"}).encode())
    assert status == 202 and body["event_id"].startswith("page:")
    with urllib.request.urlopen(demo.url + "api/overview", timeout=10) as response:
        overview = json.loads(response.read())
    assert overview["policy"] and overview["worker_status"] == "ok"
    assert any(s["user_id"] == "u0001" and s["driven"] for s in overview["shoppers"])


def test_ctrl_c_stops_the_page_the_worker_and_kafka(demo: Demo) -> None:
    demo.proc.send_signal(signal.SIGINT)
    assert demo.proc.wait(timeout=120) == 0, demo.stderr.read_text(errors="replace")[-3000:]
    out = demo.output()
    for line in ("Stopped the web page.", "Stopped the worker.", "Stopped Kafka."):
        assert line in out
    for name, port in demo.ports.items():
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"{name} port {port} still open"
