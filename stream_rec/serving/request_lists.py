"""Lists made when a page asks: re-ranked from a kept pool, for new shoppers, similar items.

The stream makes one list per event. A page often wants something slightly different: more or
fewer items, without the ones it already shows, only one category or price range, another
balance of relevance and diversity. Each shopper's latest list keeps the candidates it was
picked from (``lists.Pool``: ids, scores and reasons, best first, only those that passed the
shopper's own exclusions), so such a request re-ranks that pool with the request's filters and
policy, without scoring again; the answer says which pool, model and policy it came from and
how old the pool is.

A shopper with no list yet (new or anonymous) gets trending and new items, or, given the item
they are looking at (``context``), what the model proposes after that one item. Item-to-item
lists (``similar_items``) come from the model's item vectors (an item the model never saw,
through its attributes), optionally diversity re-ranked.

A list re-ranked with the shopper's own policy keeps its pool's ``list_id``: impressions and
clicks that name it count for the same model, policy and experiment arm as the stream's list.
A list made with a policy override gets an id of its own, which no stream list has, so what
shoppers do with it is left out of every experiment's counts.

No Faust here; the worker's HTTP views call these on the event loop (each is one small re-rank
or one model call).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from stream_rec.core.events import TYPE_CODE
from stream_rec.core.rounding import round6
from stream_rec.core.state import HistoryEntry, UserState
from stream_rec.rerank import RerankPolicy, rerank_batch, stable_item_keys
from stream_rec.rerank.pool_vectors import PoolVectors
from stream_rec.serving.candidates import index_top_n
from stream_rec.serving.lists import (
    REASON_CODE,
    REASON_NEW,
    REASON_SIMILAR,
    REASONS,
    Pool,
    RecList,
    RecRequest,
)
from stream_rec.serving.recommender import Recommender

MAX_N = 200  # items in one answer (and the most a pool keeps by default)
MAX_EXCLUDE = 200  # ids a page may ask to leave out
MAX_ID_CHARS = 256
LIST_PARAMS = frozenset({"n", "exclude", "category", "in_stock", "min_price", "max_price",
                         "policy", "context"})
SIMILAR_PARAMS = frozenset({"n", "diverse", "in_stock"})
SIMILAR_POOL = 200  # nearest items considered before a diversity re-rank
REASON_SIMILAR_ITEM = "similar to this item"
NEW_ITEM_SHARE = 0.25  # of a new shopper's pool: new catalog items beside the trending ones


class QueryError(ValueError):
    """A request parameter that cannot be used; the message says which and why (HTTP 400)."""


@dataclass(frozen=True)
class ListQuery:
    """What a page asks of a list (every field optional)."""

    n: int | None = None  # default: list_length
    exclude: frozenset[str] = frozenset()
    category: str | None = None
    in_stock: bool = True  # False: out-of-stock items may appear (never delisted ones)
    min_price: float | None = None
    max_price: float | None = None
    policy: RerankPolicy | None = None  # default: the policy that made the stored list
    context: str | None = None  # the item a new shopper is looking at
    asked: bool = False  # any parameter given, even one set to its default

    @property
    def plain(self) -> bool:
        """No parameter at all: the stored list as it was published."""
        return not self.asked


@dataclass(frozen=True)
class PoolSource:
    """Where a pool came from, for the answer."""

    kind: str  # "shopper" (their latest list), "new_shopper" or "context"
    list_id: str | None = None
    generated_ms: float | None = None
    model_version: str | None = None
    policy: RerankPolicy | None = None
    fallback: bool = False
    experiment: Any = None  # the stored list's experiment field, as published
    extra: dict[str, Any] = field(default_factory=dict)


def parse_list_query(params: Mapping[str, str]) -> ListQuery:
    """The query of ``GET /users/{id}/recommendations/``; QueryError when a parameter is
    unknown, malformed or out of bounds."""
    _only(params, LIST_PARAMS)
    min_price = _price(params, "min_price")
    max_price = _price(params, "max_price")
    if min_price is not None and max_price is not None and min_price > max_price:
        raise QueryError("min_price must not exceed max_price")
    exclude = frozenset(_ids(params.get("exclude", ""), "exclude"))
    if len(exclude) > MAX_EXCLUDE:
        raise QueryError(f"exclude: at most {MAX_EXCLUDE} item ids")
    return ListQuery(
        n=_count(params, "n"), exclude=exclude, category=_text(params, "category"),
        in_stock=_flag(params, "in_stock", True), min_price=min_price, max_price=max_price,
        policy=_policy(params, "policy"), context=_text(params, "context"),
        asked=bool(params))


def parse_similar_query(params: Mapping[str, str]) -> tuple[int, RerankPolicy | None, bool]:
    """(n, diversity policy or None, in_stock) of ``GET /items/{id}/similar/``. ``diverse``
    takes a policy (``dpp:0.3``) or a bare DPP weight (``0.3``); 0 or absent: none."""
    _only(params, SIMILAR_PARAMS)
    raw = params.get("diverse")
    policy: RerankPolicy | None = None
    if raw is not None and raw.strip().lower() not in ("", "0", "false", "none"):
        text = raw.strip()
        policy = _policy({"diverse": f"dpp:{text}" if _is_number(text) else text}, "diverse")
    return _count(params, "n") or 10, policy, _flag(params, "in_stock", True)


# -- answers --------------------------------------------------------------------------------
def stored_pool(stored: Mapping[str, Any]) -> tuple[Pool, PoolSource]:
    """The pool kept with a shopper's latest list (the ``latest-recs`` value, decoded), and
    where it came from; a list stored without a readable pool is its own pool."""
    try:
        pool = Pool.decode(stored["pool"])
    except (KeyError, ValueError):
        pool = pool_of(stored)
    policy = RerankPolicy.from_dict(stored["policy"]) if stored.get("policy") else None
    generated = _parse_time(stored.get("generated_at"))
    return pool, PoolSource("shopper", stored.get("list_id"), generated,
                            stored.get("model_version"), policy, bool(stored.get("fallback")),
                            stored.get("experiment"))


def new_shopper_pool(recommender: Recommender, user_id: str, context: str | None,
                     now_ms: float) -> tuple[Pool, PoolSource]:
    """A pool for a shopper with no list yet: what the model proposes after ``context`` (the
    item being looked at) when it is given and known, else trending and new items."""
    if context is not None and (context in recommender.catalog.items or (
            recommender.table is not None and context in recommender.table.position)):
        state = UserState(history=(HistoryEntry(context, TYPE_CODE["view"], int(now_ms)),))
        [made] = recommender.recommend([RecRequest(user_id, "", state, now_ms)])
        pool = pool_of(made)
        keep = [k for k, i in enumerate(pool.ids) if i != context]
        if keep:
            pool = Pool(tuple(pool.ids[k] for k in keep), pool.scores[keep],
                        "".join(pool.reasons[k] for k in keep))
            return pool, PoolSource("context", None, now_ms, made.model_version, made.policy,
                                    made.fallback, extra={"context": context})
    [made] = recommender.fallback([RecRequest(user_id, "", UserState(), now_ms)])
    return _with_new_items(recommender, pool_of(made)), PoolSource(
        "new_shopper", None, now_ms, recommender.scorer.version if recommender.scorer else None,
        made.policy, recommender.scorer is None)


def pool_of(made: RecList | Mapping[str, Any]) -> Pool:
    """A list's kept pool, or (stored without one) the list's own items as the pool."""
    if isinstance(made, RecList):
        if made.pool is not None:
            return made.pool
        items = [(i.item_id, i.score, i.reason) for i in made.items]
    else:
        items = [(i["item_id"], i["score"], i["reason"]) for i in made.get("items", ())]
    return Pool(tuple(i for i, _, _ in items), np.array([s for _, s, _ in items],
                                                           dtype=np.float32),
                "".join(REASON_CODE.get(r, "0") for _, _, r in items))


def request_list(recommender: Recommender, user_id: str, pool: Pool, source: PoolSource,
                 query: ListQuery, now_ms: float) -> dict[str, Any]:
    """Re-rank ``pool`` as ``query`` asks: the answer of ``GET /users/{id}/recommendations/``
    for anything but the stored list itself (schemas/openapi.yaml, ``RequestList``)."""
    default_policy = source.policy or recommender.config.policy
    policy = query.policy or default_policy
    override = query.policy is not None and query.policy != default_policy
    n = query.n or recommender.config.k
    picked = rerank_pool(recommender, pool, query, policy, n)
    same_list = source.list_id is not None and not override
    list_id = source.list_id if same_list else _request_list_id(user_id, source, query, now_ms)
    age_s = None if source.generated_ms is None else max(0.0, (now_ms - source.generated_ms)
                                                         / 1000)
    return {
        "user_id": user_id,
        "list_id": list_id,
        "source": "request",
        "items": [{"item_id": i, "score": round6(s), "reason": r} for i, s, r in picked],
        "model_version": source.model_version,
        "policy": policy.to_dict(),
        "policy_override": override,
        "fallback": source.fallback,
        "experiment": None if override else source.experiment,
        "generated_at": _iso(now_ms),
        "pool": {"kind": source.kind, "list_id": source.list_id,
                 "generated_at": None if source.generated_ms is None else
                 _iso(source.generated_ms),
                 "age_s": None if age_s is None else round(age_s, 3), "size": len(pool.ids),
                 **source.extra},
    }


def rerank_pool(recommender: Recommender, pool: Pool, query: ListQuery,
                policy: RerankPolicy, n: int) -> list[tuple[str, float, str]]:
    """(item, score, reason) of the ``n`` items the policy picks from the pool's items that
    pass the query's filters and are still available."""
    if not pool.ids:
        return []
    catalog = recommender.catalog
    items = catalog.items
    eligible = np.array([_passes(item_id, query, catalog.delisted, catalog.out_of_stock, items)
                         for item_id in pool.ids], dtype=bool)
    table = recommender.table
    ids = list(pool.ids)
    if table is not None:  # availability: the catalog's sets above (the table merges both)
        positions = np.array([table.position.get(i, -1) for i in ids], dtype=np.int64)
        vectors: Any = table.vectors(positions[None])
        # Tie-break keys: the table has them for the items it knows (hashing 200 ids anew
        # was a third of a request's re-rank).
        keys = table.keys[np.maximum(positions, 0)]
        unknown = np.flatnonzero(positions < 0)
        if len(unknown):
            keys[unknown] = stable_item_keys([ids[k] for k in unknown])
    else:
        vectors = PoolVectors(np.zeros((1, 1), dtype=np.float32),
                              np.zeros((1, len(ids)), dtype=np.int64))
        keys = stable_item_keys(ids)
    codes: dict[str, int] = {}
    categories = np.array([-1 if (c := catalog.category(i)) is None else
                           codes.setdefault(c, len(codes)) for i in ids], dtype=np.int64)
    config = recommender.config
    picked = rerank_batch(pool.scores[None].astype(np.float32), vectors,
                          keys[None], min(n, len(ids)), policy,
                          categories=categories[None], eligible=eligible[None],
                          max_per_category=config.rules.category_cap,
                          category_weight=config.category_weight)[0]
    return [(ids[c], float(pool.scores[c]), _reason(pool.reasons[c])) for c in picked.tolist()
            if c >= 0]


