"""``GET /health/``'s answer for each state of the worker (``worker/health.py``)."""

from __future__ import annotations

from stream_rec.worker.health import health_report
from stream_rec.worker.metrics import WorkerMetrics


def test_starting_then_ok_then_degraded_without_a_servable_model() -> None:
    metrics = WorkerMetrics()
    assert health_report(False, metrics, True, 0) == (
        {"status": "starting", "model_version": None, "catalog_items": 0}, 503)
    metrics.model_unservable, metrics.model_refusal = "refused", "scores are not finite"
    assert health_report(True, metrics, True, 7) == (
        {"status": "degraded", "model_version": None, "reason": "refused", "catalog_items": 7,
         "detail": "scores are not finite"}, 200)
    metrics.model_version, metrics.model_unservable, metrics.model_refusal = "v2", "", ""
    assert health_report(True, metrics, True, 7) == (
        {"status": "ok", "model_version": "v2", "catalog_items": 7}, 200)


def test_a_crashed_agent_fails_the_probe_until_a_batch_goes_through() -> None:
    metrics = WorkerMetrics(model_version="v2")
    metrics.agent_failure = "PartitionsMismatch: the changelog topic has 0 partitions"
    body, status = health_report(True, metrics, True, 3)
    assert status == 503 and body["status"] == "failing" and body["reason"] == "agent_crashed"
    assert body["detail"].startswith("PartitionsMismatch")
    # The open probe learns no more than that it fails.
    assert health_report(True, metrics, False, 3) == (
        {"status": "failing", "model_version": "v2", "reason": "agent_crashed"}, 503)
    # While starting, starting is the answer (the crash may be from before a rebalance).
    assert health_report(False, metrics, True, 3)[0]["status"] == "starting"
    metrics.agent_failure = ""  # a batch went through
    assert health_report(True, metrics, True, 3)[1] == 200
