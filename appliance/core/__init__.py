"""The domain core: pure Python, no I/O libraries (see tests/core/test_layering.py)."""
