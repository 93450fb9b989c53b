"""Experiments on the re-ranking policy and the model: definitions and assignment to arms.

An experiment is a compacted-topic record (key = its id) naming arms, each with a re-ranking
policy and optionally a model version, their traffic weights, a salt, the share of shoppers it
takes part with, and whether it is running. Assignment is a pure function of (salt, user_id):
a stable hash gives each shopper a number in [0, 1); a shopper below ``traffic`` is in the
experiment, and the arm is the one whose share of the weights holds the number. The same on
every worker, after any rebalance and restart; changing the weights moves only the shoppers
whose number crosses a boundary.

Weights are ``fixed`` (the operator's) or ``thompson``: a bandit re-computes them from the
arms' click-through (``stream_rec/worker/bandit.py``) and publishes each new set as the next
``version`` of the record, with the earlier sets kept in ``history`` (bounded) so a report can
show the allocation over time. Every list names the version its shopper was assigned under.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from stream_rec.core.events import InvalidEvent, decode_object
from stream_rec.rerank import RerankPolicy

MAX_ARMS = 10
MAX_NAME_CHARS = 64
MAX_EXPERIMENT_BYTES = 256 * 1024
# What a registry version folder may be called (stream_rec/model/registry.py): an arm names
# an exact version, never an alias, so every worker serves it the same model.
MODEL_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
HISTORY_KEPT = 200  # weight versions kept in the record (a bandit publishes one a minute)
ALLOCATIONS = ("fixed", "thompson")
DEFAULT_FLOOR = 0.1  # a bandit arm's least share: every arm keeps collecting evidence


@dataclass(frozen=True, slots=True)
class Arm:
    """One variant: its name, the re-ranking policy its shoppers' lists get, and the model
    version that scores them (None: the version the worker serves to everyone)."""

    name: str
    policy: RerankPolicy
    model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The arm as the experiments topic has it."""
        doc: dict[str, Any] = {"name": self.name, "policy": str(self.policy)}
        if self.model is not None:
            doc["model"] = self.model
        return doc


class ExperimentTag(NamedTuple):
    """What a list records of the experiment its shopper was in: the experiment, the arm,
    and the weights version the shopper was assigned under."""

    id: str
    arm: str
    version: int = 1


class WeightsVersion(NamedTuple):
    """One set of weights an experiment ran under, from ``at_ms`` on."""

    version: int
    at_ms: int
    weights: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Experiment:
    """A running or stopped experiment (see the module docstring)."""

    id: str
    arms: tuple[Arm, ...]
    weights: tuple[float, ...]
    salt: str
    traffic: float = 1.0
    running: bool = True
    allocation: str = "fixed"  # or "thompson"
    floor: float = DEFAULT_FLOOR  # thompson: each arm's least share of the traffic
    version: int = 1  # of the weights; each change publishes the next
    started_ms: int = 0  # when it was started (epoch ms; 0 = not known)
    since_ms: int = 0  # when the current weights took effect (epoch ms)
    history: tuple[WeightsVersion, ...] = ()  # earlier weights, oldest first

    def to_dict(self) -> dict[str, Any]:
        """The record on the experiments topic."""
        return {"id": self.id, "arms": [a.to_dict() for a in self.arms],
                "weights": list(self.weights), "salt": self.salt, "traffic": self.traffic,
                "running": self.running, "allocation": self.allocation, "floor": self.floor,
                "version": self.version, "started_ms": self.started_ms,
                "since_ms": self.since_ms,
                "history": [{"version": h.version, "at_ms": h.at_ms, "weights": list(h.weights)}
                            for h in self.history]}

    def reweighted(self, weights: Sequence[float], at_ms: int) -> Experiment:
        """The next version, with ``weights`` from ``at_ms`` on (the current set goes to the
        history)."""
        past = (*self.history, WeightsVersion(self.version, self.since_ms, self.weights))
        return replace(self, weights=tuple(float(w) for w in weights), version=self.version + 1,
                       since_ms=at_ms, history=past[-HISTORY_KEPT:])

    def tag(self, arm: Arm) -> ExperimentTag:
        """The tag of a list made in ``arm`` under the current weights."""
        return ExperimentTag(self.id, arm.name, self.version)

    @property
    def models(self) -> set[str]:
        """The model versions its arms ask for."""
        return {a.model for a in self.arms if a.model is not None}


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
    allocation = data.get("allocation", "fixed")
    if allocation not in ALLOCATIONS:
        raise InvalidEvent(f"experiment 'allocation' must be one of {', '.join(ALLOCATIONS)}")
    floor = data.get("floor", DEFAULT_FLOOR)
    if not _number(floor) or not 0 <= floor <= 1 / len(arms):
        raise InvalidEvent(f"experiment 'floor' must be a number from 0 to 1/arms "
                           f"({1 / len(arms):g})")
    version = data.get("version", 1)
    started, since = data.get("started_ms", 0), data.get("since_ms", 0)
    if not _count(version) or version < 1 or not _count(started) or not _count(since):
        raise InvalidEvent("experiment 'version' must be a whole number >= 1, 'started_ms' "
                           "and 'since_ms' whole numbers >= 0")
    return Experiment(key, arms, tuple(float(w) for w in weights_raw), salt, float(traffic),
                      running, str(allocation), float(floor), int(version), int(started),
                      int(since), _history(data.get("history", []), len(arms)))


def _history(raw: Any, arms: int) -> tuple[WeightsVersion, ...]:
    if not isinstance(raw, list) or len(raw) > HISTORY_KEPT:
        raise InvalidEvent(f"experiment 'history' must be a list of at most {HISTORY_KEPT}")
    out = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise InvalidEvent("experiment 'history' entries must be objects")
        version: Any = entry.get("version")
        at_ms: Any = entry.get("at_ms")
        weights = entry.get("weights")
        if (not _count(version) or not _count(at_ms) or not isinstance(weights, list)
                or len(weights) != arms or not all(_number(w) and w >= 0 for w in weights)):
            raise InvalidEvent("experiment 'history' entries need 'version', 'at_ms' and one "
                               "weight per arm")
        out.append(WeightsVersion(int(version), int(at_ms), tuple(float(w) for w in weights)))
    return tuple(out)


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
    model = raw.get("model")
    if model is not None and not (isinstance(model, str) and MODEL_VERSION_RE.fullmatch(model)
                                  and model not in ("current", "latest")):
        raise InvalidEvent(f"arm {name!r}: 'model' must be an exact model version name "
                           "such as v0003")
    try:
        return Arm(name, RerankPolicy.parse(policy), model)
    except ValueError as exc:
        raise InvalidEvent(f"arm {name!r}: {exc}") from None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
