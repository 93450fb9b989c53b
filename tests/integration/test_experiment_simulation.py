"""Experiments end to end: simulated shoppers, a real worker, the report against the raw topics.

Each test runs the simulator (stream_rec/tools/simulate) against real workers on the test
broker, serving fallback lists (no model: the experiment machinery does not depend on one),
and checks the report three ways: against what the simulator itself sent, against an
independent recount from the events and recommendations topics, and for the statistics'
verdict on a planted difference.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from stream_rec.commands.experiment import checked, start_record
from stream_rec.config import Settings, load_settings
from stream_rec.tools.simulate.driver import Ledger, SimConfig, Simulation, drain
from stream_rec.tools.simulate.run import (
    publish_catalog,
    run_settings,
    settled_report,
    simulate,
)
from stream_rec.tools.storefront import make_storefront
from stream_rec.tools.worker_process import WorkerProcess
from stream_rec.topics import ensure_topics, publish_experiment
from tests.helpers import free_port

pytestmark = pytest.mark.integration

FIGURES = ("lists", "impressions", "impressed_items", "clicks", "add_to_carts", "purchases")


def _base(broker: str, tmp_path: Path) -> Settings:
    # A killed worker's partitions move on after 8 s, not after the default 30 s.
    return load_settings({}, broker=broker, state_dir=str(tmp_path / "shared"),
                         session_timeout_s=8.0)


def _empty_registry(tmp_path: Path) -> Path:
    registry = tmp_path / "registry"
    registry.mkdir(exist_ok=True)
    return registry


def _read_all(broker: str, topic: str) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=broker, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=3000)
    try:
        return [json.loads(r.value) for r in consumer]
    finally:
        consumer.close()


def recount(broker: str, run_id: str) -> dict[str, dict[str, float]]:
    """Per-arm figures rebuilt from the raw topics alone, by the contract's rules: a list's arm
    from its message, impressions and clicks by their list_id, add-to-carts and purchases
    through the shopper's latest click on the item."""
    arm_of: dict[str, str] = {}
    shoppers: dict[str, set[str]] = defaultdict(set)
    for rec in _read_all(broker, f"{run_id}.recommendations"):
        if rec["experiment"]:
            arm_of[rec["list_id"]] = rec["experiment"]["arm"]  # a re-published list: same id
            shoppers[rec["experiment"]["arm"]].add(rec["user_id"])
    out: dict[str, dict[str, float]] = {arm: dict.fromkeys((*FIGURES, "revenue"), 0.0)
                                        for arm in shoppers}
    for arm in arm_of.values():
        out[arm]["lists"] += 1
    last_click: dict[tuple[str, str], str] = {}  # (user, item) -> arm
    seen: set[str] = set()
    for event in _read_all(broker, f"{run_id}.events"):
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        kind = event["type"]
        if kind == "impression" and event["list_id"] in arm_of:
            arm = arm_of[event["list_id"]]
            out[arm]["impressions"] += 1
            out[arm]["impressed_items"] += len(event["item_ids"])
        elif kind == "click" and event.get("list_id") in arm_of:
            arm = arm_of[event["list_id"]]
            out[arm]["clicks"] += 1
            last_click[(event["user_id"], event["item_id"])] = arm
        elif kind in ("add_to_cart", "purchase"):
            arm = last_click.get((event["user_id"], event["item_id"]))
            if arm is not None:
                out[arm]["add_to_carts" if kind == "add_to_cart" else "purchases"] += 1
                if kind == "purchase":
                    out[arm]["revenue"] += event["price"] * event.get("quantity", 1)
    for arm, users in shoppers.items():
        out[arm]["shoppers"] = len(users)
    return out


def _assert_report_matches(report: dict[str, Any], broker: str) -> None:
    counted = recount(broker, report["simulation"]["topics"])
    for arm, figures in report["arms"].items():
        sent = report["simulation"]["sent"][arm]
        assert figures["impressions"] == sent["lists"], arm
        assert figures["impressed_items"] == sent["impressed_items"], arm
        assert figures["clicks"] == sent["clicks"], arm
        assert figures["add_to_carts"] == sent["add_to_carts"], arm
        assert figures["purchases"] == sent["purchases"], arm
        assert figures["revenue"] == pytest.approx(sent["revenue"], abs=0.01), arm
        for name in (*FIGURES, "shoppers"):
            assert figures[name] == counted[arm][name], (arm, name)
        assert figures["revenue"] == pytest.approx(counted[arm]["revenue"], abs=0.01), arm


