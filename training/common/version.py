"""camdrive's own version, as written into demonstrations, bench reports and `camdrive --version`."""

from __future__ import annotations

from importlib import metadata


def package_version() -> str:
    """The installed distribution's version, or a marker when running from an uninstalled tree."""
    try:
        return metadata.version("camdrive")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"
