"""Ablation of the communication aggregation, the information bottleneck and the gradient
budget (dcgenv issue 22), with post-hoc vector quantisation of the learned messages.

    python -m baselines.attention_ablation                  # --budget cpu (default)
    python -m baselines.attention_ablation --budget smoke   # seconds of training: checks it runs
    python -m baselines.attention_ablation --budget full    # the configs' sizes (for a GPU)

Grid: MAPPO + CommNet through a continuous channel (``configs/ablation/*.yaml`` hold the base
configs), ``aggregate`` in mean (CommNet), gated (IC3Net), attention (TarMAC) and
gradient_aware (agents/attention.py), each with and without the variational bottleneck
(``bottleneck: variational``, fixed price) and the gradient budget (``gradient_budget_k``);
seeds vmapped (``num_seeds``). Per cell: updates to reach the target training success (the
seed-mean training success of an update, first update at or above ``TARGET[budget]``), final greedy
success per seed (``trainer.evaluate``), KL per message in nats (bottleneck cells), the
channel's bits per message, the backward-pass time (wall time of a jitted ``jax.grad`` of the
PPO loss on one rollout, median of repeats, after compiling), and post-hoc VQ: a k-means
codebook (agents/vq.py) fitted to the greedy policy's messages from rollouts, then greedy
success with every message replaced by its nearest code word, against ``log2(K)`` bits.

Why Traffic Junction and not the referential or a bargaining game: MAPPO can act in
``Referential-continuous-v0``, ``Negotiation-v0`` and ``Rubinstein-v0``, but in those
turn-based two-agent games only the agent whose turn it is is ``active`` (the learner's alive
mask), so CommNet hops would carry nothing; with two agents every receiver would hear one
sender anyway (attention weight 1, a budget of k = 1 keeps every gradient; the referential
game's token-level version is ``baselines/attention_referential.py``). Traffic Junction easy
(5 cars: up to 4 senders per receiver) is the smallest game where the aggregations differ;
``--budget cpu`` shrinks it to 60 updates of 64 environments, and adds the whole grid on
TrafficJunction-medium (10 cars) with the compact observations, 500 updates of 64
environments; ``--budget full`` runs the configs' sizes.

Runs side by side: ``--configs`` and ``--cells`` pick part of the grid; ``--merge`` puts their
rows into the budget's JSON, or give each process its own ``--out`` and merge the files after
with ``--merge-from``.

``run(budget, out_dir)`` is the entry point for ``baselines.reproduce``: it writes
``attention_ablation[_<budget>].json`` under ``out_dir`` and the figures
``docs/images/attention_ablation_{curves,vq}.png`` (cpu budget) and returns the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
import warnings
from pathlib import Path

if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):  # compile fast
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=0"
                               " --xla_llvm_disable_expensive_passes=true").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from agents import mappo, vq  # noqa: E402
from agents import networks as nets  # noqa: E402
from agents.config import PPOConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs" / "ablation"
TARGET = {"smoke": 0.5, "cpu": 0.5, "full": 0.9}  # training success that counts as reached
AGGREGATES = ("mean", "gated", "attention", "gradient_aware")
CODEBOOKS = (1, 2, 4, 8, 16, 64)  # VQ codebook sizes (bits 0 .. 6)
KMAX = max(CODEBOOKS)

BUDGETS = ("smoke", "cpu", "full")
GRID_KEYS = ("_aggregates", "_bottleneck", "_budget", "_target", "_opt_level")


@dataclasses.dataclass(frozen=True)
class Config:
    """A budget of the grid (``configs/results/attention_ablation_<budget>.yaml``): base config
    file under ``configs/ablation/`` -> overrides; ``_``-keys pick the grid's axes."""

    grid: dict


def grid(budget: str) -> dict:
    from baselines import reproduce as rep

    return rep.load_config("attention_ablation", budget, Config).grid


