"""The local store: the only place that writes SQLite."""
