"""What a person watches and keeps: a live progress bar, a JSONL metrics file, a PNG curve.

The bar is fed from inside the compiled training loop (``jax.debug.callback`` every
``log_every`` updates, see ``agents.loop``) with seed-averaged metrics.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

SHOWN = {"success": "succ", "return": "ret", "bits_per_message": "bits"}
INTERNAL = ("iteration", "finite")  # the loop's bookkeeping (agents.loop), not metrics


class ProgressBar:
    """A tqdm bar over updates; ``callback(update, metrics)`` is the jitted loop's hook.

    It reads "compiling…" until :meth:`start`, which restarts it at the first update of this
    session (after a resume, the rate counts only the updates trained since)."""

    def __init__(self, total: int, disable: bool = False):
        self.total, self.disable = total, disable
        self.bar = tqdm(total=total, desc="compiling…", unit="upd", disable=disable,
                        dynamic_ncols=True, leave=False)
        self.bar.refresh()

    def start(self, initial: int) -> None:
        self.bar.close()
        self.bar = tqdm(total=self.total, initial=initial, unit="upd", disable=self.disable,
                        dynamic_ncols=True)

    def callback(self, update, metrics) -> None:
        self.bar.update(int(update) - self.bar.n)
        self.bar.set_postfix({short: f"{float(metrics[k]):.3g}" for k, short in SHOWN.items()},
                             refresh=True)

    def close(self) -> None:
        self.bar.close()


def rows(metrics: dict[str, np.ndarray], first_update: int, steps_per_update: int) -> list[dict]:
    """Per-update metric arrays (``iteration`` NaN = skipped) -> JSON rows. ``env_steps`` is
    ``update * steps_per_update`` unless the learner reports its own ``env_steps`` metric (IQL:
    its episodes end at different times)."""
    metrics = {k: np.asarray(v) for k, v in metrics.items()}
    out = []
    for j in range(len(metrics["iteration"])):
        if math.isnan(float(metrics["iteration"][j])):
            continue
        update = first_update + len(out) + 1
        row = {"update": update, "env_steps": update * steps_per_update}
        row.update({k: float(v[j]) for k, v in metrics.items() if k not in INTERNAL})
        row["env_steps"] = int(round(row["env_steps"]))
        out.append(row)
    return out


def write_jsonl(path: Path, history: list[dict], sessions: list[dict] = ()) -> None:
    """One JSON line per update; before the rows a session trained, a ``{"session": ...}``
    line (``session["from_update"]``: the update it started from; docs/metrics.md)."""
    starts = {s["from_update"]: s for s in sessions}
    lines = [json.dumps({"session": starts[0]})] if 0 in starts else []
    for row in history:
        lines.append(json.dumps(row))
        if row["update"] in starts:
            lines.append(json.dumps({"session": starts[row["update"]]}))
    path.write_text("".join(line + "\n" for line in lines))


def read_rows(path: Path) -> list[dict]:
    """The per-update rows of a ``metrics.jsonl`` (its session lines left out)."""
    rows = (json.loads(line) for line in Path(path).read_text().splitlines() if line.strip())
    return [row for row in rows if "update" in row]


def read_sessions(path: Path, before: int) -> list[dict]:
    """The session lines of an existing ``metrics.jsonl`` that started before update
    ``before`` (the ones a resume from there continues); [] if there is no readable file."""
    try:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []
    return [r["session"] for r in lines if isinstance(r, dict) and isinstance(
        r.get("session"), dict) and r["session"].get("from_update", before) < before]


def plot(path: Path, history: list[dict], title: str, bits: str = "bits_per_message") -> None:
    """Learning curves (success, team return, ``bits``) against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["env_steps"] for r in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (key, label) in zip(axes, [("success", "success rate"), ("return", "team return"),
                                       (bits, bits.replace("_", " "))], strict=True):
        ax.plot(x, [r[key] for r in history])
        ax.set_xlabel("env steps")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