def cells(budget: str):
    """``(env file, cell name, PPOConfig)`` for every cell of ``budget``'s grid."""
    for file, over in grid(budget).items():
        base = yaml.safe_load((CONFIGS / file).read_text())
        k = base.pop("ablation_budget_k", 1)
        plain = {key: v for key, v in over.items() if not key.startswith("_")}
        axes = sorted(set(over) - set(plain) - set(GRID_KEYS))
        if axes:
            raise ValueError(f"{file}: unknown grid keys {axes}; allowed: {', '.join(GRID_KEYS)}"
                             " (and the learner's config keys)")
        combos = [(b, g) for g in over.get("_budget", (False, True))
                  for b in over.get("_bottleneck", (False, True))]
        for bottleneck, budget_on in combos:  # the plain aggregations first, then +IB, ...
            for aggregate in over.get("_aggregates", AGGREGATES):
                ib = "+IB" + ib_tag({**base, **plain})
                name = aggregate + (ib if bottleneck else "") + (f"+k{k}" if budget_on else "")
                cfg = {**base, **plain, "aggregate": aggregate,
                       "bottleneck": "variational" if bottleneck else "none",
                       "gradient_budget_k": k if budget_on else 0}
                yield file, name, PPOConfig.from_dict(cfg)


def ib_tag(cfg: dict) -> str:
    """What a cell's ``+IB`` adds to its name when the bottleneck is not the default:
    ``_std<bottleneck_init_std>`` and ``_kl<bottleneck_budget>`` (nats per message)."""
    std, budget = cfg.get("bottleneck_init_std", 1.0), cfg.get("bottleneck_budget", 0.0)
    return ("" if std == 1.0 else f"_std{std:g}") + (f"_kl{budget:g}" if budget else "")


def backward_time(trainer, state, repeats: int = 5, compiler_options=None) -> float:
    """Median wall seconds of a compiled ``jax.grad`` of the PPO loss on one rollout."""
    runner = jax.tree.map(lambda x: x[0], state.runners)
    _, batch = jax.jit(trainer.collect)(runner)
    grad = jax.jit(jax.grad(lambda p, b: trainer.loss(p, b)[0]),
                   compiler_options=compiler_options)
    jax.block_until_ready(grad(runner.params, batch))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(grad(runner.params, batch))
        times.append(time.perf_counter() - t)
    return float(np.median(times))


_kmeans = jax.jit(vq.kmeans, static_argnums=(2, 3))


def make_vq(config, trainer, episodes: int):
    """``vq_curve(params, key) -> {K: greedy success}`` with post-hoc k-means codebooks of
    ``CODEBOOKS`` sizes fitted on the messages of a separate greedy rollout (compiled once per
    cell: the codebooks are padded to ``KMAX`` with copies of word 0, which changes no
    nearest word)."""
    env, env_params = trainer.env, trainer.env_params
    actor = mappo.make_networks(config, env, env_params)[0].clone(expose_messages=True)
    n = env.num_agents
    sparse_env = config.environment[0] if config.obs_embedding else None  # compact obs
    features = jax.vmap(lambda obs: mappo.observe(obs, n, config.agent_id, sparse_env))

    def policy_of(params, codebook):
        stat = params.get("aux", {}).get("grad_stat")
        extra = {} if stat is None else {"stat": stat}

        def policy(carry, obs, reset, comm_key):
            x, alive = features(obs)

            def act(carry, x, alive, reset, k):
                carry, dists, comm = actor.apply(params["actor"], carry, x, alive, reset, k,
                                                 False, codebook=codebook, **extra)
                return carry, nets.mode(dists), comm
            return jax.vmap(act)(carry, x, alive, reset, jax.random.split(comm_key, episodes))
        return policy

    @jax.jit
    def collect(params, key):  # messages [T*E*hops*N, D] and their weights (alive senders)
        k_reset, key = jax.random.split(key)
        obs, st = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, episodes),
                                                        env_params)
        policy = policy_of(params, None)

        def step(state, k):
            obs, st, carry, reset = state
            k_comm, k_env = jax.random.split(k)
            _, alive = features(obs)
            carry, action, comm = policy(carry, obs, reset, k_comm)
            obs, st, _, term, trunc, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_env, episodes), st, action, env_params)
            w = jnp.broadcast_to(alive[:, None, :], comm["values"].shape[:-1])
            return (obs, st, carry, term | trunc), (comm["values"], w)
        carry = jnp.zeros((episodes, n, 1))
        _, (m, w) = jax.lax.scan(step, (obs, st, carry, jnp.ones(episodes, bool)),
                                 jax.random.split(key, env_params.max_steps_in_episode))
        return m.reshape(-1, m.shape[-1]), w.reshape(-1)

    @jax.jit
    def success(params, codebook, key):
        return mappo.evaluate_greedy(env, env_params, policy_of(params, codebook),
                                     (episodes, n, 1), key)["success"]

    def vq_curve(params, key) -> dict:
        k_collect, k_fit, k_eval = jax.random.split(key, 3)
        messages, weights = collect(params, k_collect)
        out = {}
        for size in CODEBOOKS:
            book = _kmeans(jax.random.fold_in(k_fit, size), messages, size, 20, weights)
            pad = jnp.broadcast_to(book[:1], (KMAX - size, book.shape[1]))
            out[size] = float(success(params, jnp.concatenate([book, pad]), k_eval))
        return out
    return vq_curve


