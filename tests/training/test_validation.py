"""Early stopping: the most recent sessions are held out, and the best epoch's weights are kept."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.training.conftest import SMALL
from tests.training.synthetic import make_shop
from training.pairs import build_pairs
from training.train import TrainConfig, train_model
from training.validation import Validator, split_for_validation


def test_the_most_recent_sessions_are_held_out(shop) -> None:
    fit, held = split_for_validation(shop.train, 0.25)
    assert held and fit
    assert {s.session_id for s in fit} | {s.session_id for s in held} == \
        {s.session_id for s in shop.train}
    assert max(s.events[0].ts_ms for s in fit) < min(s.events[0].ts_ms for s in held)
    assert split_for_validation(shop.train, 0.0) == (list(shop.train), [])


def test_training_keeps_the_best_validated_epoch(shop) -> None:
    config = replace(TrainConfig(**SMALL), epochs=5, validation_fraction=0.3, patience=5,
                     learning_rate=0.03)
    lines: list[str] = []
    result = train_model(shop, config, progress=lines.append)
    records = result.epochs
    assert len(records) == 5 and all("valid_P@20" in r for r in records)
    def key(r: dict) -> tuple[float, float]:
        return r["valid_P@20"], r["valid_MRR@20"]
    # The records are rounded to 0.01, so two epochs can tie there while the validator,
    # which compares unrounded scores, kept the later one: the kept epoch ties the best.
    best = max(records, key=key)
    kept_record = records[result.best_epoch - 1]
    assert kept_record["epoch"] == result.best_epoch and key(kept_record) == key(best)
    assert result.validation_cases >= 500
    # The weights that were kept score what the best epoch scored on the same cases.
    _, held = split_for_validation(shop.train, 0.3)
    pairs = build_pairs(held, result.vocab, config.max_history, keep_unknown_targets=True)
    validator = Validator(pairs, config.k, result.item_attributes, result.core.use_content,
                          config.seed)
    assert len(validator) == result.validation_cases
    kept = validator.score(result.core)
    assert round(100 * kept.hit_rate, 2) == pytest.approx(best["valid_P@20"], abs=0.011)
    assert any("early stopping on" in line for line in lines)


def test_patience_anneals_once_then_stops(shop) -> None:
    config = replace(TrainConfig(**SMALL), epochs=30, validation_fraction=0.3, patience=1,
                     learning_rate=0.05)
    lines: list[str] = []
    result = train_model(shop, config, progress=lines.append)
    scores = [(r["valid_P@20"], r["valid_MRR@20"]) for r in result.epochs]
    # Which epochs improved, as the validator decided on unrounded scores (the records are
    # rounded to 0.01 and can tie where the validator saw a gain).
    improved = [" (best)" in line for line in lines if line.startswith("epoch ")]
    assert len(improved) == len(scores) and improved[0]
    for n in range(1, len(scores)):
        assert (scores[n] >= max(scores[:n])) if improved[n] else (scores[n] <= max(scores[:n]))
    # With patience 1, the first epoch that does not improve triggers one annealing epoch
    # from the best weights, and training ends after it.
    first_stale = improved.index(False)
    assert len(scores) == first_stale + 2 < 30
    assert sum("one last epoch" in line for line in lines) == 1
    assert result.best_epoch == max(n + 1 for n in range(len(scores)) if improved[n])


def test_too_few_held_out_cases_means_no_hold_out() -> None:
    tiny = make_shop(n_items=40, n_train=60, n_test=10)
    config = replace(TrainConfig(**SMALL), epochs=2, validation_fraction=0.2)
    result = train_model(tiny, config, progress=lambda line: None)
    assert result.validation_cases == 0 and result.best_epoch == 0
    assert len(result.epochs) == 2 and "valid_P@20" not in result.epochs[0]
    assert result.n_pairs == sum(len(s) - 1 for s in tiny.train)
