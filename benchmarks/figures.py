"""The README's figures, drawn by ``vigil evaluate`` itself on the project's simulated data.

- Incident risk: ``vigil simulate --incidents --services 12 --interval-s 30 --count 103680
  --sim-seed 21 --jsonl F; vigil evaluate F --out-dir D`` (the data of the README's "incident
  risk, the same data replayed" row) gives ``risk_timeline.png`` and ``risk_pr_curve.png``.
- Anomalies: 4 simulated services, a sample a minute for 3 days, 0.5 % injected spikes (the
  simulator's default rate); the first day is unlabelled warm-up, the next two are labelled.
  ``vigil evaluate`` on it gives ``anomaly_pr_curve.png``.

The PNGs are copied to ``docs/images/`` with a 128-colour palette (a third of the size; the
figures use a handful of colours). Default settings: ``VIGIL_*`` variables would change them.

Run: ``make figures`` (``.venv/bin/python benchmarks/figures.py [--out DIR]``)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import orjson
from PIL import Image  # matplotlib's own dependency

from stream.cli import main as vigil
from stream.dev.simulate import MetricSimulator

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
INCIDENTS = ["--services", "12", "--interval-s", "30", "--count", "103680", "--sim-seed", "21"]
DAY_SAMPLES = 1440  # one a minute


def write_labelled(path: Path, services: int = 4, days: int = 3, seed: int = 21) -> None:
    """Simulated metric events with ``"label"`` on every line after the first day."""
    sim = MetricSimulator(services=services, interval_s=60.0, seed=seed)
    warmup = services * DAY_SAMPLES
    with path.open("wb") as out:
        for i, event in enumerate(sim.events(services * days * DAY_SAMPLES)):
            payload = event.payload
            if i >= warmup:
                payload = {**payload, "label": int(event.anomaly is not None)}
            out.write(orjson.dumps(payload) + b"\n")


def run(*args: str) -> None:
    """A ``vigil`` command, its report kept off the terminal; a failure stops everything."""
    with contextlib.redirect_stdout(io.StringIO()):
        code = vigil(list(args))
    if code != 0:
        raise SystemExit(f"vigil {args[0]} exited {code}")


def shrink(png: Path, out: Path) -> None:
    """``png`` as a 128-colour palette PNG at ``out``."""
    with Image.open(png) as image:
        image.convert("RGB").quantize(colors=128).save(out, optimize=True)


def make_figures(out: Path) -> list[Path]:
    """Simulate, evaluate, copy the figures to ``out``; return them."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        incidents, labelled = work / "incidents.jsonl", work / "labelled.jsonl"
        run("simulate", "--incidents", *INCIDENTS, "--jsonl", str(incidents))
        run("evaluate", str(incidents), "--out-dir", str(work / "risk"))
        write_labelled(labelled)
        run("evaluate", str(labelled), "--out-dir", str(work / "anomaly"))
        made = {
            "risk_timeline.png": work / "risk" / "timeline.png",
            "risk_pr_curve.png": work / "risk" / "pr_curve.png",
            "anomaly_pr_curve.png": work / "anomaly" / "pr_curve.png",
        }
        for name, png in made.items():
            shrink(png, out / name)
    return [out / name for name in made]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="Where the PNGs go.")
    args = parser.parse_args()
    started = time.perf_counter()
    for path in make_figures(args.out):
        print(f"{path}  {path.stat().st_size / 1024:.0f} KiB")
    print(f"{time.perf_counter() - started:.1f} s")
