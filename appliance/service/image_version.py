"""The version of the flashable image this appliance runs from, as its build wrote it."""

from __future__ import annotations

from pathlib import Path

# The image writes its version here at build time; a developer's machine has none.
IMAGE_VERSION_FILE = Path("/etc/appliance-image-version")


def read_image_version(path: Path = IMAGE_VERSION_FILE) -> str | None:
    """The image's version, or None when the appliance does not run from an image."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None