def similar_items(recommender: Recommender, item_id: str, n: int,
                  policy: RerankPolicy | None, in_stock: bool = True) -> dict[str, Any] | None:
    """Items like ``item_id`` for a product page, or None when no one knows the item. With a
    model: cosine similarity of item vectors (an item the model never saw: the model's vector
    for a one-view history of it, through its attributes); without: trending items of the
    same category. Delisted (and, with ``in_stock``, out-of-stock) items and the item itself
    are left out."""
    table, scorer = recommender.table, recommender.scorer
    catalog = recommender.catalog
    known = item_id in catalog.items or (table is not None and item_id in table.position)
    if not known:
        return None
    if table is not None and scorer is not None:
        pool = _nearest(recommender, item_id, in_stock)
    else:
        pool = _same_category(recommender, item_id)
    query = ListQuery(exclude=frozenset({item_id}), in_stock=in_stock)
    picked = rerank_pool(recommender, pool, query, policy or RerankPolicy("none", 0.0), n)
    return {
        "item_id": item_id,
        "items": [{"item_id": i, "score": round6(s), "reason": REASON_SIMILAR_ITEM}
                  for i, s, _ in picked],
        "model_version": scorer.version if scorer is not None else None,
        "policy": (policy or RerankPolicy("none", 0.0)).to_dict(),
        "fallback": scorer is None,
        "generated_at": _iso(time.time() * 1000),
    }


