"""Learned bargaining in ``Rubinstein-v0`` against its subgame-perfect split (RESULTS.md, row 2).

    python -m baselines.reproduce rubinstein --budget cpu

Rubinstein (1982, "Perfect equilibrium in a bargaining model", Econometrica 50(1)): with no
round cap the unique subgame-perfect equilibrium (SPE) agrees at once and gives the first
proposer ``(1 - d2) / (1 - d1 d2)``. ``Rubinstein-v0`` ends the game after ``max_rounds``
rounds (a params field, 10 by default; it terminates, it never truncates), and that finite game
has another SPE, found by backward induction (the last proposer takes everything):
:func:`dcgenv.envs.rubinstein.spe_share` computes both. Two learners, for each ``(d1, d2)``
pair, seeds vmapped:

- ``pathwise``: gradient play through ``Rubinstein-v0`` with ``smooth_accept=True``. Each
  player has, per round, a claim ``sigmoid(a_t)`` for when it proposes and an acceptance
  threshold ``h_t`` for when it responds; it accepts with probability
  ``sigmoid((offered share - h_t) / tau)``, ``tau`` annealed geometrically from ``tau_start``
  to ``tau_end``. Each player follows the gradient of *its own* expected payoff with respect to
  *its own* parameters only (simultaneous gradient play, Adam). Subgame perfection needs
  off-path rounds to be played well too, so the payoff summed is over the subgames that start
  at every round ``t`` (the env's state with ``time = 2 t``, then ``env.transition`` until
  the game ends); without them the later rounds' parameters get a vanishing gradient once round
  0 agrees.
- ``ppo``: ``agents/mappo.py`` (MAPPO, centralised critic, each player its own reward) on the
  registered ``Rubinstein-v0`` with hard acceptance (accept iff ``accept > 0.5``), one run per
  pair (its ``(d1, d2)`` as ``env_kwargs``, :func:`ppo_config`), seeds vmapped. The scalar
  ``offer`` and ``accept`` boxes get 0-d Gaussian heads (``agents.networks``): one scalar per
  agent, not clipped by the learner; the env clips ``offer`` to ``[0, 1]``.

The learned first-offer share is player 1's round-0 claim (``sigmoid(a_0)``; for PPO the mean
of its Gaussian, clipped to [0, 1] as the env does), compared with both SPE shares.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dcgenv
from dcgenv import checks
from dcgenv.envs.rubinstein import spe_share

DEFAULT_PAIRS = ((0.9, 0.9), (0.9, 0.5), (0.5, 0.9), (0.8, 0.95), (0.95, 0.8), (0.6, 0.7))


def spe_first_share(d1: float, d2: float, rounds: int | None = None) -> float:
    """Player 1's SPE share as the first proposer: ``(1 - d2) / (1 - d1 d2)`` with no cap, or
    the ``rounds``-round game's by backward induction (``spe_share``)."""
    checks.real("rubinstein", "d1", d1, 0, 1)
    checks.real("rubinstein", "d2", d2, 0, 1)
    if rounds is None and d1 * d2 >= 1:
        raise ValueError(f"rubinstein: the uncapped SPE needs d1 * d2 < 1, got d1 = {d1}, "
                         f"d2 = {d2}")
    return float(spe_share(d1, d2, rounds))


@dataclasses.dataclass(frozen=True)
class Config:
    pairs: tuple[tuple[float, float], ...] = DEFAULT_PAIRS
    max_rounds: int = 10
    num_seeds: int = 3
    # pathwise gradient play
    iters: int = 3000
    lr: float = 0.03
    lr_end: float = 3e-4  # cosine decay of Adam's step size
    tau_start: float = 0.05
    threshold_init: float = 0.0  # start accepting almost anything
    threshold_lr_scale: float = 0.2  # responders move slower than proposers (two timescales)
    tau_end: float = 1e-3
    # PPO (agents/mappo.py), one run per pair; 0 updates skips it
    ppo_updates: int = 300  # per pair
    ppo_num_envs: int = 64
    ppo_num_steps: int = 20
    ppo_lr: float = 3e-3
    ppo_ent_coef: float = 0.001
    # MAPPO's turn_taking: the proposer, inactive while the other answers, keeps its return
    # trace, so an accepted claim is credited with the share it won (false: cut there, and the
    # claim earns 0, as in the row's results before 2 Dec 2026)
    ppo_turn_taking: bool = True
    seed: int = 0

    def __post_init__(self):
        if len(self.pairs) < 1:
            raise ValueError("rubinstein: pairs must hold at least one (d1, d2) pair")
        for d1, d2 in self.pairs:
            spe_first_share(d1, d2)
        checks.integer("rubinstein", "max_rounds", self.max_rounds, 1)
        checks.integer("rubinstein", "num_seeds", self.num_seeds, 1)
        checks.integer("rubinstein", "iters", self.iters, 2)
        checks.integer("rubinstein", "ppo_updates", self.ppo_updates, 0)


