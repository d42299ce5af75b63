"""Adapters to other multi-agent APIs: agent-stacked arrays <-> dicts keyed by agent name.

- ``dcgenv.adapters.jaxmarl``: a JaxMARL-style ``MultiAgentEnv`` view (pure JAX, jittable);
  needs nothing beyond dcgenv.
- ``dcgenv.adapters.pettingzoo``: a PettingZoo ``ParallelEnv`` (NumPy in, NumPy out); needs
  the optional ``pettingzoo`` package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp


def unstack(tree: Any, agents: Sequence[str]) -> dict[str, Any]:
    """Agent-stacked pytree -> ``{agent: that agent's slice}``."""
    return {a: jax.tree.map(lambda x, i=i: x[i], tree) for i, a in enumerate(agents)}


def stack(per_agent: Mapping[str, Any], agents: Sequence[str]) -> Any:
    """``{agent: value}`` -> agent-stacked pytree, in the order of ``agents``."""
    missing = [a for a in agents if a not in per_agent]
    unknown = sorted(set(per_agent) - set(agents))
    if missing or unknown:
        raise ValueError(f"actions must have one entry per agent {list(agents)}; "
                         f"missing {missing}, unknown {unknown}")
    return jax.tree.map(lambda *xs: jnp.stack(xs), *(per_agent[a] for a in agents))


def step_no_reset(env, key: jax.Array, state: Any, actions: Any, params: Any):
    """``env.step`` without the auto-reset: the same transition (same key use), returning
    ``(obs, state, reward, terminated, truncated, info)`` of the episode's last step too."""
    key_step, _ = jax.random.split(key)  # MultiAgentEnv.step: key_step, key_reset
    nxt, reward, terminated, info = env.step_env(key_step, state, actions, params)
    nxt = nxt.replace(time=state.time + 1)
    terminated = jnp.asarray(terminated, bool)
    truncated = env.is_truncated(nxt, params) & ~terminated
    reward = jnp.broadcast_to(jnp.asarray(reward, jnp.result_type(float)), (env.num_agents,))
    return env.get_obs(nxt, params), nxt, reward, terminated, truncated, info
