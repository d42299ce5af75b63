"""Traffic Junction (Sukhbaatar et al. 2016) as in IC3Net's ``ic3net-envs`` (Singh et al. 2018).

Cars enter the grid, each drives a fixed route and, every step, chooses gas (advance one cell
along the route) or brake (stay). Layouts, routes and cell ids: ``traffic_junction_layout.py``.

========= ====== ======= ======================== ========= ====== ========
level     agents grid    entries x routes          max steps vision add_rate
========= ====== ======= ======================== ========= ====== ========
easy      5      7 x 7   2 x 1 (one-way roads)     20        0      0.3
medium    10     14 x 14 4 x 3                     40        1      0.2
hard      20     18 x 18 8 x 7 (4 two-way roads)   80        1      0.05
========= ====== ======= ======================== ========= ====== ========

Constructor arguments (static, they change shapes): ``level``, ``vision`` (e.g. easy with
vision 1 instead of IC3Net's 0: ``make("TrafficJunction-easy-v0", vision=1)``, obs length 137),
``num_agents`` (the cap on cars in the system) and ``obs_mode`` (below).

One step, in IC3Net's order:

1. Every car in the system acts: its wait (steps acted since entering) grows by one; brake
   keeps its cell; gas moves it to the next cell of its route, and a car that moves past the
   last cell has completed its route: it leaves, its wait is zeroed and its slot is free.
2. Arrivals: for each entry in order, while fewer than ``num_agents`` cars are in the system,
   a car arrives with probability ``add_rate``, in a uniformly chosen free slot, on the first
   cell of a uniformly chosen route of that entry (wait 0).
3. Collisions are detected after the arrivals (a car can crash as it arrives): a car shares its
   cell with another car. Reward per car: ``alive * (time_penalty * wait + crash_penalty *
   crashed)`` with -0.01 and -10; a pair that stays on one cell pays again every step.

The game never terminates; the base class truncates at ``max_steps_in_episode``. ``success``
means no collision so far this episode (on the last step: the episode's success, which
``LogWrapper`` reads). ``info``: ``collisions`` (cars that crashed this step), ``success``,
``entered`` and ``completed`` (cars that arrived / completed their route this step).

Observation per car, a dict: ``alive`` (bool) and ``obs`` (f32 of length 17 / 533 / 1325 at
the default visions) = ``[last_act, route_id / (num_routes - 1), window]`` where ``window`` is
the ``(2 vision + 1)^2`` cells around the car, row-major, each a one-hot of the cell's id (road
id or outside, vocabulary 15 / 59 / 147) plus, in the car channel, the *count* of cars on it
(the car itself included). A car not in the system sees all zeros. ``last_act`` belongs to the
slot: it is not reset when a new car takes the slot (as IC3Net), and completing a route leaves
the previous value.

Actions: ``Discrete(2)`` per car, 0 = gas, 1 = brake (IC3Net's order). Actions of cars not in
the system are ignored; inside ``jit`` other values are clipped into {0, 1}.

Parameters (``EnvParams``), with the ranges ``make`` and ``params.replace_checked`` enforce:
``add_rate`` in [0, 1] (a probability), ``time_penalty`` and ``crash_penalty`` <= 0 (penalties:
-0.01 and -10), ``max_steps_in_episode`` >= 1. Inside ``jit`` params may be traced and nothing
is checked: ``add_rate`` > 1 acts as 1 and < 0 as 0 (no car ever enters, so every episode
"succeeds"), positive penalties pay cars for waiting or crashing, and a step limit < 1 ends
every episode after one step; rewards stay finite for any finite params.

Curriculum: ``add_rate`` is a params field. ``curriculum_add_rate(epoch, level)`` gives the rate
IC3Net's curriculum sets in a given training epoch (works under ``jit``); a trainer writes it
into params, e.g. ``params.replace(add_rate=curriculum_add_rate(epoch, "easy"))``.

Cost: each step is O(N) for the dynamics, O(N^2) for collisions and O(N^2 (2v+1)^2) for the
window counts (each window cell compared with the N car cells), all dominated by writing the
observation itself, N (2v+1)^2 x vocab floats in the default ``obs_mode`` (one fused loop; no
``[N, K, vocab]`` intermediate is materialised), N (2 + 2 (2v+1)^2) bytes in ``"index"``.
Cars are route/position index arrays; the window is a gather from a padded id grid; arrivals
rank the free slots by O(N^2) comparisons (no sort, no scatter). The per-car head of the
observation (in the system, ``last_act``, ``route``) is looked up in a small table, so that the
observation loop reads it instead of recomputing it for every entry, and writes zeros for free
slots without computing them; the auto-reset (``step``) then costs next to nothing (the reset
is the empty junction).

Deviations from IC3Net, none visible in the rules or the observations at the default levels:

- IC3Net parks cars that are not in the system on cell (0, 0), and its car channel counts
  them there. We do not count them: (0, 0) is outside every window of a car on the road at the
  default visions (it is first seen from easy vision >= 3, medium >= 6, hard >= 4).
- An arrival happens when ``U < add_rate`` (IC3Net: ``U <= add_rate`` with float64 draws), so
  that ``add_rate = 0`` adds no car with float32 uniforms.
- IC3Net's random choices come from numpy's global generator in a different order; outcomes
  match in distribution (``docs/parity.md``), not draw for draw.
- Not ported: ``vocab_type="scalar"``, other grid sizes (``dim``).

``render(state, params)``: uint8 frame, road cells grey, each car an inset square in its slot's
colour (``viz.agent_colors``), cars sharing a cell red.
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
from dcgenv.envs.traffic_junction_layout import LEVELS, build_layout, curriculum_table, get_level
from dcgenv.registry import register


@struct.dataclass
class EnvState(BaseState):
    alive: jax.Array  # bool [N]: the slot holds a car in the system
    route: jax.Array  # int32 [N]: route id of the slot's car (kept after it leaves)
    pos: jax.Array  # int32 [N]: index of the car's cell along its route
    wait: jax.Array  # int32 [N]: steps the car has acted since it entered
    last_act: jax.Array  # int32 [N]: last action of the slot (0 gas, 1 brake)
    failed: jax.Array  # bool: a collision happened this episode


@struct.dataclass
class EnvParams(BaseParams):
    add_rate: float = param(0.3, 0.0, 1.0)  # probability that an entry admits a car, per step
    time_penalty: float = param(-0.01, high=0.0)  # per step waited, per car (a penalty)
    crash_penalty: float = param(-10.0, high=0.0)  # per car in a collision (a penalty)
    max_steps_in_episode: int = param(20, 1)


def curriculum_add_rate(epoch, level: str) -> jax.Array:
    """IC3Net's curriculum add_rate in training epoch ``epoch`` (0-based, as IC3Net counts).

    ``add_rate_min`` until ``curr_start``, then up by ``(max - min) / (end - start)`` per epoch,
    floored to a multiple of 0.01 in IC3Net's float64 arithmetic; constant from ``curr_end``.
    ``epoch`` may be a traced integer.
    """
    table = curriculum_table(level)
    return jnp.asarray(table, jnp.float32)[jnp.clip(epoch, 0, len(table) - 1)]


class TrafficJunction(MultiAgentEnv):
    """Traffic Junction; ``level`` fixes grid, routes and defaults (see the module docstring)."""

    def __init__(self, level: str = "easy", vision: int | None = None,
                 num_agents: int | None = None, obs_mode: str = "onehot"):
        spec = get_level(level)
        vision = spec.vision if vision is None else vision
        num_agents = spec.num_agents if num_agents is None else num_agents
        vision = checks.integer("TrafficJunction", "vision", vision, 0)
        num_agents = checks.integer("TrafficJunction", "num_agents", num_agents, 1)
        self.level, self.vision = level, vision
        self.agents = tuple(f"car_{i}" for i in range(num_agents))
        lay = build_layout(level)
        v, side = self.vision, lay.side + 2 * self.vision
        self.vocab, self.car_channel = lay.vocab, lay.car_channel
        self.num_entries, self.routes_per_entry = len(lay.routes), len(lay.routes[0])
        self.num_routes = self.num_entries * self.routes_per_entry
        # Padded-grid flat index of every route cell (routes padded with their last cell).
        paths = [p for entry in lay.routes for p in entry]
        longest = max(map(len, paths))
        cells = [[(r + v) * side + c + v for r, c in p] for p in paths]
        self._route_cells = np.array([c + c[-1:] * (longest - len(c)) for c in cells], np.int32)
        self._route_len = np.array([len(p) for p in paths], np.int32)
        self._ids = np.pad(lay.cell_ids, v, constant_values=lay.outside).ravel()
        dy, dx = np.divmod(np.arange((2 * v + 1) ** 2), 2 * v + 1)
        self._window = (dy * side + dx - v * side - v).astype(np.int32)  # offsets from the car
        # get_obs looks up [in the system, last_act, route] of each slot: row 0 (all zeros) for a
        # free slot, 1 + last_act * num_routes + route for a car
        self._heads = np.array([[0, 0, 0]] + [[1, a, r] for a in range(2)
                                              for r in range(self.num_routes)], np.int32)
        self.obs_size = 2 + len(self._window) * self.vocab
        self.obs_mode, self._dtype, self._high = self._obs_format(obs_mode)

    def _obs_format(self, mode: str):
        """(mode, dtype, per-entry upper bound) of ``obs["obs"]``; ``ValueError`` if impossible."""
        n, k, vocab = self.num_agents, len(self._window), self.vocab
        head = [1, self.num_routes - 1]  # last_act, route id
        mode = check_obs_mode("TrafficJunction", mode, n)
        if mode == "onehot":
            return mode, np.dtype(np.float32), None
        if mode == "uint8":
            channels = np.where(np.arange(vocab) == self.car_channel, n, 1)
            return mode, np.dtype(np.uint8), np.concatenate([head, np.tile(channels, k)])
        high = np.concatenate([head, np.full(k, self._ids.max()), np.full(k, n)])  # index
        return mode, np.min_scalar_type(high.max()), high

    @property
    def name(self) -> str:
        return f"TrafficJunction-{self.level}"

    @property
    def default_params(self) -> EnvParams:
        spec = LEVELS[self.level]
        return EnvParams(add_rate=spec.add_rate, max_steps_in_episode=spec.max_steps)

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        zeros = jnp.zeros(self.num_agents, jnp.int32)
        return EnvState(time=jnp.zeros((), jnp.int32), alive=zeros.astype(bool), route=zeros,
                        pos=zeros, wait=zeros, last_act=zeros, failed=jnp.zeros((), bool))

    def step_env(self, key: jax.Array, state: EnvState, actions: jax.Array, params: EnvParams):
        n, num_entries = self.num_agents, self.num_entries
        act = jnp.clip(jnp.asarray(actions).astype(jnp.int32), 0, 1)
        # 1. cars act
        alive = state.alive
        gas = alive & (act == 0)
        pos = state.pos + gas
        completed = gas & (pos >= jnp.asarray(self._route_len)[state.route])
        alive = alive & ~completed
        wait = jnp.where(completed, 0, state.wait + state.alive)
        last_act = jnp.where(alive, act, state.last_act)
        # 2. arrivals: entry e admits a car if it wants one and the cap is not yet reached
        k_add, k_route, k_slot = jax.random.split(key, 3)
        want = jax.random.uniform(k_add, (num_entries,)) < params.add_rate
        before = jnp.cumsum(want) - want  # wanting entries ahead of this one
        admit = want & (alive.sum() + before < n)
        new_route = (jnp.arange(num_entries) * self.routes_per_entry
                     + jax.random.randint(k_route, (num_entries,), 0, self.routes_per_entry))
        # the admitted entries take the free slots in a uniformly random order: slot i's rank
        # in a stable argsort of `order` (free slots first), by comparisons (cheaper than a sort)
        order = jnp.where(alive, 2.0, jax.random.uniform(k_slot, (n,)))
        slots = jnp.arange(n)
        rank = ((order < order[:, None]) | ((order == order[:, None]) & (slots < slots[:, None])))
        arrive = admit[:, None] & (rank.sum(1) == before[:, None])  # [entry, slot]
        new = arrive.any(0)
        alive = alive | new
        route = jnp.where(new, (arrive * new_route[:, None]).sum(0), state.route)
        pos = jnp.where(new, 0, pos)
        wait = jnp.where(new, 0, wait)
        state = state.replace(alive=alive, route=route, pos=pos, wait=wait, last_act=last_act)
        # 3. collisions after arrivals, rewards
        cell = self._cells(state)
        same = (cell[:, None] == cell[None, :]) & alive[:, None] & alive[None, :]
        crashed = (same & ~jnp.eye(n, dtype=bool)).any(axis=1)
        reward = jnp.where(alive, params.time_penalty * wait + params.crash_penalty * crashed, 0.)
        state = state.replace(failed=state.failed | crashed.any())
        info = {"collisions": crashed.sum(dtype=jnp.int32), "success": ~state.failed,
                "entered": admit.sum(dtype=jnp.int32),
                "completed": completed.sum(dtype=jnp.int32)}
        return state, reward.astype(jnp.float32), jnp.zeros((), bool), info

    def _cells(self, state: EnvState) -> jax.Array:
        """Padded-grid flat cell index of every slot's car (stale for cars not in the system)."""
        pos = jnp.clip(state.pos, 0, self._route_cells.shape[1] - 1)
        return jnp.asarray(self._route_cells)[state.route, pos]

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        cell = self._cells(state)
        window = cell[:, None] + jnp.asarray(self._window)  # [N, K] padded-grid cells
        ids = jnp.asarray(self._ids)[window]
        counts = ((window[:, :, None] == cell) & state.alive).sum(-1)  # cars on each cell
        # [alive, last_act, route] by a table lookup rather than computed from the state: XLA
        # keeps the gather out of the observation loop, so that loop only loads per-car values
        # and skips free slots (writes zeros). Computed values (e.g. step's auto-reset select)
        # would be recomputed for every one of the obs_size entries, and free slots not skipped.
        row = jnp.where(state.alive, 1 + state.last_act * self.num_routes + state.route, 0)
        seen, head = jnp.split(jnp.asarray(self._heads)[row], [1], -1)
        if self.obs_mode == "index":
            obs = jnp.concatenate([head, ids, counts], -1)
        else:
            obs = self._join(head if self.obs_mode == "uint8" else self._scale(head),
                             self._one_hot(ids, counts))
        obs = jnp.where(seen > 0, obs, 0).astype(self._dtype)
        return {"obs": obs, "alive": state.alive}

    def _one_hot(self, ids: jax.Array, counts: jax.Array) -> jax.Array:
        """int32 ``[..., K * vocab]``: per window cell the one-hot id plus the car count."""
        channel = jnp.arange(self.vocab)
        cells = (ids[..., None] == channel) + counts[..., None] * (channel == self.car_channel)
        return cells.reshape(*ids.shape[:-1], -1)

    def _scale(self, head: jax.Array) -> jax.Array:
        """``[last_act, route]`` (int) -> ``[last_act, route / (num_routes - 1)]`` (float)."""
        return head / jnp.array([1, self.num_routes - 1])

    @staticmethod
    def _join(head: jax.Array, cells: jax.Array) -> jax.Array:
        """``concatenate([head, cells], -1)`` as selects over the padded cells, each head column
        broadcast along the last axis: XLA builds it in one loop with the one-hot, where a
        concatenate would materialise every part first (and a pad of ``head`` would pull the
        computation of ``head`` into that loop, see ``get_obs``)."""
        width = head.shape[-1]
        out = jnp.pad(cells, [*[(0, 0)] * (cells.ndim - 1), (width, 0)])
        out = out.astype(jnp.result_type(head, cells))
        column = jnp.arange(out.shape[-1])
        for i in range(width):
            out = jnp.where(column == i, head[..., i:i + 1], out)
        return out

    def expand_obs(self, obs: dict[str, jax.Array], params: EnvParams | None = None):
        """Any ``obs_mode``'s observation -> the ``"onehot"`` one, bit for bit (any batch axes)."""
        if self.obs_mode == "onehot":
            return obs
        x, k = obs["obs"].astype(jnp.int32), len(self._window)
        if self.obs_mode == "index":
            cells = self._one_hot(x[..., 2:2 + k], x[..., 2 + k:])
        else:
            cells = x[..., 2:]
        full = self._join(self._scale(x[..., :2]), cells)
        full = jnp.where(obs["alive"][..., None], full, 0.0).astype(jnp.float32)
        return {"obs": full, "alive": obs["alive"]}

    @property
    def sparse_width(self) -> int:
        """Width of the flattened one-hot observation :meth:`sparse_obs` indexes: ``alive``
        (1) then ``obs`` (``obs_size``)."""
        return 1 + self.obs_size

    def sparse_obs(self, obs: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
        """Any ``obs_mode``'s observation -> the nonzero entries of the ``"onehot"`` one
        flattened (``[alive, obs]``: :meth:`expand_obs`'s leaves in ``jax.tree.leaves`` order,
        as ``agents.networks.flatten_obs`` ravels them): ``(index int32, value float32)``, both
        ``[..., 3 + 2 (2v+1)^2]``. Adding each ``value`` at its ``index`` into zeros of width
        :attr:`sparse_width` gives that vector bit for bit (padding entries have value 0; a car
        not in the system has only zeros). Jittable, any batch axes. From ``"index"``: the
        head, then per window cell its id entry and its car-count entry (an embedding-bag
        input); other modes: a stable argsort of the one-hot (nonzero entries first)."""
        k, alive = len(self._window), obs["alive"][..., None].astype(jnp.float32)
        batch = alive.shape[:-1]
        if self.obs_mode != "index":
            full = self.expand_obs(obs)["obs"]
            flat = jnp.concatenate([alive, full.astype(jnp.float32)], -1)
            index = jnp.argsort(flat == 0, axis=-1, stable=True)[..., :3 + 2 * k]
            return index.astype(jnp.int32), jnp.take_along_axis(flat, index, -1)
        x = obs["obs"].astype(jnp.int32)
        base = 3 + jnp.arange(k) * self.vocab  # column of each window cell's first channel
        index = jnp.concatenate([jnp.broadcast_to(jnp.arange(3), (*batch, 3)),
                                 base + x[..., 2:2 + k], base + self.car_channel
                                 + jnp.zeros_like(x[..., 2 + k:])], -1)
        value = jnp.concatenate([jnp.ones_like(alive), self._scale(x[..., :2]),
                                 jnp.ones((*batch, k)), x[..., 2 + k:]], -1) * alive
        return index.astype(jnp.int32), value.astype(jnp.float32)

    def render(self, state: EnvState, params: EnvParams | None = None,
               cell_px: int = 8) -> jax.Array:
        """uint8 ``[side * cell_px, side * cell_px, 3]``; works under ``jit`` and ``vmap``."""
        lay = build_layout(self.level)
        n, side = lay.side, lay.side + 2 * self.vision
        road = np.zeros((n, n), bool)
        for path in (p for entry in lay.routes for p in entry):
            road[tuple(np.array(path).T)] = True
        cell = self._cells(state)
        row, col = cell // side - self.vision, cell % side - self.vision
        shared = ((cell[:, None] == cell) & state.alive & state.alive[:, None]).sum(1) > 1
        colors = jnp.where(shared[:, None], viz.color("crash"), viz.agent_colors(len(cell)))
        ground = np.where(road[..., None], viz.color("road"), viz.color("ground"))
        cars = viz.marks((n, n), row, col, colors, state.alive, inset=1)
        return viz.to_pixels(ground, cars, cell_px=cell_px)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Dict:
        if self.obs_mode == "onehot":  # IC3Net's bound, a scalar
            obs = spaces.Box(0.0, float(self.num_agents), (self.obs_size,), jnp.float32)
        else:
            obs = spaces.Box(0, self._high.astype(self._dtype), self._high.shape, self._dtype)
        return spaces.Dict({"obs": obs, "alive": spaces.Binary()})

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(2)


for _level in LEVELS:
    register(f"TrafficJunction-{_level}-v0", TrafficJunction, level=_level)
