"""What ``GET /health/`` answers, from the worker's state (pure: the view only gathers it)."""

from __future__ import annotations

from typing import Any

from stream_rec.worker.metrics import WorkerMetrics


def health_report(ready: bool, metrics: WorkerMetrics, authorized: bool,
                  catalog_items: int) -> tuple[dict[str, Any], int]:
    """The body and the HTTP status.

    ``starting`` (503) until the catalog and the model are checked and while tables are
    restored or partitions move; then ``ok`` (200) with a model, ``degraded`` (200) on
    fallback lists when no model is servable (the worker is ready all the same), and
    ``failing`` (503) when the events agent crashed and no batch has gone through since Faust
    restarted it, so that a probe that keeps failing restarts the worker. The open probe
    learns readiness only; anything about the data needs ``authorized``.
    """
    failing = ready and bool(metrics.agent_failure)
    status = ("starting" if not ready else "failing" if failing
              else "ok" if metrics.model_version else "degraded")
    body: dict[str, Any] = {"status": status, "model_version": metrics.model_version or None}
    if status == "degraded":
        body["reason"] = metrics.model_unservable or "no_model"
    elif status == "failing":
        body["reason"] = "agent_crashed"
    code = 200 if status in ("ok", "degraded") else 503
    if not authorized:
        return body, code
    body["catalog_items"] = catalog_items
    if status == "degraded" and metrics.model_refusal:
        body["detail"] = metrics.model_refusal
    elif status == "failing":
        body["detail"] = metrics.agent_failure
    return body, code
