"""The periodic retraining loop behind `stream-rec trainer`.

Each round reads a window of recent history, trains a candidate (warm-started from the
current model where the vocabularies overlap), evaluates the candidate and the current model
on the same most recent hold-out slice, and publishes the candidate only when the promotion
gate lets it through. The decision and both models' numbers are logged either way.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stream_rec.config import Settings
from stream_rec.datasets import Dataset
from stream_rec.errors import UserError
from stream_rec.model.artifact import ArtifactError, ModelArtifact
from stream_rec.model.registry import ModelRegistry, RegistryError
from stream_rec.offline.evaluate import evaluate
from training.pipeline import build_candidate, register
from training.promotion import Decision, promotion_decision
from training.train import TrainConfig

log = logging.getLogger("stream_rec.trainer")


@dataclass
class RoundResult:
    """One retraining round: the promotion decision and both models' versions and metrics."""

    decision: Decision
    candidate_version: str
    candidate_metrics: dict[str, Any]
    current_version: str | None
    current_metrics: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision.to_dict(), "candidate": self.candidate_version,
                "candidate_metrics": self.candidate_metrics, "current": self.current_version,
                "current_metrics": self.current_metrics}


def _current(registry: ModelRegistry) -> ModelArtifact | None:
    if registry.current() is None:
        return None
    try:
        return registry.load()
    except (ArtifactError, RegistryError) as exc:
        log.warning("current model cannot be loaded (%s); judging the candidate alone", exc)
        return None


def retrain_round(dataset: Dataset, data_spec: str, registry: ModelRegistry, settings: Settings,
                  config: TrainConfig, announce: bool = True, warm_start: bool = True,
                  progress: Callable[[str], None] | None = None) -> RoundResult:
    """One round on an already-read dataset whose test split is the hold-out slice."""
    say = progress or (lambda line: log.info("%s", line))
    if not dataset.test_cases():
        raise UserError(f"{data_spec}: the hold-out slice has no next-item cases to judge by")
    current = _current(registry)
    candidate = build_candidate(dataset, data_spec, registry, settings, config,
                                warm=current if warm_start else None, progress=say)
    try:
        current_metrics = None
        if current is not None:
            say(f"evaluating current model {current.version} on the same hold-out ...")
            current_metrics = evaluate(current, dataset, k=settings.eval_k,
                                       batch_size=settings.eval_batch_size, threads=2,
                                       progress=say)
        decision = promotion_decision(candidate.metrics, current_metrics,
                                      settings.promotion_metric, settings.promotion_tolerance)
        result = RoundResult(decision, candidate.version, candidate.metrics,
                             current.version if current is not None else None, current_metrics)
        log.info("promotion %s for %s: %s | candidate %s | current %s",
                 "ACCEPTED" if decision.promote else "REFUSED", candidate.version,
                 decision.reason, json.dumps(candidate.metrics, sort_keys=True),
                 json.dumps(current_metrics, sort_keys=True))
        if decision.promote:
            register(candidate, registry, settings, publish=True, announce=announce)
    finally:
        candidate.discard()
    return result


def run_trainer(load: Callable[[], Dataset], data_spec: str, registry: ModelRegistry,
                settings: Settings, config: TrainConfig, every_ms: int, once: bool = False,
                announce: bool = True) -> int:
    """Retrain every ``every_ms`` (measured start to start) until interrupted."""
    while True:
        started = time.monotonic()
        try:
            result = retrain_round(load(), data_spec, registry, settings, config,
                                   announce=announce)
            print(json.dumps(result.to_dict(), sort_keys=True), flush=True)
        except UserError as exc:
            log.error("retraining round skipped: %s", exc)
            if once:
                raise
        if once:
            return 0
        wait_s = max(0.0, every_ms / 1000 - (time.monotonic() - started))
        print(f"next round in {wait_s:.0f} s", file=sys.stderr, flush=True)
        time.sleep(wait_s)
