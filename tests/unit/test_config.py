"""Settings: defaults, environment variables and CLI overrides."""

from __future__ import annotations

import dataclasses

import pytest

from stream_rec.config import (
    Settings,
    env_name,
    expected_value,
    load_settings,
    parse_setting,
    settings_reference,
)
from stream_rec.errors import SettingsError, UserError


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


def test_every_number_and_switch_has_a_rule_its_default_follows() -> None:
    for f in dataclasses.fields(Settings):
        rule = f.metadata["rule"]
        if f.type in ("int", "float", "bool"):
            assert rule is not None, f"{f.name} takes any value"
        if rule is not None:
            # Settings() skips the rules for defaults, so this is where they are checked.
            assert rule.holds(f.default), f"the default of {f.name} breaks its own rule"
            assert expected_value(f.name) == rule.expected


@pytest.mark.parametrize(("variable", "raw", "line"), [
    ("STREAM_REC_PARTITIONS", "four", "STREAM_REC_PARTITIONS=four: expected an integer >= 1"),
    ("STREAM_REC_CANDIDATE_POOL", "-1", "STREAM_REC_CANDIDATE_POOL=-1: expected an integer >= 1"),
    ("STREAM_REC_RERANK_MAX_PER_CATEGORY", "-2", "expected an integer >= 0"),
    ("STREAM_REC_RERANK_POLICY", "dpp:abc", "STREAM_REC_RERANK_POLICY=dpp:abc: expected none, "
     "dpp:THETA or mmr:LAMBDA, with THETA and LAMBDA from 0 to 1"),
    ("STREAM_REC_RERANK_POLICY", "mmr:1.5", "STREAM_REC_RERANK_POLICY=mmr:1.5: expected"),
    ("STREAM_REC_WEB_PORT", "70000", "STREAM_REC_WEB_PORT=70000: expected a port number from 1 "
     "to 65535"),
    ("STREAM_REC_DEMO_PORT", "-1", "expected a port number from 0 to 65535"),
    ("STREAM_REC_RERANK_CATEGORY_WEIGHT", "1.2", "expected a number from 0 to 1"),
    ("STREAM_REC_HOLDOUT_FRACTION", "0", "expected a number > 0 and < 1"),
    ("STREAM_REC_DROPOUT", "1", "expected a number >= 0 and < 1"),
    ("STREAM_REC_LEARNING_RATE", "nan", "STREAM_REC_LEARNING_RATE=nan: expected a number > 0"),
    ("STREAM_REC_STATE_EXPIRY_DAYS", "-1", "expected a number >= 0"),
    ("STREAM_REC_PROCESSING_GUARANTEE", "exactly-once", "expected at_least_once or exactly_once"),
    ("STREAM_REC_SECURITY_PROTOCOL", "TLS", "expected one of PLAINTEXT, SSL, SASL_PLAINTEXT or "
     "SASL_SSL"),
    ("STREAM_REC_SASL_MECHANISM", "MD5", "(or empty for none)"),
    ("STREAM_REC_GC_FREEZE", "maybe", "STREAM_REC_GC_FREEZE=maybe: expected true or false"),
    ("STREAM_REC_EVENTS_TOPIC", "shop events", "STREAM_REC_EVENTS_TOPIC='shop events': "
     "expected a Kafka topic name"),
    ("STREAM_REC_BROKER", "kafka:ninety", "expected Kafka bootstrap servers"),
    ("STREAM_REC_BROKER", "a:9092,,b:9092", "expected Kafka bootstrap servers"),
    ("STREAM_REC_STATE_DIR", "", "STREAM_REC_STATE_DIR='': expected a folder path"),
    ("STREAM_REC_PROMOTION_METRIC", "HR@20", "expected an offline metric at K"),
    ("STREAM_REC_KAFKA_CONTROLLER_PORT", "9092", "other than kafka_port (9092)"),
])
def test_a_bad_variable_is_one_line_naming_it_its_value_and_the_need(
        variable: str, raw: str, line: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: raw})
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{variable}=")
    assert line in message
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, UserError)


@pytest.mark.parametrize(("variable", "raw", "name", "value"), [
    ("STREAM_REC_SECURITY_PROTOCOL", "sasl_ssl", "security_protocol", "sasl_ssl"),
    ("STREAM_REC_BROKER", "k1:9092, k2:9093,[::1]:9094", "broker", "k1:9092, k2:9093,[::1]:9094"),
    ("STREAM_REC_RERANK_POLICY", "MMR:0.5", "rerank_policy", "MMR:0.5"),
    ("STREAM_REC_RERANK_POLICY", "none", "rerank_policy", "none"),
    ("STREAM_REC_DEMO_PORT", "0", "demo_port", 0),
    ("STREAM_REC_STATE_EXPIRY_DAYS", "0", "state_expiry_days", 0.0),
    ("STREAM_REC_SASL_MECHANISM", "SCRAM-SHA-512", "sasl_mechanism", "SCRAM-SHA-512"),
    ("STREAM_REC_HTTP_OPEN", "yes", "http_open", True),
])
def test_good_values_at_the_edges_pass(variable: str, raw: str, name: str, value: object) -> None:
    assert getattr(load_settings({variable: raw}), name) == value


def test_overrides_and_code_go_through_the_same_rules() -> None:
    with pytest.raises(SettingsError, match=r"^STREAM_REC_PARTITIONS=-3: expected an integer"):
        load_settings({}, partitions=-3)
    with pytest.raises(SettingsError, match="STREAM_REC_WEB_PORT=0: expected a port"):
        Settings().with_overrides(web_port=0)
    with pytest.raises(SettingsError, match="STREAM_REC_LIST_LENGTH=20: expected an integer"):
        Settings(list_length="20")  # type: ignore[arg-type]  # text is not a number
    with pytest.raises(SettingsError, match="STREAM_REC_GC_FREEZE=1: expected true or false"):
        Settings(gc_freeze=1)  # type: ignore[arg-type]


def test_promotion_metric_must_be_measured_at_eval_k() -> None:
    with pytest.raises(SettingsError, match=r"=MRR@20: expected a metric at K = eval_k \(10\), "
                                            r"such as MRR@10"):
        load_settings({"STREAM_REC_EVAL_K": "10"})
    assert load_settings({"STREAM_REC_EVAL_K": "10",
                          "STREAM_REC_PROMOTION_METRIC": "NDCG@10"}).eval_k == 10


def test_parse_setting_reads_one_value_as_the_environment_would() -> None:
    assert parse_setting("partitions", "12") == 12
    assert parse_setting("rerank_exclude_purchased", "off") is False
    with pytest.raises(SettingsError, match="^STREAM_REC_PARTITIONS=0: expected"):
        parse_setting("partitions", "0")


def test_a_misspelt_variable_is_named_once_with_the_setting_it_resembles(
        caplog: pytest.LogCaptureFixture) -> None:
    env = {"STREAM_REC_ITEM_DROPOT": "0.2", "STREAM_REC_TEST_GUARANTEE": "exactly_once",
           "STREAM_REC_PARTITIONS": "3"}
    with caplog.at_level("WARNING", logger="stream_rec.config"):
        assert load_settings(env).item_dropout == Settings().item_dropout
        load_settings(env)
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["STREAM_REC_ITEM_DROPOT is not a stream-rec setting (did you mean "
                        "STREAM_REC_ITEM_DROPOUT?): ignored"]
