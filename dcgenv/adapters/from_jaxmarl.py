"""A JaxMARL environment as a dcgenv ``MultiAgentEnv``: the other direction of ``jaxmarl.py``.

For running dcgenv's learners, wrappers and rollouts on JaxMARL's environments (needs
``pip install "dcgenv[jaxmarl]"``)::

    from dcgenv.adapters.from_jaxmarl import from_jaxmarl
    env, params = from_jaxmarl("MPE_simple_spread_v3")        # or from_jaxmarl(jaxmarl_env)
    env, params = from_jaxmarl("HeuristicEnemySMAX", scenario="3s_vs_5z")
    obs, state = env.reset(key, params)                        # agent-stacked, as every dcgenv env
    obs, state, reward, terminated, truncated, info = env.step(key, state, actions, params)

- Observations and actions are stacked over ``env.agents`` (JaxMARL's agent order). Spaces
  become gymnax's (``Discrete``, ``Box``, ``Dict``, ``Tuple``); other JaxMARL spaces are
  refused by name.
- Agents with different spaces (MPE simple_tag, simple_adversary, simple_world_comm,
  simple_speaker_listener: adversaries and good agents, speaker and listener) are padded, as
  JaxMARL's own ``CTRolloutManager`` (``jaxmarl/wrappers/baselines.py``) pads them for its
  Q-learning baselines: 1-D ``Box`` observations with zeros at the end to the longest, whose
  real entries ``env.obs_mask`` marks (bool, the shape of one stacked observation);
  ``Discrete(n_i)`` actions to ``Discrete(max n_i)``, an action outside ``[0, n_i)`` clipped
  into it (never NaN); 1-D ``Box`` actions to the longest, each agent reading its first
  ``d_i`` entries. Spaces that differ otherwise are refused with the agents' shapes listed.
- Available actions: ``env.get_avail_actions(state)`` is bool ``[num_agents, num_actions]``:
  the JaxMARL environment's own ``get_avail_actions`` (SMAX: movement only while alive,
  attack only an enemy in range) where it has one, ``False`` on padded actions. With
  ``action_mask_in_obs=True`` each agent's observation is ``{"obs": ..., "action_mask": ...}``
  instead (dcgenv's place for action masks, which ``dcgenv.adapters.jaxmarl`` reads back).
- Same key use as JaxMARL's own ``step`` (``key, key_reset = split(key)``, ``step_env(key)``,
  ``reset(key_reset)``), so with the same keys and actions the trajectories are the same,
  auto-reset included, up to float32 rounding where XLA fuses the arithmetic differently
  (``tests/test_adapters_from_jaxmarl.py`` checks it on MPE and SMAX).
- Episode ends: JaxMARL has one ``dones["__all__"]``, ending the episode where JaxMARL's
  ``step`` would reset. An end on or after the environment's ``max_steps``-th step is its time
  limit, so ``truncated``; an earlier one ``terminated`` (SMAX: a battle won or lost). MPE and
  SMAX reach their limit on the ``(max_steps + 1)``-th step (``done`` is ``step >= max_steps``
  before the counter moves), other JaxMARL environments on the ``max_steps``-th, so both are
  read right; an end exactly on the ``max_steps``-th step of MPE or SMAX (a battle won then)
  is reported as truncated. ``max_steps_in_episode`` (default ``max_steps + 1``, the length of
  JaxMARL's MPE and SMAX episodes) cuts episodes short when smaller.
- ``info`` is JaxMARL's ``infos`` plus ``info["dones"]``, JaxMARL's per-agent
  ``dones[agent]`` stacked (bool ``[num_agents]``; SMAX: the unit is dead), and the entries of
  JaxMARL's observation dict that are not agents (SMAX's ``"world_state"``, the global state
  for centralised critics), both of the state the step reached, before any reset. SMAX
  environments also report ``info["success"]``: the allies won the battle on this step (every
  enemy dead, an ally alive: JaxMARL's won-battle bonus), so a learner's success is SMAC's
  win rate.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dcgenv import checks, spaces
from dcgenv.adapters import stack, unstack
from dcgenv.core import EnvParams as BaseParams
from dcgenv.core import EnvState as BaseState
from dcgenv.core import MultiAgentEnv, default_float, param

INSTALL = 'pip install "dcgenv[jaxmarl]"'


@struct.dataclass
class EnvState(BaseState):
    inner: Any  # the JaxMARL environment's state
    obs: Any  # its observations of that state, agent-stacked and padded
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


def map_space(fn, space: spaces.Space) -> Any:
    """``fn`` applied to every leaf space of ``space`` (through ``Dict`` and ``Tuple``)."""
    if isinstance(space, spaces.Dict):
        return {k: map_space(fn, s) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(map_space(fn, s) for s in space.spaces)
    return fn(space)


def merge_spaces(kind: str, per_agent: list[spaces.Space]) -> tuple[spaces.Space, list[int]]:
    """One space for all agents and each agent's size in it: ``per_agent[0]`` when all have
    the same shapes (and sizes, if discrete): sizes ``[]``, nothing padded;
    ``Discrete(max n_i)`` for discrete spaces of sizes ``n_i``; for 1-D boxes of lengths
    ``d_i`` a 1-D ``Box`` of length ``max d_i`` whose bounds hold every agent's values and
    the zero padding (sizes ``d_i``). Anything else is a ``ValueError``."""
    layout = lambda s: repr(map_space(lambda leaf: (leaf.shape, getattr(leaf, "n", None)), s))
    if len({layout(s) for s in per_agent}) == 1:
        return per_agent[0], []
    if all(isinstance(s, spaces.Discrete) for s in per_agent):
        sizes = [int(s.n) for s in per_agent]
        return spaces.Discrete(max(sizes)), sizes
    if (all(type(s) is spaces.Box and len(s.shape) == 1 for s in per_agent)
            and len({np.dtype(s.dtype) for s in per_agent}) == 1):
        sizes = [int(s.shape[0]) for s in per_agent]
        pad = lambda bound, d: np.pad(np.broadcast_to(np.asarray(bound, np.float32), (d,)),
                                      (0, max(sizes) - d))
        low = np.min([pad(s.low, d) for s, d in zip(per_agent, sizes, strict=True)], 0)
        high = np.max([pad(s.high, d) for s, d in zip(per_agent, sizes, strict=True)], 0)
        return spaces.Box(low, high, (max(sizes),), per_agent[0].dtype), sizes
    raise ValueError(f"from_jaxmarl: agents' {kind} spaces {[repr(s) for s in per_agent]} "
                     "differ in a way that cannot be padded (padded: Discrete of different "
                     "sizes, 1-D Box of different lengths); dcgenv stacks agents")


class FromJaxMARL(MultiAgentEnv):
    """A JaxMARL ``MultiAgentEnv`` behind dcgenv's API (see the module docstring)."""

    def __init__(self, env: Any, action_mask_in_obs: bool = False):
        self.jaxmarl_env = env
        self.agents = tuple(env.agents)
        self._obs_space, self._obs_sizes = merge_spaces(
            "observation", [to_gymnax(env.observation_spaces[a]) for a in self.agents])
        self._action_space, self._action_sizes = merge_spaces(
            "action", [to_gymnax(env.action_spaces[a]) for a in self.agents])
        if not isinstance(getattr(env, "max_steps", None), int):
            raise ValueError(f"from_jaxmarl: {type(env).__name__} has no integer max_steps, "
                             "which the adapter needs to tell time limits from terminations")
        self.max_steps = env.max_steps
        self.action_mask_in_obs = checks.flag("from_jaxmarl", "action_mask_in_obs",
                                              action_mask_in_obs)
        discrete = isinstance(self._action_space, spaces.Discrete)
        if self.action_mask_in_obs and not discrete:
            raise ValueError("from_jaxmarl: action_mask_in_obs=True needs Discrete actions, "
                             f"got {self._action_space!r}")
        self.has_avail_actions = discrete and self._probe_avail_actions()
        self.is_smax = type(env).__module__.startswith("jaxmarl.environments.smax")

    def _probe_avail_actions(self) -> bool:
        """Whether the JaxMARL env defines ``get_avail_actions`` (its base class raises
        ``NotImplementedError``), checked on shapes only (``jax.eval_shape``)."""
        try:
            _, state = jax.eval_shape(self.jaxmarl_env.reset, jax.random.key(0))
            avail = jax.eval_shape(self.jaxmarl_env.get_avail_actions, state)
        except NotImplementedError:
            return False
        sizes = self._action_sizes or [self._action_space.n] * self.num_agents
        got = {a: tuple(avail[a].shape) for a in self.agents}
        if any(shape != (n,) for shape, n in zip(got.values(), sizes, strict=True)):
            raise ValueError(f"from_jaxmarl: get_avail_actions gives shapes {got}, the action "
                             f"spaces have {sizes} actions")
        return True

    @property
    def name(self) -> str:
        return f"FromJaxMARL({type(self.jaxmarl_env).__name__})"

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.max_steps + 1)

    @property
    def obs_mask(self) -> Any:
        """Which observation entries are real (not padding): bool arrays with the structure
        and shapes of one agent-stacked observation."""
        mask = map_space(lambda s: np.ones((self.num_agents, *s.shape), bool),
                         self.observation_space())
        if self._obs_sizes:
            inner = np.arange(self._obs_space.shape[0]) < np.array(self._obs_sizes)[:, None]
            mask = {**mask, "obs": inner} if self.action_mask_in_obs else inner
        return mask

    def get_avail_actions(self, state: EnvState, params: EnvParams | None = None) -> jax.Array:
        """bool ``[num_agents, num_actions]``: the actions each agent may take in ``state``
        (padded actions never; the JaxMARL env's ``get_avail_actions`` where it has one)."""
        if not isinstance(self._action_space, spaces.Discrete):
            raise ValueError(f"{self.name}: available actions need Discrete actions, got "
                             f"{self._action_space!r}")
        num = self._action_space.n
        sizes = np.array(self._action_sizes or [num] * self.num_agents)
        mask = jnp.asarray(np.arange(num) < sizes[:, None])
        if self.has_avail_actions:
            avail = self.jaxmarl_env.get_avail_actions(state.inner)
            mask = mask & jnp.stack([jnp.pad(avail[a].astype(bool), (0, num - n))
                                     for a, n in zip(self.agents, sizes, strict=True)])
        return mask

    def _stack_obs(self, obs: dict[str, Any]) -> Any:
        """JaxMARL's observation dict -> agent-stacked (padded) observations."""
        if not self._obs_sizes:
            return stack({a: obs[a] for a in self.agents}, self.agents)
        width = self._obs_space.shape[0]
        return jnp.stack([jnp.pad(obs[a], (0, width - obs[a].shape[0])) for a in self.agents])

    def _unstack_actions(self, actions: Any) -> dict[str, Any]:
        """Agent-stacked actions -> JaxMARL's dict: discrete actions clipped to each agent's
        ``[0, n_i)``, padded boxes cut to each agent's length."""
        if isinstance(self._action_space, spaces.Discrete):
            sizes = self._action_sizes or [self._action_space.n] * self.num_agents
            return {a: jnp.clip(actions[i], 0, n - 1)
                    for i, (a, n) in enumerate(zip(self.agents, sizes, strict=True))}
        if self._action_sizes:
            return {a: actions[i, :d]
                    for i, (a, d) in enumerate(zip(self.agents, self._action_sizes, strict=True))}
        return unstack(actions, self.agents)

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        obs, inner = self.jaxmarl_env.reset(key)
        return EnvState(time=jnp.zeros((), jnp.int32), inner=inner, obs=self._stack_obs(obs),
                        ended=jnp.zeros((), bool))

    def step_env(self, key: jax.Array, state: EnvState, actions: Any, params: EnvParams):
        obs, inner, rewards, dones, infos = self.jaxmarl_env.step_env(
            key, state.inner, self._unstack_actions(actions))
        ended = jnp.asarray(dones["__all__"], bool)
        terminated = ended & (state.time + 1 < self.max_steps)
        reward = jnp.stack([rewards[a] for a in self.agents]).astype(default_float())
        info = {**infos, **{k: v for k, v in obs.items() if k not in self.agents},
                "dones": jnp.stack([jnp.asarray(dones.get(a, ended), bool) for a in self.agents])}
        if self.is_smax:
            info["success"] = smax_won(self.jaxmarl_env, inner)
        state = state.replace(inner=inner, obs=self._stack_obs(obs), ended=ended)
        return state, reward, terminated, info

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return (state.time >= params.max_steps_in_episode) | state.ended  # not terminated

    def get_obs(self, state: EnvState, params: EnvParams) -> Any:
        if self.action_mask_in_obs:
            return {"obs": state.obs, "action_mask": self.get_avail_actions(state)}
        return state.obs

    def observation_space(self, params: EnvParams | None = None) -> spaces.Space:
        if self.action_mask_in_obs:
            return spaces.Dict({"obs": self._obs_space,
                                "action_mask": spaces.Binary((self._action_space.n,))})
        return self._obs_space

    def action_space(self, params: EnvParams | None = None) -> spaces.Space:
        return self._action_space


