"""DDCL's GridWorld goal result with our learner: frequent goals get shorter messages.

    python -m baselines.reproduce gridworld_ddcl --budget cpu
    python -m baselines.gridworld_ddcl --variant warmup --budget cpu   # the lambda warm-up rows
    python -m baselines.gridworld_ddcl --variant warmup_early --budget cpu   # an earlier ramp
    python -m baselines.gridworld_ddcl --variant speaker --budget cpu   # price the speaker only

The DDCL paper (Kapoor et al. 2025, arXiv 2511.01554, its GridWorld "goal" experiment) trains a
speaker, who sees the goal, and a listener, who must walk to it, with MAPPO for 1M steps, messages
through DDCL (delta 1/5), for lambda in {0, 1e-3, 5e-3, 1e-2}. It reports success near optimal and
a Pearson r of -0.989 between a goal's frequency and the bits its message uses.

Here the messages are the learner's own: MAPPO with a one-hop CommNet actor
(``configs/results/gridworld_ddcl_<budget>.yaml``, its ``agent`` section) whose messages go
through ``comms.DDCL(0.2)`` inside one step, so the listener acts on the message of the same
step, as in the original. The environment's own message path is closed (``env_kwargs:
{channel: silent}``). The loss adds ``lambda * cost`` (``comm_coef``), DDCL's differentiable
bit-length surrogate summed over the senders. Every lambda trains ``num_seeds`` seeds side by
side.

Per goal, the speaker's message is computed from the speaker's observation of that goal (it sees
nothing else), in evaluation mode, over ``dithers`` shared-dither draws. Three measures of its
length: ``bits``, the Elias-gamma coded length of the integers really sent (at least one bit
per element); ``surrogate``, the cost ``sum log2(2|z|/delta + 1)`` the paper plots; and the
empirical entropy of the integers sent for that goal. ``pearson_r`` correlates the goals'
probabilities with each measure (over the goals of the table with nonzero probability).
Success and return are greedy, ``eval_episodes`` per seed.

``warmup: [begin, finish]`` (config key) trains every lambda of the config with the learner's
``comm_coef_warmup``: lambda ramps linearly from 0 at ``begin`` to its value at ``finish``
(fractions of the updates), so the protocol forms unpriced before its length is priced. The
warm-up rows have their own configs, ``configs/results/gridworld_ddcl_<variant>_<budget>.yaml``
(variants ``warmup``: ramp over 30%-60% of the updates; ``warmup_early``: 10%-30%;
``speaker``: 10%-30% with the speaker's messages alone priced, ``comm_coef_senders: [1,
0]``), run by this module's command line (``--variant``), which writes
``gridworld_ddcl_<variant>.json`` (``..._<budget>.json`` for other budgets than ``cpu``)
beside the row's, and its figure, with the same table columns plus the warm-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from agents import make_trainer
from agents.config import Config as AgentConfig
from agents.mappo import make_networks
from agents.networks import flatten_obs
from baselines.evaluate import evaluate_params


@dataclasses.dataclass(frozen=True)
class Config:
    """A budget of the row: the learner's config (``agents.config``), the lambdas, the number
    of dither draws per goal, and the lambda warm-up ``[begin, finish]`` (the learner's
    ``comm_coef_warmup``; empty: none)."""

    agent: dict
    lambdas: tuple[float, ...] = (0.0, 1e-3, 5e-3, 1e-2)
    dithers: int = 256
    warmup: tuple[float, ...] = ()


def speaker_messages(trainer, actor_params, dithers: int, key) -> dict[str, np.ndarray]:
    """Per goal cell ``[N * N]``: the mean Elias bits and surrogate cost of the speaker's
    message over ``dithers`` evaluation-mode sends, and the integers sent ``[N*N, dithers, D]``
    (DDCL's ``m``, recovered from the received value and the dither)."""
    config, env, params = trainer.config, trainer.env, trainer.env_params
    base = getattr(env, "_env", env)
    actor, _ = make_networks(config, env, params)
    n = base.grid_size
    _, state = base.reset(jax.random.key(0), params)
    cells = jnp.stack(jnp.meshgrid(jnp.arange(n), jnp.arange(n), indexing="ij"), -1)
    cells = cells.reshape(-1, 2).astype(jnp.int32)
    speaker_only = jnp.array([True, False])  # bits are summed over alive senders
    carry = jnp.zeros((2, config.hidden if config.encoder == "gru" else 1))

    def one(goal, k):
        obs = base.get_obs(state.replace(goal=goal), params)
        x = flatten_obs(obs, 2, config.agent_id)
        _, _, comm = actor.apply(actor_params, carry, x, speaker_only, jnp.array(True), k,
                                 False)
        return comm["bits"], comm["cost"]

    keys = jax.random.split(key, dithers)
    bits, cost = jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))(cells, keys)
    return {"bits": np.asarray(bits).mean(1), "surrogate": np.asarray(cost).mean(1)}


