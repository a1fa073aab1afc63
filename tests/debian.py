"""Real peers from Debian's packages, installed by the test set-up when missing.

``apt-get update`` runs once per machine and test session (a stamp file), then each package
is installed by name. Concurrent sessions take a file lock, so two test runs do not fight
over dpkg. Without root or apt the binary is simply not there, and the tests that need it skip
with a message that says how to get it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["debian_binary", "require_debian_binary"]

_LOCK = Path("/tmp/vigil-tests-apt.lock")
_UPDATED = Path("/tmp/vigil-tests-apt.updated")


def debian_binary(binary: str, package: str) -> tuple[str | None, str]:
    """The path of ``binary``, installing ``package`` when it is missing; else None and why."""
    found = shutil.which(binary)
    if found:
        return found, ""
    if shutil.which("apt-get") is None:
        return None, "apt-get is not available"
    if os.geteuid() != 0:
        return None, "not root: cannot apt-get install"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shutil.which(binary) is None:
            if not _UPDATED.exists():
                updated = subprocess.run(
                    ["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600
                )
                if updated.returncode == 0:
                    _UPDATED.touch()
            installed = subprocess.run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            if installed.returncode != 0:
                tail = installed.stderr.strip().splitlines()[-1:] or ["no output"]
                return None, f"apt-get install {package} failed: {tail[0]}"
    found = shutil.which(binary)
    return (found, "") if found else (None, f"{package} does not provide {binary}")


def require_debian_binary(binary: str, package: str) -> str:
    """:func:`debian_binary`, or skip the test with a clear message."""
    path, why = debian_binary(binary, package)
    if path is None:
        pytest.skip(f"{binary} unavailable ({why}); install the Debian package {package}")
    return path
