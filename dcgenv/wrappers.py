"""Wrappers shared by every environment (one copy each, never per env).

``LogWrapper`` keeps running episode statistics in its state and reports, on every step, the
statistics of the most recently *finished* episode (as PureJaxRL's and JaxMARL's do), so a
trainer averages ``info["returned_*"]`` where ``info["returned_episode"]`` is true.
``summarize`` does that average on the host.

``OptimisticResetVecEnv`` steps a whole batch of N environments and computes only a fraction
of the N resets per step (Craftax's "optimistic reset"); see its docstring for the trade-off.
"""

from __future__ import annotations

import math
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

    Adds to ``info``: ``returned_episode`` (bool, an episode ended on this step),
    ``returned_episode_returns`` ``[num_agents]``, ``returned_team_return``,
    ``returned_episode_length``, and, for environments that report ``info["success"]``,
    ``returned_episode_success`` (read on the step an episode ends). Environments without a
    notion of success get no success key, so nothing downstream reads a 0% that means
    "undefined".
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
        logged = {"returned_episode": done,
                  "returned_episode_returns": state.returned_episode_returns,
                  "returned_team_return": state.returned_episode_returns.mean(),
                  "returned_episode_length": state.returned_episode_length}
        if "success" in info:
            logged["returned_episode_success"] = state.returned_episode_success
        return obs, state, reward, terminated, truncated, {**info, **logged}


def summarize(info: dict[str, Any]) -> dict[str, float]:
    """Host-side averages over the episodes that finished in a batch of LogWrapper infos.

    Needs only the ``returned_*`` keys (and ``success_rate`` is reported whenever
    ``returned_episode_success`` is there, i.e. for environments that define success), so a
    scan may keep just those: ``{k: v for k, v in info.items() if k.startswith("returned_")}``.
    """
    ended = np.asarray(info["returned_episode"], bool)
    n = int(ended.sum())
    mean = lambda k: float(np.asarray(info[k])[ended].mean()) if n else float("nan")
    out = {"episodes": n, "team_return": mean("returned_team_return"),
           "length": mean("returned_episode_length")}
    if "returned_episode_success" in info:
        out["success_rate"] = mean("returned_episode_success")
    return out


class OptimisticResetVecEnv(Wrapper):
    """A batch of ``num_envs`` copies of ``env`` with Craftax's "optimistic" auto-reset.

    ``env.step`` (gymnax-style) computes a full reset, observation included, on every step of
    every environment and then selects it where the episode ended, so a vmapped batch of N
    pays for N resets per step. This wrapper steps the N environments *without* reset
    (``env.transition``) and computes only ``M = ceil(N * reset_ratio)``
    resets per step; the k-th environment (in batch order) whose episode ended on this step
    takes fresh reset number ``(k - 1) mod M``.

    The approximation: when more than M episodes end on one step, some environments start
    their next episode from the *same* reset state (each one is still a correct draw from the
    reset distribution, and their futures differ because their step keys differ, so every
    statistic of a single environment is unchanged; only environments in the batch become
    correlated). ``info["reset_shared"]`` (bool ``[N]``) marks the environments that got a
    shared start on this step, so the rate is measurable; ``num_resets`` is M. Pick
    ``reset_ratio`` above the typical fraction of episodes that end per step (about
    1 / mean episode length once episodes are out of step with each other). Environments with
    a fixed episode length started together all end on the same step, so with ``M < N`` they
    share starts every episode: prefer ``reset_ratio=1`` there, or desynchronise them first.

    With ``reset_ratio=1`` (M = N) environment i takes reset i, computed from the same key as
    ``env.step`` would use, so ``step`` equals ``jax.vmap(env.step)`` over
    ``jax.random.split(key, N)`` exactly.

    API (whole batch, one key)::

        obs, state = venv.reset(key, params)                  # leading axis N on every leaf
        obs, state, reward, terminated, truncated, info = venv.step(key, state, actions, params)

    ``info["final_observation"]`` holds each environment's last observation of the ended
    episode (equal to ``obs`` elsewhere), as in ``MultiAgentEnv.step``.
    """

    def __init__(self, env: MultiAgentEnv, num_envs: int, reset_ratio: float = 0.1):
        super().__init__(env)
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if not 0.0 < float(reset_ratio) <= 1.0:
            raise ValueError(f"reset_ratio must be in (0, 1], got {reset_ratio}")
        self.num_envs = int(num_envs)
        self.reset_ratio = float(reset_ratio)
        self.num_resets = min(self.num_envs, max(1, math.ceil(self.num_envs * self.reset_ratio)))

    def __repr__(self) -> str:
        return (f"OptimisticResetVecEnv({self._env!r}, num_envs={self.num_envs}, "
                f"num_resets={self.num_resets})")

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None):
        params = self._env.default_params if params is None else params
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self._env.reset, in_axes=(0, None))(keys, params)

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: Any, actions: Any, params: Any = None):
        env, n, m = self._env, self.num_envs, self.num_resets
        params = env.default_params if params is None else params
        keys = jax.random.split(key, n)
        obs_st, state_st, reward, terminated, truncated, info = jax.vmap(
            env.transition, in_axes=(0, 0, 0, None))(keys, state, actions, params)
        done = terminated | truncated

        # The reset keys of the first M environments: the keys env.step would reset with.
        reset_keys = jax.vmap(lambda k: jax.random.split(k)[1])(keys[:m])
        state_re = jax.vmap(self._env.reset_env, in_axes=(0, None))(reset_keys, params)
        if m == n:
            slot = jnp.arange(n)
            shared = jnp.zeros(n, bool)
        else:
            rank = jnp.cumsum(done) - 1  # k-th finished env (0-based), in batch order
            slot = jnp.where(done, rank % m, 0)
            shared = done & (slot + m < done.sum())  # slot also taken by another env

        def pick(new, old):
            new = new[slot]
            return jnp.where(done.reshape((n,) + (1,) * (old.ndim - 1)), new, old)

        state = jax.tree.map(pick, state_re, state_st)
        obs = jax.vmap(env.get_obs, in_axes=(0, None))(state, params)  # as env.step does
        info = {**info, "final_observation": obs_st, "reset_shared": shared}
        return obs, state, reward, terminated, truncated, info
