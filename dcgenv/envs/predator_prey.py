"""Predator-Prey as in IC3Net (Singh, Jain & Sukhbaatar 2018; code IC3Net/IC3Net, ic3net-envs).

Rules (those of ``predator_prey_env.py``): ``num_agents`` predators and one stationary prey
start on distinct uniformly random cells of a ``dim x dim`` grid. Each step every predator that
is not frozen moves up/right/down/left or stays (actions 0..4; row 0 is the top); moves are
clamped at the border and predators may share cells. A predator standing on the prey after
moving is frozen there for the rest of the episode (its actions are ignored). Reward per
predator and step, by ``params.mode``:

============ ============================ =============================================
mode          predator not on the prey     predator on the prey (``k`` predators on it)
============ ============================ =============================================
0 mixed       -0.05                        0
1 cooperative -0.05                        +0.05 * k
2 competitive -0.05                        +0.05 / k
============ ============================ =============================================

In mixed mode (the default, as IC3Net/TarMAC/MAGIC report) the episode terminates when every
predator is on the prey; in the other two modes it runs until ``max_steps_in_episode``. Levels:
easy 3 predators, 5x5, vision 0, 20 steps; medium 5, 10x10, vision 1, 40; hard 10, 20x20,
vision 1, 80 (IC3Net's README). ``make(id, mode="cooperative")`` picks a mode by name (a
``ValueError`` names the allowed ones); ``params.mode`` is an int so it can be vmapped.

Constructor arguments (static): ``dim`` >= 2, ``num_agents`` in ``[1, dim*dim - 1]`` (the
predators and the prey start on distinct cells), ``vision`` >= 0, ``max_steps`` >= 1 (the
default ``max_steps_in_episode``), ``mode`` (a name) and ``obs_mode`` (below). Parameters
(``EnvParams``; ``make`` and ``params.replace_checked`` refuse other values): ``mode`` in
{0, 1, 2}, ``max_steps_in_episode`` >= 1. Inside ``jit``, where params may be traced and nothing
is checked, a ``mode`` code outside [0, 2] reads as the nearest mode, a fractional one pays as
mixed but never terminates, and a step limit < 1 ends every episode after one step.

Observation (per agent, a dict; agent-stacked in ``obs``):

========== ================================ ==============================================
``view``    f32[2v+1, 2v+1, dim*dim + 4]     IC3Net's vision window, row-major, channels last
``active``  bool                             False once the predator is frozen on the prey
========== ================================ ==============================================

The window encoding is IC3Net's: channel ``r*dim + c`` is a one-hot of the cell's own id,
channel ``dim*dim`` is never set (an unused slot of the original vocabulary), ``dim*dim + 1``
marks cells outside the grid, ``dim*dim + 2`` counts the prey and ``dim*dim + 3`` counts the
predators in the cell. Flattened, ``view`` is the per-agent vector IC3Net's trainer feeds
its networks (vocab 29 / 104 / 404 for easy / medium / hard).

``obs_mode`` (constructor argument, e.g. ``make("PredatorPrey-hard-v0", obs_mode="index")``)
picks how ``view`` is stored; ``env.expand_obs(obs)`` maps any mode's observation to the
``"onehot"`` one, bit for bit (jittable, any leading batch axes). Bytes of ``view`` per
predator (easy / medium / hard; ``active`` adds one byte):

=========== ============================================================ ===================
``onehot``  f32[2v+1, 2v+1, vocab], above (the default; IC3Net's)          116 / 3744 / 14544
``uint8``   the same in uint8                                              29 / 936 / 3636
``index``   ``[2v+1, 2v+1, 3]``: per window cell its id (``r*dim + c``, or  3 / 27 / 54
            ``dim*dim + 1`` outside), prey count and predator count, in
            the smallest unsigned dtype that holds them (uint16 for hard)
=========== ============================================================ ===================

The ``index`` window is what a network embeds: ``Dense(onehot)`` equals per cell an
``Embed(dim*dim + 2)`` of the id plus the two counts times their weights.

``info``: ``success`` (all predators on the prey), ``steps_to_catch`` (the step on which the
last predator reached the prey, or the steps taken so far while that has not happened: at the
end of an episode, the TarMAC metric "steps to catch" with uncaught episodes counted at their
length), ``on_prey`` (number of predators on the prey).

Actions: ``Discrete(5)``; inside ``jit`` out-of-range actions are clipped to ``[0, 4]``.

Cost per step: O(n) for the moves and rewards; the observation is gathered per agent from its
``(2v+1)^2`` window (O(n^2 (2v+1)^2) to count predators, plus writing the one-hot output, in one
fused loop with the auto-reset select); no grid-sized array is built, so the cost does not grow
with ``dim``, except the one-hot's ``dim^2 + 4`` channels (``obs_mode="index"`` writes 3).

Deviations from the original, and why:
- IC3Net's action 4 only "stays" because its code tests for 5; here 4 is an explicit stay
  (same behaviour). Its assertion allows action 5 (also a stay); clipping maps 5+ to 4.
- IC3Net reports ``success`` only outside competitive mode; here it is defined in every mode.
- Observations are float32 (IC3Net builds int arrays and casts them to double).
- IC3Net's unused options (moving prey, which IC3Net itself never implemented; ``enemy_comm``;
  several prey; ``no_stay``) are not reproduced.
- Start cells are drawn by sequential rank sampling (uniform over ordered distinct cells, the
  same distribution as ``np.random.choice(..., replace=False)``) so that a reset costs
  O(agents^3) elementwise work (no device loop), not O(dim^2).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dcgenv import checks, spaces, viz
from dcgenv.core import EnvParams as BaseParams
from dcgenv.core import EnvState as BaseState
from dcgenv.core import MultiAgentEnv, check_obs_mode, param
from dcgenv.registry import register

MODES = ("mixed", "cooperative", "competitive")
MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1], [0, 0]], np.int32)  # up right down left stay
TIMESTEP_PENALTY, PREY_REWARD = -0.05, 0.05


@struct.dataclass
class EnvState(BaseState):
    predators: jax.Array  # int32 [n, 2] (row, col)
    prey: jax.Array  # int32 [2]
    frozen: jax.Array  # bool [n], on the prey
    catch_time: jax.Array  # int32, step on which all predators were on the prey (0: not yet)


@struct.dataclass
class EnvParams(BaseParams):
    mode: int = param(0, 0, len(MODES) - 1)  # index into MODES
    max_steps_in_episode: int = param(20, 1)


def mode_code(mode: str) -> int:
    """The ``params.mode`` code of a mode name; ``ValueError`` names the allowed modes."""
    return MODES.index(checks.choice("PredatorPrey", "mode", mode, MODES))


def distinct_cells(key: jax.Array, num_cells: int, m: int) -> jax.Array:
    """``m`` distinct cells of ``range(num_cells)``, uniformly random in order, in O(m^3).

    The k-th cell is a uniform rank ``r`` among the ``num_cells - k`` cells not yet taken:
    ``r`` plus the number of taken cells with at most ``r`` free cells below them. No loop
    runs on the device (the loop over ``m`` is unrolled), which matters on accelerators.
    """
    if m > num_cells:
        raise ValueError(f"cannot place {m} distinct items on {num_cells} cells")
    ranks = jax.random.randint(key, (m,), 0, num_cells - jnp.arange(m))
    cells, slot = jnp.zeros((m,), jnp.int32), jnp.arange(m)
    for k in range(m):
        placed = slot < k
        free_below = cells - jnp.sum((cells[None, :] < cells[:, None]) & placed, axis=1)
        cells = cells.at[k].set(ranks[k] + jnp.sum(placed & (free_below <= ranks[k])))
    return cells


class PredatorPrey(MultiAgentEnv):
    def __init__(self, dim: int = 5, num_agents: int = 3, vision: int = 0,
                 max_steps: int = 20, mode: str = "mixed", obs_mode: str = "onehot"):
        dim = checks.integer("PredatorPrey", "dim", dim, 2)
        num_agents = checks.integer("PredatorPrey", "num_agents", num_agents, 1)
        vision = checks.integer("PredatorPrey", "vision", vision, 0)
        max_steps = checks.integer("PredatorPrey", "max_steps", max_steps, 1)
        if num_agents + 1 > dim * dim:
            raise ValueError(f"PredatorPrey: impossible size: num_agents={num_agents} predators "
                             f"and the prey need distinct cells, so num_agents must be in "
                             f"[1, dim*dim - 1] = [1, {dim * dim - 1}] for dim={dim}")
        self.dim, self.vision = dim, vision
        self.vocab = dim * dim + 4
        # 0.05 / k as a table (a division of batched numbers may round differently under vmap)
        self._shares = (PREY_REWARD / np.maximum(np.arange(num_agents + 1), 1)).astype(np.float32)
        self._default = EnvParams(mode=mode_code(mode), max_steps_in_episode=max_steps)
        self.agents = tuple(f"predator_{i}" for i in range(num_agents))
        self.obs_mode = check_obs_mode("PredatorPrey", obs_mode, num_agents)
        self._dtype = {"onehot": np.dtype(np.float32), "uint8": np.dtype(np.uint8),
                       "index": np.min_scalar_type(max(dim * dim + 1, num_agents))}[obs_mode]
        v = vision
        self._offsets = np.stack(np.meshgrid(np.arange(-v, v + 1), np.arange(-v, v + 1),
                                             indexing="ij"), axis=-1).reshape(-1, 2)

    @property
    def default_params(self) -> EnvParams:
        return self._default

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        cells = distinct_cells(key, self.dim * self.dim, self.num_agents + 1)
        pos = jnp.stack([cells // self.dim, cells % self.dim], axis=-1)
        zero = jnp.zeros((), jnp.int32)
        return EnvState(time=zero, predators=pos[:-1], prey=pos[-1],
                        frozen=jnp.zeros(self.num_agents, bool), catch_time=zero)

    def step_env(self, key: jax.Array, state: EnvState, actions: jax.Array, params: EnvParams):
        actions = jnp.clip(jnp.asarray(actions, jnp.int32), 0, 4)
        moved = jnp.clip(state.predators + jnp.asarray(MOVES)[actions], 0, self.dim - 1)
        predators = jnp.where(state.frozen[:, None], state.predators, moved)
        on_prey = jnp.all(predators == state.prey, axis=-1)
        k = on_prey.sum()
        mode = jnp.clip(params.mode, 0, 2)  # out-of-range codes read as the nearest mode
        on_reward = jnp.select([mode == 1, mode == 2],
                               [PREY_REWARD * k, jnp.asarray(self._shares)[k]], 0.0)
        reward = jnp.where(on_prey, on_reward, TIMESTEP_PENALTY).astype(jnp.float32)
        caught = jnp.all(on_prey)
        catch_time = jnp.where((state.catch_time == 0) & caught, state.time + 1, state.catch_time)
        state = state.replace(predators=predators, frozen=on_prey, catch_time=catch_time)
        info = {"success": caught, "on_prey": k.astype(jnp.int32),
                "steps_to_catch": jnp.where(caught, catch_time, state.time + 1)}
        return state, reward, caught & (mode == 0), info

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        dim, side = self.dim, 2 * self.vision + 1
        cells = state.predators[:, None, :] + jnp.asarray(self._offsets, jnp.int32)  # [n, W, 2]
        inside = jnp.all((cells >= 0) & (cells < dim), axis=-1)
        cell_id = jnp.where(inside, cells[..., 0] * dim + cells[..., 1], dim * dim + 1)
        prey = jnp.all(cells == state.prey, axis=-1)
        preds = jnp.all(cells[:, :, None, :] == state.predators[None, None], axis=-1).sum(-1)
        if self.obs_mode == "index":
            view = jnp.stack([cell_id, prey, preds], axis=-1)
        else:
            view = self._one_hot(cell_id, prey, preds)
        view = view.reshape(self.num_agents, side, side, -1).astype(self._dtype)
        return {"view": view, "active": ~state.frozen}

    def _one_hot(self, cell_id: jax.Array, prey: jax.Array, preds: jax.Array) -> jax.Array:
        """int32 ``[..., vocab]`` per window cell: one-hot id, prey count, predator count.

        One elementwise expression over the channels (no concatenate), so that XLA writes the
        window in one loop fused with the auto-reset select."""
        channel, prey_channel = jnp.arange(self.vocab), self.dim * self.dim + 2
        return ((cell_id[..., None] == channel)
                + prey[..., None].astype(jnp.int32) * (channel == prey_channel)
                + preds[..., None] * (channel == prey_channel + 1))

    def expand_obs(self, obs: dict[str, jax.Array], params: EnvParams | None = None):
        """Any ``obs_mode``'s observation -> the ``"onehot"`` one, bit for bit (any batch axes)."""
        view = obs["view"]
        if self.obs_mode == "index":
            view = view.astype(jnp.int32)
            view = self._one_hot(view[..., 0], view[..., 1], view[..., 2])
        return {"view": view.astype(jnp.float32), "active": obs["active"]}

    @property
    def sparse_width(self) -> int:
        """Width of the flattened one-hot observation :meth:`sparse_obs` indexes: ``active``
        (1) then ``view`` (``(2v+1)^2 * vocab``)."""
        return 1 + (2 * self.vision + 1) ** 2 * self.vocab

    def sparse_obs(self, obs: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
        """Any ``obs_mode``'s observation -> the nonzero entries of the ``"onehot"`` one
        flattened (``[active, view.ravel()]``: :meth:`expand_obs`'s leaves in
        ``jax.tree.leaves`` order, as ``agents.networks.flatten_obs`` ravels them):
        ``(index int32, value float32)``, both ``[..., 1 + 3 (2v+1)^2]``. Adding each ``value``
        at its ``index`` into zeros of width :attr:`sparse_width` gives that vector bit for bit
        (padding entries have value 0). Jittable, any batch axes. From ``"index"``: per window
        cell its id, prey and predator entries (an embedding-bag input); other modes: a stable
        argsort of the one-hot (nonzero entries first)."""
        w, active = (2 * self.vision + 1) ** 2, obs["active"][..., None].astype(jnp.float32)
        batch = active.shape[:-1]
        if self.obs_mode != "index":
            flat = jnp.concatenate([active, obs["view"].reshape(*batch, -1).astype(jnp.float32)],
                                   -1)
            index = jnp.argsort(flat == 0, axis=-1, stable=True)[..., :1 + 3 * w]
            return index.astype(jnp.int32), jnp.take_along_axis(flat, index, -1)
        view = obs["view"].astype(jnp.int32).reshape(*batch, w, 3)  # id, prey, predators
        prey = self.dim * self.dim + 2  # the prey channel; the predator channel follows
        cells = (1 + jnp.arange(w)[:, None] * self.vocab
                 + view.at[..., 1].set(prey).at[..., 2].set(prey + 1))
        index = jnp.concatenate([jnp.zeros((*batch, 1), jnp.int32), cells.reshape(*batch, -1)], -1)
        value = jnp.concatenate([active, view.at[..., 0].set(1).reshape(*batch, -1)], -1)
        return index.astype(jnp.int32), value.astype(jnp.float32)

    def render(self, state: EnvState, params: EnvParams | None = None,
               cell_px: int = 8) -> jax.Array:
        """uint8 ``[dim * cell_px, dim * cell_px, 3]``: the prey's cell orange, each predator a
        square in its slot's colour (white once frozen on the prey); ``jit``/``vmap`` work."""
        shape = (self.dim, self.dim)
        prey = viz.marks(shape, state.prey[0], state.prey[1], viz.color("prey"))
        colors = jnp.where(state.frozen[:, None], viz.color("frozen"),
                           viz.agent_colors(self.num_agents))
        predators = viz.marks(shape, state.predators[:, 0], state.predators[:, 1], colors,
                              inset=1)
        return viz.to_pixels(viz.canvas(*shape), prey, predators, cell_px=cell_px)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Dict:
        side = 2 * self.vision + 1
        if self.obs_mode == "index":  # id, prey count, predator count per cell
            high = np.broadcast_to(np.array([self.dim ** 2 + 1, 1, self.num_agents]),
                                   (side, side, 3)).astype(self._dtype)
            view = spaces.Box(0, high, high.shape, self._dtype)
        else:
            view = spaces.Box(0.0, float(self.num_agents), (side, side, self.vocab), self._dtype)
        return spaces.Dict({"view": view, "active": spaces.Binary()})

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(5)


register("PredatorPrey-easy-v0", PredatorPrey, dim=5, num_agents=3, vision=0, max_steps=20)
register("PredatorPrey-medium-v0", PredatorPrey, dim=10, num_agents=5, vision=1, max_steps=40)
register("PredatorPrey-hard-v0", PredatorPrey, dim=20, num_agents=10, vision=1, max_steps=80)
