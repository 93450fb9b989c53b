"""Kafka connection settings, translated for each client library stream-rec uses.

SASL/SSL settings pass through from ``Settings`` so that a shop's secured cluster works with
the worker (Faust/aiokafka) and with the tools (kafka-python) alike.
"""

from __future__ import annotations

import ssl
from typing import Any

from stream_rec.config import Settings


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if "SSL" not in settings.security_protocol.upper():
        return None
    return ssl.create_default_context(cafile=settings.ssl_cafile or None)


def kafka_python_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python's producer, consumer and admin client.

    The password is a ``Revealed`` string: kafka-python's admin client logs this dict.
    """
    config: dict[str, Any] = {
        "bootstrap_servers": settings.broker.split(","),
        "security_protocol": settings.security_protocol.upper(),
    }
    if settings.sasl_mechanism:
        config.update(sasl_mechanism=settings.sasl_mechanism,
                      sasl_plain_username=settings.sasl_username,
                      sasl_plain_password=settings.sasl_password.reveal())
    context = _ssl_context(settings)
    if context is not None:
        config["ssl_context"] = context
    return config


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` for faust.App, or None on a plain-text cluster."""
    import faust

    context = _ssl_context(settings)
    if settings.sasl_mechanism:
        return faust.SASLCredentials(username=settings.sasl_username,
                                     password=settings.sasl_password.reveal(),
                                     mechanism=settings.sasl_mechanism,
                                     ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None
