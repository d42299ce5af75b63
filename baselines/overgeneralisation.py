"""Why independent Q-learners keep away from the prey on ma-gym's Predator-Prey: relative
overgeneralisation, measured with scripted predators.

    python -m baselines.overgeneralisation                 # 1,000 episodes per point
    python -m baselines.overgeneralisation --episodes 200 --out /tmp/og

On ``PredatorPrey-magym-v0`` (7x7, 4 predators, 2 prey; every agent gets -0.01 a step, -0.75
per prey with exactly one predator next to it, +5 per prey with two or more, which is then
captured; 100 steps) one predator, the *focal* one (agent 0), plays a fixed policy and its three
*teammates* play a base policy, each replaced by a uniformly random action with probability
``eps`` (as an epsilon-greedy learner whose greedy policy is the base). Three policies, read
from the state (scripted, no learning):

- ``chase``: step towards the nearest live prey and stay next to it (what a predator can do
  from its own observation, which shows prey within its 5x5 window);
- ``pounce``: the coordinated version: wait two steps from the prey and step next to it only
  when another predator is also within two steps, so that both arrive together. It reads the
  other predators' cells, which no observation shows: this is what messages could add;
- ``avoid``: stay, or the first move whose cell is next to no live prey (the penalty is
  counted after the predators move and before the prey do, and a prey never moves next to a
  predator, so an avoider that is not blocked never draws it). The greedy policy every IQL
  config of ``docs/iql.md`` converged to (team return -1.00: 100 steps at -0.01).

For each base and ``eps`` on a grid the script plays ``--episodes`` episodes with each focal
policy (the same keys for all three) and reports the team return per episode (rewards are
shared: every agent gets the same), success, captures and single-predator penalty steps. The
focal policy with the highest return is the best response to those teammates: what an
independent learner's greedy policy converges to when its Q-values average over its teammates'
exploration. Relative overgeneralisation (Panait et al. 2006; Wei & Luke 2016) is the case where
that best response is to keep away, although predators that approach together would capture.
Writes ``baselines/results/overgeneralisation.json`` and ``docs/images/overgeneralisation.png``
(``--out`` puts both elsewhere); ``docs/iql.md`` reads them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import dcgenv
from dcgenv.envs.predator_prey_magym import MOVES

ROOT = Path(__file__).resolve().parents[1]
EPS = tuple(round(0.1 * i, 1) for i in range(11))
BASES = ("chase", "pounce", "avoid")
FAR = 1 << 20


def _cells(env, state, i):
    """The 5 cells predator ``i`` would move to (a move off the grid keeps it in place)."""
    cells = state.predators[i] + jnp.asarray(MOVES)
    inside = jnp.all((cells >= 0) & (cells < env.size), -1, keepdims=True)
    return jnp.where(inside, cells, state.predators[i])


def _prey_dist(state, cells):
    """Manhattan distance of each of ``cells`` [..., 2] to each live prey: [..., p]."""
    dist = jnp.abs(cells[..., None, :] - state.prey).sum(-1)
    return jnp.where(state.prey_alive, dist, FAR)


def _free(env, state, i, cells):
    """Which of ``cells`` [5, 2] no other predator stands on."""
    others = jnp.arange(env.num_agents) != i
    return ~jnp.any(jnp.all(cells[:, None] == state.predators, -1) & others, -1)


def avoid(env, state, i):
    """Stay, or the first move (down, left, up, right) onto a cell next to no live prey."""
    bad = (_prey_dist(state, _cells(env, state, i)) <= 1).any(-1)
    order = jnp.array([4, 0, 1, 2, 3])
    return order[jnp.argmin(bad[order])]  # the first cell that is not bad (else stay)


def chase(env, state, i):
    """Uninformed: the move into a free cell that brings the predator closest (Manhattan) to
    the nearest live prey (ties: down, left, up, right, stay), staying once next to it. Needs
    the prey's cell only, which the observation shows when the prey is in the 5x5 window."""
    d_all = _prey_dist(state, state.predators)
    near = jnp.argmin(d_all[i])
    cells = _cells(env, state, i)
    to_prey = jnp.abs(cells - state.prey[near]).sum(-1)
    prey_cell = (_prey_dist(state, cells) == 0).any(-1)
    move = jnp.argmin(jnp.where(_free(env, state, i, cells) & ~prey_cell, to_prey, FAR))
    act = jnp.where(d_all[i, near] <= 1, 4, move)
    return jnp.where(jnp.any(state.prey_alive), act, 4)


def pounce(env, state, i):
    """Coordinated: wait two steps from the nearest live prey, and step next to it only when
    another predator is also two steps (or one) from it, so that both arrive on the same step;
    approach on cells next to no prey, and step away when next to a prey alone. Reads the
    other predators' cells, which ma-gym's observations do not show (messages could)."""
    d_all = _prey_dist(state, state.predators)  # [n, p]
    near = jnp.argmin(d_all[i])
    d = d_all[:, near]  # every predator's distance to this prey
    others = jnp.arange(env.num_agents) != i
    partner = jnp.any(others & (d <= 2))
    cells = _cells(env, state, i)
    to_prey = jnp.abs(cells - state.prey[near]).sum(-1)
    clear = (_prey_dist(state, cells) >= 2).all(-1)  # next to no live prey
    free = _free(env, state, i, cells)
    approach = jnp.argmin(jnp.where(clear & free, to_prey, FAR))
    step_in = jnp.argmin(jnp.where((to_prey == 1) & free, 0, 1))
    act = jnp.where(d[i] >= 3, approach, 4)
    act = jnp.where((d[i] == 2) & partner, step_in, act)
    act = jnp.where((d[i] == 1) & ~partner, avoid(env, state, i), act)
    return jnp.where(jnp.any(state.prey_alive), act, 4)