def _nearest(recommender: Recommender, item_id: str, in_stock: bool) -> Pool:
    table, scorer = recommender.table, recommender.scorer
    assert table is not None and scorer is not None
    position = table.position.get(item_id, -1)
    if 0 <= position < table.n_vocab:
        query = table.model.item_vectors[position].astype(np.float32)
    else:  # the model never saw it: its vector for a one-view history, through attributes
        queries = scorer.queries([[(item_id, TYPE_CODE["view"])]], recommender.catalog.items)
        query = np.asarray(queries.embedding[0], dtype=np.float32)
    index = table.model.ann
    if index is not None:  # the graph, as retrieval uses it (retrieval rows have unit norm)
        found, top = index_top_n(index, query[None], table, SIMILAR_POOL + 1, in_stock)
        kept = top[0] >= 0
        ids = tuple(table.ids[p] for p in top[0][kept])
        sims = found[0][kept] / (float(np.linalg.norm(query)) or 1.0)
        return Pool(ids, sims.astype(np.float32), "0" * len(ids))
    vectors_t, blocked = table.retrieval_matrix()  # the matrix retrieval uses
    norms = table.retrieval_norms()
    sims = (query @ vectors_t) / (norms * (float(np.linalg.norm(query)) or 1.0))
    if in_stock:  # else out-of-stock items too (delisted ones are filtered out afterwards)
        sims[blocked] = -np.inf
    width = min(SIMILAR_POOL + 1, len(sims))
    if not width:
        return Pool((), np.zeros(0, dtype=np.float32), "")
    top = np.argpartition(-sims, width - 1)[:width]
    top = top[np.argsort(-sims[top], kind="stable")]
    top = top[np.isfinite(sims[top])]
    ids = tuple(table.ids[p] for p in top)
    return Pool(ids, sims[top].astype(np.float32), "0" * len(ids))