# ---------------------------------------------------------------------------------------------
# pathwise gradient play


def _policy(theta, obs, tau, rounds: int):
    """Both players' actions from their per-round claim logits and thresholds ``[2, R]``."""
    rnd = jnp.clip(obs["round"], 0, rounds - 1)
    idx = jnp.arange(2)
    claim = jax.nn.sigmoid(theta["claim"][idx, rnd])
    accept = jax.nn.sigmoid((obs["offer"] - theta["threshold"][idx, rnd]) / tau)
    return {"offer": claim, "accept": accept}


def subgame_returns(theta, env, params, tau, rounds: int):
    """Each player's expected payoff summed over the subgames starting at rounds 0..R-1 ``[2]``
    (discounted from round 0, as the env pays)."""
    def from_round(t):
        _, state = env.reset(jax.random.key(0), params)
        state = state.replace(time=jnp.asarray(2 * t, jnp.int32))

        def step(carry, _):
            state, live, total = carry
            obs = env.get_obs(state, params)
            _, state, reward, terminated, _, _ = env.transition(
                jax.random.key(0), state, _policy(theta, obs, tau, rounds), params)
            return (state, live & ~terminated, total + live * reward), None
        (_, _, total), _ = jax.lax.scan(step, (state, jnp.ones((), bool), jnp.zeros(2)), None,
                                        length=2 * rounds)
        return total
    return jnp.sum(jax.vmap(from_round)(jnp.arange(rounds)), 0)


def make_pathwise(cfg: Config):
    """``run(key, d1, d2)``, ``d1``/``d2`` ``[P]``: a dict of ``[P, seeds, ...]`` arrays, player
    1's first claim ``first_share``, player 2's probability of accepting it ``accept_round0``
    (at ``tau_end``), each player's per-round ``claims`` and ``thresholds`` ``[2, R]``."""
    env, base = dcgenv.make("Rubinstein-v0", smooth_accept=True)
    R = cfg.max_rounds
    opt = optax.adam(optax.cosine_decay_schedule(cfg.lr, cfg.iters, cfg.lr_end / cfg.lr))

    def one(key, d1, d2):
        params = base.replace(delta1=d1, delta2=d2, max_rounds=R, max_steps_in_episode=2 * R)
        k1, k2 = jax.random.split(key)
        theta = {"claim": 0.5 * jax.random.normal(k1, (2, R)),
                 "threshold": cfg.threshold_init + 0.05 * jax.random.normal(k2, (2, R))}

        def update(carry, k):
            theta, opt_state = carry
            tau = cfg.tau_start * (cfg.tau_end / cfg.tau_start) ** (k / (cfg.iters - 1))
            jac = jax.jacrev(lambda th: subgame_returns(th, env, params, tau, R))(theta)
            # player i ascends its own payoff in its own parameters (row i of each leaf)
            grads = jax.tree.map(lambda j: -jnp.stack([j[0, 0], j[1, 1]]), jac)
            updates, opt_state = opt.update(grads, opt_state, theta)
            updates["threshold"] = cfg.threshold_lr_scale * updates["threshold"]
            return (optax.apply_updates(theta, updates), opt_state), None

        (theta, _), _ = jax.lax.scan(update, (theta, opt.init(theta)),
                                     jnp.arange(cfg.iters, dtype=jnp.float32))
        first_claim = jax.nn.sigmoid(theta["claim"][0, 0])
        accept0 = jax.nn.sigmoid((1 - first_claim - theta["threshold"][1, 0]) / cfg.tau_end)
        return {"first_share": first_claim, "accept_round0": accept0,
                "claims": jax.nn.sigmoid(theta["claim"]), "thresholds": theta["threshold"]}

    @jax.jit
    def run(key, d1, d2):  # d1, d2: [P]; out: [P, seeds, ...]
        keys = jax.random.split(key, cfg.num_seeds)
        return jax.vmap(lambda a, b: jax.vmap(lambda k: one(k, a, b))(keys))(d1, d2)

    return run


# ---------------------------------------------------------------------------------------------
# PPO with hard acceptance


