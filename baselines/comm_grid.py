"""Channel grids: one environment family's levels under DDCL and its baselines, cell by cell,
resumable across sessions. Three RESULTS.md rows use it:

    python -m baselines.reproduce tj_ddcl --budget cpu    # Traffic Junction medium / hard
    python -m baselines.reproduce pp_ddcl --budget cpu    # Predator-Prey medium / hard
    python -m baselines.reproduce pp_mappo --budget cpu   # ma-gym Predator-Prey, comm or not
    python -m baselines.comm_grid tj_ddcl --budget cpu --runs-dir DIR   # checkpoints under DIR
    python -m baselines.comm_grid tj_ddcl --budget cpu --cells hard-silent   # one cell only

``tj_ddcl`` (issue 18, row 1): IC3Net's Traffic Junction levels (Singh et al. 2019, ICLR,
"Learning when to communicate at scale"; github.com/IC3Net/IC3Net
``ic3net-envs/ic3net_envs/traffic_junction_env.py``), medium (10 cars, 14 x 14) and hard
(20 cars, 18 x 18), at the environment's default fixed add rates 0.2 / 0.05
(``dcgenv.envs.traffic_junction``). ``pp_ddcl`` (issue 18, row 2): IC3Net's Predator-Prey
medium and hard (``ic3net-envs/ic3net_envs/predator_prey_env.py``; ``dcgenv.envs.predator_prey``),
success and steps to capture. ``pp_mappo`` (issue 19, row 5): MAPPO on ma-gym's Predator-Prey
(``PredatorPrey-magym-v0``, the environment of the IQL grid, ``docs/iql.md``) with and without
messages, a second learner on that grid's question.

Each cell is one level under one channel: ``silent``, ``continuous`` (counted at 32 bits per
float), ``fakequant`` at 4 / 8 / 16 bits (the straight-through baselines of the DDCL paper,
Kapoor et al. 2025, arXiv 2511.01554) and ``ddcl`` at each lambda of the config
(``comm_coef``) with delta 1/15, the authors' for TJ (github.com/AdityaKapoor74/Multi-Agent-
Limited-Comms ``MAGIC/baselines/comm.py``, ``get_comms_noise``: ``delta = 1 / num_messages``,
15 by default in ``MAGIC/baselines/run_baselines.py``, which its TJ scripts keep), and
``ddcl_coded``, the same DDCL cells with ``entropy_coding: true``: the integers are priced and
counted at ``-log2 P`` under a learned prior (``dcgenv.comms.EntropyCoded``) instead of their
Elias length, which is at least 1 bit per element, so 8 bits for an all-zero 8-float message;
``ddcl_coded_warmup``, the coded cells with the price ramped in (``warmup``: unpriced for the
first 30% of the updates, full price from 60% on), so that the messages are learned before
they are priced; ``ddcl_coded_head``, the coded cells with ``comm_cost_trunk: false``: the
price's gradient stops at the message projection and the channel's prior, so that it shrinks
the messages without reshaping the features the actions are read from.
The authors count the surrogate ``log2(2|z|/delta + 1)``, which goes to 0 with ``z``; an
entropy coder can also send a near-certain 0 in well under a bit. The learner
is the project's MAPPO with a one-hop CommNet actor with attention
(``configs/results/<row>_<budget>.yaml``, its ``agent`` section), ``num_seeds`` seeds vmapped
inside one compiled run, on the compact ``obs_mode: index`` observations with an embedding
first layer where the family has them.

Every cell trains through ``baselines.train.train`` into its own run directory,
``<runs_dir>/<budget>/<cell>`` (default ``runs_dir``: ``$HOME/dcgenv_runs/<row>``, outside
the work tree), checkpointing every ``checkpoint_every`` updates; a killed run loses at most
that many updates, and running the row again resumes every unfinished cell bit for bit (the
train command's guarantee). A finished cell also writes its summary (success, bits per message
and episode length per seed, env steps, training seconds, date) to
``<out>/<row>[_<budget>]_cells/<cell>.json``, beside the row's JSON and committed with it: a
session whose ``$HOME`` is new (no checkpoints) skips the cells finished in earlier sessions
through these summaries, and trains the rest. When all cells are finished the row reports, per
cell, greedy success, episode length (steps to capture on Predator-Prey) over
``eval_episodes`` episodes per seed and bits per message (Elias, as the learner's evaluation
logs them; ``continuous`` counted at 32 bits per float), mean and std over seeds, and plots
success against bits per level. While some cells are unfinished (``max_cells`` per session
reached, or the session was killed) it writes a progress table instead (updates done /
planned, latest training success), marked ``"finished": false``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

FLOAT_BITS = 32  # a continuous message element counted as one float32


@dataclasses.dataclass(frozen=True)
class Config:
    """A budget of a row: the learner's config (``agents.config``) shared by all cells, the
    environment ``family`` and its ``levels`` (``<family>-<level>-v0``), the channels, the
    FakeQuant widths, the DDCL lambdas and delta, ``coded_lambdas`` (the ``ddcl_coded`` cells'
    lambdas; empty: ``lambdas``), the ``ddcl_coded_warmup`` cells' ramp ``warmup: [begin,
    finish]`` (fractions of the updates, the learner's ``comm_coef_warmup``) and lambdas
    ``warmup_lambdas`` (empty: those of the coded cells), the ``ddcl_coded_head`` cells'
    lambdas ``head_lambdas`` (empty: those of the coded cells), ``level_overrides`` (level
    -> fields of this config that differ on that level, e.g. fewer channels on ``hard``;
    ``agent`` there updates the learner's keys), ``runs_dir`` (empty:
    ``$HOME/dcgenv_runs/<row>``) and ``max_cells`` (cells trained per invocation; 0: all)."""

    agent: dict
    family: str = "TrafficJunction"
    levels: tuple[str, ...] = ("medium", "hard")
    channels: tuple[str, ...] = ("silent", "continuous", "fakequant", "ddcl")
    fakequant_bits: tuple[int, ...] = (4, 8, 16)
    lambdas: tuple[float, ...] = (1e-4, 1e-3, 5e-3)
    delta: float = 1 / 15  # the DDCL repo's: 1 / num_messages, num_messages 15
    coded_lambdas: tuple[float, ...] = ()
    warmup: tuple[float, ...] = (0.3, 0.6)
    warmup_lambdas: tuple[float, ...] = ()
    head_lambdas: tuple[float, ...] = ()
    level_overrides: dict = dataclasses.field(default_factory=dict)
    runs_dir: str = ""
    max_cells: int = 0


LEVEL_KEYS = ("agent", "channels", "fakequant_bits", "lambdas", "delta", "coded_lambdas",
              "warmup", "warmup_lambdas", "head_lambdas")


def at_level(cfg: Config, level: str) -> Config:
    """``cfg`` with ``level_overrides[level]`` applied (``agent`` merged key by key)."""
    over = dict(cfg.level_overrides.get(level) or {})
    unknown = sorted(set(over) - set(LEVEL_KEYS))
    if unknown:
        raise ValueError(f"comm_grid: level_overrides[{level!r}] has unknown key(s) {unknown}; "
                         f"allowed: {', '.join(LEVEL_KEYS)}")
    if "agent" in over:
        over["agent"] = {**cfg.agent, **over["agent"]}
    tup = lambda v: tuple(v) if isinstance(v, list) else v
    return dataclasses.replace(cfg, **{k: tup(v) for k, v in over.items()})


def cells(cfg: Config) -> list[tuple[str, dict]]:
    """``[(name, learner config dict)]``, level-major, in the order they train."""
    out = []
    unknown = sorted(set(cfg.level_overrides) - set(cfg.levels))
    if unknown:
        raise ValueError(f"comm_grid: level_overrides for {unknown}, not in levels "
                         f"{list(cfg.levels)}")
    for level in cfg.levels:
        lv = at_level(cfg, level)  # this level's channels, lambdas and learner keys
        base = {**lv.agent, "env": f"{lv.family}-{level}-v0"}
        for channel in lv.channels:
            if channel == "fakequant":
                for b in lv.fakequant_bits:
                    out.append((f"{level}-fakequant{b}", {**base, "channel": "fakequant",
                                                          "channel_kwargs": {"bits": b}}))
            elif channel in ("ddcl", "ddcl_coded", "ddcl_coded_warmup", "ddcl_coded_head"):
                coded = {} if channel == "ddcl" else {"entropy_coding": True}
                lambdas = (lv.coded_lambdas or lv.lambdas) if coded else lv.lambdas
                if channel == "ddcl_coded_warmup":
                    coded["comm_coef_warmup"] = list(lv.warmup)
                    lambdas = lv.warmup_lambdas or lambdas
                if channel == "ddcl_coded_head":
                    coded["comm_cost_trunk"] = False
                    lambdas = lv.head_lambdas or lambdas
                for lam in lambdas:
                    out.append((f"{level}-{channel}{lam:g}", {
                        **base, "channel": "ddcl", "comm_coef": lam,
                        "channel_kwargs": {"delta": lv.delta}, **coded}))
            elif channel not in ("silent", "continuous"):
                raise ValueError(f"comm_grid: unknown channel {channel!r}; allowed: silent, "
                                 "continuous, fakequant, ddcl, ddcl_coded, "
                                 "ddcl_coded_warmup, ddcl_coded_head")
            else:
                out.append((f"{level}-{channel}", {**base, "channel": channel,
                                                   "channel_kwargs": {}}))
    return out


def runs_root(row: str, cfg: Config, budget: str, runs_dir: str | None = None) -> Path:
    root = runs_dir or cfg.runs_dir or os.path.join(os.path.expanduser("~"), "dcgenv_runs", row)
    return Path(root) / budget


def cell_status(path: Path, planned: int) -> dict:
    """Updates done (from ``metrics.jsonl``), planned, latest training success (of the last
    update where an episode ended: on TJ-hard's 80-step episodes, one update in four), finished."""
    rows = []
    if (path / "metrics.jsonl").exists():
        for line in (path / "metrics.jsonl").read_text().splitlines():
            row = json.loads(line)
            if "update" in row:
                rows.append(row)
    logged = [r["success"] for r in rows if np.isfinite(r.get("success", np.nan))]
    return {"updates": rows[-1]["update"] if rows else 0, "planned": planned,
            "train_success": logged[-1] if logged else None,
            "finished": (path / "results.json").exists()}


def train_cell(values: dict, path: Path) -> dict:
    """Train (or resume) one cell into ``path``; its ``results.json`` if finished."""
    from agents.config import Config as AgentConfig
    from baselines import checkpoint
    from baselines.train import train

    if (path / "results.json").exists():
        return json.loads((path / "results.json").read_text())
    config = AgentConfig.from_dict(values)
    resume = checkpoint.latest_step(path) is not None
    results, _ = train(config, path, resume=resume, show_progress=False)
    return results


def summarise(name: str, results: dict) -> dict:
    seeds = results["eval"]["per_seed"]
    channel = results["config"]["channel"]
    dim = results["config"]["message_dim"]
    bits = [FLOAT_BITS * dim if channel == "continuous" else s["bits_per_message"]
            for s in seeds]
    succ = [s["success"] for s in seeds]
    length = [s.get("length", float("nan")) for s in seeds]
    return {"cell": name, "level": name.split("-")[0], "channel": name.split("-", 1)[1],
            "success": {"mean": float(np.mean(succ)), "std": float(np.std(succ))},
            "bits_per_message": {"mean": float(np.mean(bits)), "std": float(np.std(bits))},
            "length": {"mean": float(np.mean(length)), "std": float(np.std(length))},
            "seeds": [{"success": s, "bits_per_message": b, "length": n}
                      for s, b, n in zip(succ, bits, length, strict=True)],
            "env_steps": int(results["env_steps"]), "sessions": len(results.get("sessions", [])),
            "train_s": round(sum(x.get("train_s", 0.0) for x in results.get("sessions", [])), 1),
            "train_success": (results.get("final_train") or {}).get("success"),
            # entropy-coded cells: the same messages' Elias length (last training log)
            "train_elias_bits": (results.get("final_train") or {}).get("elias_bits_per_message")}


def cells_dir(row: str, out_dir: Path, budget: str) -> Path:
    """Where finished cells' summaries go: ``<out_dir>/<row>[_<budget>]_cells``."""
    return Path(out_dir) / (f"{row}_cells" if budget == "cpu" else f"{row}_{budget}_cells")


def saved_summary(folder: Path, name: str, values: dict) -> dict | None:
    """The committed summary of cell ``name`` if it exists and was trained with ``values``; a
    summary of other settings is a ValueError (the config changed under a finished cell)."""
    path = folder / f"{name}.json"
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    if saved.get("values") != json.loads(json.dumps(values)):
        raise ValueError(f"{path}: this cell was trained with other settings than "
                         f"configs/results' now; delete it to retrain the cell")
    return saved


def run(row: str, cfg: Config, budget: str = "cpu", runs_dir: str | None = None,
        out_dir: Path | None = None, only: tuple[str, ...] = (), train: bool = True) -> dict:
    """Train every unfinished cell (at most ``max_cells``; only those named in ``only`` if
    given, e.g. one per process side by side; none if not ``train``), then report:
    ``progress`` of every cell, ``cells`` the summaries of the finished ones in grid order,
    ``finished`` whether all are. A cell is finished when its summary is in
    ``cells_dir(out_dir)`` or its run directory has a ``results.json`` (whose summary is then
    written there)."""
    from baselines import reproduce as rep

    root = runs_root(row, cfg, budget, runs_dir)
    folder = cells_dir(row, rep.RESULTS if out_dir is None else out_dir, budget)
    todo = cells(cfg)
    unknown = sorted(set(only) - {name for name, _ in todo})
    if unknown:
        raise ValueError(f"comm_grid: cells {unknown} not in {row}'s {budget} grid; allowed: "
                         f"{', '.join(name for name, _ in todo)}")
    summaries, trained = {}, 0
    for name, values in todo:
        saved = saved_summary(folder, name, values)
        if saved is None and not (root / name / "results.json").exists():
            if (not train or (cfg.max_cells and trained >= cfg.max_cells)
                    or (only and name not in only)):
                continue
            train_cell(values, root / name)
            trained += 1
        if saved is None and (root / name / "results.json").exists():
            results = json.loads((root / name / "results.json").read_text())
            saved = {**summarise(name, results), "values": values,
                     "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
            if not np.isfinite(saved["train_success"] or np.nan):  # no episode ended last
                saved["train_success"] = cell_status(root / name, 0)["train_success"]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.json").write_text(json.dumps(saved, indent=1))
        if saved is not None:
            summaries[name] = saved
    status = {name: ({"updates": values["num_updates"], "planned": values["num_updates"],
                      "train_success": summaries[name].get("train_success"), "finished": True}
                     if name in summaries else cell_status(root / name, values["num_updates"]))
              for name, values in todo}
    return {"family": cfg.family, "runs_dir": str(root), "cells_dir": str(folder),
            "progress": status, "finished": len(summaries) == len(todo),
            "cells": [{k: v for k, v in summaries[name].items() if k != "values"}
                      for name, _ in todo if name in summaries]}


ROWS = ("tj_ddcl", "pp_ddcl", "pp_mappo")
TITLES = {"TrafficJunction": "Traffic Junction", "PredatorPrey": "Predator-Prey"}


def check_grid_row(row: str) -> str:
    if row not in ROWS:
        raise ValueError(f"baselines.comm_grid: unknown row {row!r}; allowed: {', '.join(ROWS)}")
    return row


def table(row: str, result: dict) -> str:
    """The finished cells' results; while some are unfinished, then every cell's progress."""
    lines = ["| cell | greedy success | episode length | bits per message | sessions |",
             "|---|---|---|---|---|"] if result["cells"] else []
    for c in result["cells"]:
        s, n, b = c["success"], c.get("length"), c["bits_per_message"]
        # summaries written before the length metric existed have none: "-"
        steps = "-" if n is None or np.isnan(n["mean"]) else f"{n['mean']:.1f} ± {n['std']:.1f}"
        lines.append(f"| {c['cell']} | {s['mean']:.3f} ± {s['std']:.3f} | {steps} | "
                     f"{b['mean']:.1f} ± {b['std']:.1f} | {c['sessions']} |")
    if not result["finished"]:
        lines += [""] if lines else []
        lines += [f"Unfinished: progress (continue with python -m baselines.reproduce {row})",
                  "| cell | updates done / planned | latest training success |", "|---|---|---|"]
        for name, s in result["progress"].items():
            succ = "-" if s["train_success"] is None else f"{s['train_success']:.3f}"
            lines.append(f"| {name} | {s['updates']} / {s['planned']} | {succ} |")
    return "\n".join(lines)


# one marker per channel kind (longest prefix first), so that a colour is never the only cue
MARKERS = {"ddcl_coded_warmup": "P", "ddcl_coded_head": "X", "ddcl_coded": "D", "ddcl": "^",
           "fakequant": "s", "continuous": "o", "silent": "o"}


def plot(result: dict, path: Path, family: str = "TrafficJunction") -> list[Path]:
    """One success-vs-bits figure per level whose cells have all finished (log bits axis):
    ``<stem>_<level>.png`` beside ``path``."""
    levels = sorted({c["level"] for c in result["cells"]} - {
        name.split("-")[0] for name, s in result["progress"].items() if not s["finished"]})
    if not levels:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for level in levels:
        fig, ax = plt.subplots(figsize=(6, 4))
        colours = plt.get_cmap("tab20").colors  # 20 distinct colours: no two cells share one
        for i, c in enumerate(c for c in result["cells"] if c["level"] == level):
            kind = next(k for k in MARKERS if c["channel"].startswith(k))
            ax.errorbar(max(c["bits_per_message"]["mean"], 1e-2), c["success"]["mean"],
                        yerr=c["success"]["std"], fmt=MARKERS[kind],
                        color=colours[i % len(colours)], label=c["channel"])
        ax.set_xscale("log")
        ax.set_xlabel("bits per message (silent drawn at 0.01)")
        ax.set_ylabel("greedy success")
        ax.set_title(f"{TITLES.get(family, family)} {level}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        out = path.with_name(f"{path.stem}_{level}.png")
        fig.savefig(out, dpi=100)
        plt.close(fig)
        written.append(out)
    return written


def reproduce(row: str, budget: str, out_dir, runs_dir: str | None = None,
              only: tuple[str, ...] = (), train: bool = True) -> dict:
    """RESULTS.md row ``row`` (one of :data:`ROWS`) with ``configs/results/<row>_<budget>.yaml``
    (``only``: train just these cells; ``train=False``: none, report; as :func:`run`)."""
    from baselines import reproduce as rep

    check_grid_row(row)
    return rep.run_row(row, budget, out_dir, Config,
                       lambda cfg: run(row, cfg, budget, runs_dir, out_dir, tuple(only), train),
                       lambda result, path: plot(result, path, result["family"]),
                       lambda out, cfg: table(row, out),
                       lambda out: sum(c["env_steps"] for c in out.get("cells", [])))


def main(argv=None) -> dict:
    from baselines import reproduce as rep

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("row", help=f"one of: {', '.join(ROWS)}")
    parser.add_argument("--budget", default="cpu", help="smoke, cpu or full")
    parser.add_argument("--out", default=str(rep.RESULTS), help="folder for the JSON")
    parser.add_argument("--runs-dir", default=None, help="root of the cells' run directories")
    parser.add_argument("--cells", nargs="+", default=(), metavar="CELL",
                        help="train only these cells (e.g. level-channel, one per process "
                             "side by side); the others are reported if finished")
    parser.add_argument("--report", action="store_true",
                        help="train nothing: the finished cells' table (and figures of the "
                             "levels whose cells have all finished), the others' progress")
    parser.add_argument("--resume", action="store_true",
                        help="continue unfinished cells (always done; kept for clarity)")
    args = parser.parse_args(argv)
    try:
        check_grid_row(args.row)
        rep.check_budget(args.budget)
    except ValueError as err:
        parser.error(str(err))
    return reproduce(args.row, args.budget, Path(args.out), args.runs_dir, tuple(args.cells),
                     not args.report)


if __name__ == "__main__":
    main()
