"""Write one ASD server as labelled MetricEvent JSONL for ``vigil evaluate``.

The train half becomes unlabelled warm-up lines, the test half labelled lines; rows are 5
minutes apart in event time. The data stays in ``shared/data``: write the JSONL to a temp dir.

    python benchmarks/asd_to_jsonl.py omi-1 /tmp/omi-1.jsonl
"""

from __future__ import annotations

import argparse
import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "asd"
STEP = timedelta(minutes=5)
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


def convert(server: str, data: Path, out: Path) -> int:
    """Write the JSONL; return the number of lines."""
    t = START
    lines = 0
    with out.open("wb") as sink:
        for phase in ("train", "test"):
            with gzip.open(data / f"{server}_{phase}.csv.gz", "rt") as f:
                header = f.readline().strip().split(",")
                for row in f:
                    values = row.strip().split(",")
                    event: dict[str, object] = {
                        "ts": t.isoformat().replace("+00:00", "Z"),
                        "service": server,
                        "metrics": {
                            n: float(v) for n, v in zip(header, values, strict=True) if n != "label"
                        },
                    }
                    if phase == "test":
                        event["label"] = int(float(values[header.index("label")]))
                    sink.write(orjson.dumps(event) + b"\n")
                    t += STEP
                    lines += 1
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server")
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    print(convert(args.server, args.data, args.out))
