"""Experiments on the re-ranking policy: definitions and the assignment of shoppers to arms.

An experiment is a compacted-topic record (key = its id) naming arms, each with a re-ranking
policy, their traffic weights, a salt, the share of shoppers it takes part with, and whether
it is running. Assignment is a pure function of (salt, user_id): a stable hash gives each
shopper a number in [0, 1); a shopper below ``traffic`` is in the experiment, and the arm is
the one whose share of the weights holds the number. The same on every worker, after any
rebalance and restart; changing the weights moves only the shoppers whose number crosses a
boundary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stream_rec.core.events import InvalidEvent, decode_object
from stream_rec.rerank import RerankPolicy

MAX_ARMS = 10
MAX_NAME_CHARS = 64
MAX_EXPERIMENT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Arm:
    """One variant: its name and the re-ranking policy its shoppers' lists get."""

    name: str
    policy: RerankPolicy


@dataclass(frozen=True, slots=True)
class Experiment:
    """A running or stopped experiment (see the module docstring)."""

    id: str
    arms: tuple[Arm, ...]
    weights: tuple[float, ...]
    salt: str
    traffic: float = 1.0
    running: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The record on the experiments topic."""
        return {"id": self.id, "arms": [{"name": a.name, "policy": str(a.policy)}
                                        for a in self.arms],
                "weights": list(self.weights), "salt": self.salt, "traffic": self.traffic,
                "running": self.running}


def parse_experiment(key: str, raw: bytes) -> Experiment:
    """Validate one experiments-topic record; raise ``InvalidEvent`` with the reason."""
    data = decode_object(raw, MAX_EXPERIMENT_BYTES, "experiment")
    if data.get("id") != key:
        raise InvalidEvent("experiment 'id' must equal the message key")
    arms_raw = data.get("arms")
    if not isinstance(arms_raw, list) or not 1 <= len(arms_raw) <= MAX_ARMS:
        raise InvalidEvent(f"experiment 'arms' must be a list of 1..{MAX_ARMS} arms")
    arms = tuple(_arm(a) for a in arms_raw)
    if len({a.name for a in arms}) != len(arms):
        raise InvalidEvent("experiment arms must have distinct names")
    weights_raw = data.get("weights", [1.0] * len(arms))
    if (not isinstance(weights_raw, list) or len(weights_raw) != len(arms)
            or not all(_number(w) and w >= 0 for w in weights_raw)
            or not sum(weights_raw) > 0):
        raise InvalidEvent("experiment 'weights' must be one non-negative number per arm, "
                           "not all zero")
    traffic = data.get("traffic", 1.0)
    if not _number(traffic) or not 0 <= traffic <= 1:
        raise InvalidEvent("experiment 'traffic' must be a number from 0 to 1")
    salt = data.get("salt", key)
    running = data.get("running", True)
    if not isinstance(salt, str) or not isinstance(running, bool):
        raise InvalidEvent("experiment 'salt' must be a string and 'running' true or false")
    return Experiment(key, arms, tuple(float(w) for w in weights_raw), salt, float(traffic),
                      running)


def _arm(raw: Any) -> Arm:
    if not isinstance(raw, dict):
        raise InvalidEvent("an experiment arm must be an object with 'name' and 'policy'")
    name, policy = raw.get("name"), raw.get("policy")
    if (not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS
            or not name.isprintable() or "|" in name):
        raise InvalidEvent(f"an arm's 'name' must be 1..{MAX_NAME_CHARS} printable "
                           "characters without '|'")
    if not isinstance(policy, str):
        raise InvalidEvent(f"arm {name!r}: 'policy' must be a string such as dpp:0.3")
    try:
        return Arm(name, RerankPolicy.parse(policy))
    except ValueError as exc:
        raise InvalidEvent(f"arm {name!r}: {exc}") from None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def unit_hash(salt: str, user_id: str) -> float:
    """A stable number in [0, 1) for a shopper in an experiment."""
    digest = hashlib.blake2b(f"{salt}\x1f{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign(experiments: Mapping[str, Experiment] | Sequence[Experiment], user_id: str
           ) -> tuple[Experiment, Arm] | None:
    """The running experiment and arm a shopper is in, or None. With several running, the
    first by id that takes the shopper in (its traffic share) decides."""
    running = experiments.values() if isinstance(experiments, Mapping) else experiments
    for experiment in sorted((e for e in running if e.running), key=lambda e: e.id):
        point = unit_hash(experiment.salt, user_id)
        if point >= experiment.traffic:
            continue
        # Within the traffic share, spread the shopper over the arms by weight.
        share = point / experiment.traffic if experiment.traffic else 0.0
        total = sum(experiment.weights)
        edge = 0.0
        for arm, weight in zip(experiment.arms, experiment.weights, strict=True):
            edge += weight / total
            if share < edge:
                return experiment, arm
        return experiment, experiment.arms[-1]
    return None
