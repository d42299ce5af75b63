"""Random-policy statistics of our Predator-Prey envs against the original implementations'.

The reference numbers are the originals' (IC3Net ``predator_prey_env.py``, ma-gym
``predator_prey.py``) over 4,000 uniformly-random-policy episodes each, measured as described
in ``docs/parity.md`` (``benchmarks/parity_predator_prey.py`` runs both sides at full size).
Here a modest number of our episodes must agree within 4 combined standard errors.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv.envs.predator_prey import mode_code

# (mean, standard error) of the originals, 4,000 episodes each
IC3NET_EASY = {
    "mixed": {"success": (0.026, 0.00252), "team_return": (-0.82583, 0.00292),
              "length": (19.855, 0.01796)},
    "cooperative": {"success": (0.02875, 0.00264), "team_return": (-0.55437, 0.00864)},
    "competitive": {"success": (0.0285, 0.00263), "team_return": (-0.68778, 0.00480)},
}
EASY = dcgenv.make("PredatorPrey-easy-v0")
MAGYM = {"success": (0.272, 0.00704), "team_return": (-12.14086, 0.158),
         "length": (88.71725, 0.36236), "captures": (1.04675, 0.01113)}


@partial(jax.jit, static_argnames=("env", "num_envs", "num_steps"))
def first_episodes(env, params, key, num_envs, num_steps):
    """Return, length and last-step ``info`` of the first episode of each random-policy env."""
    key_reset, key_run = jax.random.split(key)
    _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key_reset, num_envs),
                                                      params)

    def body(carry, key):
        state, ended, ret, length, last = carry
        key_act, key_step = jax.random.split(key)
        actions = jax.vmap(env.sample_actions, in_axes=(0, None))(
            jax.random.split(key_act, num_envs), params)
        _, state, reward, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(key_step, num_envs), state, actions, params)
        now = ~ended & (term | trunc)
        info = {k: info[k].astype(jnp.float32) for k in last}
        last = jax.tree.map(lambda new, old: jnp.where(now, new, old), info, last)
        return (state, ended | now, ret + jnp.where(ended, 0.0, reward.mean(-1)),
                length + ~ended, last), None

    keys = ("success", "captured") if hasattr(env, "num_prey") else ("success",)
    zeros = jnp.zeros(num_envs, jnp.float32)
    carry = (state, jnp.zeros(num_envs, bool), zeros, jnp.zeros(num_envs, jnp.int32),
             {k: zeros for k in keys})
    (_, ended, ret, length, last), _ = jax.lax.scan(body, carry,
                                                    jax.random.split(key_run, num_steps))
    return ended, {"team_return": ret, "length": length, **last}


def assert_agrees(ours, reference):
    for name, (ref_mean, ref_se) in reference.items():
        x = np.asarray(ours[name], np.float64)
        se = x.std(ddof=1) / np.sqrt(len(x))
        tol = 4 * np.hypot(se, ref_se)
        assert abs(x.mean() - ref_mean) <= tol, (name, x.mean(), ref_mean, tol)


@pytest.mark.parametrize("mode", ["mixed", "cooperative", "competitive"])
def test_ic3net_easy_matches_original(mode):
    env, params = EASY  # one env object: the three modes share one compilation
    params = params.replace(mode=mode_code(mode))
    ended, stats = first_episodes(env, params, jax.random.key(11), 1500, 20)
    assert bool(ended.all())
    assert_agrees(stats, IC3NET_EASY[mode])


def test_magym_matches_original():
    env, params = dcgenv.make("PredatorPrey-magym-v0")
    ended, stats = first_episodes(env, params, jax.random.key(12), 1000, 100)
    assert bool(ended.all())
    assert_agrees({**stats, "captures": stats["captured"]}, MAGYM)
