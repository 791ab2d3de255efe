"""Webhooks: events the hub sends to integrators, queued durably in the hub database."""
