"""Passwords and tokens never print: settings, client configurations, logs, child processes."""

from __future__ import annotations

import copy
import logging

import pytest

from stream_rec.config import Settings, load_settings
from stream_rec.connection import faust_credentials, kafka_python_config
from stream_rec.secret import Secret
from stream_rec.tools.worker_process import settings_env

PASSWORD = "pa55-w0rd-kafka"
TOKEN = "t0ken-for-the-api"


@pytest.fixture
def settings() -> Settings:
    return load_settings({"STREAM_REC_SASL_PASSWORD": PASSWORD, "STREAM_REC_HTTP_TOKEN": TOKEN,
                          "STREAM_REC_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                          "STREAM_REC_SASL_MECHANISM": "PLAIN",
                          "STREAM_REC_SASL_USERNAME": "stream-rec"})


def _shows_no_secret(text: str) -> None:
    assert PASSWORD not in text and TOKEN not in text, text


def test_secrets_are_read_from_the_environment_but_never_printed(settings, caplog):
    assert settings.sasl_password.reveal() == PASSWORD
    assert settings.http_token.reveal() == TOKEN
    for text in (repr(settings), str(settings), f"{settings}", f"{settings.http_token}",
                 " ".join(map(str, (settings.sasl_password, settings.http_token)))):
        _shows_no_secret(text)
        assert "***" in text
    logging.getLogger("stream_rec").warning("settings: %s / %r", settings, settings)
    _shows_no_secret(caplog.text)


def test_overrides_and_plain_constructors_wrap_secrets_too():
    for settings in (load_settings({}, http_token=TOKEN, sasl_password=PASSWORD),
                     Settings(http_token=TOKEN, sasl_password=PASSWORD),  # type: ignore[arg-type]
                     Settings().with_overrides(http_token=TOKEN, sasl_password=PASSWORD)):
        assert isinstance(settings.http_token, Secret)
        assert isinstance(settings.sasl_password, Secret)
        assert settings.http_token.reveal() == TOKEN
        _shows_no_secret(repr(settings))
    assert load_settings({}, http_token=TOKEN) == load_settings({"STREAM_REC_HTTP_TOKEN": TOKEN})


def test_an_empty_secret_says_it_is_empty():
    assert not Settings().http_token and str(Settings().http_token) == ""
    assert "http_token=Secret('')" in repr(Settings())
    assert Secret("") != Secret("x") and Secret("x") == Secret("x")


def test_copies_keep_the_value_and_its_mask(settings):
    for clone in (copy.copy(settings), copy.deepcopy(settings)):
        assert clone == settings and clone.http_token.reveal() == TOKEN
        _shows_no_secret(repr(clone))


def test_kafka_client_configurations_hide_the_password(settings, caplog):
    config = kafka_python_config(settings)
    assert config["sasl_plain_password"] == PASSWORD  # what kafka-python needs
    assert config["sasl_plain_password"].encode() == PASSWORD.encode()
    credentials = faust_credentials(settings)
    assert credentials.password == PASSWORD
    for text in (repr(config), str(config), repr(credentials), str(credentials)):
        _shows_no_secret(text)
    # kafka-python's admin client logs its whole configuration like this, at debug level.
    logging.getLogger("kafka.admin.client").debug("Starting with configuration: %s", config)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("kafka").debug("configuration: %s %r", config, dict(config))
    _shows_no_secret(caplog.text)


def test_a_child_worker_gets_the_values_themselves(settings):
    env = settings_env(settings)
    assert env["STREAM_REC_HTTP_TOKEN"] == TOKEN
    assert env["STREAM_REC_SASL_PASSWORD"] == PASSWORD
    assert load_settings(env) == settings
