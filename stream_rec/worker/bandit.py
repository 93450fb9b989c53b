"""The bandit's step in a worker: re-weight running Thompson experiments, publish the result.

Runs on the consumer group's leader only (one publisher), in a thread (it reads Kafka with a
blocking client). The evidence is every partition's online-metrics record, read from the
table's changelog, so it covers all workers' partitions; the new weights go to the
experiments topic as the experiment's next version, which every worker follows. Before it
publishes, it reads the experiment again: when the definition changed meanwhile (an operator
stopped or re-weighted it), the step is dropped rather than overwriting that change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from stream_rec.config import Settings
from stream_rec.core.bandit import next_weights
from stream_rec.core.experiments import Experiment
from stream_rec.serving.online_metrics import add_up, decode_partition_metrics
from stream_rec.topics import publish_experiment, read_experiments, read_latest
from stream_rec.worker.state_guard import changelog_topic

log = logging.getLogger(__name__)


def step_bandits(settings: Settings, experiments: Mapping[str, Experiment]) -> list[Experiment]:
    """Publish the next weights of every running Thompson experiment whose weights move;
    returns the versions published. Blocking: call it from a thread."""
    bandits = [e for e in experiments.values() if e.allocation == "thompson" and e.running]
    if not bandits:
        return []
    records = read_latest(settings, changelog_topic(settings.app_id, "online-metrics"),
                          decode_partition_metrics)
    online = add_up(list(records.values()))
    published = []
    for experiment in bandits:
        weights = next_weights(experiment, online)
        if weights is None:
            continue
        latest = read_experiments(settings).get(experiment.id)
        if latest != experiment:
            log.info("experiment %s changed while its weights were computed: step dropped",
                     experiment.id)
            continue
        following = experiment.reweighted(weights, int(time.time() * 1000))
        publish_experiment(settings, following)
        log.info("experiment %s: weights v%d %s", experiment.id, following.version,
                 ", ".join(f"{a.name}={w:.3f}" for a, w in zip(experiment.arms, weights,
                                                               strict=True)))
        published.append(following)
    return published
