"""A JaxMARL-style view of any dcgenv environment: dicts keyed by agent, ``dones["__all__"]``.

JaxMARL's baseline scripts (IPPO, MAPPO, ...) run on a dcgenv environment with only the
``make`` call changed::

    from dcgenv.adapters.jaxmarl import make         # instead of jaxmarl.make
    env = make("TrafficJunction-easy-v0")             # same overrides as dcgenv.make
    obs, state = env.reset(key)
    obs, state, rewards, dones, infos = env.step(key, state, actions)

JaxMARL's signatures: ``reset(key)``, ``step(key, state, actions, reset_state=None)`` (auto-
reset when ``dones["__all__"]``), ``get_obs(state)``, ``observation_space(agent)``,
``action_space(agent)`` (gymnax ``Discrete``/``Box`` with ``.n`` / ``.shape``, as JaxMARL's),
``observation_spaces`` / ``action_spaces`` dicts, ``get_avail_actions(state)``, ``agents`` (a
list), ``num_agents``. The env's params are fixed when the view is built.

Conversions:

- Observations: with ``flatten_obs=True`` (default) a dict observation becomes one float32
  vector per agent, its leaves flattened and concatenated in the space's key order (bools as
  0/1), described by a ``Box`` (the scripts ``reshape`` observations to ``[actors, -1]``).
  ``flatten_obs=False`` passes each agent's dict through.
- Actions: a dict keyed by agent; an array action is reshaped to the action space's shape
  (the scripts' ``unbatchify`` leaves a trailing axis of 1 on discrete actions).
- ``dones[agent]`` and ``dones["__all__"]`` are ``terminated | truncated`` of the episode
  (dcgenv episodes end for all agents at once); ``infos["terminated"]`` and
  ``infos["truncated"]`` keep the difference for learners that bootstrap on truncation.
- ``infos``: like JaxMARL's, every leaf is ``[num_agents]`` (so the scripts can reshape it to
  ``[num_actors]``): scalars are broadcast, ``[num_agents]`` leaves kept, anything else
  (``final_observation``, per-cell tables) left out.
- ``get_avail_actions``: an ``action_mask`` from the observation where the env has one, else
  all actions of a ``Discrete`` space.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dcgenv import checks, spaces
from dcgenv.adapters import stack, unstack
from dcgenv.core import MultiAgentEnv
from dcgenv.registry import make as dcgenv_make


def _bounds(space: spaces.Space) -> tuple[np.ndarray, np.ndarray]:
    """Flat float bounds of one leaf space."""
    size = int(np.prod(space.shape))
    if isinstance(space, spaces.Discrete):
        low, high = 0.0, space.n - 1.0
    elif isinstance(space, spaces.Binary):
        low, high = 0.0, 1.0
    elif isinstance(space, spaces.Box):
        low, high = space.low, space.high
    else:
        raise ValueError(f"cannot flatten observation space {space!r}; flatten_obs=False "
                         "passes observations through")
    full = lambda b: np.broadcast_to(np.asarray(b, np.float32), space.shape).reshape(size)
    return full(low), full(high)


def _leaf_spaces(space: spaces.Space) -> list[spaces.Space]:
    if isinstance(space, spaces.Dict):
        return [s for v in space.spaces.values() for s in _leaf_spaces(v)]
    if isinstance(space, spaces.Tuple):
        return [s for v in space.spaces for s in _leaf_spaces(v)]
    return [space]


class JaxMARLEnv:
    """A dcgenv ``MultiAgentEnv`` with JaxMARL's API (see the module docstring)."""

    def __init__(self, env: MultiAgentEnv, params: Any = None, flatten_obs: bool = True):
        flatten_obs = checks.flag("JaxMARLEnv", "flatten_obs", flatten_obs)
        self.env, self.params = env, env.default_params if params is None else params
        self.agents = list(env.agents)
        self.num_agents = env.num_agents
        self.flatten_obs = flatten_obs
        obs_space = env.observation_space(self.params)
        if flatten_obs and isinstance(obs_space, (spaces.Dict, spaces.Tuple)):
            low, high = map(np.concatenate, zip(*map(_bounds, _leaf_spaces(obs_space)),
                                                strict=True))
            obs_space = spaces.Box(low, high, low.shape, jnp.float32)
        self.observation_spaces = {a: obs_space for a in self.agents}
        self.action_spaces = {a: env.action_space(self.params) for a in self.agents}

    @property
    def name(self) -> str:
        return self.env.name

    def __repr__(self) -> str:
        return f"JaxMARLEnv({self.env!r})"

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[self._check_agent(agent)]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[self._check_agent(agent)]

    @partial(jax.jit, static_argnums=0)
    def reset(self, key: jax.Array) -> tuple[dict[str, Any], Any]:
        obs, state = self.env.reset(key, self.params)
        return self._obs(obs), state

    @partial(jax.jit, static_argnums=0)
    def step(self, key: jax.Array, state: Any, actions: dict[str, Any], reset_state: Any = None):
        space = self.action_spaces[self.agents[0]]
        if isinstance(space, (spaces.Discrete, spaces.Box)):  # e.g. [1] -> () from the scripts
            actions = {a: jnp.reshape(x, space.shape) for a, x in actions.items()}
        obs, state, reward, terminated, truncated, info = self.env.step(
            key, state, stack(actions, self.agents), self.params)
        done = terminated | truncated
        if reset_state is not None:  # JaxMARL: reset to this state instead of a fresh one
            state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, state)
            obs = jax.tree.map(lambda r, o: jnp.where(done, r, o),
                               self.env.get_obs(reset_state, self.params), obs)
        dones = {a: done for a in self.agents} | {"__all__": done}
        info = {**info, "terminated": terminated, "truncated": truncated}
        n = self.num_agents
        infos = {k: jnp.broadcast_to(v, (n,)) for k, v in info.items()
                 if isinstance(v, jax.Array) and v.shape in ((), (n,))}
        return self._obs(obs), state, unstack(reward, self.agents), dones, infos

    def get_obs(self, state: Any) -> dict[str, Any]:
        return self._obs(self.env.get_obs(state, self.params))

    def get_avail_actions(self, state: Any) -> dict[str, jax.Array]:
        obs = self.env.get_obs(state, self.params)
        if isinstance(obs, dict) and "action_mask" in obs:
            return unstack(obs["action_mask"].astype(bool), self.agents)
        space = self.action_spaces[self.agents[0]]
        if not isinstance(space, spaces.Discrete):
            raise ValueError(f"{self.name}: available actions are defined for Discrete action "
                             f"spaces or observations with an 'action_mask'; got {space!r}")
        return {a: jnp.ones(space.n, bool) for a in self.agents}

    def _obs(self, obs: Any) -> dict[str, Any]:
        if self.flatten_obs and isinstance(obs, (dict, tuple)):
            order = _ordered(obs, self.env.observation_space(self.params))
            obs = jnp.concatenate([x.reshape(self.num_agents, -1).astype(jnp.float32)
                                   for x in order], axis=1)
        return unstack(obs, self.agents)

    def _check_agent(self, agent: str) -> str:
        if agent not in self.observation_spaces:
            raise ValueError(f"unknown agent {agent!r}; agents: {self.agents}")
        return agent


def _ordered(obs: Any, space: spaces.Space) -> list[jax.Array]:
    """Leaves of ``obs`` in the order of the space's leaves (the ``Box`` bounds' order)."""
    if isinstance(space, spaces.Dict):
        return [x for k, s in space.spaces.items() for x in _ordered(obs[k], s)]
    if isinstance(space, spaces.Tuple):
        return [x for o, s in zip(obs, space.spaces, strict=True) for x in _ordered(o, s)]
    return [obs]


def make(env_id: str, *, flatten_obs: bool = True, **overrides: Any) -> JaxMARLEnv:
    """``jaxmarl.make`` for dcgenv ids: ``dcgenv.make(env_id, **overrides)`` in a JaxMARL view."""
    env, params = dcgenv_make(env_id, **overrides)
    return JaxMARLEnv(env, params, flatten_obs=flatten_obs)
