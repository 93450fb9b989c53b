"""The re-ranking policy: which method and how strongly, chosen per request.

A policy is written as a short string so it can travel in a flag, an environment variable or
an HTTP query: ``"none"``, ``"dpp:0.5"``, ``"mmr:0.7"``. Every emitted list records the policy
that produced it through :meth:`RerankPolicy.to_dict`.

Parameters, both dimensionless and in [0, 1]:

- ``dpp``: theta, the weight of diversity. The greedy maximises
  ``(1 - theta) * sum(relevance) + theta * log det(S'_Y) / eps^2`` over the list Y, with
  ``S' = (1 - eps) I + eps S`` the similarity shrunk so that its log-determinant counts similar
  pairs (eps = 1 / (k - 1), see :func:`stream_rec.rerank.dpp.dpp_shrinkage`): about
  ``(1 - theta) * sum(relevance) - theta * sum over pairs of S_ij^2``. That is Chen, Zhang &
  Zhou's kernel ``L = Diag(q) S' Diag(q)``, ``q = exp(alpha * relevance)``, with
  ``alpha = (1 - theta) * eps^2 / (2 * theta)``. theta = 0 is the pure relevance order;
  theta = 1 is pure diversity. (Chen et al. name the *relevance* weight theta; ours is the
  diversity weight so that, like every other knob here, 0 means "no re-ranking".)
- ``mmr``: lambda, the weight of relevance in Carbonell & Goldstein's
  ``lambda * relevance - (1 - lambda) * max similarity to the items already chosen``.
  lambda = 1 is the pure relevance order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

METHODS = ("none", "dpp", "mmr")

#: Shipped DPP default (see docs/results.md, "Re-ranking", for the measurements behind it).
DEFAULT_DPP_THETA = 0.15
#: MMR's parameter when a policy string names the method without one.
DEFAULT_MMR_LAMBDA = 0.7


@dataclass(frozen=True)
class RerankPolicy:
    """A re-ranking method and its one parameter (theta for dpp, lambda for mmr)."""

    method: str
    param: float
    # The policy as text, made once: every list's group key names it (two calls an event).
    _text: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown re-ranking method {self.method!r}; expected {METHODS}")
        param = float(self.param)
        if not math.isfinite(param) or not 0.0 <= param <= 1.0:
            raise ValueError(f"{self.method} parameter must be in [0, 1], got {self.param!r}")
        object.__setattr__(self, "param", 0.0 if self.method == "none" else param)
        object.__setattr__(self, "_text", "none" if self.method == "none"
                           else f"{self.method}:{self.param:g}")

    @property
    def is_identity(self) -> bool:
        """True when the policy keeps the relevance order (so selection is a plain top-k)."""
        if self.method == "dpp":
            return self.param == 0.0
        if self.method == "mmr":
            return self.param == 1.0
        return True

    @classmethod
    def parse(cls, text: str) -> RerankPolicy:
        """Read ``"none"``, ``"dpp"``, ``"dpp:0.5"``, ``"mmr:0.7"`` (case and spaces ignored)."""
        method, sep, raw = text.strip().lower().partition(":")
        method = method.strip()
        if method == "none":
            if sep and raw.strip() not in ("", "0", "0.0"):
                raise ValueError(f"policy 'none' takes no parameter: {text!r}")
            return cls("none", 0.0)
        if not sep or not raw.strip():
            defaults = {"dpp": DEFAULT_DPP_THETA, "mmr": DEFAULT_MMR_LAMBDA}
            if method not in defaults:
                raise ValueError(f"not a re-ranking policy: {text!r} (try 'dpp:0.5', 'mmr:0.7')")
            return cls(method, defaults[method])
        try:
            param = float(raw)
        except ValueError:
            raise ValueError(f"not a number in re-ranking policy {text!r}") from None
        return cls(method, param)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RerankPolicy:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["method"]), float(data.get("param", 0.0)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record of the policy, e.g. ``{"method": "dpp", "param": 0.5}``."""
        return {"method": self.method, "param": self.param}

    def __str__(self) -> str:
        return self._text
