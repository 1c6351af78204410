"""Kafka connection security (TLS, SASL) from settings, for Faust and for the
plain aiokafka clients Tact uses (topic admin, the demo)."""

from __future__ import annotations

import ssl
from typing import Any

import faust
from aiokafka.helpers import create_ssl_context
from faust.types.auth import CredentialsT

from app.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=_text(settings.ssl_cafile),
        certfile=_text(settings.ssl_certfile),
        keyfile=_text(settings.ssl_keyfile),
    )
    return context


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """The `broker_credentials` of the Faust app; None for PLAINTEXT."""
    context = ssl_context(settings)
    if settings.security_protocol.startswith("SASL_"):
        credentials: CredentialsT = faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            ssl_context=context,
            mechanism=settings.sasl_mechanism,
        )
        return credentials
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments that connect an aiokafka client like the worker."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL_"):
        options.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password,
        )
    return options


def _text(path: Any) -> str | None:
    return None if path is None else str(path)
