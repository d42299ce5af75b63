"""Wrappers shared by every environment (one copy each, never per env).

``LogWrapper`` keeps running episode statistics in its state and reports, on every step, the
statistics of the most recently *finished* episode (as PureJaxRL's and JaxMARL's do), so a
trainer averages ``info["returned_*"]`` where ``info["returned_episode"]`` is true.
``summarize`` does that average on the host.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dcgenv.core import MultiAgentEnv


class Wrapper:
    """Forwards every attribute it does not define to the wrapped environment."""

    def __init__(self, env: MultiAgentEnv):
        self._env = env

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._env!r})"


@struct.dataclass
class LogState:
    env_state: Any
    episode_returns: jax.Array  # float32 [num_agents], running
    episode_length: jax.Array  # int32, running
    returned_episode_returns: jax.Array  # float32 [num_agents], last finished episode
    returned_episode_length: jax.Array  # int32
    returned_episode_success: jax.Array  # bool; False where the env defines no success


class LogWrapper(Wrapper):
    """Episode return per agent and for the team (mean over agents), length and success.

    The team return is the mean of the agents' returns, so with a shared reward it is that
    shared return, and with individual rewards it is the return of an average agent.

    ``success`` is read from ``info["success"]`` on the step an episode ends, for
    environments that report it. Adds to ``info``: ``returned_episode`` (bool, an episode
    ended on this step), ``returned_episode_returns`` ``[num_agents]``,
    ``returned_team_return``, ``returned_episode_length``, ``returned_episode_success``.
    """

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[Any, LogState]:
        obs, env_state = self._env.reset(key, params)
        zeros = jnp.zeros(self._env.num_agents, jnp.float32)
        zero = jnp.zeros((), jnp.int32)
        return obs, LogState(env_state, zeros, zero, zeros, zero, jnp.zeros((), bool))

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: LogState, actions: Any, params: Any = None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, actions, params)
        done = terminated | truncated
        returns = state.episode_returns + reward
        length = state.episode_length + 1
        success = jnp.asarray(info.get("success", False), bool)
        keep = lambda new, old: jnp.where(done, new, old)
        state = LogState(
            env_state=env_state,
            episode_returns=jnp.where(done, 0.0, returns),
            episode_length=jnp.where(done, 0, length),
            returned_episode_returns=keep(returns, state.returned_episode_returns),
            returned_episode_length=keep(length, state.returned_episode_length),
            returned_episode_success=keep(success, state.returned_episode_success),
        )
        info = {**info,
                "returned_episode": done,
                "returned_episode_returns": state.returned_episode_returns,
                "returned_team_return": state.returned_episode_returns.mean(),
                "returned_episode_length": state.returned_episode_length,
                "returned_episode_success": state.returned_episode_success}
        return obs, state, reward, terminated, truncated, info


def summarize(info: dict[str, Any]) -> dict[str, float]:
    """Host-side averages over the episodes that finished in a batch of LogWrapper infos."""
    ended = np.asarray(info["returned_episode"], bool)
    n = int(ended.sum())
    mean = lambda k: float(np.asarray(info[k])[ended].mean()) if n else float("nan")
    out = {"episodes": n, "team_return": mean("returned_team_return"),
           "length": mean("returned_episode_length")}
    if "success" in info:
        out["success_rate"] = mean("returned_episode_success")
    return out
