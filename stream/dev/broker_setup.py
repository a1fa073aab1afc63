"""The local broker's tools: Java, and its jars resolved from Maven Central (once, cached).

The jars come through ``deploy/kafka/pom.xml`` (the repo checkout's, else the one shipped in
the wheel); a lock keeps two processes from resolving into the same cache at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "MIN_JAVA_VERSION",
    "BrokerError",
    "default_cache_root",
    "find_java",
    "find_pom",
    "last_lines",
    "parse_java_major",
    "read_kafka_version",
    "resolve_jars",
]

MIN_JAVA_VERSION = 17
EXIT_CONFIG = 2  # missing tools or configuration
EXIT_FAILED = 1  # the broker did not start (or is not running, for status)
_POM_NS = "{http://maven.apache.org/POM/4.0.0}"
_RESOLVED_MARKER = ".resolved"

_JAVA_HINT = (
    f"Java {MIN_JAVA_VERSION}+ is required to run the local Kafka broker: install a JDK "
    "(e.g. `apt-get install openjdk-17-jre-headless`)"
)
_MAVEN_HINT = (
    "Maven is required to download the local Kafka broker's jars: install it "
    "(e.g. `apt-get install maven`)"
)


class BrokerError(RuntimeError):
    """The local broker could not be set up, started, stopped or found.

    Attributes:
        exit_code: The CLI exit code for this error: 2 for missing tools or configuration,
            1 for a broker that failed to start.
    """

    def __init__(self, message: str, *, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# --------------------------------------------------------------------------- pom and jars


def find_pom() -> Path:
    """Locate the broker's pom: the repo checkout's first, else the one shipped in the wheel.

    Raises:
        BrokerError: Neither file exists.
    """
    here = Path(__file__).resolve()
    candidates = [
        here.parents[2] / "deploy" / "kafka" / "pom.xml",
        here.parents[1] / "_kafka" / "pom.xml",
    ]
    for pom in candidates:
        if pom.is_file():
            return pom
    raise BrokerError(
        "cannot find the Kafka broker pom (looked at " + ", ".join(map(str, candidates)) + ")",
        exit_code=EXIT_CONFIG,
    )


def read_kafka_version(pom: Path) -> str:
    """Return the ``kafka.version`` property of a pom.

    Raises:
        BrokerError: The pom is unreadable or has no such property.
    """
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError) as exc:
        raise BrokerError(f"cannot read {pom}: {exc}", exit_code=EXIT_CONFIG) from exc
    ns = _POM_NS if root.tag.startswith(_POM_NS) else ""
    node = root.find(f"{ns}properties/{ns}kafka.version")
    version = (node.text or "").strip() if node is not None else ""
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.\-]*", version):
        raise BrokerError(f"{pom} has no usable kafka.version property", exit_code=EXIT_CONFIG)
    return version


def default_cache_root() -> Path:
    """The dir holding ``kafka-<version>/lib``: ``$VIGIL_KAFKA_CACHE`` or ``~/.cache/vigil``."""
    override = os.environ.get("VIGIL_KAFKA_CACHE")
    return Path(override).expanduser() if override else Path.home() / ".cache" / "vigil"


def resolve_jars(pom: Path | None = None, cache_root: Path | None = None) -> Path:
    """Download the broker's jars once and return the dir holding them.

    The jars go to ``<cache_root>/kafka-<version>/lib``. Maven writes into a temp dir that is
    renamed into place only after it succeeded, and a marker records the pom it came from, so
    a killed download never leaves a half cache and a changed pom is resolved anew. A file
    lock serialises concurrent callers.

    Args:
        pom: The pom to resolve (default: `find_pom`).
        cache_root: Where the versioned cache dirs live (default: `default_cache_root`).

    Raises:
        BrokerError: Maven is missing or the resolution failed.
    """
    pom = pom or find_pom()
    version = read_kafka_version(pom)
    root = cache_root or default_cache_root()
    final = root / f"kafka-{version}"
    stamp = hashlib.sha256(pom.read_bytes()).hexdigest()
    if _is_resolved(final, stamp):
        return final / "lib"
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / f"kafka-{version}.lock"):
        if _is_resolved(final, stamp):  # another process resolved it while we waited
            return final / "lib"
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(_MAVEN_HINT, exit_code=EXIT_CONFIG)
        staging = Path(tempfile.mkdtemp(prefix=f".kafka-{version}-", dir=root))
        try:
            cmd = [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging / 'lib'}",
                "-DincludeScope=runtime",
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0 or not any((staging / "lib").glob("kafka_*.jar")):
                tail = last_lines(done.stdout + done.stderr, 20)
                raise BrokerError(
                    f"resolving the Kafka {version} jars with Maven failed "
                    f"(exit {done.returncode}):\n{tail}"
                )
            (staging / _RESOLVED_MARKER).write_text(stamp + "\n")
            if final.exists():  # stale: an older pom, or a copy made before the marker existed
                old = final.with_name(f".{final.name}-stale-{os.getpid()}")
                final.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            staging.rename(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final / "lib"


def _is_resolved(final: Path, stamp: str) -> bool:
    marker = final / _RESOLVED_MARKER
    with contextlib.suppress(OSError):
        return marker.read_text().strip() == stamp and (final / "lib").is_dir()
    return False


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def find_java() -> str:
    """Return the ``java`` to run: ``$JAVA_HOME/bin/java`` if present, else the one on PATH.

    Raises:
        BrokerError: No java, or one older than Java 17.
    """
    java_home = os.environ.get("JAVA_HOME")
    java = None
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        java = str(Path(java_home) / "bin" / "java")
    java = java or shutil.which("java")
    if java is None:
        raise BrokerError(_JAVA_HINT, exit_code=EXIT_CONFIG)
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(
            f"{_JAVA_HINT} ({java} did not run: {exc})", exit_code=EXIT_CONFIG
        ) from exc
    major = parse_java_major(done.stderr + done.stdout)
    if major is not None and major < MIN_JAVA_VERSION:
        raise BrokerError(f"{_JAVA_HINT} ({java} is Java {major})", exit_code=EXIT_CONFIG)
    return java


def parse_java_major(version_output: str) -> int | None:
    """Return the major version from ``java -version`` output, or None if there is none.

    >>> parse_java_major('openjdk version "17.0.15" 2025-04-15')
    17
    >>> parse_java_major('java version "1.8.0_402"')
    8
    """
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def last_lines(text: str, count: int) -> str:
    """The last ``count`` lines of ``text``."""
    return "\n".join(text.rstrip().splitlines()[-count:])
