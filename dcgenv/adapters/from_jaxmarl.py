"""A JaxMARL environment as a dcgenv ``MultiAgentEnv``: the other direction of ``jaxmarl.py``.

For running dcgenv's learners, wrappers and rollouts on JaxMARL's environments (needs
``pip install "dcgenv[jaxmarl]"``)::

    from dcgenv.adapters.from_jaxmarl import from_jaxmarl
    env, params = from_jaxmarl("MPE_simple_spread_v3")        # or from_jaxmarl(jaxmarl_env)
    obs, state = env.reset(key, params)                        # agent-stacked, as every dcgenv env
    obs, state, reward, terminated, truncated, info = env.step(key, state, actions, params)

- Observations and actions are stacked over ``env.agents`` (JaxMARL's agent order), so every
  agent's spaces must have the same shapes (MPE simple_spread: yes; simple_tag's adversaries
  and good agents: no, a ``ValueError`` lists them). Spaces become gymnax's (``Discrete``,
  ``Box``, ``Dict``, ``Tuple``); other JaxMARL spaces are refused by name.
- Same key use as JaxMARL's own ``step`` (``key, key_reset = split(key)``, ``step_env(key)``,
  ``reset(key_reset)``), so with the same keys and actions the trajectories are the same,
  auto-reset included, up to float32 rounding where XLA fuses the arithmetic differently
  (``tests/test_adapters_from_jaxmarl.py`` checks it).
- Episode ends: JaxMARL has one ``dones["__all__"]``, ending the episode where JaxMARL's
  ``step`` would reset. An end on or after the environment's ``max_steps``-th step is its time
  limit, so ``truncated``; an earlier one ``terminated`` (an environment that terminates
  exactly at its step limit is reported as truncated). ``max_steps_in_episode`` (default
  ``max_steps + 1``, one more than JaxMARL's MPE episodes take: its ``done`` is
  ``step >= max_steps`` before the step counter moves) cuts episodes short when smaller.
- ``info`` is JaxMARL's ``infos`` as it is (its structure is the same on every step).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from dcgenv import spaces
from dcgenv.adapters import stack, unstack
from dcgenv.core import EnvParams as BaseParams
from dcgenv.core import EnvState as BaseState
from dcgenv.core import MultiAgentEnv, param


@struct.dataclass
class EnvState(BaseState):
    inner: Any  # the JaxMARL environment's state
    obs: Any  # its observations of that state, agent-stacked (JaxMARL returns them with it)
    ended: jax.Array  # bool: JaxMARL's dones["__all__"] on the step that reached this state


@struct.dataclass
class EnvParams(BaseParams):
    max_steps_in_episode: int = param(25, 1)


def to_gymnax(space: Any) -> spaces.Space:
    """A JaxMARL space as a gymnax (dcgenv) space."""
    kind = type(space).__name__
    if kind == "Discrete":
        return spaces.Discrete(int(space.n))
    if kind == "Box":
        return spaces.Box(space.low, space.high, tuple(space.shape), space.dtype)
    if kind == "Dict":
        return spaces.Dict({k: to_gymnax(s) for k, s in space.spaces.items()})
    if kind == "Tuple":
        return spaces.Tuple([to_gymnax(s) for s in space.spaces])
    raise ValueError(f"from_jaxmarl: JaxMARL space {kind} has no gymnax counterpart; "
                     "supported: Discrete, Box, Dict, Tuple")


class FromJaxMARL(MultiAgentEnv):
    """A JaxMARL ``MultiAgentEnv`` behind dcgenv's API (see the module docstring)."""

    def __init__(self, env: Any):
        self.jaxmarl_env = env
        self.agents = tuple(env.agents)
        for kind, table in (("observation", env.observation_spaces),
                            ("action", env.action_spaces)):
            shapes = {a: jax.tree.map(lambda s: s.shape, to_gymnax(table[a]),
                                      is_leaf=lambda s: hasattr(s, "shape"))
                      for a in self.agents}
            if len({repr(s) for s in shapes.values()}) > 1:
                raise ValueError(f"from_jaxmarl: {type(env).__name__}'s agents have different "
                                 f"{kind} shapes {shapes}; dcgenv stacks agents, so they must "
                                 "agree")
        first = self.agents[0]
        self._obs_space = to_gymnax(env.observation_spaces[first])
        self._action_space = to_gymnax(env.action_spaces[first])
        if not isinstance(getattr(env, "max_steps", None), int):
            raise ValueError(f"from_jaxmarl: {type(env).__name__} has no integer max_steps, "
                             "which the adapter needs to tell time limits from terminations")
        self.max_steps = env.max_steps

    @property
    def name(self) -> str:
        return f"FromJaxMARL({type(self.jaxmarl_env).__name__})"

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.max_steps + 1)

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        obs, inner = self.jaxmarl_env.reset(key)
        return EnvState(time=jnp.zeros((), jnp.int32), inner=inner, obs=stack(obs, self.agents),
                        ended=jnp.zeros((), bool))

    def step_env(self, key: jax.Array, state: EnvState, actions: Any, params: EnvParams):
        obs, inner, rewards, dones, info = self.jaxmarl_env.step_env(
            key, state.inner, unstack(actions, self.agents))
        ended = jnp.asarray(dones["__all__"], bool)
        terminated = ended & (state.time + 1 < self.max_steps)
        reward = jnp.stack([rewards[a] for a in self.agents])
        state = state.replace(inner=inner, obs=stack(obs, self.agents), ended=ended)
        return state, reward, terminated, info

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return (state.time >= params.max_steps_in_episode) | state.ended  # not terminated

    def get_obs(self, state: EnvState, params: EnvParams) -> Any:
        return state.obs

    def observation_space(self, params: EnvParams | None = None) -> spaces.Space:
        return self._obs_space

    def action_space(self, params: EnvParams | None = None) -> spaces.Space:
        return self._action_space


def from_jaxmarl(env: Any, **env_kwargs: Any) -> tuple[FromJaxMARL, EnvParams]:
    """``(env, params)`` for a JaxMARL environment instance, or a JaxMARL id (built with
    ``jaxmarl.make(id, **env_kwargs)``)."""
    if isinstance(env, str):
        try:
            import jaxmarl
        except ImportError as err:
            raise ImportError("from_jaxmarl needs JaxMARL: pip install 'dcgenv[jaxmarl]'") \
                from err
        env = jaxmarl.make(env, **env_kwargs)
    elif env_kwargs:
        raise ValueError(f"from_jaxmarl: keyword arguments {sorted(env_kwargs)} only go with "
                         "an id (they are passed to jaxmarl.make)")
    wrapped = FromJaxMARL(env)
    return wrapped, wrapped.default_params
