"""The grid of arXiv 2401.15059 on ma-gym's Predator-Prey: IQL {PS, NPS} x {comm, no comm}.

    python -m baselines.iql_grid                    # a CPU-sized budget (below), 3 seeds each
    python -m baselines.iql_grid --budget paper     # the configs as they are: the paper's budget
    python -m baselines.iql_grid --setup authors    # the *_authors configs (docs/iql.md)
    python -m baselines.iql_grid --setup authors --env smax   # the same on SMAX 3s_vs_5z

Trains the four ``configs/iql_*_predator_prey_magym.yaml`` with ``baselines.train`` (so each
run has its checkpoints, metrics.jsonl and curve under ``--out``), with the same overrides for
all four, then prints a table — greedy evaluation (``eval_episodes`` episodes per seed):
success rate and team return, mean ± std over seeds; the training return of the last 10 % of
iterations; env steps — and writes it to ``baselines/results/iql_grid.json`` and the four
learning curves to ``docs/images/iql_grid.png`` (``iql_grid_paper.*`` with ``--budget paper``).

``--budget cpu`` (default; a quarter of the paper's env steps and an eighth of its gradient
steps): 8 episodes per iteration, 4 gradient steps per iteration (one per 2 episodes; the paper
does one per episode), 300 iterations = 2,400 episodes per seed (up to 0.24 M env steps).
``--budget paper``: the configs' own 1,250 iterations x 8 episodes with 8 gradient steps each
(10,000 episodes and gradient steps per seed, up to 1 M env steps). Everything else is the
paper's in both. ``--only`` runs some of the four (e.g. two processes
side by side, each with its own ``--results``); ``--merge A.json B.json`` then prints and
writes the table and figure of their rows together. ``--setup authors`` trains
``configs/iql_*_predator_prey_magym_authors.yaml`` instead (the authors' inputs, team reward,
plain-max target: docs/iql.md, "Against the authors' code") under the same budgets, into
``iql_grid_authors[_paper].*``.

``--env smax`` plays the paper's StarCraft experiment on JaxMARL's SMAX instead (FLAIROx/JaxMARL;
``3s_vs_5z``, three allied stalkers against five zealots under JaxMARL's heuristic enemy,
through ``dcgenv.adapters.from_jaxmarl``; success is the win rate), the four configs otherwise
as they are, into ``iql_grid[_authors]_smax[_paper].*``. One key changes: ``team_reward:
false``, because SMAX already gives every ally the team's reward (summing it would multiply it
by 3), where ma-gym's agents get their own rewards that the authors sum. The authors' README
runs 3s_vs_5z for 3M env steps (``--n_steps 3000000``); ``--budget paper`` keeps the configs'
1M. ``--budget smoke`` shrinks everything to check the plumbing.

Two RESULTS.md rows run this grid through ``python -m baselines.reproduce``: ``iql_magym``
(``--setup authors``) and ``iql_smax`` (``--setup authors --env smax``), with the budgets
``smoke``, ``cpu`` and ``full`` (= ``--budget paper``) and any extra overrides read from
``configs/results/<row>_<budget>.yaml`` (:class:`RowConfig`). Their runs go to
``$HOME/dcgenv_runs/<row>/<budget>/<config>`` (outside the work tree): running a row again
skips its finished configs and resumes the unfinished ones from their checkpoints.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from baselines import checkpoint, progress
from baselines.config import ROOT, load
from baselines.train import train

GRID = ("iql_ps_comm", "iql_ps_nocomm", "iql_nps_comm", "iql_nps_nocomm")
BUDGETS = {"smoke": ["num_updates=2", "num_envs=2", "batch_episodes=2", "buffer_episodes=8",
                     "hidden=8", "gradient_steps=1", "epsilon_steps=20", "target_every=4",
                     "env_kwargs={max_steps_in_episode: 6}", "num_seeds=2", "log_every=1",
                     "checkpoint_every=2", "eval_episodes=4"],
           "cpu": ["num_updates=300", "gradient_steps=4", "checkpoint_every=100"], "paper": []}
SETUPS = {"grid": "", "authors": "_authors"}  # config file suffix
# --env: the overrides that move the four configs onto another environment (after the budget)
ENVS = {"magym": [],
        "smax": ["env=jaxmarl:HeuristicEnemySMAX", "env_kwargs={scenario: 3s_vs_5z}",
                 "team_reward=false"]}
TITLES = {"magym": "PredatorPrey-magym-v0", "smax": "SMAX 3s_vs_5z"}


ROWS = {"iql_magym": "magym", "iql_smax": "smax"}  # RESULTS.md rows -> --env
ROW_BUDGETS = {"smoke": "smoke", "cpu": "cpu", "full": "paper"}  # reproduce's -> ours


@dataclasses.dataclass(frozen=True)
class RowConfig:
    """A budget of a row (``configs/results/<row>_<budget>.yaml``): the ``setup``, the
    ``configs`` of :data:`GRID` it trains, and ``overrides`` applied after the budget's and
    the environment's (``key=value``, as on the command line), and ``runs_dir`` (as
    ``comm_grid``'s rows: empty, ``$HOME/dcgenv_runs/<row>``)."""

    setup: str = "authors"
    configs: tuple[str, ...] = GRID
    overrides: tuple[str, ...] = ()
    runs_dir: str = ""  # empty: $HOME/dcgenv_runs/<row>