def file_options(over: dict, budget: str) -> tuple[float, dict | None]:
    """``(target, compiler options)`` of a base config's grid entry: ``_target`` (the training
    success that counts as reached; default ``TARGET[budget]``) and ``_opt_level`` (the XLA
    backend optimisation level of the training loop and the backward-time gradient; default
    the script's fast compile, level 0, which runs TrafficJunction-medium's updates about 5x
    slower: worth it for the 60-update cells, not for hundreds of updates)."""
    level = over.get("_opt_level")
    options = None if level is None else {"xla_backend_optimization_level": int(level),
                                          "xla_llvm_disable_expensive_passes": False}
    return float(over.get("_target", TARGET[budget])), options


def run_cell(config, key, target: float, compiler_options: dict | None = None) -> dict:
    trainer = mappo.make_trainer(config)
    t0 = time.perf_counter()
    state = jax.jit(trainer.init)(key)
    run = jax.jit(lambda s: trainer.run(s, config.num_updates),
                  compiler_options=compiler_options)
    state, metrics = run(state)
    jax.block_until_ready(state)
    train_s = time.perf_counter() - t0
    curve = np.asarray(metrics["success"], float)
    reached = np.flatnonzero(np.nan_to_num(curve, nan=0.0) >= target)
    evaluate = jax.jit(trainer.evaluate, static_argnums=2)
    per_seed, vq_rows = [], []
    vq_curve = make_vq(config, trainer, config.eval_episodes)
    for i in range(config.num_seeds):
        params = jax.tree.map(lambda x, i=i: x[i], state.runners.params)
        k = jax.random.fold_in(key, 1000 + i)
        res = evaluate(params, k, config.eval_episodes)
        per_seed.append({name: float(v) for name, v in res.items()})
        vq_rows.append(vq_curve(params, k))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN tails (no episode ended)
        tail = {name: float(np.nanmean(np.asarray(v, float)[-max(1, len(curve) // 10):]))
                for name, v in metrics.items()}
    return {"train_and_compile_s": train_s,
            "updates_to_target": int(reached[0]) + 1 if reached.size else None,
            "final_success": [r["success"] for r in per_seed],
            "bits_per_message": float(np.mean([r["bits_per_message"] for r in per_seed])),
            "kl_per_message": tail.get("kl_per_message"),
            "train_success_last10pct": tail["success"],
            "target_success": target,
            "backward_s": backward_time(trainer, state, compiler_options=compiler_options),
            "vq_success": {str(s): [r[s] for r in vq_rows] for s in CODEBOOKS},
            "curve": [None if np.isnan(c) else float(c) for c in curve]}


def run(budget: str = "cpu", out_dir: str | Path = ROOT / "baselines" / "results",
        figures: bool | None = None, only: tuple[str, ...] = (),
        files: tuple[str, ...] = (), merge: bool = False) -> dict:
    """Run ``budget``'s grid: only the cells named in ``only`` and the base configs named in
    ``files``, if given (then the stem gets ``_cells``, unless ``merge``: then the rows replace
    those of the same config file and cell in ``attention_ablation[_<budget>].json``, the
    others are kept); write ``attention_ablation[_<budget>][_cells].json`` under ``out_dir``
    (and the figures for the cpu grid unless ``figures`` says otherwise); return it."""
    if budget not in BUDGETS:
        raise ValueError(f"budget = {budget!r}; allowed: {', '.join(BUDGETS)}")
    names = [name for _, name, _ in cells(budget)]
    unknown = sorted(set(only) - set(names))
    if unknown:
        raise ValueError(f"cells {unknown} not in the {budget} grid; allowed: {names}")
    unknown = sorted(set(files) - set(grid(budget)))
    if unknown:
        raise ValueError(f"base configs {unknown} not in the {budget} grid; allowed: "
                         f"{sorted(grid(budget))}")
    started = time.perf_counter()
    kept = []
    tag = "_cells" if (only or files) and not merge else ""
    if merge:
        kept = json.loads((Path(out_dir) / f"{stem(budget)}.json").read_text())["rows"]
    rows = []
    for file, name, config in cells(budget):
        if (only and name not in only) or (files and file not in files):
            continue
        target, options = file_options(grid(budget)[file], budget)
        t = time.perf_counter()
        row = {"env": config.env, "config_file": f"configs/ablation/{file}", "cell": name,
               "num_seeds": config.num_seeds, "num_updates": config.num_updates,
               "env_steps_per_seed": config.num_envs * config.num_steps * config.num_updates,
               **run_cell(config, jax.random.key(config.seed), target, options)}
        row["wall_s"] = time.perf_counter() - t
        rows.append(row)
        print(format_row(row), flush=True)
        write(budget, out_dir, merged(kept, rows), started, tag=tag)
    return write(budget, out_dir, merged(kept, rows), started,
                 figures if not tag else False, final=True, tag=tag)


def stem(budget: str) -> str:
    """The results file's name without ``.json``: ``attention_ablation[_<budget>]``."""
    from baselines import reproduce as rep

    return rep.stem("attention_ablation", budget)


def merge_files(budget: str, out_dir, files) -> dict:
    """The rows of the result ``files`` merged (:func:`merged`) into ``budget``'s JSON in
    ``out_dir``, written with the figures (cpu budget)."""
    rows = json.loads((Path(out_dir) / f"{stem(budget)}.json").read_text())["rows"]
    for file in files:
        rows = merged(rows, json.loads(Path(file).read_text())["rows"])
    return write(budget, out_dir, rows, None, final=True)


def merged(kept: list[dict], rows: list[dict]) -> list[dict]:
    """``kept`` with each row of the same config file and cell replaced by ``rows``' (the new
    ones appended in their order)."""
    new = {(r["config_file"], r["cell"]): r for r in rows}
    out = [new.pop((r["config_file"], r["cell"]), r) for r in kept]
    return out + list(new.values())


def reproduce(budget: str, out_dir) -> dict:
    """RESULTS.md row ``attention_ablation``: :func:`run`, then the record of
    ``baselines.reproduce`` (``attention_ablation[_<budget>].json`` holds both)."""
    from baselines import reproduce as rep

    start = time.perf_counter()
    result = run(budget, out_dir)
    steps = sum(r["env_steps_per_seed"] * r["num_seeds"] for r in result["rows"])
    figure = ROOT / "docs" / "images" / "attention_ablation_curves.png"
    return rep.write_result("attention_ablation", budget, out_dir,
                            rep.load_config("attention_ablation", budget, Config), result,
                            time.perf_counter() - start, steps,
                            figure if budget == "cpu" else None)


def write(budget, out_dir, rows, started, figures=None, final=False, tag="") -> dict:
    """Write the JSON (after every cell, ``"complete": false`` until the last; ``"missing"``:
    the grid's cells without a row, as ``file:cell``); ``wall_s`` is the time since
    ``started``, or with ``started=None`` (merged files) the cells' sum."""
    done = {(r["config_file"], r["cell"]) for r in rows}
    missing = [f"{file}:{name}" for file, name, _ in cells(budget)
               if (f"configs/ablation/{file}", name) not in done]
    result = {"budget": budget, "target_success": TARGET[budget], "codebooks": list(CODEBOOKS),
              "machine": os.uname().nodename + f", {os.cpu_count()} CPU cores, jax "
              f"{jax.__version__} {jax.default_backend()}",
              "wall_s": (sum(r["wall_s"] for r in rows) if started is None
                         else time.perf_counter() - started),
              "complete": final, "missing": missing, "rows": rows}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem(budget)}{tag}.json").write_text(json.dumps(result, indent=1))
    if final and (figures if figures is not None else budget == "cpu"):
        plot(rows, ROOT / "docs" / "images", TARGET[budget])
    return result


def markdown(result: dict) -> str:
    """The results as a markdown table (one row per cell)."""
    head = ("| env | cell | updates to target | final greedy success (per seed) | KL nats/msg | "
            "backward ms | VQ success at 0/1/2/3/4/6 bits |\n|---|---|---|---|---|---|---|")
    lines = [head]
    for r in result["rows"]:
        fs = np.array(r["final_success"])
        kl = r["kl_per_message"]
        vq = " / ".join(f"{np.mean(v):.2f}" for v in r["vq_success"].values())
        target = r.get("target_success", result["target_success"])
        reached = r["updates_to_target"] or "not reached"
        lines.append(f"| {r['env']} | {r['cell']} | {reached} (at {target}) "
                     f"| {fs.mean():.3f} ({', '.join(f'{x:.3f}' for x in fs)}) | "
                     f"{'-' if kl is None else f'{kl:.2f}'} | {1e3 * r['backward_s']:.1f} | "
                     f"{vq} |")
    return "\n".join(lines)


def format_row(row: dict) -> str:
    fs = np.array(row["final_success"])
    kl = row["kl_per_message"]
    vq = ", ".join(f"{int(np.log2(int(s)))}b:{np.mean(v):.2f}"
                   for s, v in row["vq_success"].items())
    return (f"{row['env']:<26} {row['cell']:<22} to-target {str(row['updates_to_target']):>5}  "
            f"success {fs.mean():.3f}±{fs.std():.3f}  KL "
            f"{'-' if kl is None else f'{kl:.2f}':>6}  backward {1e3 * row['backward_s']:.1f} ms"
            f"  VQ [{vq}]")


def plot(rows: list[dict], folder: Path, target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    colours = {r["cell"]: plt.cm.tab20(i % 20) for i, r in enumerate(rows)}
    files = list(dict.fromkeys(r["config_file"] for r in rows))  # one panel per base config

    def panels():
        cols = min(3, len(files))
        rows_ = -(-len(files) // cols)
        fig, axes = plt.subplots(rows_, cols, figsize=(6.5 * cols, 4 * rows_), squeeze=False)
        for ax in axes.flat[len(files):]:
            ax.set_visible(False)
        return fig, axes.flat

    def title(file):
        return Path(file).stem.replace("traffic_junction_", "TJ ").replace("_", " ")

    fig, axes = panels()
    for ax, file in zip(axes, files, strict=False):  # axes may have spare panels
        for r in (r for r in rows if r["config_file"] == file):
            c = np.array([np.nan if v is None else v for v in r["curve"]])
            done = np.isfinite(c)  # updates where an episode ended (TJ-medium: every second)
            ax.plot(np.arange(1, len(c) + 1)[done], c[done], label=r["cell"],
                    color=colours[r["cell"]],
                    ls="--" if "+IB" in r["cell"] else "-")
        ax.axhline(next((r["target_success"] for r in rows
                         if r["config_file"] == file and "target_success" in r), target),
                   color="k", lw=0.5)
        ax.set(xlabel="update", ylabel="training success (seed mean)", title=title(file))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "attention_ablation_curves.png", dpi=90)
    plt.close(fig)
    fig, axes = panels()
    for ax, file in zip(axes, files, strict=False):  # axes may have spare panels
        for r in (r for r in rows if r["config_file"] == file):
            bits = [np.log2(int(s)) for s in r["vq_success"]]
            ax.plot(bits, [np.mean(v) for v in r["vq_success"].values()], marker="o",
                    label=r["cell"], color=colours[r["cell"]],
                    ls="--" if "+IB" in r["cell"] else "-")
        ax.set(xlabel="codebook bits per message (log2 K)",
               ylabel="greedy success, VQ messages (seed mean)", title=title(file))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "attention_ablation_vq.png", dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m baselines.attention_ablation",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", choices=tuple(BUDGETS), default="cpu")
    parser.add_argument("--out", default=str(ROOT / "baselines" / "results"))
    parser.add_argument("--cells", nargs="*", default=[],
                        help="run only these cells of the grid, e.g. gradient_aware+k2")
    parser.add_argument("--configs", nargs="*", default=[],
                        help="run only these base configs of the grid, e.g. "
                             "traffic_junction_medium.yaml")
    parser.add_argument("--merge", action="store_true",
                        help="replace the rows of the cells run in the budget's JSON (the "
                             "others are kept) instead of writing a separate _cells file")
    parser.add_argument("--merge-from", nargs="*", default=[], metavar="JSON",
                        help="run nothing: merge the rows of these result files (e.g. the "
                             "_cells files of runs side by side, each with its own --out) into "
                             "the budget's JSON in --out, as --merge does, and redraw")
    args = parser.parse_args(argv)
    if args.merge_from:
        return merge_files(args.budget, args.out, args.merge_from)
    result = run(args.budget, args.out, only=tuple(args.cells), files=tuple(args.configs),
                 merge=args.merge)
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
