"""Benchmarks of the appliance's hot paths against plain-sqlite3 and plain-Python baselines."""
