"""Batched rollouts: ``num_envs`` environments for ``num_steps`` under ``vmap`` + ``lax.scan``.

Used by the tests, the benchmarks and the demo, and meant for users::

    traj, (obs, state) = dcgenv.rollout(env, params, key, num_envs=1024, num_steps=100)

``policy(key, obs) -> actions`` acts for one environment (``obs`` and ``actions`` are
agent-stacked); it is vmapped over environments. ``None`` samples uniformly random actions
from ``env.action_space(params)``. The result's leaves are ``[num_steps, num_envs, ...]``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
from flax import struct

from dcgenv.core import MultiAgentEnv

Policy = Callable[[jax.Array, Any], Any]


@struct.dataclass
class Transition:
    obs: Any  # the observation the actions were chosen from
    actions: Any
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    info: dict[str, Any]


def random_policy(env: MultiAgentEnv, params: Any = None) -> Policy:
    """A policy that samples every agent's action uniformly from the action space."""
    return lambda key, obs: env.sample_actions(key, params)


@partial(jax.jit, static_argnames=("env", "num_envs", "num_steps", "policy"))
def rollout(env: MultiAgentEnv, params: Any, key: jax.Array, *, num_envs: int,
            num_steps: int, policy: Policy | None = None) -> tuple[Transition, Any]:
    """Run ``num_envs`` episodes-with-auto-reset for ``num_steps``; see the module docstring."""
    params = env.default_params if params is None else params
    policy = random_policy(env, params) if policy is None else policy
    key_reset, key_run = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(key_reset, num_envs), params)

    def one_step(carry, step_key):
        obs, state = carry
        key_act, key_step = jax.random.split(step_key)
        actions = jax.vmap(policy)(jax.random.split(key_act, num_envs), obs)
        next_obs, state, reward, terminated, truncated, info = jax.vmap(
            env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(key_step, num_envs), state, actions, params)
        return (next_obs, state), Transition(obs, actions, reward, terminated, truncated, info)

    carry, traj = jax.lax.scan(one_step, (obs, state), jax.random.split(key_run, num_steps))
    return traj, carry
