"""Signed A/B updates: bundles, slots, the download, the health gate and the job's states."""
