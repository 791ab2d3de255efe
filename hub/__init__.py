"""The reference cloud hub: stores sales, serves catalogs, manages the fleet over MQTT."""
