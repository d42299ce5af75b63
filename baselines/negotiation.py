"""Cao et al. (2018)'s negotiation result with our learner: who uses which channel.

    python -m baselines.reproduce negotiation --budget cpu

Cao, Lazaridou, Lanctot, Leibo, Tuyls and Clark, "Emergent Communication through Negotiation",
ICLR 2018 (arXiv 1804.03980), train two REINFORCE agents (LSTM encoders, separate termination,
utterance and proposal policies, entropy bonuses) to divide a pool of 3 item types, with a
grounded *proposal* channel and an ungrounded *linguistic* channel (cheap talk: 6 tokens of a
10-symbol vocabulary), for self-interested agents (each rewarded by its own share) and prosocial
agents (both rewarded by the joint share), with each channel on or off. They report the joint
reward normalised by the best achievable division, and find: self-interested agents negotiate
through the proposal channel and do not ground cheap talk; prosocial agents learn to use the
linguistic channel. A public PyTorch reproduction (Hugh Perkins, github.com/asappresearch/
emergent-comms-negotiation, its ``README.md``) reports about 0.96 joint reward for prosocial
agents with both channels, 0.91 proposal only, 0.83 linguistic only, >= 0.90 neither, and
>= 0.80 for self-interested agents with both.

Here: ``Negotiation-v0`` (``dcgenv/envs/negotiation.py``) trained by MAPPO (``agents/mappo.py``,
``configs/results/negotiation_<budget>.yaml``, its ``agent`` section) with parameter sharing
(an agent-id input), a feed-forward actor (the observation holds the other agent's last
proposal and utterance, not the history) and only the active agent's action counted (the env's
``active`` mask is the learner's alive mask; the configs set ``turn_taking``, so an agent waiting
for its turn is not "gone": the proposer's return runs on to the reward of its accepted
proposal). Utterances are the actor's Gaussian logits
``[6, 10]``, sent by ``GumbelSoftmax`` in evaluation mode (the argmax token, straight through).
Every cell ``(reward, channels)`` of ``cells`` trains ``num_seeds`` seeds side by side in one
compiled program.

Per cell and seed, greedy (mode-action) play over ``eval_episodes`` episodes: the joint reward
(``info["joint_reward"]`` of the first episode of each of ``eval_episodes`` environments: the
paper's normalised joint reward, 0 without agreement), the agreement rate, the game length
(``turns``: env steps until agreement or the end, the accepting turn included, so 2 when the
first proposal is accepted; 4-10 without agreement) and ``first_accepted`` (the fraction of
games agent 1 ends by accepting agent 0's first proposal); then the same
policy with the *received* utterance zeroed (``joint_no_utterance``) and with the received
proposal zeroed (``joint_no_proposal``), so a drop says that channel carries what the agents
act on. Mean and standard deviation over seeds.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from agents import make_trainer
from agents import networks as nets
from agents.config import Config as AgentConfig
from agents.mappo import make_networks, observe

REWARDS = ("self-interested", "prosocial")
CHANNELS = {"both": {}, "proposal": {"linguistic": False},
            "linguistic": {"proposal": False}, "none": {"linguistic": False, "proposal": False}}
# Cao et al. 2018, Table 1 (joint reward, normalised): the paper's text could not be read here;
# the one value below is second hand, from the reproduction's explog.md ("the 0.92 reported in
# table 1", prosocial agents with both channels)
PAPER = {("prosocial", "both"): "0.92 (second hand)"}
# github.com/asappresearch/emergent-comms-negotiation README.md, "Results so far, summary"
REPRODUCTION = {("prosocial", "both"): "~0.96", ("prosocial", "proposal"): "~0.91",
                ("prosocial", "linguistic"): "~0.83", ("prosocial", "none"): ">= 0.90",
                ("self-interested", "both"): ">= 0.80"}


@dataclasses.dataclass(frozen=True)
class Config:
    """A budget of the row: the learner's config (``agents.config``; its ``env_kwargs`` are
    extended per cell) and the cells, each ``"<reward>/<channels>"`` with reward one of
    ``self-interested``, ``prosocial`` and channels one of ``both``, ``proposal``,
    ``linguistic``, ``none``."""

    agent: dict
    cells: tuple[str, ...] = tuple(f"{r}/{c}" for r in REWARDS for c in CHANNELS)


def parse_cell(cell: str) -> tuple[str, str]:
    """``"prosocial/both"`` -> ``("prosocial", "both")``; ValueError naming the allowed."""
    reward, _, channels = str(cell).partition("/")
    if reward not in REWARDS or channels not in CHANNELS:
        raise ValueError(f"baselines.negotiation: cell {cell!r} must be '<reward>/<channels>' "
                         f"with reward in {REWARDS} and channels in {tuple(CHANNELS)}")
    return reward, channels


def greedy_joint(trainer, params, episodes: int, key, mute_utterance, mute_proposal):
    """Greedy play of one seed's ``params`` over ``episodes`` environments (first episode of
    each): mean joint reward, agreement rate, game length in turns (the accepting turn
    included, so accepting the first proposal is 2 turns) and the fraction of games that end
    by accepting the first proposal; ``mute_*`` (0 or 1, traced) zero what the active agent
    receives on that channel before it acts."""
    config, env, env_params = trainer.config, trainer.env, trainer.env_params
    base = getattr(env, "_env", env)
    actor, _ = make_networks(config, base, env_params)
    n = base.num_agents
    width = config.hidden if config.encoder == "gru" else 1

    def act(carry, obs, reset, k):
        obs = {**obs, "utterance": obs["utterance"] * (1 - mute_utterance),
               "proposal": (obs["proposal"] * (1 - mute_proposal)).astype(jnp.int32)}
        x, alive = observe(obs, n, config.agent_id)
        carry, dists, _ = actor.apply(params["actor"], carry, x, alive, reset, k, False)
        return carry, nets.mode(dists)

    k_reset, key = jax.random.split(key)
    obs, state = jax.vmap(base.reset, in_axes=(0, None))(jax.random.split(k_reset, episodes),
                                                         env_params)

    def step(carry, k):
        obs, state, h, reset, seen, joint, agreed, turns = carry
        k_act, k_env = jax.random.split(k)
        h, action = jax.vmap(act)(h, obs, reset, jax.random.split(k_act, episodes))
        obs, state, _, term, trunc, info = jax.vmap(base.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_env, episodes), state, action, env_params)
        done = term | trunc
        joint = joint + jnp.where(seen, 0.0, info["joint_reward"])
        agreed = agreed + jnp.where(seen, 0.0, info["success"].astype(jnp.float32))
        turns = turns + jnp.where(seen, 0.0, 1.0)
        return (obs, state, h, done, seen | done, joint, agreed, turns), None

    zeros = jnp.zeros(episodes, jnp.float32)
    init = (obs, state, jnp.zeros((episodes, n, width)), jnp.ones(episodes, bool),
            jnp.zeros(episodes, bool), zeros, zeros, zeros)
    (*_, seen, joint, agreed, turns), _ = jax.lax.scan(
        step, init, jax.random.split(key, env_params.max_steps_in_episode))
    return {"joint_reward": joint.mean(), "agreement": agreed.mean(), "turns": turns.mean(),
            "first_accepted": jnp.mean((agreed > 0) & (turns == 2)), "episodes": seen.sum()}


def evaluate(trainer, params, episodes: int, seed: int = 0) -> list[dict]:
    """Per seed of the seed-batched ``params``: greedy joint reward, agreement, game length
    (``turns``) and first-proposal acceptance (``first_accepted``), and the joint reward with
    the received utterance / proposal zeroed."""
    key = jax.random.fold_in(jax.random.key(seed), 1)

    @jax.jit
    def all_modes(params):
        modes = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        one = lambda p, m: greedy_joint(trainer, p, episodes, key, m[0], m[1])
        return jax.vmap(lambda p: jax.vmap(lambda m: one(p, m))(modes))(params)

    out = jax.device_get(all_modes(params))
    return [{"joint_reward": float(out["joint_reward"][i, 0]),
             "agreement": float(out["agreement"][i, 0]),
             "turns": float(out["turns"][i, 0]),
             "first_accepted": float(out["first_accepted"][i, 0]),
             "joint_no_utterance": float(out["joint_reward"][i, 1]),
             "joint_no_proposal": float(out["joint_reward"][i, 2]),
             "episodes": int(out["episodes"][i, 0])}
            for i in range(trainer.config.num_seeds)]


def run_cell(values: dict, cell: str) -> dict:
    reward, channels = parse_cell(cell)
    env_kwargs = {**values.get("env_kwargs", {}), **CHANNELS[channels],
                  "prosocial": reward == "prosocial"}
    config = AgentConfig.from_dict({**values, "env_kwargs": env_kwargs})
    trainer = make_trainer(config)
    start = time.perf_counter()
    state = jax.jit(trainer.init)(jax.random.key(config.seed))  # one program, not eager ops
    state, metrics = trainer.run(state, config.num_updates)
    jax.block_until_ready(state)
    train_s = time.perf_counter() - start
    seeds = evaluate(trainer, state.runners.params, config.eval_episodes)
    print(f"negotiation: {cell}: trained {train_s:.0f} s, greedy joint reward "
          f"{np.mean([s['joint_reward'] for s in seeds]):.3f}", flush=True)
    summary = {}
    for name in ("joint_reward", "agreement", "turns", "first_accepted", "joint_no_utterance",
                 "joint_no_proposal"):
        column = np.array([s[name] for s in seeds], np.float64)
        summary[name] = {"mean": float(column.mean()), "std": float(column.std())}
    metrics = jax.device_get(metrics)
    return {"cell": cell, "reward": reward, "channels": channels, "train_seconds": train_s,
            "env_steps": int(config.num_envs * config.num_steps * config.num_updates
                             * config.num_seeds),
            "curve": {"update": np.asarray(metrics["iteration"]).tolist(),
                      "return": np.asarray(metrics["return"]).tolist(),
                      "agreement": np.asarray(metrics["success"]).tolist()},
            "summary": summary, "seeds": seeds,
            "reproduction": REPRODUCTION.get((reward, channels)),
            "paper": PAPER.get((reward, channels))}


def run(cfg: Config) -> dict:
    """Train and evaluate every cell of ``cfg``."""
    for cell in cfg.cells:
        parse_cell(cell)
    return {"cells": [run_cell(cfg.agent, cell) for cell in cfg.cells]}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    for row in result["cells"]:
        curve = row["curve"]
        steps = np.asarray(curve["update"], np.float64)
        left.plot(steps, curve["return"], ls="-" if row["reward"] == "prosocial" else "--",
                  label=row["cell"])
    left.set_xlabel("update")
    left.set_ylabel("training return per agent (seed mean)")
    left.set_title("training: prosocial = joint reward, self-interested = own share")
    left.legend(fontsize=7)
    names = [row["cell"] for row in result["cells"]]
    x = np.arange(len(names))
    for offset, key, label in ((-0.27, "joint_reward", "greedy"),
                               (0.0, "joint_no_utterance", "utterance zeroed"),
                               (0.27, "joint_no_proposal", "proposal zeroed")):
        right.bar(x + offset, [r["summary"][key]["mean"] for r in result["cells"]], 0.27,
                  yerr=[r["summary"][key]["std"] for r in result["cells"]], label=label)
    marks = [(i, float(REPRODUCTION[key].strip("~>= "))) for i, r in enumerate(result["cells"])
             if (key := (r["reward"], r["channels"])) in REPRODUCTION]
    if marks:
        right.plot(*zip(*marks, strict=True), "k*", ms=10, label="public reproduction")
    marks = [(i, float(PAPER[key].split()[0])) for i, r in enumerate(result["cells"])
             if (key := (r["reward"], r["channels"])) in PAPER]
    if marks:
        right.plot(*zip(*marks, strict=True), "rD", ms=7, label="paper (second hand)")
    right.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    right.set_ylim(0, 1.05)
    right.set_ylabel("greedy joint reward (normalised)")
    right.legend(fontsize=7, loc="lower left")
    fig.suptitle("Negotiation (Cao et al. 2018) with MAPPO: mean ± std over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(result: dict) -> str:
    lines = ["| agents | channels | joint reward (ours) | agreement | turns | first proposal "
             "accepted | utterance zeroed | proposal zeroed | paper (Table 1) | "
             "public reproduction |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["cells"]:
        s = row["summary"]
        cell = lambda k, s=s: f"{s[k]['mean']:.3f} ± {s[k]['std']:.3f}"
        lines.append(f"| {row['reward']} | {row['channels']} | {cell('joint_reward')} | "
                     f"{cell('agreement')} | {cell('turns')} | {cell('first_accepted')} | "
                     f"{cell('joint_no_utterance')} | "
                     f"{cell('joint_no_proposal')} | "
                     f"{PAPER.get((row['reward'], row['channels']), '—')} | "
                     f"{REPRODUCTION.get((row['reward'], row['channels']), '—')} |")
    return "\n".join(lines)


def reproduce(budget: str, out_dir) -> dict:
    """RESULTS.md row ``negotiation`` with ``configs/results/negotiation_<budget>.yaml``;
    writes the JSON and the figure."""
    from baselines import reproduce as rep

    return rep.run_row("negotiation", budget, out_dir, Config, run, plot,
                       lambda out, cfg: table(out),
                       lambda out: sum(row["env_steps"] for row in out["cells"]))
