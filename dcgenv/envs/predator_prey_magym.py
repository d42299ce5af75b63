"""Predator-Prey as in ma-gym (koulanurag/ma-gym ``PredatorPrey7x7-v0``), as arXiv 2401.15059
(marl-indep-comm) builds it: 7x7 grid, 4 predators, 2 prey, ``penalty=-0.75``.

Rules (those of ``ma_gym/envs/predator_prey/predator_prey.py``), one step:

1. Every agent gets ``step_cost`` (-0.01).
2. Predators move one after another in index order (actions 0 down, 1 left, 2 up, 3 right,
   4 stay; row 0 is the top), each only into a cell inside the grid holding no predator and
   no live prey; otherwise it stays. A later predator sees the earlier ones' new cells.
3. Prey take turns in index order. A live prey with ``k`` predators in its 4-neighbourhood:
   ``k = 1`` gives ``penalty`` (-0.75) to every agent; ``k >= 2`` gives ``capture_reward`` (+5)
   to every agent and the prey is captured (removed). A prey still alive then draws up to 5
   moves from ``prey_move_probs`` (down, left, up, right, stay: 0.175 x 4, 0.3) and takes the
   first whose target has no predator in its 4-neighbourhood (no such draw: it stays); it
   moves only into a vacant cell inside the grid. (As in ma-gym, the check looks at the
   target's neighbours only, so a draw into a predator's own cell passes it and the prey
   then stays put.)
4. The episode terminates when every prey is captured, and is cut at 100 steps.

Start: predators one by one, then prey one by one, each on a uniformly random vacant cell with
coordinates in ``[0, size - 2]`` (ma-gym's ``randint(0, size - 1)`` excludes its upper bound:
the last row and column are never used at reset); a prey never starts next to a predator.

Observation (per agent, f32[28], ma-gym's order): ``row / (size - 1)``, ``col / (size - 1)``,
a 5x5 window centred on the agent (row-major) with 1 where a live prey is, and
``time / max_steps_in_episode``. ma-gym's docstring mentions an agent id; its code sends none
and neither do we. All agents are always active (no mask needed).

``obs_mode`` (constructor argument, e.g. ``make("PredatorPrey-magym-v0", obs_mode="index")``):
``"float32"`` is the f32[28] above (the default, 112 bytes per agent; ``"onehot"``, its former
name, is a deprecated alias: the vector is not a one-hot). The compact modes return a
dict per agent, ``obs`` (integers, the smallest unsigned dtype that holds them: uint8 here) and
``time`` (int32, the step counter, exact for any step limit):

=========== ====================================================================== =========
``uint8``   ``obs`` = ``[row, col, window(25)]``, the same layout as integers       31 bytes
``index``   ``obs`` = ``[row, col]`` + the window cells (0..24) holding a live       8 bytes
            prey, sorted, 25 for each prey not seen (one entry per prey)
=========== ====================================================================== =========

``env.expand_obs(obs, params)`` maps any mode's observation to the f32[28] one, bit for bit
(jittable, any leading batch axes; ``params`` gives ``max_steps_in_episode``).

``info``: ``prey_alive`` bool [num_prey], ``captured`` (prey captured so far this episode),
``success`` (every prey captured). Rewards are shared: all agents get the same number.

Actions: ``Discrete(5)``; inside ``jit`` out-of-range actions are clipped to ``[0, 4]`` (ma-gym
raises an exception).

Cost per step: predators and prey move in unrolled loops over agents (each move checks the
``n + p`` others); the observation compares each agent with each prey. The reset compares the
``(size - 1)^2`` start cells (36) with the predators (the only grid-sized work).

Constructor: ``size`` >= 3, ``num_agents`` >= 1, ``num_prey`` >= 1 (ma-gym's ``grid_shape``,
``n_agents``, ``n_preys``; its ``PredatorPrey5x5`` is ``size=5, num_agents=2, num_prey=1``), with
``(size - 1)^2 >= 5 num_agents + num_prey`` so that every start is legal, and ``obs_mode``.

Parameters (``EnvParams``), with the ranges ``make`` and ``params.replace_checked`` enforce:
``step_cost`` <= 0 and ``penalty`` <= 0 (costs), ``capture_reward`` >= 0, ``prey_move_probs``
a probability vector (entries in [0, 1] summing to 1 within 1e-5; ma-gym's static-prey ``-v2``
variants use ``(0, 0, 0, 0, 1)``), ``max_steps_in_episode`` >= 1. Per step and agent the reward
lies in ``[step_cost + num_prey * min(penalty, capture_reward, 0), step_cost + num_prey *
max(penalty, capture_reward, 0)]``. Inside ``jit``, where params may be traced and nothing is
checked: ``prey_move_probs`` act as weights (normalised by their sum; an all-zero vector keeps
the prey still; negative entries give some legal move), other signs of the rewards are paid as
given, and a step limit < 1 ends every episode after one step (with a limit of 0 the time
feature of the f32[28] observation, ``time / 0``, reads as 1).

Deviations from the original, and why:
- Start cells are drawn directly from the uniform distribution over allowed cells instead of
  by rejection sampling (same distribution, fixed cost under ``jit``).
- Episodes are cut at ``max_steps_in_episode`` as a truncation (ma-gym sets every agent's
  done at 100 steps, without distinguishing the two).
- ma-gym's ``full_observable`` option (every agent gets all agents' observations) is not
  reproduced; concatenate ``obs`` across agents for it.
- Random numbers come from JAX keys, so individual trajectories differ from ma-gym's
  ``np_random`` ones; the distributions are the same (see ``docs/parity.md``).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dcgenv import checks, spaces, viz
from dcgenv.core import EnvParams as BaseParams
from dcgenv.core import EnvState as BaseState
from dcgenv.core import MultiAgentEnv, param
from dcgenv.envs.predator_prey import distinct_cells
from dcgenv.registry import register

MOVES = np.array([[1, 0], [0, -1], [-1, 0], [0, 1], [0, 0]], np.int32)  # down left up right stay
VIEW = 2  # the window is (2 * VIEW + 1)^2 = 5x5, hard-coded in ma-gym's get_agent_obs
CELLS = (2 * VIEW + 1) ** 2
NAME = "PredatorPrey-magym"
OBS_MODES = ("float32", "uint8", "index")  # "onehot": deprecated alias of "float32"


@struct.dataclass
class EnvState(BaseState):
    predators: jax.Array  # int32 [n, 2] (row, col)
    prey: jax.Array  # int32 [p, 2]
    prey_alive: jax.Array  # bool [p]


@struct.dataclass
class EnvParams(BaseParams):
    step_cost: float = param(-0.01, high=0.0)  # every agent, every step (a cost)
    penalty: float = param(-0.75, high=0.0)  # every agent, per prey touched by one predator
    capture_reward: float = param(5.0, 0.0)  # every agent, per prey captured
    prey_move_probs: jax.Array = param(  # down left up right stay; a probability vector
        low=0.0, high=1.0,
        default_factory=lambda: jnp.array([0.175, 0.175, 0.175, 0.175, 0.3], jnp.float32))
    max_steps_in_episode: int = param(100, 1)

    def validate(self, owner: str | None = None) -> EnvParams:
        super().validate(owner)
        probs = self.prey_move_probs
        if not isinstance(probs, jax.core.Tracer):
            probs = np.asarray(probs, np.float64)  # possibly batched: [..., 5]
            if probs.shape[-1:] != (len(MOVES),) or np.any(np.abs(probs.sum(-1) - 1) > 1e-5):
                raise ValueError(f"{owner or 'PredatorPrey-magym'}: params field prey_move_probs="
                                 f"{self.prey_move_probs!r} must be {len(MOVES)} probabilities "
                                 "(down, left, up, right, stay) summing to 1")
        return self


def _neighbours(cells: jax.Array, predators: jax.Array) -> jax.Array:
    """Number of predators in the 4-neighbourhood of each cell (cells [..., 2])."""
    dist = jnp.abs(cells[..., None, :] - predators).sum(-1)
    return (dist == 1).sum(-1)


class PredatorPreyMagym(MultiAgentEnv):
    def __init__(self, size: int = 7, num_agents: int = 4, num_prey: int = 2,
                 obs_mode: str = "float32"):
        size = checks.integer(NAME, "size", size, 3)
        num_agents = checks.integer(NAME, "num_agents", num_agents, 1)
        num_prey = checks.integer(NAME, "num_prey", num_prey, 1)
        if (size - 1) ** 2 < 5 * num_agents + num_prey:
            raise ValueError(f"{NAME}: impossible size: size={size}, num_agents={num_agents}, "
                             f"num_prey={num_prey} need (size - 1)^2 >= 5 * num_agents + "
                             "num_prey so every start is legal")
        if obs_mode == "onehot":
            warnings.warn(f"{NAME}: obs_mode='onehot' is deprecated (the observation is not a "
                          "one-hot); use obs_mode='float32', the same observation",
                          DeprecationWarning, stacklevel=2)
            obs_mode = "float32"
        self.size, self.num_prey = size, num_prey
        self.obs_mode = checks.choice(NAME, "obs_mode", obs_mode, OBS_MODES)
        self._dtype = np.min_scalar_type(max(size - 1, CELLS))
        self.agents = tuple(f"predator_{i}" for i in range(num_agents))
        side = size - 1  # start cells: rows and columns 0 .. size - 2
        self._start = np.stack(np.divmod(np.arange(side * side), side), axis=-1).astype(np.int32)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        key_pred, *key_prey = jax.random.split(key, 1 + self.num_prey)
        start = jnp.asarray(self._start)
        predators = start[distinct_cells(key_pred, len(start), self.num_agents)]
        allowed = _neighbours(start, predators) == 0
        allowed &= ~jnp.any(jnp.all(start[:, None] == predators, -1), -1)
        prey = []
        for k in key_prey:  # a uniform rank among the allowed cells (one draw, no Gumbels)
            rank = jax.random.randint(k, (), 0, jnp.maximum(allowed.sum(), 1))
            cell = jnp.searchsorted(jnp.cumsum(allowed), rank, side="right")
            prey.append(start[cell])
            allowed = allowed.at[cell].set(False)
        return EnvState(time=jnp.zeros((), jnp.int32), predators=predators, prey=jnp.stack(prey),
                        prey_alive=jnp.ones(self.num_prey, bool))

    def _vacant(self, cell, predators, prey, alive):
        inside = jnp.all((cell >= 0) & (cell < self.size))
        return (inside & ~jnp.any(jnp.all(predators == cell, -1))
                & ~jnp.any(jnp.all(prey == cell, -1) & alive))

    def step_env(self, key: jax.Array, state: EnvState, actions: jax.Array, params: EnvParams):
        actions = jnp.clip(jnp.asarray(actions, jnp.int32), 0, 4)
        moves = jnp.asarray(MOVES)

        def move_predator(i, preds):
            target = preds[i] + moves[actions[i]]
            ok = self._vacant(target, preds, state.prey, state.prey_alive)
            return preds.at[i].set(jnp.where(ok, target, preds[i]))

        preds = jax.lax.fori_loop(0, self.num_agents, move_predator, state.predators, unroll=True)
        cdf = jnp.cumsum(jnp.asarray(params.prey_move_probs, jnp.float32))

        def prey_turn(j, carry):
            prey, alive, reward = carry
            k = _neighbours(prey[j], preds)
            touched = alive[j] & (k >= 1)
            reward += jnp.where(touched, jnp.where(k == 1, params.penalty,
                                                   params.capture_reward), 0.0)
            alive = alive.at[j].set(alive[j] & (k <= 1))
            u = jax.random.uniform(jax.random.fold_in(key, j), (5,)) * cdf[-1]  # inverse CDF
            draws = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), 4)
            safe = _neighbours(prey[j] + moves[draws], preds) == 0
            move = jnp.where(jnp.any(safe), draws[jnp.argmax(safe)], 4)
            target = prey[j] + moves[move]
            ok = alive[j] & (move != 4) & self._vacant(target, preds, prey, alive)
            return prey.at[j].set(jnp.where(ok, target, prey[j])), alive, reward

        prey, alive, reward = jax.lax.fori_loop(
            0, self.num_prey, prey_turn,
            (state.prey, state.prey_alive, jnp.asarray(params.step_cost, jnp.float32)),
            unroll=True)
        state = state.replace(predators=preds, prey=prey, prey_alive=alive)
        done = ~jnp.any(alive)
        info = {"prey_alive": alive, "captured": (~alive).sum().astype(jnp.int32),
                "success": done}
        return state, jnp.full((self.num_agents,), reward, jnp.float32), done, info

    def get_obs(self, state: EnvState, params: EnvParams) -> jax.Array | dict[str, jax.Array]:
        rel = state.prey[None] - state.predators[:, None]  # [n, p, 2]
        seen = jnp.all(jnp.abs(rel) <= VIEW, -1) & state.prey_alive
        cell = jnp.where(seen, (rel[..., 0] + VIEW) * (2 * VIEW + 1) + rel[..., 1] + VIEW, CELLS)
        if self.obs_mode == "float32":
            return self._full(state.predators, self._window(cell), state.time, params)
        window = self._window(cell) if self.obs_mode == "uint8" else jnp.sort(cell, axis=-1)
        obs = jnp.concatenate([state.predators, window.astype(jnp.int32)], -1)
        return {"obs": obs.astype(self._dtype),
                "time": jnp.full(self.num_agents, state.time, jnp.int32)}

    def _window(self, cell: jax.Array) -> jax.Array:
        """f32 5x5 window (flat) with 1 on each cell in ``cell`` (``CELLS``: none)."""
        return jax.nn.one_hot(cell, CELLS).max(axis=-2)

    def _full(self, predators, window, time, params: EnvParams) -> jax.Array:
        coords = predators / (self.size - 1)
        # times a reciprocal of the (unbatched) limit: bit-identical with and without vmap
        t = time * (1.0 / params.max_steps_in_episode)
        t = jnp.where(jnp.isfinite(t), t, 1.0)  # a traced limit of 0: 0 * inf, not NaN
        t = jnp.broadcast_to(t, coords.shape[:-1])
        return jnp.concatenate([coords, window, t[..., None]], axis=-1).astype(jnp.float32)

    def expand_obs(self, obs, params: EnvParams | None = None) -> jax.Array:
        """Any ``obs_mode``'s observation -> the f32[28] ``"float32"`` one, bit for bit."""
        if self.obs_mode == "float32":
            return obs
        params = self.default_params if params is None else params
        x = obs["obs"].astype(jnp.int32)
        window = x[..., 2:] if self.obs_mode == "uint8" else self._window(x[..., 2:])
        return self._full(x[..., :2], window, obs["time"], params)

    def render(self, state: EnvState, params: EnvParams | None = None,
               cell_px: int = 8) -> jax.Array:
        """uint8 ``[size * cell_px, size * cell_px, 3]``: live prey dark red cells, each predator a
        square in its slot's colour. Works under ``jit`` and ``vmap``."""
        shape = (self.size, self.size)
        prey = viz.marks(shape, state.prey[:, 0], state.prey[:, 1], viz.color("prey"),
                         state.prey_alive)
        predators = viz.marks(shape, state.predators[:, 0], state.predators[:, 1],
                              viz.agent_colors(self.num_agents), inset=1)
        return viz.to_pixels(viz.canvas(*shape), prey, predators, cell_px=cell_px)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Space:
        if self.obs_mode == "float32":
            return spaces.Box(0.0, 1.0, (3 + CELLS,), jnp.float32)
        params = self.default_params if params is None else params
        window = [1] * CELLS if self.obs_mode == "uint8" else [CELLS] * self.num_prey
        high = np.array([self.size - 1] * 2 + window, self._dtype)
        return spaces.Dict({"obs": spaces.Box(0, high, high.shape, self._dtype),
                            "time": spaces.Box(0, params.max_steps_in_episode, (), jnp.int32)})

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(5)


register("PredatorPrey-magym-v0", PredatorPreyMagym)