def ppo_config(cfg: Config, d1: float, d2: float):
    """The MAPPO config of one ``(d1, d2)`` pair: ``Rubinstein-v0`` itself, the pair and the
    round cap as ``env_kwargs`` (its scalar ``offer``/``accept`` boxes get 0-d Gaussian heads,
    :mod:`agents.networks`)."""
    from agents.config import PPOConfig

    return PPOConfig(
        env="Rubinstein-v0", env_kwargs={"delta1": float(d1), "delta2": float(d2),
                                         "max_rounds": cfg.max_rounds,
                                         "max_steps_in_episode": 2 * cfg.max_rounds},
        algorithm="mappo", comm="none", hidden=64, num_envs=cfg.ppo_num_envs,
        num_steps=cfg.ppo_num_steps, num_updates=max(cfg.ppo_updates, 1), lr=cfg.ppo_lr,
        ent_coef=cfg.ppo_ent_coef, gamma=1.0, gae_lambda=0.95, num_minibatches=4,
        turn_taking=cfg.ppo_turn_taking,
        num_seeds=cfg.num_seeds, seed=cfg.seed, log_every=max(cfg.ppo_updates, 1))


def run_ppo(cfg: Config) -> dict[str, Any]:
    """Train MAPPO on each pair (one run per pair, seeds vmapped, ``ppo_updates`` updates
    each); per pair and seed, player 1's greedy round-0 claim (clipped to [0, 1] as the env
    does) and whether player 2's greedy response accepts it (``accept > 0.5``), and the last
    update's mean training team return (the mean of the two players' episode returns: 0.5
    when every episode agrees in round 0)."""
    from agents import make_trainer, mappo
    from agents import networks as nets

    claims, accepts, returns = [], [], []
    for d1, d2 in cfg.pairs:
        config = ppo_config(cfg, d1, d2)
        trainer = make_trainer(config)
        state = trainer.init(jax.random.key(cfg.seed))
        state, metrics = jax.jit(trainer.run, static_argnums=1)(state, cfg.ppo_updates)
        env, env_params = config.environment  # the game itself (no LogWrapper)
        actor, _ = mappo.make_networks(config, env, env_params)

        def greedy_round0(params, env=env, env_params=env_params, actor=actor,
                          agent_id=config.agent_id):
            def act(obs, reset, key):
                x, alive = mappo.observe(obs, env.num_agents, agent_id)
                _, dists, _ = actor.apply(params["actor"], jnp.zeros((env.num_agents, 1)), x,
                                          alive, reset, key, False)
                return nets.mode(dists)
            obs, s = env.reset(jax.random.key(0), env_params)
            action = act(obs, True, jax.random.key(0))
            obs, *_ = env.step(jax.random.key(1), s, action, env_params)
            return (jnp.clip(action["offer"][0], 0.0, 1.0),
                    act(obs, False, jax.random.key(1))["accept"][1] > 0.5)

        claim, accept = jax.jit(jax.vmap(greedy_round0))(state.runners.params)
        claims.append(np.asarray(claim))
        accepts.append(np.asarray(accept, float))
        returns.append(float(np.asarray(metrics["return"])[-1]))
    return {"first_share": np.stack(claims), "accept_round0": np.stack(accepts),
            "train_return": returns}


# ---------------------------------------------------------------------------------------------


