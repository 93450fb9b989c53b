"""Settings: defaults, environment variables and CLI overrides."""

from __future__ import annotations

import dataclasses

import pytest

from stream_rec.config import Settings, env_name, load_settings, settings_reference


def test_empty_environment_gives_the_defaults() -> None:
    assert load_settings({}) == Settings()


def test_environment_variables_are_parsed_by_type() -> None:
    settings = load_settings({"STREAM_REC_BROKER": "kafka:29092", "STREAM_REC_PARTITIONS": "12",
                              "STREAM_REC_IGNORED": "x"})
    assert settings.broker == "kafka:29092"
    assert settings.partitions == 12


def test_overrides_beat_environment_but_none_does_not() -> None:
    env = {"STREAM_REC_WEB_PORT": "7000"}
    assert load_settings(env, web_port=7100).web_port == 7100
    assert load_settings(env, web_port=None).web_port == 7000


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="STREAM_REC_PARTITIONS"):
        load_settings({"STREAM_REC_PARTITIONS": "many"})


def test_every_setting_is_documented_and_named_for_its_env_var() -> None:
    rows = list(settings_reference())
    assert [r[0] for r in rows] == [f.name for f in dataclasses.fields(Settings)]
    for name, env, _default, doc in rows:
        assert env == env_name(name) and env.startswith("STREAM_REC_")
        assert doc.strip(), f"{name} has no description"


def test_controller_port_defaults_next_to_client_port() -> None:
    assert load_settings({}, kafka_port=19000).controller_port == 19001
    assert load_settings({}, kafka_port=19000, kafka_controller_port=19500).controller_port == 19500


def test_worker_lists_follow_the_rerank_settings() -> None:
    from stream_rec.worker.runtime import recommender_config

    config = recommender_config(load_settings({
        "STREAM_REC_RERANK_POLICY": "mmr:0.6", "STREAM_REC_LIST_LENGTH": "12",
        "STREAM_REC_RERANK_MAX_PER_CATEGORY": "3",
        "STREAM_REC_RERANK_EXCLUDE_PURCHASED": "false"}))
    assert (config.policy.method, config.policy.param, config.k) == ("mmr", 0.6, 12)
    assert config.rules.max_per_category == 3 and not config.rules.exclude_purchased
