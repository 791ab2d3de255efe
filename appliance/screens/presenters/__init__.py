"""Presenters: the state each screen shows, and the intents it forwards to the core."""
