"""The multi-agent environment base class: gymnax 1.0's step convention, agent-stacked.

Public API (what users call)::

    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, actions, params)
    obs, state, reward, terminated, truncated, info = env.transition(key, state, actions, params)

- Every leaf of ``obs``, ``actions`` and ``reward`` has a leading axis of size
  ``env.num_agents`` (names in ``env.agents``); a parameter-shared policy is a ``vmap``.
  ``actions`` must have the structure and shapes of ``env.sample_actions(key)``; anything
  else (one agent's action, a dict keyed by agent name) is a ``ValueError`` at trace time.
- ``reward`` is float32 ``[num_agents]`` (float64 under JAX's x64 mode); ``terminated`` and
  ``truncated`` are bool scalars for the whole episode and never both true (``truncated``
  means the step limit cut an episode that had not terminated), so
  ``done = terminated | truncated`` and a learner bootstraps unless ``terminated``.
- ``transition`` is one step without reset: what it returns belongs to the episode that was
  stepped, also on its last step. ``step`` is ``transition`` plus the auto-reset: when an
  episode ends, the returned ``obs``/``state`` already belong to the next episode and
  ``info["final_observation"]`` holds the last observation of the one that ended (on other
  steps it equals ``obs``). Both split the key once, ``key_step, key_reset =
  jax.random.split(key)``: ``key_step`` drives the transition and ``key_reset`` the next
  episode's reset, so ``transition(key, ...)`` is exactly the transition ``step(key, ...)``
  takes. ``final_observation`` costs nothing unless it is used (XLA drops it), but a
  ``lax.scan`` that returns the whole ``info`` stores it beside ``obs``: drop it first
  (``info.pop("final_observation")``) where the last observation is not needed.
- ``params=None`` means ``env.default_params``. Randomness comes only from ``key``.
- ``params`` fields have documented ranges (:func:`param`); ``dcgenv.make`` and
  ``params.replace_checked`` refuse values outside them. Inside ``jit`` nothing is checked;
  each environment's docstring says what an out-of-range traced value does.

The ``info`` keys a learner may rely on (other keys are the environment's own, documented in
its docstring):

- ``"final_observation"`` (added by ``step``): see above.
- ``"success"``: bool scalar, only in environments that define success (whether the episode
  succeeded; read it on the step an episode ends).
- ``"bits"``: float32 scalar, only in environments whose actions carry messages through a
  ``dcgenv.comms`` channel: what this step's messages cost on the wire, in bits.

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
import dataclasses
import functools
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dcgenv import checks, spaces
from dcgenv._gymnax import Environment


def default_float() -> jnp.dtype:
    """JAX's default float dtype: float32, or float64 in x64 mode."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def normal(key: jax.Array, shape: tuple[int, ...] = (), dtype=None) -> jax.Array:
    """Standard normal draw, bit-identical with and without ``vmap``.

    On XLA:CPU, ``sigma * jax.random.normal(key)`` with a traced ``sigma`` fuses into one
    kernel whose vectorised (vmapped) and scalar code paths round differently by one ulp. An
    optimisation barrier keeps the draw in its own kernel, so any scaling that follows is the
    same in both. Use this for every Gaussian draw inside an environment.
    """
    dtype = default_float() if dtype is None else dtype
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


def param(default: Any = dataclasses.MISSING, low: float | None = None,
          high: float | None = None, *, low_open: bool = False, high_open: bool = False,
          default_factory: Callable[[], Any] | None = None) -> Any:
    """A params field with its documented range (checked by ``EnvParams.validate``)::

        add_rate: float = param(0.3, 0.0, 1.0)
        sigma: float = param(5.0, 0.0, low_open=True)    # sigma > 0
        probs: jax.Array = param(low=0.0, high=1.0, default_factory=lambda: jnp.ones(4) / 4)

    The range applies to every element of an array-valued field. NaN is never in range.
    """
    rng = {"low": low, "high": high, "low_open": low_open, "high_open": high_open}
    if default_factory is not None:
        return struct.field(default_factory=default_factory, metadata={"range": rng})
    return struct.field(default=default, metadata={"range": rng})


@struct.dataclass
class EnvParams:
    """Base parameters: every environment has a step limit.

    ``params.replace(**changes)`` (flax's) checks nothing, so that it works on traced values
    inside ``jit``; ``params.replace_checked(**changes)`` and ``dcgenv.make`` check every
    concrete field against its range (:func:`param`) with :meth:`validate`.
    """

    max_steps_in_episode: int = param(1, 1)

    def validate(self, owner: str | None = None) -> EnvParams:
        """Return ``self`` if every concrete field lies in its range; else ``ValueError``
        naming the field, the value and the range. Integer fields must hold integers, and a
        float must stay finite in the dtype the environment computes in (``1e300`` overflows
        float32). Traced fields (inside ``jit``) are skipped. Environments with constraints
        across fields extend this (and call ``super()``)."""
        owner = owner or type(self).__qualname__
        for f in dataclasses.fields(self):
            rng = f.metadata.get("range")
            value = getattr(self, f.name)
            if rng is None or isinstance(value, jax.core.Tracer):
                continue
            values = np.asarray(value)
            where = f"{owner}: params field {f.name}"
            if not np.issubdtype(values.dtype, np.number) and values.dtype != bool:
                raise ValueError(f"{where}={value!r} is not a number")
            if type(f.default) is int and not np.all(np.mod(values, 1) == 0):
                raise ValueError(f"{where}={value!r} must be an integer")
            if np.issubdtype(values.dtype, np.floating):
                with np.errstate(over="ignore"):
                    stored = values.astype(default_float())
                bad = np.isfinite(values) & ~np.isfinite(stored)
                if bad.any():
                    raise ValueError(f"{where}={value!r} overflows {stored.dtype}")
            bad = [i for i, v in np.ndenumerate(values) if not checks.in_range(float(v), **rng)]
            if bad:
                shown = f"={value!r}" if values.size < 10 else f" (shape {values.shape})"
                at = f", first at index {bad[0]}: {float(values[bad[0]])}," if values.ndim else ""
                raise ValueError(f"{where}{shown}{at} is outside its range "
                                 f"{checks.describe_range(**rng)}")
        return self

    def replace_checked(self, **changes: Any) -> EnvParams:
        """``replace`` followed by :meth:`validate` (host side, not under ``jit``)."""
        return self.replace(**changes).validate()