def _same_category(recommender: Recommender, item_id: str) -> Pool:
    category = recommender.catalog.category(item_id)
    ranked = [(i, s) for i, s in recommender.trending.top(10 * SIMILAR_POOL)
              if category is not None and recommender.catalog.category(i) == category]
    ranked = ranked[:SIMILAR_POOL]
    return Pool(tuple(i for i, _ in ranked),
                np.array([s for _, s in ranked], dtype=np.float32), "0" * len(ranked))


def _with_new_items(recommender: Recommender, pool: Pool) -> Pool:
    """A new shopper's pool: trending items, and the newest catalog items the model never
    saw (or, without a model, the newest listed) scored at the trending pool's median."""
    room = max(1, int(recommender.config.pool * NEW_ITEM_SHARE))
    table = recommender.table
    if table is not None:
        new = [table.ids[p] for p in table.new_items(room)]
    else:
        new = [i for i in reversed(list(recommender.catalog.items))][:room]
    new = [i for i in new if i not in set(pool.ids)]
    if not new:
        return pool
    score = float(np.median(pool.scores)) if len(pool.scores) else 0.0
    code = str(REASONS.index(REASON_NEW))
    return Pool(pool.ids + tuple(new), np.concatenate(
        [pool.scores, np.full(len(new), score, dtype=np.float32)]),
        pool.reasons + code * len(new))


def _passes(item_id: str, query: ListQuery, delisted: set[str], out_of_stock: set[str],
            items: Mapping[str, Any]) -> bool:
    if item_id in query.exclude or item_id in delisted:
        return False
    if query.in_stock and item_id in out_of_stock:
        return False
    if query.category is not None or query.min_price is not None \
            or query.max_price is not None:
        item = items.get(item_id)
        if item is None:
            return False
        if query.category is not None and item.category != query.category:
            return False
        if query.min_price is not None or query.max_price is not None:
            price = item.price
            if price is None:
                return False
            if query.min_price is not None and price < query.min_price:
                return False
            if query.max_price is not None and price > query.max_price:
                return False
    return True


def _reason(code: str) -> str:
    index = int(code) if code.isdigit() else 0
    return REASONS[index] if index < len(REASONS) else REASON_SIMILAR


def _request_list_id(user_id: str, source: PoolSource, query: ListQuery, now_ms: float) -> str:
    """An id of its own for a list made at request time (never one the stream made)."""
    key = orjson.dumps([user_id, source.list_id, source.kind, now_ms, repr(query)])
    return hashlib.blake2b(b"request\x1f" + key, digest_size=16).hexdigest()


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _parse_time(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000
    except ValueError:
        return None


# -- parameter parsing ----------------------------------------------------------------------
def _only(params: Mapping[str, str], allowed: frozenset[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0][:40]!r}; expected one of "
                         f"{', '.join(sorted(allowed))}")


def _count(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_N:
        raise QueryError(f"{name} must be a whole number from 1 to {MAX_N}")
    return int(text)


def _ids(raw: str, name: str) -> list[str]:
    ids = [i.strip() for i in raw.split(",") if i.strip()]
    if any(len(i) > MAX_ID_CHARS or not i.isprintable() for i in ids):
        raise QueryError(f"{name}: item ids of at most {MAX_ID_CHARS} printable characters, "
                         "separated by ','")
    return ids


def _text(params: Mapping[str, str], name: str) -> str | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not raw or len(raw) > MAX_ID_CHARS or not raw.isprintable():
        raise QueryError(f"{name} must be 1 to {MAX_ID_CHARS} printable characters")
    return raw


def _flag(params: Mapping[str, str], name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise QueryError(f"{name} must be true or false")
    return value in ("true", "1")


def _price(params: Mapping[str, str], name: str) -> float | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise QueryError(f"{name} must be a number >= 0")
    return value


def _policy(params: Mapping[str, str], name: str) -> RerankPolicy | None:
    raw = params.get(name)
    if raw is None:
        return None
    if len(raw) > 64:
        raise QueryError(f"{name}: at most 64 characters, such as dpp:0.3 or mmr:0.7")
    try:
        return RerankPolicy.parse(raw)
    except ValueError as exc:
        raise QueryError(f"{name}: {exc}") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def as_params(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Query pairs as one value per name; a name given twice is a QueryError (which one a
    page meant cannot be known)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise QueryError(f"parameter {name[:40]!r} given more than once")
        out[name] = value
    return out
