"""Training the fusion model: next-item prediction over the whole catalog.

Every prefix -> next pair of the training sessions is one example. The loss is a softmax over
the catalog, estimated with ``negatives`` items sampled uniformly per step (shared by the
batch) and the usual log(N/K) correction, which on a 2-core CPU is ~10x cheaper than the full
softmax at nearly the same accuracy (``negatives=0`` gives the full softmax). Catalog items
outside the id vocabulary are in the sampled set too (they score through their attributes),
and while training, a ``cold_item_rate`` share of items loses its id (becomes OOV), so the
content branch learns to score items the model has never seen.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import tensorflow as tf

from stream_rec.config import Settings
from stream_rec.datasets import Dataset, Session
from stream_rec.errors import UserError
from stream_rec.model.artifact import FIRST_ITEM_INDEX, OOV_INDEX, ModelArtifact
from training.model import FusionCore
from training.optim import FusedAdam
from training.pairs import Pairs, build_pairs
from training.validation import MIN_VALIDATION_CASES, Validator, split_for_validation
from training.vocab import Vocabulary, build_vocabulary
from training.warm_start import warm_start

log = logging.getLogger("stream_rec.training")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: epochs, sampling, model size, early stopping and the time budget."""

    epochs: int = 12
    batch_size: int = 1024
    negatives: int = 4096
    learning_rate: float = 0.002
    dim: int = 100
    max_history: int = 50
    scale: float = 12.0
    dropout: float = 0.1
    item_dropout: float = 0.0  # share of history item vectors dropped whole per step
    item_weight_decay: float = 0.0  # decoupled decay of the item-table rows a step touches
    graph_steps: int = 1
    graph_star: bool = False
    graph_highway: bool = False
    cold_item_rate: float = 0.1
    price_buckets: int = 10
    min_item_count: int = 1
    use_content: bool = True
    seed: int = 1
    time_budget_s: float = 0.0  # 0 = none; otherwise finish (decay included) within it
    lazy_embeddings: bool = True  # Adam updates only the embedding rows a step touched
    validation_fraction: float = 0.0  # most recent training sessions held out to stop early
    patience: int = 3  # epochs without a better validation score before stopping
    k: int = 20  # list length of the validation metrics

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> TrainConfig:
        config = cls(epochs=settings.train_epochs, batch_size=settings.train_batch_size,
                     negatives=settings.train_negatives, learning_rate=settings.learning_rate,
                     dim=settings.embedding_dim, max_history=settings.max_history,
                     scale=settings.score_scale, dropout=settings.dropout,
                     item_dropout=settings.item_dropout,
                     item_weight_decay=settings.item_weight_decay,
                     graph_steps=settings.session_graph_steps,
                     graph_star=settings.session_graph_star,
                     graph_highway=settings.session_graph_highway,
                     cold_item_rate=settings.cold_item_rate,
                     price_buckets=settings.price_buckets,
                     min_item_count=settings.min_item_count,
                     time_budget_s=settings.train_time_budget_s,
                     validation_fraction=settings.train_validation_fraction,
                     patience=settings.train_patience, k=settings.eval_k)
        return replace(config, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class TrainResult:
    """A trained model with its vocabulary, its settings and the per-epoch record."""

    core: FusionCore
    vocab: Vocabulary
    config: TrainConfig
    item_attributes: np.ndarray  # (V, A) attribute indices of every model item index
    n_pairs: int
    wall_time_s: float
    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0  # the epoch whose weights were kept (0 = the last, no validation)
    validation_cases: int = 0

    def summary(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "pairs": self.n_pairs,
                "items": len(self.vocab.item_ids), "attributes": self.vocab.attribute_names,
                "wall_time_s": round(self.wall_time_s, 1), "epochs": self.epochs,
                "best_epoch": self.best_epoch, "validation_cases": self.validation_cases}


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def train_model(dataset: Dataset, config: TrainConfig, warm: ModelArtifact | None = None,
                progress: Callable[[str], None] = _stderr,
                on_epoch: Callable[[int, FusionCore], None] | None = None) -> TrainResult:
    """Train a new model on ``dataset.train``; optionally start from ``warm``'s weights.

    ``on_epoch(epoch, core)`` runs after every epoch (e.g. to follow a validation metric).
    """
    started = time.monotonic()
    tf.random.set_seed(config.seed)
    fit, held_out = split_for_validation(dataset.train, config.validation_fraction)
    if held_out and _count_cases(held_out) < MIN_VALIDATION_CASES:
        fit, held_out = list(dataset.train), []  # too few cases to decide: train on all
    dataset = replace(dataset, train=tuple(fit))
    vocab = build_vocabulary(dataset, config.min_item_count, config.price_buckets,
                             config.use_content)
    if not vocab.item_ids:
        raise UserError(f"{dataset.name}: no items to learn from in the training split")
    use_content = config.use_content and bool(vocab.attribute_names)
    extra = [i for i in sorted(dataset.items) if i not in vocab.position] if use_content else []
    sampled = 0 < config.negatives < len(vocab.item_ids) + len(extra)
    pairs = build_pairs(dataset.train, vocab, config.max_history,
                        keep_unknown_targets=use_content and sampled)
    if len(pairs) == 0:
        raise UserError(f"{dataset.name}: no training session has two or more events")
    core = FusionCore(vocab.n_item_indices, vocab.attribute_sizes(), config.dim,
                      config.max_history, config.scale, config.dropout, use_content,
                      config.graph_steps, config.graph_star, config.graph_highway)
    core.build(None)
    if warm is not None:
        copied = warm_start(core, vocab, warm)
        progress(f"warm start from {warm.version}: {copied}")
    item_attrs = _item_attribute_table(vocab, dataset)
    validator = (Validator(build_pairs(held_out, vocab, config.max_history,
                                       keep_unknown_targets=True),
                           config.k, item_attrs, use_content, config.seed)
                 if held_out else None)
    universe_items = np.concatenate([np.arange(FIRST_ITEM_INDEX, vocab.n_item_indices),
                                     np.full(len(extra), OOV_INDEX)]).astype(np.int64)
    universe_attrs = np.concatenate([item_attrs[FIRST_ITEM_INDEX:],
                                     vocab.attributes(extra, dataset.items)]).astype(np.int64)
    steps_per_epoch = _count_batches(pairs, config)
    planned = steps_per_epoch * config.epochs
    step, optimizer = _make_step(core, config, use_content, item_attrs, universe_items,
                                 universe_attrs, planned)
    progress(f"training on {len(pairs):,} pairs, {len(vocab.item_ids):,} items "
             f"(+{len(extra):,} catalog-only), attributes {vocab.attribute_names or 'none'}, "
             f"{config.epochs} epochs of {steps_per_epoch} steps"
             + (f", early stopping on {len(validator):,} held-out cases of the most recent "
                f"{len(held_out):,} sessions" if validator else ""))
    result = TrainResult(core, vocab, config, item_attrs, len(pairs), 0.0,
                         validation_cases=len(validator) if validator else 0)
    done, warm_steps, loop_start, annealed = 0, 20, time.monotonic(), False
    for epoch in range(1, config.epochs + 1):
        t0 = time.monotonic()
        total, n = 0.0, 0
        for h_items, h_events, targets in _batches(pairs, config, epoch):
            total += float(step(h_items, h_events, targets))
            n += 1
            done += 1
            if done == warm_steps:  # the first steps trace the graph: time the rest
                loop_start = time.monotonic()
            if done == warm_steps + 100:
                per_step = (time.monotonic() - loop_start) / 100
                progress(f"  {per_step * 1000:.0f} ms/step, about "
                         f"{per_step * planned / 60:.1f} min for {config.epochs} epochs")
            if config.time_budget_s > 0 and done >= warm_steps + 100 and done % 50 == 0:
                planned = _fit_budget(config, started, loop_start, done - warm_steps, done,
                                      planned, optimizer, progress)
            if done >= planned:
                break
        seconds = time.monotonic() - t0
        record: dict[str, float] = {"epoch": epoch, "loss": round(total / max(n, 1), 4),
                                    "seconds": round(seconds, 1), "steps": n}
        note = ""
        if validator is not None:
            score, improved = validator.check(epoch, core)
            record.update({f"valid_P@{config.k}": round(100 * score.hit_rate, 2),
                           f"valid_MRR@{config.k}": round(100 * score.mrr, 2)})
            note = f", {score.describe(config.k)}{' (best)' if improved else ''}"
        result.epochs.append(record)
        progress(f"epoch {epoch}/{config.epochs}: loss {total / max(n, 1):.4f}{note}, "
                 f"{seconds:.0f} s, {time.monotonic() - started:.0f} s in all")
        if on_epoch is not None:
            on_epoch(epoch, core)
        if done >= planned:
            break
        if validator is not None and validator.stale >= config.patience:
            if annealed or not validator.restore_best(core):
                progress(f"no better validation score for {validator.stale} epochs: stopping")
                break
            # Back to the best weights for one last epoch at a low, decaying learning rate:
            # the quiet finish of a full schedule without the epochs that overfit.
            progress(f"no better validation score for {validator.stale} epochs: back to "
                     f"epoch {validator.best_epoch}, one last epoch at a decaying rate")
            optimizer.anneal(steps_per_epoch, ANNEAL_LEVEL)
            planned, annealed, validator.stale = done + steps_per_epoch, True, 0
    if validator is not None:
        result.best_epoch = validator.best_epoch
        if validator.restore_best(core):
            progress(f"keeping the weights of epoch {validator.best_epoch}")
    result.wall_time_s = time.monotonic() - started
    return result


def _count_cases(sessions: list[Session]) -> int:
    return sum(max(len(s) - 1, 0) for s in sessions)


def _bucket_widths(config: TrainConfig) -> list[int]:
    return sorted({w for w in BUCKET_WIDTHS if w < config.max_history} | {config.max_history})


def _count_batches(pairs: Pairs, config: TrainConfig) -> int:
    widths = np.asarray(_bucket_widths(config))
    counts = np.bincount(np.searchsorted(widths, (pairs.history_items > 0).sum(axis=1)),
                         minlength=len(widths))
    return int(sum(-(-int(c) // config.batch_size) for c in counts))


def _fit_budget(config: TrainConfig, started: float, loop_start: float, timed: int,
                done: int, planned: int, optimizer: FusedAdam,
                progress: Callable[[str], None]) -> int:
    """Shrink the planned steps (and the learning-rate decay) to what fits the time budget."""
    per_step = (time.monotonic() - loop_start) / timed
    left = config.time_budget_s - (time.monotonic() - started)
    fits = done + max(1, int(left / per_step))
    if fits >= planned:
        return planned
    if planned - fits > 0.02 * planned:  # say so when it matters, not every 50 steps
        progress(f"  time budget of {config.time_budget_s:.0f} s: finishing after "
                 f"{fits:,} of {planned:,} steps (learning-rate decay compressed)")
    optimizer.total_steps.assign(float(fits))
    return fits


def _item_attribute_table(vocab: Vocabulary, dataset: Dataset) -> np.ndarray:
    table = np.zeros((vocab.n_item_indices, len(vocab.attribute_names)), dtype=np.int64)
    table[OOV_INDEX] = OOV_INDEX
    if vocab.attribute_names:
        table[FIRST_ITEM_INDEX:] = vocab.attributes(vocab.item_ids, dataset.items)
    return table


ANNEAL_LEVEL = 0.3  # share of the peak learning rate the final, annealing epoch starts at
BUCKET_WIDTHS = (2, 4, 8, 16, 32)  # history widths of the length buckets (then max_history)


def _batches(pairs: Pairs, config: TrainConfig, epoch: int
             ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Shuffled batches of pairs with similar history lengths, cut to the width they need.

    Most shoppers have short histories; padding every batch to ``max_history`` would spend
    most of the attention's time on padding.
    """
    rng = np.random.default_rng(config.seed * 1_000_003 + epoch)
    lengths = (pairs.history_items > 0).sum(axis=1)
    widths = _bucket_widths(config)
    bucket = np.searchsorted(np.asarray(widths), lengths)
    batches: list[tuple[int, np.ndarray]] = []
    for b, width in enumerate(widths):
        members = np.flatnonzero(bucket == b)
        rng.shuffle(members)
        batches += [(width, members[lo:lo + config.batch_size])
                    for lo in range(0, len(members), config.batch_size)]
    for n in rng.permutation(len(batches)):
        width, rows = batches[n]
        yield (pairs.history_items[rows, -width:], pairs.history_events[rows, -width:],
               pairs.targets[rows])


def _make_step(core: FusionCore, config: TrainConfig, use_content: bool,
               item_attrs: np.ndarray, universe_items: np.ndarray, universe_attrs: np.ndarray,
               total_steps: int) -> tuple[Callable[..., tf.Tensor], FusedAdam]:
    optimizer = FusedAdam(core.trainable_variables, config.learning_rate, total_steps,
                          lazy=config.lazy_embeddings, weight_decay=config.item_weight_decay,
                          decayed=[core.items.table])
    attr_table = tf.constant(item_attrs)
    u_items = tf.constant(universe_items)
    u_attrs = tf.constant(universe_attrs)
    n_universe = int(universe_items.shape[0])
    sampled = 0 < config.negatives < n_universe
    k = config.negatives if sampled else n_universe
    correction = math.log(n_universe / k) if sampled else 0.0
    cold_rate = config.cold_item_rate if use_content else 0.0

    def cold(items: tf.Tensor) -> tf.Tensor:
        if cold_rate <= 0:
            return items
        drop = tf.random.uniform(tf.shape(items)) < cold_rate
        return tf.where(drop & (items >= FIRST_ITEM_INDEX), tf.constant(OOV_INDEX, tf.int64),
                        items)

    spec = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int8),
            tf.TensorSpec([None], tf.int32)]

    @tf.function(input_signature=spec)
    def step(h_items: tf.Tensor, h_events: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        h_items = tf.cast(h_items, tf.int64)
        targets = tf.cast(targets, tf.int64)
        inputs = {"history_items": cold(h_items), "history_events": tf.cast(h_events, tf.int64)}
        if use_content:
            inputs["history_attributes"] = tf.gather(attr_table, h_items)
        if sampled:
            pick = tf.random.uniform([k], 0, n_universe, dtype=tf.int64)
        else:
            pick = tf.range(n_universe, dtype=tf.int64)
        with tf.GradientTape() as tape:
            user, content_user, gates = core.users(inputs, training=True,
                                                   item_dropout=config.item_dropout)
            neg_vec, neg_content = core.candidates(
                cold(tf.gather(u_items, pick)),
                tf.gather(u_attrs, pick) if use_content else None)
            collab = tf.matmul(user, neg_vec, transpose_b=True)
            content = (tf.matmul(content_user, neg_content, transpose_b=True)
                       if content_user is not None and neg_content is not None else None)
            logits = core.fuse(gates, collab, content)
            if sampled:
                t_vec, t_content = core.candidates(
                    cold(targets), tf.gather(attr_table, targets) if use_content else None)
                t_collab = tf.reduce_sum(user * t_vec, axis=-1, keepdims=True)
                t_cont = (tf.reduce_sum(content_user * t_content, axis=-1, keepdims=True)
                          if content_user is not None and t_content is not None else None)
                positive = core.fuse(gates, t_collab, t_cont)
                logits = tf.concat([positive, logits + correction], axis=1)
                labels = tf.zeros_like(targets)
            else:
                labels = targets - FIRST_ITEM_INDEX  # vocabulary items lead the universe
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        optimizer.apply(tape.gradient(loss, optimizer.variables))
        return loss

    return step, optimizer
