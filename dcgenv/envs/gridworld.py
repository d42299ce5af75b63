"""DDCL's GridWorld "goal" game: a speaker tells a listener where the goal is, over a channel.

Faithful to the DDCL authors' toy problem (Kapoor et al. 2025; AdityaKapoor74/Multi-Agent-
Limited-Comms, ``ToyProblem/CommunicatingGoalEnv.py`` and ``train_utils.py``).

Rules: an ``N x N`` grid (``grid_size``, 8). At reset the goal is drawn from
``params.goal_probs`` and the listener starts on a uniformly random cell other than the goal.
The speaker sees only the goal and sends a message every step; the listener sees its position
and the message the speaker sent on the previous step, and moves. Both agents get one shared
reward: ``goal_reward`` (+1) on the step the listener lands on the goal, which terminates the
episode, else ``step_reward`` (-0.01); episodes are truncated after 50 steps.

Parameters (``EnvParams``), with the ranges ``make`` and ``params.replace_checked`` enforce:
``goal_probs`` (below) entries >= 0 with at least one positive, ``goal_reward`` >= 0,
``step_reward`` <= 0 (a cost), ``max_steps_in_episode`` >= 1; the reward is always one of the
two. Inside ``jit``, where params may be traced and nothing is checked, negative
``goal_probs`` entries read as 0 and an all-zero table puts the goal on the last cell
``(N - 1, N - 1)``; rewards of other signs are paid as given; a step limit < 1 ends every
episode after one step.

Coordinates are ``(x, y)`` as in the original: moves 0 stay, 1 north ``(0, -1)``, 2 south
``(0, +1)``, 3 east ``(+1, 0)``, 4 west ``(-1, 0)``, clipped at the border. ``goal_probs`` is an
``[N, N]`` float32 table of weights indexed ``[x, y]`` (need not sum to 1). Its default is the
authors' table (``DDCL_GOAL_WEIGHTS``: (0,0):50, (3,4):25, (4,3):2, (7,7):1, (1,6):1,
(6,1):1); ``goals="uniform"`` / ``"zipf"`` pick other defaults
(``GridWorldGoal-uniform-v0``, ``-zipf-v0``), and any table can be passed as an override, e.g.
``make("GridWorldGoal-v0", goal_probs=zipf_goal_probs(8, 1.5))``.

Messages: the speaker's ``message`` (``message_dim`` floats, 4) goes through ``channel``
(a ``dcgenv.comms`` channel, default ``Continuous()``; ``train_channel`` picks its training or
evaluation map) with the step key, and the channel's output is the listener's ``message``
observation on the next step, differentiably (for ``Continuous`` the Jacobian is the
identity). ``info``: ``bits`` (this step's message), ``episode_bits`` (running total this
episode, including this step), ``comm_cost`` (the channel's differentiable surrogate, for a
``lambda * cost`` loss) and ``success`` (the listener reached the goal on this step).

Observation (per agent, a dict; agent-stacked in ``obs``; zeros where a role has nothing):

=============== ======== ====================================================================
``role``        int32    0 = speaker, 1 = listener
``goal``        f32[2]   speaker: goal ``(x, y)`` (raw integer coordinates, as the original)
``position``    f32[2]   listener: its ``(x, y)``
``message``     f32[r]   listener: the channel's output of the speaker's last message
                         (``r = channel.received_shape(1, message_dim)[1:]``, ``(4,)`` here)
``has_message`` bool     listener: a message has arrived (False on the first step)
=============== ======== ====================================================================

There is no ``obs_mode`` here (unlike Traffic Junction and Predator-Prey): the observation holds
raw coordinates and the message, no one-hot block, so it is already compact (37 bytes per agent).

Actions (per agent, a dict): ``move`` int32 in ``[0, 5)`` (the speaker's is ignored) and
``message`` f32[m] (``m = channel.message_shape(1, message_dim)[1:]``; the listener's is
ignored). Unbounded (``Normal`` space) by default; ``message_bound=b`` clips it to ``[-b, b]``
(the authors' action space declares ``[-1, 1]``; their speaker network is unbounded).
Illegal actions, inside ``jit``: a ``move`` outside ``[0, 5)`` is read as stay; non-finite
message entries are read as 0, and messages are clipped to ``[-1e6, 1e6]`` when unbounded.

Deviations from the original, and why:

- The message arrives one step late. In the original the listener acts on the same step's
  message (the speaker speaks every step, from the goal alone); here actions are simultaneous,
  so a message sent on step ``t`` is read on step ``t + 1``. An optimal pair therefore needs
  ``|start - goal|_1 + 1`` steps (return ``1 - 0.01 |start - goal|_1``), one more than in the
  original. ``has_message`` tells the listener the first step carries no message.
  ``talk_first=True`` (a constructor flag; ``GridWorldGoal-talkfirst-v0``) restores the
  original's optimum: step 0 is a talk step on which the speaker's message is sent, the
  listener's move is ignored, the reward is 0 and the step does not count towards the step
  limit (episodes are truncated after ``max_steps_in_episode + 1`` steps). From step 1 on, the
  listener moves on the message of the step before, so an optimal pair's return is the
  original's, ``1 - 0.01 (|start - goal|_1 - 1)``. The messages sent are one more per
  episode than the original's (the last one is never read).
- Messages can also be sent by the learner instead (a CommNet actor, ``comm: commnet``, whose
  hops run inside one step: no delay); ``channel="silent"`` (a registered channel's name is
  accepted as well as a channel) then closes the environment's own message path.
- The channel is pluggable; the authors' toy channel is ``z + U(-delta/2, delta/2)`` with
  ``delta = 1/5`` (``channel=comms.DDCL(0.2)``, ``train_channel=True``); their bits are the
  surrogate ``comm_cost``, while ``DDCL`` reports real coded bits in ``bits``.
- Their optional moving goal (``dynamic_goal``, off in all their experiments) is left out.
  Their sweep script uses another table (200, 100, 50, 25, 12, 1); pass it as ``goal_probs``.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dcgenv import checks, comms, spaces, viz
from dcgenv.core import EnvParams as BaseParams
from dcgenv.core import EnvState as BaseState
from dcgenv.core import MultiAgentEnv, param
from dcgenv.registry import register

DDCL_GOAL_WEIGHTS = {(0, 0): 50, (3, 4): 25, (4, 3): 2, (7, 7): 1, (1, 6): 1, (6, 1): 1}
MOVES = np.array([[0, 0], [0, -1], [0, 1], [1, 0], [-1, 0]], np.int32)  # stay, N, S, E, W
MESSAGE_LIMIT = 1e6
CONTINUOUS = comms.Continuous()


def goal_probs_from_weights(weights: Mapping[tuple[int, int], float],
                            grid_size: int = 8) -> np.ndarray:
    """``[grid_size, grid_size]`` table (indexed ``[x, y]``) of normalised goal weights."""
    table = np.zeros((grid_size, grid_size), np.float64)
    for cell, w in weights.items():
        x, y = cell
        if not (0 <= x < grid_size and 0 <= y < grid_size):
            raise ValueError(f"goal cell {cell} is outside the {grid_size}x{grid_size} grid "
                             f"(coordinates in [0, {grid_size - 1}])")
        if not (np.isfinite(w) and w >= 0):
            raise ValueError(f"goal weight of {cell} must be finite and >= 0, got {w!r}")
        table[x, y] += w
    if table.sum() <= 0:
        raise ValueError("goal weights must have at least one positive entry")
    return (table / table.sum()).astype(np.float32)


def uniform_goal_probs(grid_size: int = 8) -> np.ndarray:
    """Every cell equally likely."""
    return np.full((grid_size, grid_size), 1.0 / grid_size**2, np.float32)


def zipf_goal_probs(grid_size: int = 8, exponent: float = 1.0) -> np.ndarray:
    """Zipf: the cell of row-major rank ``k = x * grid_size + y + 1`` weighs ``k**-exponent``."""
    if not (np.isfinite(exponent) and exponent >= 0):
        raise ValueError(f"zipf exponent must be finite and >= 0, got {exponent!r}")
    weights = np.arange(1, grid_size**2 + 1, dtype=np.float64) ** -float(exponent)
    return (weights / weights.sum()).reshape(grid_size, grid_size).astype(np.float32)


GOAL_TABLES = {"ddcl": lambda n: goal_probs_from_weights(DDCL_GOAL_WEIGHTS, n),
               "uniform": uniform_goal_probs, "zipf": zipf_goal_probs}


@struct.dataclass
class EnvState(BaseState):
    goal: jax.Array  # int32[2] (x, y)
    pos: jax.Array  # int32[2] listener (x, y)
    message: jax.Array  # f32[r] what the listener reads next (channel output)
    has_message: jax.Array  # bool
    episode_bits: jax.Array  # f32, bits sent so far this episode


@struct.dataclass
class EnvParams(BaseParams):
    goal_probs: jax.Array = param(  # [N, N] weights >= 0, at least one positive
        low=0.0, default_factory=lambda: jnp.asarray(GOAL_TABLES["ddcl"](8)))
    goal_reward: float = param(1.0, 0.0)  # on reaching the goal
    step_reward: float = param(-0.01, high=0.0)  # on every other step (a cost)
    max_steps_in_episode: int = param(50, 1)

    def validate(self, owner: str | None = None) -> EnvParams:
        super().validate(owner)
        table = self.goal_probs
        if not isinstance(table, jax.core.Tracer) and not np.all(np.sum(table, (-2, -1)) > 0):
            raise ValueError(f"{owner or 'GridWorldGoal'}: params field goal_probs needs at "
                             f"least one positive weight, got all zeros")
        return self


class GridWorldGoal(MultiAgentEnv):
    agents = ("speaker", "listener")

    def __init__(self, grid_size: int = 8, message_dim: int = 4,
                 channel: comms.Channel | str = CONTINUOUS, train_channel: bool = True,
                 message_bound: float | None = None, goals: str = "ddcl",
                 talk_first: bool = False):
        name = "GridWorldGoal"
        grid_size = checks.integer(name, "grid_size", grid_size, 2)
        message_dim = checks.integer(name, "message_dim", message_dim, 1)
        channel = comms.as_channel(name, channel)
        train_channel = checks.flag(name, "train_channel", train_channel)
        if message_bound is not None:  # None: unbounded
            message_bound = checks.real(name, "message_bound (or None)", message_bound, 0,
                                        low_open=True)
        checks.choice(name, "goals", goals, GOAL_TABLES)
        self.talk_first = checks.flag(name, "talk_first", talk_first)
        self.grid_size, self.channel, self.train_channel = grid_size, channel, train_channel
        self.message_bound = MESSAGE_LIMIT if message_bound is None else message_bound
        self.bounded = message_bound is not None
        self.message_shape = tuple(channel.message_shape(1, message_dim)[1:])
        self.received_shape = tuple(channel.received_shape(1, message_dim)[1:])
        self.goal_probs = GOAL_TABLES[goals](grid_size)  # raises if the table does not fit

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(goal_probs=jnp.asarray(self.goal_probs))

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        n = self.grid_size
        k_goal, k_start = jax.random.split(key)
        # inverse CDF: one uniform draw (a categorical would draw one per cell, and the
        # auto-reset runs this on every step); zero-probability cells are never picked
        cdf = jnp.cumsum(jnp.maximum(params.goal_probs, 0.0).reshape(-1))
        u = jax.random.uniform(k_goal, dtype=cdf.dtype) * cdf[-1]
        goal = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), n * n - 1)
        start = jax.random.randint(k_start, (), 0, n * n - 1)
        start = start + (start >= goal)  # uniform over the other n*n - 1 cells
        cell = lambda i: jnp.stack([i // n, i % n]).astype(jnp.int32)
        return EnvState(time=jnp.zeros((), jnp.int32), goal=cell(goal), pos=cell(start),
                        message=jnp.zeros(self.received_shape, jnp.float32),
                        has_message=jnp.zeros((), bool), episode_bits=jnp.zeros((), jnp.float32))

    def step_env(self, key: jax.Array, state: EnvState, actions: dict, params: EnvParams):
        self._check_actions(actions)
        move = jnp.asarray(actions["move"][1]).astype(jnp.int32)
        move = jnp.where((move >= 0) & (move < len(MOVES)), move, 0)
        talking = self.talk_first & (state.time == 0)  # the talk step: nobody moves
        move = jnp.where(talking, 0, move)
        pos = jnp.clip(state.pos + jnp.asarray(MOVES)[move], 0, self.grid_size - 1)
        z = jnp.asarray(actions["message"][0], jnp.float32)
        z = jnp.clip(jnp.where(jnp.isfinite(z), z, 0.0), -self.message_bound, self.message_bound)
        z_hat, stats = self.channel.send(key, z[None], train=self.train_channel)
        reached = jnp.all(pos == state.goal)
        reward = jnp.where(reached, params.goal_reward,
                           jnp.where(talking, 0.0, params.step_reward))
        episode_bits = state.episode_bits + stats["bits"]
        info = {"bits": stats["bits"], "episode_bits": episode_bits, "comm_cost": stats["cost"],
                "success": reached}
        state = state.replace(pos=pos, message=z_hat[0].astype(jnp.float32),
                              has_message=jnp.ones((), bool), episode_bits=episode_bits)
        return state, reward, reached, info

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.time >= params.max_steps_in_episode + self.talk_first  # + the talk step

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        zero = jnp.zeros(2, jnp.float32)
        return {"role": jnp.arange(2, dtype=jnp.int32),
                "goal": jnp.stack([state.goal.astype(jnp.float32), zero]),
                "position": jnp.stack([zero, state.pos.astype(jnp.float32)]),
                "message": jnp.stack([jnp.zeros_like(state.message), state.message]),
                "has_message": jnp.stack([jnp.zeros((), bool), state.has_message])}

    def render(self, state: EnvState, params: EnvParams | None = None,
               cell_px: int = 8) -> jax.Array:
        """uint8 ``[N * cell_px, N * cell_px, 3]``: the goal cell green, the listener a blue
        square; row ``y``, column ``x``. Works under ``jit`` and ``vmap``."""
        shape = (self.grid_size, self.grid_size)
        goal = viz.marks(shape, state.goal[1], state.goal[0], viz.color("goal"))
        listener = viz.marks(shape, state.pos[1], state.pos[0], viz.color("agent"), inset=2)
        return viz.to_pixels(viz.canvas(*shape), goal, listener, cell_px=cell_px)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Dict:
        coords = spaces.Box(0.0, float(self.grid_size - 1), (2,), jnp.float32)
        return spaces.Dict({"role": spaces.Discrete(2), "goal": coords, "position": coords,
                            "message": spaces.Normal(self.received_shape),
                            "has_message": spaces.Binary()})

    def action_space(self, params: EnvParams | None = None) -> spaces.Dict:
        b = self.message_bound
        message = (spaces.Box(-b, b, self.message_shape, jnp.float32) if self.bounded
                   else spaces.Normal(self.message_shape))
        return spaces.Dict({"move": spaces.Discrete(len(MOVES)), "message": message})

    def _check_actions(self, actions) -> None:
        if not isinstance(actions, Mapping) or set(actions) != {"move", "message"}:
            got = sorted(actions) if isinstance(actions, Mapping) else type(actions).__name__
            raise ValueError(f"actions must be a dict with keys ['message', 'move'], got {got}")
        shapes = {"move": (2,), "message": (2, *self.message_shape)}
        for name, shape in shapes.items():
            if tuple(jnp.shape(actions[name])) != shape:
                raise ValueError(f"actions[{name!r}] must have shape {shape} (agents first), "
                                 f"got {tuple(jnp.shape(actions[name]))}")


register("GridWorldGoal-v0", GridWorldGoal)
register("GridWorldGoal-uniform-v0", GridWorldGoal, goals="uniform")
register("GridWorldGoal-zipf-v0", GridWorldGoal, goals="zipf")
register("GridWorldGoal-talkfirst-v0", GridWorldGoal, talk_first=True)