def pearson(x, y) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def run_lambda(values: dict, lam: float, dithers: int, warmup=()) -> dict:
    extra = {"comm_coef_warmup": list(warmup)} if warmup else {}
    config = AgentConfig.from_dict({**values, "comm_coef": lam, **extra})
    trainer = make_trainer(config)
    start = time.perf_counter()
    state = trainer.init(jax.random.key(config.seed))
    state, metrics = trainer.run(state, config.num_updates)
    jax.block_until_ready(state)
    train_s = time.perf_counter() - start
    evaluation = evaluate_params(trainer, state.runners.params, config.eval_episodes)
    probs = np.asarray(trainer.env_params.goal_probs, np.float64).reshape(-1)
    probs = probs / probs.sum()
    used = probs > 0
    seeds = []
    for i in range(config.num_seeds):
        actor = jax.tree.map(lambda x, i=i: x[i], state.runners.params["actor"])
        per_goal = speaker_messages(trainer, actor, dithers, jax.random.key(100 + i))
        seeds.append({
            **evaluation["per_seed"][i],
            "goal_probability": probs[used].tolist(),
            "bits_per_goal": per_goal["bits"][used].tolist(),
            "surrogate_per_goal": per_goal["surrogate"][used].tolist(),
            "pearson_r_bits": pearson(probs[used], per_goal["bits"][used]),
            "pearson_r_surrogate": pearson(probs[used], per_goal["surrogate"][used]),
            "expected_bits": float(np.sum(probs * per_goal["bits"])),
        })
    summary = {}
    for name in ("success", "return", "pearson_r_bits", "pearson_r_surrogate",
                 "expected_bits"):
        column = np.array([s[name] for s in seeds], np.float64)
        summary[name] = {"mean": float(np.nanmean(column)), "std": float(np.nanstd(column))}
    return {"lambda": lam, **({"warmup": list(config.comm_coef_warmup)} if warmup else {}),
            "train_seconds": train_s,
            "env_steps": int(config.steps_per_update * config.num_updates),
            "summary": summary, "seeds": seeds}