def _takes_params(space_fn: Callable) -> Callable:
    """Wrap a subclass's ``observation_space``/``action_space`` so that anything but params
    (JaxMARL's habit: ``env.observation_space("agent_0")``) is refused, not read as params."""

    @functools.wraps(space_fn)
    def checked(self, params: EnvParams | None = None):
        if params is not None and not isinstance(params, EnvParams):
            raise ValueError(
                f"{type(self).__name__}.{space_fn.__name__} takes the env's params (or None), "
                f"got {params!r}; every agent has the same spaces (each leaf describes one "
                "agent, agent-stacked in obs/actions), so no agent name is needed")
        return space_fn(self, params)

    return checked


class MultiAgentEnv(Environment, abc.ABC):
    """Base class of every dcgenv environment (see the module docstring for the contract)."""

    agents: tuple[str, ...] = ()
    # True where the obs key "active" says whose turn it is (an inactive agent waits and is
    # still in the game, rewards it receives while waiting included); False where a false
    # "active" or "alive" means the agent has left or is out of play. Learners read it
    # (MAPPO's turn_taking default).
    turn_based: bool = False

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        for name in ("observation_space", "action_space"):
            if name in cls.__dict__:
                setattr(cls, name, _takes_params(cls.__dict__[name]))

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def num_actions(self) -> int:
        """Actions per agent, for environments whose action space is ``Discrete``."""
        space = self.action_space(self.default_params)
        if not isinstance(space, spaces.Discrete):
            raise AttributeError(f"{self.name} has no num_actions: its action space is "
                                 f"{space!r}, not Discrete; use env.action_space(params)")
        return int(space.n)

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
    def transition(self, key: jax.Array, state: EnvState, actions: Any,
                   params: EnvParams | None = None):
        """One step without auto-reset (see the module docstring)."""
        params = self.default_params if params is None else params
        key_step, _ = jax.random.split(key)
        return self._transition(key_step, state, actions, params)

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: EnvState, actions: Any,
             params: EnvParams | None = None):
        """One step with auto-reset (see the module docstring)."""
        params = self.default_params if params is None else params
        key_step, key_reset = jax.random.split(key)
        obs_st, state_st, reward, terminated, truncated, info = self._transition(
            key_step, state, actions, params)
        done = terminated | truncated
        state_re = self.reset_env(key_reset, params)
        # Select the state, then observe it once: get_obs is a function of the state, so this
        # equals selecting between get_obs(state_re) and obs_st, without building the reset
        # observation or selecting observations; obs_st is only built when
        # final_observation is used (XLA drops it otherwise).
        state = jax.tree.map(lambda x, y: jax.lax.select(done, x, y), state_re, state_st)
        obs = self.get_obs(state, params)
        return obs, state, reward, terminated, truncated, {**info, "final_observation": obs_st}

    def _transition(self, key_step: jax.Array, state: EnvState, actions: Any, params: EnvParams):
        self._check_actions(actions)
        state_st, reward, terminated, info = self.step_env(key_step, state, actions, params)
        state_st = state_st.replace(time=state.time + 1)
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.logical_and(self.is_truncated(state_st, params), ~terminated)
        reward = jnp.broadcast_to(jnp.asarray(reward, default_float()), (self.num_agents,))
        return self.get_obs(state_st, params), state_st, reward, terminated, truncated, info

    def _check_actions(self, actions: Any) -> None:
        """At trace time: ``actions`` has the structure and shapes of ``sample_actions``."""
        n = self.num_agents
        if isinstance(actions, Mapping) and n and set(actions) == set(self.agents):
            raise ValueError(
                f"{self.name}: step takes agent-stacked actions (every leaf [num_agents={n}, "
                f"...]), not a dict keyed by agent name {sorted(actions)}; stack them with "
                "dcgenv.adapters.stack(actions, env.agents), or use the JaxMARL-style view "
                "dcgenv.adapters.jaxmarl.JaxMARLEnv(env)")
        want = self._action_shapes
        shapes = jax.tree.map(jnp.shape, actions)
        if jax.tree.structure(actions) != jax.tree.structure(want) or shapes != jax.tree.map(
                lambda s: s.shape, want):
            raise ValueError(
                f"{self.name}: actions must be agent-stacked like env.sample_actions(key) "
                f"(shapes {jax.tree.map(lambda s: s.shape, want)}: a leading axis of "
                f"num_agents={n} before the shape of env.action_space(params)), got shapes "
                f"{shapes}; env.action_space(params).sample(key) is one agent's action")

    @functools.cached_property
    def _action_shapes(self) -> Any:
        return jax.eval_shape(partial(self.sample_actions, params=self.default_params),
                              jax.random.key(0))

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
