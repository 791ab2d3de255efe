"""The one paho client builder: MQTT v5, paho 2 callbacks, a will, and TLS from files."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from appliance.errors import ConfigError
from appliance.mqtt.client import TlsFiles, Will, paho_client
from tests.mqtt.tls_broker import Pki, TlsBroker

WAIT = 10.0


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.create(tmp_path / "pki")


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki) -> Iterator[TlsBroker]:
    broker = TlsBroker(tmp_path / "tls-broker", pki)
    broker.start()
    yield broker
    broker.stop()


def test_a_client_speaks_mqtt_v5_with_paho_2_callbacks() -> None:
    client = paho_client("till-1")
    assert client.protocol == mqtt.MQTTv5
    assert client.callback_api_version == CallbackAPIVersion.VERSION2


def test_the_will_is_set_before_the_first_connect() -> None:
    client = paho_client("hub-w1", will=Will("hub/state", b"offline"))
    assert client.will_topic == "hub/state"
    assert client.will_payload == b"offline"


def test_tls_files_that_cannot_be_loaded_are_a_config_error(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(ConfigError, match="cannot load TLS files"):
        paho_client(tls=TlsFiles(tmp_path / "missing-ca.pem"))
    not_a_cert = tmp_path / "device.crt"
    not_a_cert.write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot load TLS files"):
        paho_client(tls=TlsFiles(pki.ca_cert, not_a_cert, not_a_cert))


def test_a_hub_client_connects_over_mtls_to_the_shipped_broker_setup(
    pki: Pki, tls_broker: TlsBroker
) -> None:
    hub = pki.client("hub")
    client = paho_client("hub-test", tls=TlsFiles(pki.ca_cert, hub.cert, hub.key))
    answers: list[Any] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: answers.append(reason)
    client.connect("localhost", tls_broker.hub_port)
    # Drive the network loop on this thread: no paho thread to stop afterwards.
    deadline = time.monotonic() + WAIT
    while not answers and time.monotonic() < deadline:
        client.loop(timeout=0.1)
    client.disconnect()
    assert answers, tls_broker.log()
    assert not answers[0].is_failure
