"""What a run records about where it ran: code version, machine, JAX backend and devices.

``results.json`` and ``metrics.jsonl`` (``baselines.train``) and the benchmarks' results files
hold :func:`run_record`, so a number can be traced to the code and the machine that produced
it. ``docs/metrics.md`` lists the fields.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import jax

ROOT = Path(__file__).resolve().parent.parent


def git_commit(root: Path = ROOT) -> str | None:
    """The checkout's commit, with ``+dirty`` if tracked files differ from it; ``None`` outside
    a git checkout (an installed package) or without git."""
    try:
        run = lambda *args: subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                           text=True, timeout=10, check=True).stdout.strip()
        commit = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def version() -> str:
    try:
        return metadata.version("dcgenv")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def run_record() -> dict:
    """dcgenv version, git commit, date, machine, Python, JAX backend and devices, argv."""
    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    return {"dcgenv": version(), "commit": git_commit(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"system": platform.platform(), "cpu": platform.processor()
                        or platform.machine(), "cpu_count": os.cpu_count()},
            "python": platform.python_version(), "jax": jax.__version__,
            "backend": jax.default_backend(), "devices": f"{len(devices)} x {', '.join(kinds)}",
            "processes": jax.process_count(), "argv": sys.argv[1:]}
