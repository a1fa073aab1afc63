"""The library versions a pickled model depends on (pure: reads installed metadata)."""

from __future__ import annotations

import importlib.metadata
import platform

__all__ = ["library_versions"]


def library_versions(*packages: str) -> dict[str, str]:
    """The Python minor version and each package's installed version.

    Examples:
        >>> sorted(library_versions("numpy"))
        ['numpy', 'python']
    """
    major, minor, _ = platform.python_version_tuple()
    return {
        "python": f"{major}.{minor}",
        **{package: importlib.metadata.version(package) for package in packages},
    }
