"""The demo page's experiment panel without Kafka: the sampler, its route and the page."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stream_rec.config import load_settings
from stream_rec.core.experiments import Arm, Experiment
from stream_rec.rerank import RerankPolicy
from stream_rec.tools.demo import experiment as demo_experiment
from stream_rec.tools.demo.experiment import ExperimentSampler, json_safe
from stream_rec.tools.demo.site import DemoSite, FigureSampler, WorkerClient
from stream_rec.tools.demo.traffic import Shoppers
from stream_rec.tools.demo.web import DemoServer, page_html
from tests.helpers import free_port

REPORT: dict[str, Any] = {
    "experiment": "demo-exp", "running": True, "allocation": "fixed", "weights_version": 1,
    "traffic": 1.0, "control": "control", "ctr_basis": "impressed_items",
    "arms": {
        "control": {"policy": "dpp:0.15", "model": None, "weight": 0.5, "shoppers": 86,
                    "lists": 611, "ctr": 0.00932, "ctr_ci95": [0.0067, 0.0119],
                    "conversion": 0.14, "revenue": 759.88, "ild": 0.49},
        "diverse": {"policy": "dpp:0.3", "model": None, "weight": 0.5, "shoppers": 80,
                    "lists": 590, "ctr": None, "ctr_ci95": [None, None],
                    "conversion": None, "revenue": 0.0, "ild": None}},
    "comparisons": [{"metric": "ctr", "arm": "diverse", "vs": "control", "lift": None,
                     "difference": None, "p_value": None, "significant": False, "mde": None}],
    "srm_p_value": 0.047, "srm_alarm": False,
}


def reader(*answers: dict[str, Any] | Exception) -> Callable[[], dict[str, Any]]:
    """A fake reader giving ``answers`` in turn (raising the exceptions), then the last."""
    given = list(answers)

    def read() -> dict[str, Any]:
        answer = given.pop(0) if len(given) > 1 else given[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return read


def test_before_the_first_read_nothing_runs() -> None:
    assert ExperimentSampler(reader({"running": True, "report": REPORT})).latest() == {
        "running": False}


def test_keeps_the_running_experiments_report() -> None:
    sampler = ExperimentSampler(reader({"running": True, "report": REPORT}))
    sampler.sample_once()
    latest = sampler.latest()
    assert latest == {"running": True, "report": REPORT}
    latest["running"] = False  # a copy: the caller cannot change what the sampler keeps
    assert sampler.latest()["running"] is True


def test_says_when_none_runs() -> None:
    sampler = ExperimentSampler(reader({"running": False}))
    sampler.sample_once()
    assert sampler.latest() == {"running": False}
    sampler = ExperimentSampler(reader({"running": True}))  # running without a report
    sampler.sample_once()
    assert sampler.latest() == {"running": False}


def test_an_error_is_kept_as_text_and_the_next_read_replaces_it() -> None:
    sampler = ExperimentSampler(reader(OSError("broker away"), RuntimeError(),
                                       {"running": True, "report": REPORT}))
    sampler.sample_once()
    assert sampler.latest() == {"running": False, "error": "broker away"}
    sampler.sample_once()
    assert sampler.latest() == {"running": False, "error": "RuntimeError"}
    sampler.sample_once()
    assert sampler.latest()["running"] is True


def test_a_reader_that_returns_no_dict_is_an_error() -> None:
    sampler = ExperimentSampler(lambda: [])  # type: ignore[arg-type, return-value]
    sampler.sample_once()
    assert sampler.latest()["running"] is False and "list" in sampler.latest()["error"]


def test_the_thread_survives_errors_and_stops() -> None:
    calls: list[int] = []
    recovered = threading.Event()

    def read() -> dict[str, Any]:
        calls.append(1)
        if len(calls) < 3:
            raise ValueError("not yet")
        recovered.set()
        return {"running": True, "report": REPORT}

    sampler = ExperimentSampler(read, every_s=0.01).start()
    try:
        assert recovered.wait(5)
    finally:
        sampler.stop()
    assert sampler.latest()["running"] is True and len(calls) >= 3
    assert not sampler._thread.is_alive()


def test_nan_and_infinity_become_null() -> None:
    safe = json_safe({"a": float("nan"), "b": [1.0, float("inf")], "c": (2, "x"), 3: None})
    assert safe == {"a": None, "b": [1.0, None], "c": [2, "x"], "3": None}
    sampler = ExperimentSampler(reader({"running": True, "report": {"srm_p_value": float("nan")}}))
    sampler.sample_once()
    assert json.loads(json.dumps(sampler.latest()))["report"]["srm_p_value"] is None


def experiment(experiment_id: str, running: bool) -> Experiment:
    arms = (Arm("control", RerankPolicy.parse("dpp:0.15")),
            Arm("diverse", RerankPolicy.parse("dpp:0.3")))
    return Experiment(experiment_id, arms, (1.0, 1.0), experiment_id, running=running)


def test_reads_the_first_running_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    import stream_rec.commands.experiment
    import stream_rec.topics

    experiments = {e.id: e for e in (experiment("a-old", False), experiment("c-exp", True),
                                     experiment("b-exp", True))}
    asked: list[str] = []

    def report(settings: object, experiment_id: str) -> dict[str, Any]:
        asked.append(experiment_id)
        return {"experiment": experiment_id}

    monkeypatch.setattr(stream_rec.topics, "read_experiments", lambda settings: experiments)
    monkeypatch.setattr(stream_rec.commands.experiment, "experiment_report", report)
    settings = load_settings(environ={})
    assert demo_experiment.read_running_experiment(settings) == {
        "running": True, "report": {"experiment": "b-exp"}}
    assert asked == ["b-exp"]
    experiments.pop("b-exp")
    experiments.pop("c-exp")
    assert demo_experiment.read_running_experiment(settings) == {"running": False}
    assert asked == ["b-exp"]


@pytest.fixture
def serve() -> Iterator[Callable[[ExperimentSampler | None], DemoServer]]:
    servers: list[DemoServer] = []

    def start(sampler: ExperimentSampler | None) -> DemoServer:
        settings = load_settings(environ={}, web_port=free_port())  # no worker listens there
        client = WorkerClient(settings)
        site = DemoSite(settings, client, FigureSampler(client), None,  # type: ignore[arg-type]
                        Shoppers(), {}, "storefront", sampler)
        servers.append(DemoServer(site, 0).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def get(server: DemoServer, path: str, host: str | None = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host} if host else {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_the_route_answers_what_the_sampler_last_read(
        serve: Callable[[ExperimentSampler | None], DemoServer]) -> None:
    sampler = ExperimentSampler(reader({"running": True, "report": REPORT},
                                       OSError("no broker")))
    server = serve(sampler)
    assert get(server, "/api/experiment") == (200, {"running": False})
    sampler.sample_once()
    assert get(server, "/api/experiment") == (200, {"running": True, "report": REPORT})
    sampler.sample_once()
    assert get(server, "/api/experiment") == (200, {"running": False, "error": "no broker"})
    status, body = get(server, "/api/experiment", host="shop.example")
    assert status == 403 and "localhost" in body["error"]


def test_the_route_without_a_sampler_says_none_runs(
        serve: Callable[[ExperimentSampler | None], DemoServer]) -> None:
    assert get(serve(None), "/api/experiment?x=1") == (200, {"running": False})


def test_the_page_polls_the_route_and_has_the_panel() -> None:
    page = page_html().decode()
    assert 'fetch' in page and 'getJSON("/api/experiment")' in page
    assert 'id="experiment"' in page and 'id="exp-body"' in page and 'id="exp-srm"' in page
    assert "stream-rec experiment start demo-exp --arms control=dpp:0.15,diverse=dpp:0.3" in page
    assert "innerHTML" not in page  # every text goes in through textContent
