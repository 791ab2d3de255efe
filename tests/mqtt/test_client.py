"""The one paho client builder: MQTT v5, paho 2 callbacks, a will, and TLS from files."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from appliance.errors import ConfigError
from appliance.mqtt.client import TlsFiles, Will, paho_client
from tests.mqtt.tls_broker import Pki, TlsBroker

WAIT = 10.0


def test_a_client_speaks_mqtt_v5_with_paho_2_callbacks() -> None:
    client = paho_client("till-1")
    assert client.protocol == mqtt.MQTTv5
    assert client.callback_api_version == CallbackAPIVersion.VERSION2


def test_the_will_is_set_before_the_first_connect() -> None:
    client = paho_client("hub-w1", will=Will("hub/state", b"offline"))
    assert client.will_topic == "hub/state"
    assert client.will_payload == b"offline"


def test_tls_files_that_cannot_be_loaded_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load TLS files"):
        paho_client(tls=TlsFiles(tmp_path / "missing-ca.pem"))
    not_a_cert = tmp_path / "device.crt"
    not_a_cert.write_text("not a certificate")
    pki = Pki.create(tmp_path / "pki")
    with pytest.raises(ConfigError, match="cannot load TLS files"):
        paho_client(tls=TlsFiles(pki.ca_cert, not_a_cert, not_a_cert))


def test_a_hub_client_connects_over_mtls_to_the_shipped_broker_setup(tmp_path: Path) -> None:
    pki = Pki.create(tmp_path / "pki")
    hub = pki.client("hub")
    broker = TlsBroker(tmp_path / "tls-broker", pki)
    broker.start()
    try:
        client = paho_client("hub-test", tls=TlsFiles(pki.ca_cert, hub.cert, hub.key))
        accepted = threading.Event()

        def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if not reason.is_failure:
                accepted.set()

        client.on_connect = on_connect
        client.connect("localhost", broker.hub_port)
        client.loop_start()
        try:
            assert accepted.wait(WAIT), broker.log()
        finally:
            client.disconnect()
            client.loop_stop()
    finally:
        broker.stop()
