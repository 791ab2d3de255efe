"""Releases at the hub: signed bundles kept for download, staged rollouts, update reports."""