def run(cfg: Config, log=print) -> dict[str, Any]:
    """Both learners on every pair; table rows with the SPE shares and relative errors."""
    d1 = jnp.asarray([p[0] for p in cfg.pairs], jnp.float32)
    d2 = jnp.asarray([p[1] for p in cfg.pairs], jnp.float32)
    start = time.perf_counter()
    path = jax.tree.map(np.asarray, jax.block_until_ready(
        make_pathwise(cfg)(jax.random.key(cfg.seed), d1, d2)))
    pathwise_wall = time.perf_counter() - start
    ppo_wall, ppo = 0.0, None
    if cfg.ppo_updates:
        t0 = time.perf_counter()
        ppo = run_ppo(cfg)
        ppo_wall = time.perf_counter() - t0
    rows = []
    for i, (a, b) in enumerate(cfg.pairs):
        finite = spe_first_share(a, b, cfg.max_rounds)
        infinite = spe_first_share(a, b)
        share = path["first_share"][i]
        row = {"d1": a, "d2": b, "spe_finite": finite, "spe_infinite": infinite,
               "pathwise_share": share.tolist(),
               "pathwise_share_mean": float(share.mean()),
               "pathwise_share_std": float(share.std()),
               "pathwise_rel_err_finite": float(abs(share.mean() - finite) / finite),
               "pathwise_rel_err_infinite": float(abs(share.mean() - infinite) / infinite),
               "pathwise_accept_round0": path["accept_round0"][i].tolist()}
        if ppo is not None:
            s = ppo["first_share"][i]
            row.update({"ppo_share": s.tolist(), "ppo_share_mean": float(s.mean()),
                        "ppo_share_std": float(s.std()),
                        "ppo_rel_err_finite": float(abs(s.mean() - finite) / finite),
                        "ppo_rel_err_infinite": float(abs(s.mean() - infinite) / infinite),
                        "ppo_accept_round0": ppo["accept_round0"][i].tolist(),
                        "ppo_train_return": ppo["train_return"][i]})
        rows.append(row)
        log(f"d1 {a:.2f} d2 {b:.2f}  SPE {finite:.4f} ({cfg.max_rounds} rounds) / "
            f"{infinite:.4f} (no cap)  pathwise {row['pathwise_share_mean']:.4f} ± "
            f"{row['pathwise_share_std']:.4f}"
            + (f"  PPO {row['ppo_share_mean']:.4f} ± {row['ppo_share_std']:.4f}"
               if cfg.ppo_updates else ""))
    n_pairs, R = len(cfg.pairs), cfg.max_rounds
    return {
        "rows": rows, "pathwise_wall_s": pathwise_wall, "ppo_wall_s": ppo_wall,
        # pathwise: every update plays R subgames of at most 2R steps, per pair and seed
        "pathwise_env_steps": int(cfg.iters * R * 2 * R * n_pairs * cfg.num_seeds),
        # PPO: one run per pair
        "ppo_env_steps": int(cfg.ppo_updates * cfg.ppo_num_envs * cfg.ppo_num_steps
                             * cfg.num_seeds * n_pairs),
        "pathwise_within_1pct_finite": all(r["pathwise_rel_err_finite"] <= 0.01 for r in rows),
        "ppo_within_1pct_finite": (all(r["ppo_rel_err_finite"] <= 0.01 for r in rows)
                                   if cfg.ppo_updates else None),
    }


def plot(out: dict, path) -> None:
    """Learned first-offer share against the SPE shares, one point per pair."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = out["rows"]
    fig, ax = plt.subplots(figsize=(5, 4.2))
    fin = [r["spe_finite"] for r in rows]
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.errorbar(fin, [r["pathwise_share_mean"] for r in rows],
                yerr=[r["pathwise_share_std"] for r in rows], fmt="o", label="pathwise")
    if "ppo_share_mean" in rows[0]:
        ax.errorbar(fin, [r["ppo_share_mean"] for r in rows],
                    yerr=[r["ppo_share_std"] for r in rows], fmt="s", label="PPO (hard)")
    ax.set(xlabel="SPE first-offer share (finite horizon)", ylabel="learned share",
           title="Rubinstein-v0")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(out: dict) -> str:
    """The RESULTS.md table (markdown) of a :func:`run` result."""
    ppo = "ppo_share_mean" in out["rows"][0]
    lines = ["| d1 | d2 | SPE, finite horizon | SPE, no cap | pathwise share | rel. error "
             "(finite / no cap) |" + (" PPO share | rel. error (finite / no cap) |" if ppo else ""),
             "|---|---|---|---|---|---|" + ("---|---|" if ppo else "")]
    for r in out["rows"]:
        line = (f"| {r['d1']} | {r['d2']} | {r['spe_finite']:.4f} | {r['spe_infinite']:.4f} | "
                f"{r['pathwise_share_mean']:.4f} ± {r['pathwise_share_std']:.4f} | "
                f"{r['pathwise_rel_err_finite']:.2%} / {r['pathwise_rel_err_infinite']:.2%} |")
        if ppo:
            line += (f" {r['ppo_share_mean']:.4f} ± {r['ppo_share_std']:.4f} | "
                     f"{r['ppo_rel_err_finite']:.2%} / {r['ppo_rel_err_infinite']:.2%} |")
        lines.append(line)
    return "\n".join(lines)


def reproduce(budget: str, out_dir) -> dict:
    """RESULTS.md row ``rubinstein``: both learners with ``configs/results/
    rubinstein_<budget>.yaml``; writes the JSON and the figure."""
    from baselines import reproduce as rep
    return rep.run_row("rubinstein", budget, out_dir, Config, run, plot,
                       lambda out, cfg: table(out),
                       lambda out: out["pathwise_env_steps"] + out["ppo_env_steps"])