def run(cfg: Config) -> dict:
    """Train and measure every lambda of ``cfg``."""
    return {"lambdas": [run_lambda(cfg.agent, lam, cfg.dithers, cfg.warmup)
                        for lam in cfg.lambdas]}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for row in result["lambdas"]:
        seeds = row["seeds"]
        probs = np.asarray(seeds[0]["goal_probability"])
        levels = np.unique(probs)  # goals of equal probability: their mean
        for key, ax in (("bits_per_goal", left), ("surrogate_per_goal", right)):
            mean = np.mean([s[key] for s in seeds], 0)
            ax.plot(levels, [mean[probs == q].mean() for q in levels], "o-",
                    label=f"λ = {row['lambda']:g}{warmup_label(row)}")
    for ax, name in ((left, "Elias bits sent per message"), (right, "DDCL surrogate (bits)")):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks([0.0125, 0.025, 0.3125, 0.625], ["1/80", "1/40", "5/16", "5/8"])
        ax.set_xlabel("goal probability")
        ax.set_ylabel(name)
    right.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle("GridWorld goal: the speaker's message length against goal frequency (mean over "
                 "seeds and over goals of equal probability)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def reproduce(budget: str, out_dir) -> dict:
    """RESULTS.md row ``gridworld_ddcl`` with ``configs/results/gridworld_ddcl_<budget>.yaml``;
    writes the JSON and the figure."""
    from baselines import reproduce as rep

    return rep.run_row("gridworld_ddcl", budget, out_dir, Config, run, plot,
                       lambda out, cfg: table(out),
                       lambda out: sum(row["env_steps"] for row in out["lambdas"]))


def warmup_label(row: dict) -> str:
    """`` (warm-up 0.3-0.6)`` for a row trained with a lambda warm-up, else empty."""
    w = row.get("warmup")
    return f" (warm-up {w[0]:g}-{w[1]:g})" if w else ""


def table(result: dict) -> str:
    lines = ["| λ | success | return | r (bits) | r (surrogate) | E[bits] per message |",
             "|---|---|---|---|---|---|"]
    for row in result["lambdas"]:
        s = row["summary"]
        cell = lambda k, f="{:.3f}", s=s: f"{f.format(s[k]['mean'])} ± {f.format(s[k]['std'])}"
        lines.append(f"| {row['lambda']:g}{warmup_label(row)} | {cell('success')} | "
                     f"{cell('return')} | "
                     f"{cell('pearson_r_bits')} | {cell('pearson_r_surrogate')} | "
                     f"{cell('expected_bits', '{:.2f}')} |")
    return "\n".join(lines)


VARIANTS = ("warmup", "warmup_early", "speaker")


def load_variant(variant: str, budget: str) -> tuple[str, Config]:
    """``(row name, Config)`` of ``configs/results/gridworld_ddcl_<variant>_<budget>.yaml``
    (lists become tuples); ``ValueError`` naming the variant, budget or key allowed."""
    from baselines import reproduce as rep

    if variant not in VARIANTS:
        raise ValueError(f"baselines.gridworld_ddcl: unknown variant {variant!r}; allowed: "
                         f"{', '.join(VARIANTS)}")
    row = f"gridworld_ddcl_{variant}"
    return row, rep.load_yaml(rep.CONFIGS / f"{row}_{rep.check_budget(budget)}.yaml", Config)


def reproduce_variant(variant: str, budget: str, out_dir) -> dict:
    """The rows of ``gridworld_ddcl_<variant>_<budget>.yaml``, as :func:`reproduce` runs the
    row's own: the JSON ``<out_dir>/gridworld_ddcl_<variant>[_<budget>].json`` (its
    ``command`` is this module's) and the figure."""
    from baselines import reproduce as rep

    row, cfg = load_variant(variant, budget)
    out_dir = Path(out_dir)
    start = time.perf_counter()
    result = run(cfg)
    wall = time.perf_counter() - start
    figure = rep.figure_path(row, budget, out_dir)
    plot(result, figure)
    result["table"] = table(result)
    print(result["table"])
    record = rep.write_result(row, budget, out_dir, cfg, result, wall,
                              sum(r["env_steps"] for r in result["lambdas"]), figure)
    record["command"] = f"python -m baselines.gridworld_ddcl --variant {variant} --budget {budget}"
    path = Path(record.pop("path"))
    path.write_text(json.dumps(record, indent=2))
    return {**record, "path": str(path)}


def main(argv=None) -> dict:
    from baselines import reproduce as rep

    parser = argparse.ArgumentParser(description="Variants of the gridworld_ddcl row.")
    parser.add_argument("--variant", default="warmup", help=f"one of: {', '.join(VARIANTS)}")
    parser.add_argument("--budget", default="cpu", help=f"one of: {', '.join(rep.BUDGETS)}")
    parser.add_argument("--out", default=str(rep.RESULTS), help="folder for the JSON")
    args = parser.parse_args(argv)
    try:
        load_variant(args.variant, args.budget)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    record = reproduce_variant(args.variant, args.budget, args.out)
    print(f"wrote {record['path']} ({record['wall_s']:.0f} s, {record['env_steps']:,} env steps)")
    return record


if __name__ == "__main__":
    main()