def test_a_planted_difference_is_found_and_the_report_matches_the_topics(
        broker: str, tmp_path: Path) -> None:
    config = SimConfig(shoppers=300, events=3000, seed=1, lift={"treated": 2.0})
    report = simulate(_base(broker, tmp_path), "planted", "control=dpp:0.15,treated=dpp:0.15",
                      config, _empty_registry(tmp_path), tmp_path / "work")
    ctr = next(c for c in report["comparisons"] if c["metric"] == "ctr")
    assert ctr["arm"] == "treated" and ctr["vs"] == "control"
    assert ctr["significant"] and ctr["lift"] > 0
    assert ctr["mde"] is not None and ctr["mde"] < ctr["lift"]
    assert not report["srm_alarm"] and report["srm_p_value"] is not None
    low, high = report["arms"]["treated"]["ctr_ci95"]
    assert low <= report["arms"]["treated"]["ctr"] <= high
    assert all(a["ild"] is not None and 0 <= a["ild"] <= 1 for a in report["arms"].values())
    _assert_report_matches(report, broker)


def test_thompson_moves_traffic_to_the_better_arm_and_earns_more_clicks(
        broker: str, tmp_path: Path) -> None:
    def run(allocation: str) -> dict[str, Any]:
        config = SimConfig(shoppers=300, events=4000, seed=5, lift={"better": 2.0})
        return simulate(_base(broker, tmp_path), f"bandit-{allocation}",
                        "plain=dpp:0.15,better=dpp:0.15", config, _empty_registry(tmp_path),
                        tmp_path / allocation, allocation=allocation, bandit_interval_s=1.0)

    def ctr(report: dict[str, Any]) -> float:
        sent = report["simulation"]["sent"].values()
        return sum(a["clicks"] for a in sent) / sum(a["impressed_items"] for a in sent)

    fixed, bandit = run("fixed"), run("thompson")
    assert bandit["srm_p_value"] is None
    history = bandit["allocation_history"]
    assert len(history) >= 2 and history[-1]["weights"]["better"] > 0.5
    assert bandit["arms"]["better"]["weight"] > bandit["arms"]["plain"]["weight"]
    assert ctr(bandit) > ctr(fixed)
    _assert_report_matches(bandit, broker)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [21, 22, 23])
def test_identical_arms_raise_no_sample_ratio_alarm(broker: str, tmp_path: Path,
                                                     seed: int) -> None:
    config = SimConfig(shoppers=400, events=3000, seed=seed)
    report = simulate(_base(broker, tmp_path), "aa", "a=dpp:0.15,b=dpp:0.15", config,
                      _empty_registry(tmp_path), tmp_path / "work")
    assert not report["srm_alarm"], report["srm_p_value"]
    _assert_report_matches(report, broker)


def test_every_count_is_exact_across_a_rebalance_and_a_kill(broker: str,
                                                            tmp_path: Path) -> None:
    """Two workers share the partitions, one is killed with SIGKILL mid-run: the report still
    equals what the simulator sent and the recount from the topics (nothing lost, nothing
    counted twice), though the events it had not committed are handled again."""
    run_id = f"exactness-{time.time_ns() % 10**9}"
    settings = run_settings(_base(broker, tmp_path), run_id, _empty_registry(tmp_path),
                            tmp_path / "work", 60.0).with_overrides(partitions=4)
    ensure_topics(settings)
    publish_catalog(settings)
    publish_experiment(settings, checked("exact", start_record(
        "exact", "control=dpp:0.15,diverse=mmr:0.5", None)))

    def worker(name: str) -> WorkerProcess:
        own = settings.with_overrides(state_dir=str(tmp_path / f"state-{name}"),
                                      web_port=free_port())
        return WorkerProcess(own, tmp_path / f"{name}.log")

    a = worker("a").start()
    b: WorkerProcess | None = None
    simulation = Simulation(settings, make_storefront(),
                            SimConfig(shoppers=200, events=4000, seed=9, in_flight=16,
                                      list_wait_s=240.0))
    ledger: list[Ledger] = []
    failure: list[BaseException] = []

    def shop() -> None:
        try:
            ledger.append(simulation.run())
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    shopping = threading.Thread(target=shop, daemon=True)
    try:
        shopping.start()
        _wait(lambda: simulation.ledger.lists_received >= 800 or not shopping.is_alive(), 120)
        b = worker("b").start()  # the group rebalances: a hands partitions to b
        _wait(lambda: simulation.ledger.lists_received >= 2000 or not shopping.is_alive(), 240)
        a.kill()  # mid-stream: uncommitted events are handled again by b
        shopping.join(600)
        assert not failure, failure
        assert ledger, "the simulation did not finish"
        drain(simulation, 240.0)
        report = settled_report(settings, "exact", ledger[0], 120.0)
        report["simulation"] = {"topics": run_id, "sent": {
            arm: {"lists": s.lists, "impressed_items": s.impressed_items, "clicks": s.clicks,
                  "add_to_carts": s.add_to_carts, "purchases": s.purchases,
                  "revenue": s.revenue} for arm, s in ledger[0].arms.items() if arm}}
        _assert_report_matches(report, broker)
        assert sum(a["shoppers"] for a in report["arms"].values()) == 200
    finally:
        simulation.close()
        a.stop()
        if b is not None:
            b.stop()


def _wait(done: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
