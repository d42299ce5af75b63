"""Import time of ``dcgenv`` against its floors (``jax``; ``flax``, which imports jax too) and
the peer whose package import it avoids (``gymnax``), in the same run.

    python benchmarks/import_time.py [--repeats 7] [--python PATH]

Each module is imported in a fresh interpreter (``python -X importtime -c "import M"``),
``--repeats`` times, interleaved so that machine load hits all of them alike; reports the
median and best wall time of the import, the cumulative microseconds ``-X importtime``
attributes to the top-level module, and the modules over 100 ms inside ``import dcgenv``
(what to look at when it grows). Prints a table and writes
``benchmarks/results/import-time-<platform>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODULES = ("jax", "flax", "dcgenv", "gymnax")  # the floors (dcgenv needs both), us, the peer


def import_once(python: str, module: str) -> tuple[float, dict[str, int]]:
    """Wall seconds of ``python -X importtime -c "import module"`` and the cumulative
    microseconds per imported module."""
    start = time.perf_counter()
    done = subprocess.run([python, "-X", "importtime", "-c", f"import {module}"],
                          capture_output=True, text=True, check=True, cwd="/")
    seconds = time.perf_counter() - start
    cumulative = {}
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cum, name = line[len("import time:"):].split("|")
            if cum.strip().isdigit():
                cumulative[name.strip()] = int(cum)
    return seconds, cumulative


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)
    walls = {m: [] for m in MODULES}
    self_us = {m: [] for m in MODULES}
    heavy = {}
    for _ in range(args.repeats):
        for module in MODULES:
            seconds, cumulative = import_once(args.python, module)
            walls[module].append(seconds)
            self_us[module].append(cumulative.get(module, 0))
            if module == "dcgenv":
                heavy = {k: v for k, v in cumulative.items() if v > 100_000 and "." not in k}
    rows = {m: {"median_s": statistics.median(walls[m]), "best_s": min(walls[m]),
                "importtime_median_s": statistics.median(self_us[m]) / 1e6} for m in MODULES}
    print("| module | wall, median (s) | wall, best (s) | -X importtime (s) | vs jax |")
    print("|---|---|---|---|---|")
    for m, r in rows.items():
        ratio = r["median_s"] / rows["jax"]["median_s"]
        print(f"| {m} | {r['median_s']:.2f} | {r['best_s']:.2f} | "
              f"{r['importtime_median_s']:.2f} | {ratio:.2f}x |")
    print("top-level modules over 100 ms inside import dcgenv (last run): "
          + ", ".join(f"{k} {v / 1e6:.2f} s" for k, v in sorted(heavy.items(),
                                                               key=lambda kv: -kv[1])))
    out = Path(__file__).resolve().parent / "results" / f"import-time-{platform.machine()}.json"
    out.write_text(json.dumps({"machine": platform.platform(), "python": sys.version,
                               "repeats": args.repeats, "rows": rows,
                               "heavy_in_dcgenv": heavy}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
