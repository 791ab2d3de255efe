"""The hub link: topics, typed payloads and the MQTT v5 client (paho-mqtt)."""
