"""The promotion gate: a retrained model replaces the current one only if it is not worse."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Decision:
    """Whether a retrained model replaces the current one, why, and the numbers compared."""

    promote: bool
    reason: str
    metric: str
    candidate: float | None
    current: float | None
    tolerance: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def promotion_decision(candidate: Mapping[str, Any], current: Mapping[str, Any] | None,
                       metric: str, tolerance: float) -> Decision:
    """Promote when there is no current model, or when the candidate's ``metric`` is at
    least ``(1 - tolerance)`` times the current model's on the same hold-out cases."""
    value = candidate.get(metric)
    if not isinstance(value, int | float):
        return Decision(False, f"candidate has no {metric}", metric, None, None, tolerance)
    if current is None:
        return Decision(True, "no current model", metric, float(value), None, tolerance)
    base = current.get(metric)
    if not isinstance(base, int | float):
        return Decision(True, f"current model has no {metric}", metric, float(value), None,
                        tolerance)
    floor = float(base) * (1.0 - tolerance)
    if value >= floor:
        return Decision(True, f"{metric} {value:.4f} >= {floor:.4f} (current {base:.4f} "
                        f"less {tolerance:.0%})", metric, float(value), float(base), tolerance)
    return Decision(False, f"{metric} {value:.4f} < {floor:.4f} (current {base:.4f} less "
                    f"{tolerance:.0%})", metric, float(value), float(base), tolerance)
