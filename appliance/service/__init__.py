"""Service wiring: main loop, systemd integration."""
