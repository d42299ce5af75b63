"""A PettingZoo ``ParallelEnv`` over one dcgenv environment: NumPy in, NumPy out.

For people outside JAX (needs ``pip install pettingzoo``; dcgenv itself does not)::

    from dcgenv.adapters.pettingzoo import parallel_env
    env = parallel_env("TrafficJunction-easy-v0", render_mode="rgb_array")  # dcgenv.make args
    observations, infos = env.reset(seed=0)
    while env.agents:
        actions = {a: env.action_space(a).sample() for a in env.agents}
        observations, rewards, terminations, truncations, infos = env.step(actions)

- ``possible_agents`` = ``env.agents``; every agent stays in ``agents`` until the episode
  ends, then all leave at once (dcgenv episodes end for everyone; per-agent activity, e.g. cars
  not on the road, is the ``alive``/``active`` flag in the observation, as in dcgenv).
- Spaces: Gymnasium spaces converted from dcgenv's (``Discrete``, ``Box``, ``Normal`` ->
  unbounded ``Box``, ``Binary`` -> ``MultiBinary``, ``Dict``, ``Tuple``), one cached object
  per agent; observations are NumPy values of those spaces' dtypes.
- ``reset(seed=s)`` starts from ``jax.random.key(s)``; without a seed the adapter keeps
  splitting the key it has (a fresh random one at first). Same seed, same actions -> the same
  episode. ``terminations`` / ``truncations`` are the episode's ``terminated`` / ``truncated``
  for every agent; the observations returned on the last step are that episode's final ones
  (the adapter does not auto-reset, so ``render()`` then shows the final state).
  ``infos[agent]`` holds the step's ``info`` as NumPy (the same dict for every agent).
- ``render()`` with ``render_mode="rgb_array"`` returns ``env.render(state, params)`` as a
  NumPy ``uint8 [H, W, 3]`` array (grid environments).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import numpy as np

from dcgenv import spaces, viz
from dcgenv.adapters import stack
from dcgenv.core import MultiAgentEnv
from dcgenv.registry import make as dcgenv_make

try:
    from pettingzoo import ParallelEnv as _ParallelEnv
except ImportError:  # optional dependency: fail when the adapter is used, not on import
    _ParallelEnv = object
    PETTINGZOO_MISSING = True
else:
    PETTINGZOO_MISSING = False


def to_gymnasium(space: spaces.Space) -> gymnasium.spaces.Space:
    """The Gymnasium space of a dcgenv (gymnax) space."""
    if isinstance(space, spaces.Dict):
        return gymnasium.spaces.Dict({k: to_gymnasium(s) for k, s in space.spaces.items()})
    if isinstance(space, spaces.Tuple):
        return gymnasium.spaces.Tuple([to_gymnasium(s) for s in space.spaces])
    if isinstance(space, spaces.Discrete):
        return gymnasium.spaces.Discrete(space.n)
    if isinstance(space, spaces.Binary):
        return gymnasium.spaces.MultiBinary(space.shape)
    if isinstance(space, spaces.Box):  # Normal included: unbounded
        dtype = np.dtype(space.dtype)
        bound = lambda b: np.broadcast_to(np.asarray(b, dtype), space.shape)
        return gymnasium.spaces.Box(bound(space.low), bound(space.high), space.shape, dtype)
    raise ValueError(f"no Gymnasium equivalent for {space!r}; supported: Discrete, Box, "
                     "Normal, Binary, Dict, Tuple")


def _to_numpy(space: gymnasium.spaces.Space, x: Any) -> Any:
    if isinstance(space, gymnasium.spaces.Dict):
        return {k: _to_numpy(s, x[k]) for k, s in space.spaces.items()}
    if isinstance(space, gymnasium.spaces.Tuple):
        return tuple(_to_numpy(s, v) for s, v in zip(space.spaces, x, strict=True))
    if isinstance(space, gymnasium.spaces.Discrete):
        return np.int64(x)
    return np.asarray(x, space.dtype)


def _to_jax(space: spaces.Space, x: Any) -> Any:
    if isinstance(space, spaces.Dict):
        return {k: _to_jax(s, x[k]) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_to_jax(s, v) for s, v in zip(space.spaces, x, strict=True))
    return np.asarray(x).astype(space.dtype)


class PettingZooEnv(_ParallelEnv):
    """A dcgenv environment as a PettingZoo ``ParallelEnv`` (see the module docstring)."""

    def __init__(self, env: MultiAgentEnv, params: Any = None, render_mode: str | None = None):
        if PETTINGZOO_MISSING:
            raise ImportError("dcgenv.adapters.pettingzoo needs PettingZoo, which is optional: "
                              "pip install 'pettingzoo>=1.27'")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if render_mode and not viz.can_render(env):
            raise ValueError(f"{env!r} has no render(state, params); use render_mode=None")
        self.env, self.params = env, env.default_params if params is None else params
        self.render_mode = render_mode
        self.possible_agents = list(env.agents)
        self.agents: list[str] = []
        self.metadata = {"name": env.name, "render_modes": ["rgb_array"],
                         "is_parallelizable": True}
        obs_space, act_space = env.observation_space(self.params), env.action_space(self.params)
        self._spaces = {a: (to_gymnasium(obs_space), to_gymnasium(act_space))  # one per agent
                        for a in self.possible_agents}
        self._jax_action_space = act_space
        self._key, self._state = None, None
        self._step = env.transition
        self._unstack = jax.jit(lambda tree: [jax.tree.map(lambda x, i=i: x[i], tree)
                                              for i in range(env.num_agents)])

    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._agent_spaces(agent)[0]

    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._agent_spaces(agent)[1]

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._key = jax.random.key(seed)
        elif self._key is None:
            self._key = jax.random.key(np.random.default_rng().integers(2**31))
        self._key, key = jax.random.split(self._key)
        obs, self._state = self.env.reset(key, self.params)
        self.agents = list(self.possible_agents)
        return self._observations(obs), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise ValueError("the episode is over (or was never started): call reset() first")
        per_agent = {a: _to_jax(self._jax_action_space, x) for a, x in actions.items()}
        self._key, key = jax.random.split(self._key)
        obs, self._state, reward, terminated, truncated, info = self._step(
            key, self._state, stack(per_agent, self.agents), self.params)
        terminated, truncated = bool(terminated), bool(truncated)
        obs = self._observations(obs)
        info = jax.tree.map(np.asarray, jax.device_get(info))
        reward = np.asarray(reward)
        agents, self.agents = self.agents, [] if terminated or truncated else self.agents
        return (obs, {a: float(reward[i]) for i, a in enumerate(agents)},
                dict.fromkeys(agents, terminated), dict.fromkeys(agents, truncated),
                {a: dict(info) for a in agents})

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called with render_mode=None; nothing rendered")
            return None
        if self._state is None:
            raise ValueError("nothing to render: call reset() first")
        return np.asarray(self.env.render(self._state, self.params))

    def _observations(self, obs: Any) -> dict[str, Any]:
        space = self._spaces[self.possible_agents[0]][0]
        per_agent = jax.device_get(self._unstack(obs))
        return {a: _to_numpy(space, x) for a, x in zip(self.possible_agents, per_agent,
                                                      strict=True)}

    def _agent_spaces(self, agent: str):
        if agent not in self._spaces:
            raise ValueError(f"unknown agent {agent!r}; possible agents: {self.possible_agents}")
        return self._spaces[agent]


def parallel_env(env_id: str, render_mode: str | None = None, **overrides: Any) -> PettingZooEnv:
    """PettingZoo-style constructor: ``dcgenv.make(env_id, **overrides)`` as a ParallelEnv."""
    return PettingZooEnv(*dcgenv_make(env_id, **overrides), render_mode=render_mode)