POLICIES = {"chase": chase, "pounce": pounce, "avoid": avoid}


def episode(env, params, key, focal: str, base: str, eps):
    """One episode: ``(team return, success, captures, penalty steps)``."""
    k_reset, k_run = jax.random.split(key)
    _, state = env.reset(k_reset, params)
    n = env.num_agents

    def step(carry, k):
        state, running, ret, pen = carry
        k_env, k_eps, k_rand = jax.random.split(k, 3)
        acts = jnp.stack([POLICIES[focal if i == 0 else base](env, state, i) for i in range(n)])
        rand = jax.random.randint(k_rand, (n,), 0, 5)
        explore = (jax.random.uniform(k_eps, (n,)) < eps) & (jnp.arange(n) > 0)
        acts = jnp.where(explore, rand, acts)
        alive = state.prey_alive
        _, state, reward, term, trunc, _ = env.transition(k_env, state, acts, params)
        r = reward[0]
        # the step's reward is step_cost + captures * capture_reward + touches * penalty
        caught = (alive & ~state.prey_alive).sum()
        touches = jnp.round((r - params.step_cost - caught * params.capture_reward)
                            / params.penalty)
        return (state, running & ~(term | trunc), ret + running * r,
                pen + running * touches), None

    (state, _, ret, pen), _ = jax.lax.scan(
        step, (state, jnp.ones((), bool), jnp.zeros(()), jnp.zeros(())),
        jax.random.split(k_run, params.max_steps_in_episode))
    captured = (~state.prey_alive).sum()
    return ret, captured == env.num_prey, captured, pen


def measure(episodes: int = 1000, eps=EPS, seed: int = 0) -> dict:
    """Per base and ``eps``: mean team return, success, captures and single-predator penalty
    steps per episode for each (base, focal) pair of policies (the same keys for all)."""
    env, params = dcgenv.make("PredatorPrey-magym-v0")
    keys = jax.random.split(jax.random.key(seed), episodes)
    out = {}
    for base in BASES:
        for focal in BASES:
            run = jax.jit(jax.vmap(jax.vmap(
                lambda k, e, f=focal, b=base: episode(env, params, k, f, b, e),
                in_axes=(0, None)), in_axes=(None, 0)))
            ret, succ, capt, pen = run(keys, jnp.asarray(eps, jnp.float32))
            out[f"{base}/{focal}"] = {
                "return": np.asarray(ret.mean(1)).tolist(),
                "return_se": np.asarray(ret.std(1) / np.sqrt(episodes)).tolist(),
                "success": np.asarray(succ.mean(1)).tolist(),
                "captures": np.asarray(capt.mean(1)).tolist(),
                "penalty_steps": np.asarray(pen.mean(1)).tolist()}
    return {"eps": list(eps), "episodes": episodes, "seed": seed, "runs": out}


def best(result: dict, base: str) -> list[str]:
    """The focal policy with the highest mean return, per ``eps``, against ``base``."""
    rets = np.array([result["runs"][f"{base}/{f}"]["return"] for f in BASES])
    return [BASES[j] for j in rets.argmax(0)]


def table(result: dict) -> str:
    lines = ["| teammates | eps | focal chase | focal pounce | focal avoid | best response |",
             "|---|---|---|---|---|---|"]
    for base in BASES:
        br = best(result, base)
        for j, e in enumerate(result["eps"]):
            cells = [f"{result['runs'][f'{base}/{f}']['return'][j]:.2f} ± "
                     f"{result['runs'][f'{base}/{f}']['return_se'][j]:.2f}" for f in BASES]
            lines.append(f"| {base} | {e:.1f} | " + " | ".join(cells) + f" | {br[j]} |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = np.asarray(result["eps"])
    fig, axes = plt.subplots(1, len(BASES), figsize=(12, 3.8), sharey=True)
    for ax, base in zip(axes, BASES, strict=True):
        for focal in BASES:
            run = result["runs"][f"{base}/{focal}"]
            ret, se = np.asarray(run["return"]), np.asarray(run["return_se"])
            ax.plot(eps, ret, marker="o", ms=3, label=f"focal {focal}")
            ax.fill_between(eps, ret - 2 * se, ret + 2 * se, alpha=0.2)
        ax.axhline(-1.0, color="grey", lw=0.8, ls=":")
        ax.set_title(f"teammates: {base}, eps-random")
        ax.set_xlabel("teammates' eps (probability of a random action)")
    axes[0].set_ylabel("team return per episode")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"PredatorPrey-magym-v0, scripted predators, {result['episodes']} episodes "
                 "per point (band: ±2 s.e.)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000, help="episodes per point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None,
                        help="folder for the JSON and the figure (default: the repo's)")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes: got {args.episodes}; allowed: an integer >= 1")
    start = time.time()
    result = measure(args.episodes, EPS, args.seed)
    result.update(command="python -m baselines.overgeneralisation"
                  + (f" --episodes {args.episodes}" if args.episodes != 1000 else ""),
                  wall_s=round(time.time() - start, 1),
                  best_response={b: best(result, b) for b in BASES})
    out = Path(args.out) if args.out else None
    json_path = (out or ROOT / "baselines" / "results") / "overgeneralisation.json"
    fig_path = (out or ROOT / "docs" / "images") / "overgeneralisation.png"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1))
    plot(result, fig_path)
    print(table(result))
    print(f"wrote {json_path} and {fig_path} ({result['wall_s']} s)")
    return result


if __name__ == "__main__":
    main()
