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


class ProgressBar:
    """A tqdm bar over updates; ``callback(update, metrics)`` is the jitted loop's hook."""

    def __init__(self, total: int, initial: int = 0, disable: bool = False):
        self.bar = tqdm(total=total, initial=initial, unit="upd", disable=disable,
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
        row.update({k: float(v[j]) for k, v in metrics.items() if k != "iteration"})
        row["env_steps"] = int(round(row["env_steps"]))
        out.append(row)
    return out


def write_jsonl(path: Path, history: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in history))


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
