"""The test broker is a real mosquitto: a QoS 1 message goes through and it restarts."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.broker import MosquittoBroker


def _roundtrip(broker: MosquittoBroker) -> bytes:
    got = threading.Event()
    received: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        received.append(message.payload)
        got.set()

    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.subscribe("t/x", qos=1)
    client.loop_start()
    try:
        client.publish("t/x", b"hello", qos=1).wait_for_publish(5)
        assert got.wait(5)
    finally:
        client.loop_stop()
        client.disconnect()
    return received[0]


def test_a_qos1_message_goes_through_and_the_broker_restarts(broker: MosquittoBroker) -> None:
    assert _roundtrip(broker) == b"hello"
    broker.stop()
    broker.start()
    assert _roundtrip(broker) == b"hello"
