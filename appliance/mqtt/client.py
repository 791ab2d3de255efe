"""The one way a paho client is made, for the appliance link and the hub alike.

paho-mqtt 2.x callbacks (VERSION2), MQTT v5, and TLS from files: the fleet CA alone for a
TLS connection, plus a certificate and key for mutual TLS, where the broker takes the
certificate's CN as the identity its ACL knows.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from appliance.errors import ConfigError


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """TLS material: the CA that signed the broker; with `cert` and `key`, mutual TLS."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None
    check_hostname: bool = True


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes for a client that drops without a clean goodbye."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def paho_client(
    client_id: str = "", *, tls: TlsFiles | None = None, will: Will | None = None
) -> mqtt.Client:
    """A paho MQTT v5 client, not yet connected; ConfigError when the TLS files are unusable.

    An empty `client_id` lets the broker assign one (short-lived CLI clients).
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if tls is not None:
        client.tls_set_context(_tls_context(tls))
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    return client


def _tls_context(tls: TlsFiles) -> ssl.SSLContext:
    """A client context trusting only `tls.ca`, presenting the certificate when there is one."""
    try:
        context = ssl.create_default_context(cafile=str(tls.ca))
        if tls.cert is not None:
            context.load_cert_chain(str(tls.cert), str(tls.key) if tls.key else None)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"cannot load TLS files: {err}") from err
    context.check_hostname = tls.check_hostname
    # The fleet's own brokers speak modern TLS; older versions only widen the attack surface.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