def smax_won(env: Any, inner: Any) -> jax.Array:
    """Whether SMAX's allies have won: every enemy unit dead and an ally alive (JaxMARL's
    condition for ``won_battle_bonus``, ``jaxmarl/environments/smax/smax_env.py``)."""
    alive = getattr(inner, "state", inner).unit_alive  # HeuristicEnemySMAX wraps SMAX's state
    return ~alive[env.num_allies:].any() & alive[:env.num_allies].any()


def smax_scenario(name: str) -> Any:
    """JaxMARL's SMAX ``Scenario`` of a SMAC map name (``"3s_vs_5z"``, ``"2s3z"``, ...;
    ``jaxmarl/environments/smax/smax_env.py``, ``MAP_NAME_TO_SCENARIO``)."""
    from jaxmarl.environments.smax import smax_env
    checks.choice("from_jaxmarl", "scenario", name, sorted(smax_env.MAP_NAME_TO_SCENARIO))
    return smax_env.map_name_to_scenario(name)


def from_jaxmarl(env: Any, *, action_mask_in_obs: bool = False,
                 max_steps_in_episode: int | None = None,
                 **env_kwargs: Any) -> tuple[FromJaxMARL, EnvParams]:
    """``(env, params)`` for a JaxMARL environment instance, or a JaxMARL id (built with
    ``jaxmarl.make(id, **env_kwargs)``; for SMAX ids a ``scenario`` may be a SMAC map name).
    ``action_mask_in_obs`` goes to :class:`FromJaxMARL`, ``max_steps_in_episode`` to the
    params; with an instance, other keyword arguments are refused."""
    if isinstance(env, str):
        try:
            import jaxmarl
        except ImportError as err:
            raise ImportError(f"from_jaxmarl needs JaxMARL: {INSTALL}") from err
        if "SMAX" in env and isinstance(env_kwargs.get("scenario"), str):
            env_kwargs["scenario"] = smax_scenario(env_kwargs["scenario"])
        try:
            env = jaxmarl.make(env, **env_kwargs)
        except TypeError as err:  # a keyword the JaxMARL environment's constructor lacks
            raise ValueError(f"from_jaxmarl: jaxmarl.make({env!r}) refused keyword arguments "
                             f"{sorted(env_kwargs)}: {err}") from None
    elif env_kwargs:
        raise ValueError(f"from_jaxmarl: keyword arguments {sorted(env_kwargs)} only go with "
                         "an id (they are passed to jaxmarl.make)")
    wrapped = FromJaxMARL(env, action_mask_in_obs=action_mask_in_obs)
    params = wrapped.default_params
    if max_steps_in_episode is not None:
        checks.integer("from_jaxmarl", "max_steps_in_episode", max_steps_in_episode, low=1)
        params = params.replace_checked(max_steps_in_episode=max_steps_in_episode)
    return wrapped, params
