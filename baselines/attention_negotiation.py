"""Gradient-aware attention on a bargaining game: one round of Cao et al.'s prosocial
negotiation, made differentiable (issue 22, its bargaining game).

    python -m baselines.reproduce attention_negotiation --budget cpu
    python -m baselines.attention_negotiation --budget smoke

The ablation of ``baselines/attention_referential.py`` (same learner, same cells, same
measures; its module docstring describes them) on a game where the message must carry private
values for the team to bargain well. Games are drawn as ``Negotiation-v0`` draws them
(``dcgenv/envs/negotiation.py``, after Cao, Lazaridou, Lanctot, Leibo, Tuyls and Clark,
"Emergent Communication through Negotiation", ICLR 2018): a pool of 3 item types, each count
uniform in ``{0..5}``, and private utilities uniform over the non-zero vectors of
``{0..10}^3``, one per agent. Agent A (the speaker) sees its utilities and the pool and sends
one message of ``L`` tokens of ``d`` reals (the ``continuous`` channel: the message arrives as
sent). Agent B (the listener) sees its own utilities and the pool, hears the message and divides
the pool: it picks one of the 8 all-or-nothing allocations ``a in {0, 1}^3`` (``a_k = 1``: all
items of type ``k`` to A, else to B), and both receive the prosocial joint reward of
``Negotiation-v0``

    joint(a) = sum_k pool_k (a_k u_Ak + (1 - a_k) u_Bk) / sum_k pool_k max(u_Ak, u_Bk)

(0 when the pool is worth nothing to both). The best division gives each type to the agent who
values it more, and every best division is all-or-nothing per type, so the best of the 8
candidates reaches 1: B needs A's utilities, which only the message carries. Each allocation is
a listener candidate with features ``(a, pool / 5, u_B / 10)``; the speaker's input is
``(u_A / 10, pool / 5)``. Reward for learning: ``E_p[joint] = sum_a softmax(logits)_a
joint(a)``, differentiable in the message, so the loss ``-log E_p[joint]`` reaches the speaker
pathwise (a receiver-to-sender gradient, the DCG programme's point). Measured: the success rate
(B's argmax allocation is a best one; "accuracy" in the shared code and tables) and the greedy
joint reward (``joint`` of the argmax allocation, the paper's normalised joint reward).

Deviation from the paper's game, on purpose: one round (A talks, B divides, the division is
accepted), no proposal channel and no turn limit, so the message is the only channel and the
game is a pure test of what the aggregation over its tokens does. ``tests/
test_attention_negotiation.py`` checks ``joint`` against ``Negotiation-v0``'s own
``info["joint_reward"]`` when B claims its allocation and A accepts.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import dcgenv
from dcgenv.envs.negotiation import MAX_ITEMS, MAX_UTILITY, NUM_TYPES

ROW = "attention_negotiation"
ALLOCATIONS = np.array(list(itertools.product((0, 1), repeat=NUM_TYPES)), np.float32)  # [8, 3]


def joint_rewards(pool: jax.Array, utilities: jax.Array) -> jax.Array:
    """``joint(a)`` of every all-or-nothing allocation: ``pool [3]``, ``utilities [2, 3]``
    (A, B) -> ``[8]`` in the order of :data:`ALLOCATIONS`."""
    pool, u = pool.astype(jnp.float32), utilities.astype(jnp.float32)
    values = jnp.asarray(ALLOCATIONS) @ (pool * u[0]) + (1 - jnp.asarray(ALLOCATIONS)) @ (
        pool * u[1])
    best = jnp.sum(pool * u.max(0))
    return jnp.where(best > 0, values / jnp.maximum(best, 1.0), 0.0)


def sample(key: jax.Array, batch: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``batch`` games drawn by ``Negotiation-v0``'s reset: the speaker's inputs ``[B, 6]``,
    the listener's candidates ``[B, 8, 9]`` and their joint rewards ``[B, 8]``."""
    env, params = dcgenv.make("Negotiation-v0", prosocial=True)
    obs, _ = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, batch), params)
    pool = obs["pool"][:, 0].astype(jnp.float32)  # [B, 3]
    u = obs["utilities"].astype(jnp.float32)  # [B, 2, 3]
    speaker = jnp.concatenate([u[:, 0] / MAX_UTILITY, pool / MAX_ITEMS], -1)
    n = len(ALLOCATIONS)
    own = jnp.concatenate([pool / MAX_ITEMS, u[:, 1] / MAX_UTILITY], -1)  # [B, 6]
    candidates = jnp.concatenate([jnp.broadcast_to(jnp.asarray(ALLOCATIONS), (batch, n, 3)),
                                  jnp.broadcast_to(own[:, None], (batch, n, 6))], -1)
    return speaker, candidates, jax.vmap(joint_rewards)(pool, u)


def reproduce(budget: str, out_dir) -> dict:
    """RESULTS.md row ``attention_negotiation``: ``baselines.attention_referential``'s run,
    table and figures with ``game: negotiation`` (``configs/results/attention_negotiation_
    <budget>.yaml``)."""
    from baselines import attention_referential as ar
    from baselines import reproduce as rep

    def run(cfg):
        if cfg.game != "negotiation":
            raise ValueError(f"{ROW}: its configs need game: negotiation, got {cfg.game!r}")
        return ar.run(cfg)

    return rep.run_row(ROW, budget, out_dir, ar.Config, run, ar.plot, ar.table,
                       lambda result: result["env_steps"])


def main(argv: list[str] | None = None) -> dict:
    from baselines import reproduce as rep

    parser = argparse.ArgumentParser(prog="python -m baselines.attention_negotiation",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=rep.BUDGETS, default="cpu")
    parser.add_argument("--out", default=str(rep.RESULTS), help="folder for the JSON")
    args = parser.parse_args(argv)
    return reproduce(args.budget, Path(args.out))


if __name__ == "__main__":
    main()
