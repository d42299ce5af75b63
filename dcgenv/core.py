"""The multi-agent environment base class: gymnax 1.0's step convention, agent-stacked.

Public API (what users call)::

    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, actions, params)

- Every leaf of ``obs``, ``actions`` and ``reward`` has a leading axis of size
  ``env.num_agents`` (names in ``env.agents``); a parameter-shared policy is a ``vmap``.
- ``reward`` is float32 ``[num_agents]`` (float64 under JAX's x64 mode); ``terminated`` and
  ``truncated`` are bool scalars for the whole episode and never both true (``truncated``
  means the step limit cut an episode that had not terminated), so
  ``done = terminated | truncated`` and a learner bootstraps unless ``terminated``.
- Auto-reset: when an episode ends, the returned ``obs``/``state`` already belong to the next
  episode and ``info["final_observation"]`` holds the last observation of the one that ended
  (on other steps it equals ``obs``). The step key is split once,
  ``key_step, key_reset = jax.random.split(key)``: ``key_step`` drives the transition and
  ``key_reset`` the next episode's reset.
- ``params=None`` means ``env.default_params``. Randomness comes only from ``key``.

What a subclass writes (and nothing of the plumbing):

- ``default_params`` -> an ``EnvParams`` (``flax.struct`` dataclass with
  ``max_steps_in_episode``), ``observation_space(params)``, ``action_space(params)`` (one
  agent's leaf shapes), ``self.agents`` (tuple of names) set in ``__init__``;
- ``reset_env(key, params) -> state`` with ``state.time == 0``;
- ``step_env(key, state, actions, params) -> (state, reward, terminated, info)``; it reads
  ``state.time`` as the number of steps taken before this one and must not advance it (the base
  class does); ``info`` must hold arrays of the same structure on every step;
- ``get_obs(state, params) -> obs``, a deterministic function of the state (draw observation
  noise in ``step_env``/``reset_env`` and keep it in the state).
"""

from __future__ import annotations

import abc
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments.environment import Environment

from dcgenv import spaces


def _FLOAT():  # noqa: N802 - JAX's default float dtype: float32, or float64 in x64 mode
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def normal(key: jax.Array, shape: tuple[int, ...] = (), dtype=None) -> jax.Array:
    """Standard normal draw, bit-identical with and without ``vmap``.

    On XLA:CPU, ``sigma * jax.random.normal(key)`` with a traced ``sigma`` fuses into one
    kernel whose vectorised (vmapped) and scalar code paths round differently by one ulp. An
    optimisation barrier keeps the draw in its own kernel, so any scaling that follows is the
    same in both. Use this for every Gaussian draw inside an environment.
    """
    dtype = _FLOAT() if dtype is None else dtype
    return jax.lax.optimization_barrier(jax.random.normal(key, shape, dtype))


OBS_MODES = ("onehot", "uint8", "index")


def check_obs_mode(env_name: str, mode: str, max_count: int = 1) -> str:
    """Validate the grid environments' ``obs_mode`` constructor argument: ``"onehot"`` (the
    original float32 encoding), ``"uint8"`` (the same layout in bytes; every entry, counts
    included, must fit: ``max_count <= 255``) or ``"index"`` (small integer ids and counts a
    network embeds). Returns ``mode``; ``ValueError`` naming the allowed values otherwise."""
    if mode not in OBS_MODES:
        raise ValueError(f"{env_name}: unknown obs_mode {mode!r}; allowed: {list(OBS_MODES)}")
    if mode == "uint8" and max_count > 255:
        raise ValueError(f"{env_name}: obs_mode='uint8' needs counts <= 255 (num_agents), got "
                         f"{max_count}; use obs_mode='index'")
    return mode


@struct.dataclass
class EnvState:
    """Base state: every environment state carries ``time`` (steps taken this episode)."""

    time: jax.Array


@struct.dataclass
class EnvParams:
    """Base parameters: every environment has a step limit."""

    max_steps_in_episode: int = 1


class MultiAgentEnv(Environment, abc.ABC):
    """Base class of every dcgenv environment (see the module docstring for the contract)."""

    agents: tuple[str, ...] = ()

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    @abc.abstractmethod
    def default_params(self) -> EnvParams: ...

    def __repr__(self) -> str:
        return f"{self.name}(num_agents={self.num_agents})"

    # ---- public API -----------------------------------------------------------------------
    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: EnvParams | None = None) -> tuple[Any, EnvState]:
        params = self.default_params if params is None else params
        state = self.reset_env(key, params)
        return self.get_obs(state, params), state

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: EnvState, actions: Any,
             params: EnvParams | None = None):
        params = self.default_params if params is None else params
        key_step, key_reset = jax.random.split(key)
        state_st, reward, terminated, info = self.step_env(key_step, state, actions, params)
        state_st = state_st.replace(time=state.time + 1)
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.logical_and(self.is_truncated(state_st, params), ~terminated)
        obs_st = self.get_obs(state_st, params)

        done = terminated | truncated
        state_re = self.reset_env(key_reset, params)
        # Select the state, then observe it once: get_obs is a function of the state, so this
        # equals selecting between get_obs(state_re) and obs_st, without building the reset
        # observation or selecting observations; obs_st is only built when
        # final_observation is used (XLA drops it otherwise).
        state = jax.tree.map(lambda x, y: jax.lax.select(done, x, y), state_re, state_st)
        obs = self.get_obs(state, params)
        reward = jnp.broadcast_to(jnp.asarray(reward, _FLOAT()), (self.num_agents,))
        info = {**info, "final_observation": obs_st}
        return obs, state, reward, terminated, truncated, info

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.time >= params.max_steps_in_episode

    # ---- what a subclass writes -------------------------------------------------------------
    @abc.abstractmethod
    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState: ...

    @abc.abstractmethod
    def step_env(self, key: jax.Array, state: EnvState, actions: Any, params: EnvParams): ...

    @abc.abstractmethod
    def get_obs(self, state: EnvState, params: EnvParams) -> Any: ...

    @abc.abstractmethod
    def observation_space(self, params: EnvParams | None = None) -> spaces.Space: ...

    @abc.abstractmethod
    def action_space(self, params: EnvParams | None = None) -> spaces.Space: ...

    # ---- conveniences -------------------------------------------------------------------------
    def render(self, state: EnvState, params: EnvParams | None = None, cell_px: int = 8):
        """uint8 ``[H, W, 3]`` picture of ``state``; the grid environments override it."""
        raise ValueError(f"{self.name} has no render(); environments with one: TrafficJunction, "
                         "PredatorPrey, PredatorPrey-magym, GridWorldGoal (see dcgenv.viz)")

    def sample_actions(self, key: jax.Array, params: EnvParams | None = None) -> Any:
        """Uniformly random actions for all agents (agent-stacked); works under ``jit``."""
        return spaces.sample_agents(self.action_space(params), key, self.num_agents)
