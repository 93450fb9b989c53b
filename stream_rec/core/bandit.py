"""Thompson sampling over an experiment's arms: the next traffic weights from the evidence.

Each arm's click-through has a Beta(1 + clicks, 1 + trials - clicks) posterior, where trials
are the items shoppers were shown (impressed items; lists published until the shop sends
impressions). An arm's new weight is the probability that it is the best, mixed with a floor
share per arm so that every arm keeps collecting evidence (``stats.thompson_weights``). The
figures are the online metrics summed over all partitions, so every worker agrees on them;
one worker (the group's leader) publishes the result as the experiment's next version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from stream_rec.core.attribution import split_group
from stream_rec.core.experiments import Experiment
from stream_rec.core.stats import thompson_weights

MIN_CHANGE = 0.01  # a smaller move of any weight is noise: no new version for it


def arm_evidence(experiment: Experiment, online: Mapping[str, Mapping[str, float]]
                 ) -> tuple[list[float], list[float]]:
    """(clicks, trials) of each arm, in the experiment's arm order, from the per-group online
    figures (summed over the models and policies an arm ran with)."""
    names = [a.name for a in experiment.arms]
    clicks, items, lists = [0.0] * len(names), [0.0] * len(names), [0.0] * len(names)
    for group, figures in online.items():
        labels = split_group(group)
        if labels["experiment"] != experiment.id or labels["arm"] not in names:
            continue
        k = names.index(labels["arm"])
        clicks[k] += figures.get("clicks", 0.0)
        items[k] += figures.get("impressed_items", 0.0)
        lists[k] += figures.get("lists", 0.0)
    trials = items if any(items) else lists
    return clicks, trials


def next_weights(experiment: Experiment, online: Mapping[str, Mapping[str, float]],
                 draws: int = 20_000) -> tuple[float, ...] | None:
    """The bandit's next weights, or None when they would not move (by ``MIN_CHANGE``) or the
    experiment is not a running bandit. Deterministic for a given experiment version and
    evidence, so a leader that takes over computes what the last one would have."""
    if experiment.allocation != "thompson" or not experiment.running:
        return None
    clicks, trials = arm_evidence(experiment, online)
    seed = hashlib.blake2b(f"{experiment.id}\x1f{experiment.version}".encode(),
                           digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(seed, "big"))
    weights = thompson_weights(clicks, trials, experiment.floor, rng, draws)
    total = sum(experiment.weights)
    current = [w / total for w in experiment.weights]
    if max(abs(a - b) for a, b in zip(weights, current, strict=True)) < MIN_CHANGE:
        return None
    return tuple(round(w, 6) for w in weights)