def config_path(name: str, setup: str = "grid") -> Path:
    """``configs/<name>_predator_prey_magym[_authors].yaml``."""
    return ROOT / "configs" / f"{name}_predator_prey_magym{SETUPS[setup]}.yaml"


def summarize(name: str, results: dict, history: list[dict]) -> dict:
    per_seed = results["eval"]["per_seed"]
    tail = history[-max(1, len(history) // 10):]
    return {"config": name, "env_steps": results["env_steps"], "train_s": results["train_s"],
            "success": [s["success"] for s in per_seed], "return": [s["return"] for s in per_seed],
            "train_return_last10pct": float(np.mean([r["return"] for r in tail])),
            "curve": [(r["env_steps"], r["return"]) for r in history]}


def read_run(run: Path) -> tuple[dict, list[dict]]:
    """``(results, metrics history)`` of a finished ``baselines.train`` run directory."""
    if not (run / "results.json").is_file():
        raise FileNotFoundError(f"{run}: no results.json (not a finished baselines.train run)")
    history = progress.read_rows(run / "metrics.jsonl")
    return json.loads((run / "results.json").read_text()), history


def train_grid(names, setup: str, overrides: list[str], out: Path) -> list[dict]:
    """Train each config of ``names`` into ``out/<name>`` (a finished run is read as it is, an
    unfinished one resumes from its checkpoint) and return their rows (:func:`summarize`)."""
    rows = []
    for name in names:
        run = Path(out) / name
        if not (run / "results.json").is_file():
            config = load(config_path(name, setup), overrides)
            results, _ = train(config, run, resume=checkpoint.latest_step(run) is not None,
                               show_progress=False)
            print(f"{name}: done in {results['train_s']:.0f} s", flush=True)
        rows.append(summarize(name, *read_run(run)))
    return rows


def table(rows: list[dict]) -> str:
    """Markdown: greedy success and team return (mean ± sample std over seeds, per seed),
    training return of the last 10 % of iterations, env steps (all seeds) and training time."""
    lines = ["| config | greedy success (per seed) | greedy team return (per seed) | training "
             "return, last 10 % | env steps (all seeds) | training s |",
             "|---|---|---|---|---|---|"]
    sd = lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
    for r in rows:
        s, g = r["success"], r["return"]
        lines.append(f"| {r['config']} | {np.mean(s):.3f} ± {sd(s):.3f} "
                     f"({', '.join(f'{x:.3f}' for x in s)}) | {np.mean(g):.2f} ± {sd(g):.2f} "
                     f"({', '.join(f'{x:.2f}' for x in g)}) | {r['train_return_last10pct']:.2f} "
                     f"| {r['env_steps']:,} | {r['train_s']:.0f} |")
    return "\n".join(lines)


def row_overrides(row: str, budget: str, cfg: RowConfig) -> list[str]:
    """What row ``row``'s ``budget`` (:class:`RowConfig` ``cfg``) applies to each config: the
    same overrides as ``python -m baselines.iql_grid --setup <setup> --env <env> --budget
    <smoke|cpu|paper> <cfg.overrides>``."""
    if cfg.setup not in SETUPS or not cfg.configs or set(cfg.configs) - set(GRID):
        raise ValueError(f"{row}_{budget}.yaml: setup {cfg.setup!r}, configs "
                         f"{list(cfg.configs)}; allowed: {', '.join(SETUPS)}; some of {GRID}")
    return BUDGETS[ROW_BUDGETS[budget]] + ENVS[ROWS[row]] + list(cfg.overrides)


def reproduce(row: str, budget: str, out_dir, runs_dir: str | None = None) -> dict:
    """RESULTS.md row ``row`` (one of :data:`ROWS`) at ``budget`` (smoke, cpu, full):
    :func:`train_grid` with ``configs/results/<row>_<budget>.yaml`` into
    ``<runs_dir>/<budget>`` (default ``$HOME/dcgenv_runs/<row>``), then
    ``baselines.reproduce``'s record, table and figure."""
    from baselines import reproduce as rep

    if row not in ROWS:
        raise ValueError(f"baselines.iql_grid: unknown row {row!r}; allowed: {', '.join(ROWS)}")
    from baselines.comm_grid import runs_root

    env = ROWS[row]

    def run(cfg: RowConfig) -> dict:
        overrides = row_overrides(row, budget, cfg)
        root = runs_root(row, cfg, budget, runs_dir)
        return {"setup": cfg.setup, "env": env, "overrides": overrides, "runs_dir": str(root),
                "rows": train_grid(cfg.configs, cfg.setup, overrides, root)}

    return rep.run_row(row, budget, Path(out_dir), RowConfig, run,
                       lambda result, path: plot(result["rows"], path, TITLES[env]),
                       lambda result, cfg: table(result["rows"]),
                       lambda result: sum(r["env_steps"] for r in result["rows"]))


def plot(rows: list[dict], path: Path, title: str = TITLES["magym"]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for row in rows:
        steps, ret = np.array(row["curve"]).T
        k = max(1, len(ret) // 30)
        smooth = np.convolve(ret, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, label=row["config"].replace("iql_", ""))
    ax.set_xlabel("env steps (all seeds)")
    ax.set_ylabel("training team return (seed mean)")
    ax.set_title(f"IQL on {title}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m baselines.iql_grid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="overrides applied to all four configs (after the budget)")
    parser.add_argument("--budget", choices=BUDGETS, default="cpu")
    parser.add_argument("--setup", choices=SETUPS, default="grid",
                        help="grid: the four grid configs; authors: their *_authors versions")
    parser.add_argument("--env", choices=ENVS, default="magym",
                        help="magym: ma-gym's Predator-Prey; smax: SMAX 3s_vs_5z (the paper's "
                             "StarCraft experiment)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "iql_grid"),
                        help="parent directory of the four run directories")
    parser.add_argument("--only", nargs="+", choices=GRID, default=GRID)
    parser.add_argument("--results",
                        help="default: baselines/results/iql_grid[_authors][_paper].json")
    parser.add_argument("--figure", help="default: docs/images/iql_grid[_authors][_paper].png")
    parser.add_argument("--merge", nargs="+", metavar="PATH",
                        help="no training: table and figure of the rows of these results files "
                             "and run directories (one config's --out/<time>/<config>)")
    args = parser.parse_args(argv)
    stem = ("iql_grid" + SETUPS[args.setup] + ("" if args.env == "magym" else f"_{args.env}")
            + ("" if args.budget == "cpu" else f"_{args.budget}"))
    args.results = args.results or str(ROOT / "baselines" / "results" / f"{stem}.json")
    args.figure = args.figure or str(ROOT / "docs" / "images" / f"{stem}.png")
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    rows, names = [], [] if args.merge else args.only
    overrides = BUDGETS[args.budget] + ENVS[args.env] + args.overrides
    for path in map(Path, args.merge or ()):
        if path.is_dir():  # a finished run of one config
            if path.name not in GRID:
                raise ValueError(f"{path}: a run directory is named after its config, one of "
                                 f"{', '.join(GRID)}")
            rows.append(summarize(path.name, *read_run(path)))
            continue
        saved = json.loads(path.read_text())
        rows += saved["rows"]
        overrides = saved["overrides"]
    rows += train_grid(names, args.setup, overrides, out)
    rows.sort(key=lambda r: GRID.index(r["config"]))
    print(table(rows))
    Path(args.results).write_text(json.dumps({"setup": args.setup, "env": args.env,
                                             "overrides": overrides, "rows": rows}, indent=1))
    plot(rows, Path(args.figure), TITLES[args.env])
    print(f"wrote {args.results} and {args.figure}")
    return rows


if __name__ == "__main__":
    main()
