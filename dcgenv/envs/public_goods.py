"""A threshold (provision-point) public good with private valuations and cheap talk (Palfrey &
Rosenthal 1984; Bagnoli & Lipman 1989; Agastya, Menezes & Sengupta 2007).

Rules: ``num_players`` players (a constructor argument, 3 by default) each hold an endowment
``e`` and a private valuation ``v_i = v_max u_i`` of a public good, ``u_i ~ U[0, 1]`` i.i.d.
(drawn at reset; ``v_i`` is seen from step 0). Step 0 (cheap talk): each player sends a message,
a float vector (``message_dim`` floats, a constructor argument; logits ``[vocab_size]`` for
``comms.GumbelSoftmax``), through ``channel`` (a ``dcgenv.comms`` channel, ``Continuous()`` by
default: exact) to everybody; the messages cost nothing and bind nobody. Step 1
(contributions): each player, having seen all the messages that arrived, contributes ``c_i`` in
``[0, e]``. The good is provided iff ``C = sum_j c_j >= T`` (the threshold), and player ``i``
earns ``e - c_i + v_i 1{C >= T}``; contributions are not refunded. The episode then terminates
(rewards are 0 at step 0). With ``smooth=True`` (a constructor flag) the indicator becomes the
provision probability ``p = sigmoid((C - T) / tau)`` and the env pays the expected payoff
``e - c_i + v_i p``, differentiable in every contribution.

Benchmarks (``S = sum_i v_i``; :func:`social_optimum`, :func:`expected_social_optimum`,
:func:`full_information_equilibrium`):

- Social optimum for a draw: provide iff ``S >= T`` (and ``N e >= T``, else it cannot be paid
  for), at total cost exactly ``T``: welfare ``N e + max(0, S - T)``. Its expectation, with
  ``S / v_max`` Irwin-Hall (the sum of ``N`` uniforms) and ``t = T / v_max``:
  ``N e + v_max (N/2 - t + G(t))``, ``G(t) = sum_{k=0}^{N} (-1)^k C(N, k) (t - k)_+^(N+1) /
  (N+1)!`` (``E[(t - X)_+]`` for ``X`` Irwin-Hall; the density integrated twice).
- Free riding: nobody contributes; welfare ``N e`` on every draw. It is a Nash equilibrium (for
  every draw, with or without talk) whenever no player can profitably provide alone: ``T > e``
  or ``v_max <= T`` (defaults: ``T = e = v_max = 1``).
- Full information (valuations public, as perfectly truthful talk would make them): any profile
  with ``sum c = T`` and ``0 <= c_i <= min(v_i, e)`` is a Nash equilibrium (each contributor is
  pivotal; Bagnoli & Lipman 1989). One exists iff ``sum_i min(v_i, e) >= T``; then it is
  efficient. With ``v_max <= e`` this holds whenever ``S >= T``, so the full-information
  equilibrium reaches the social optimum on every draw. Truthful talk is not itself an
  equilibrium in general (a player who understates pays less); the Bayesian equilibria with
  talk are not solved here.

Parameters (``EnvParams``), with the ranges ``make`` and ``params.replace_checked`` enforce:
``endowment`` > 0, ``threshold`` > 0, ``v_max`` > 0, ``tau`` > 0 (smooth provision's
temperature), ``max_steps_in_episode`` >= 1 (informational: every episode ends after step 1).
Inside ``jit``, where nothing is checked: ``threshold <= 0`` provides the good always (hard),
``endowment <= 0`` forces every contribution to 0 (clipped to ``[0, max(e, 0)]``), negative
``v_max`` gives negative valuations, ``tau`` below 1e-30 is read as 1e-30.

Observation (per agent, a dict; agent-stacked): ``valuation`` f32[1] (its own ``v_i``),
``messages`` f32[N, *r] (what arrived of every player's message, its own included;
``r = channel.received_shape(1, message_dim)[1:]``; 0 at step 0), ``stage`` int32 (0 talk, 1
contribute), ``player`` int32 (its index). Actions (a dict, one structure for both steps, the
unused entry ignored): ``message`` f32[m] (``m = channel.message_shape(1, message_dim)[1:]``)
at step 0 and ``contribution`` f32 at step 1. Illegal actions, inside ``jit``: non-finite
entries are read as 0, messages are clipped to +-1e6 and contributions to ``[0, e]``. ``info``:
``provided`` (0/1, or ``p`` when smooth), ``welfare`` (the sum of the rewards),
``optimum_welfare`` (the social optimum of this draw), ``contributions`` f32[N] (all 0 at step
0), ``bits`` (the messages' cost on the wire at step 0, 0 at step 1).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

from dcgenv import checks, comms, spaces
from dcgenv.core import EnvParams as BaseParams
from dcgenv.core import EnvState as BaseState
from dcgenv.core import MultiAgentEnv, default_float, param
from dcgenv.registry import register

NAME = "PublicGoods"
MESSAGE_LIMIT = 1e6  # messages are clipped to +-this
CONTINUOUS = comms.Continuous()  # the default channel: exact, 32 bits a float
_bar = jax.lax.optimization_barrier  # keeps products out of FMAs that vmap and a loop round apart


@struct.dataclass
class EnvState(BaseState):
    u: jax.Array  # f[N] standard uniforms: v_i = v_max u_i
    messages: jax.Array  # f[N, *r] what arrived through the channel (0 until step 0)


@struct.dataclass
class EnvParams(BaseParams):
    endowment: float = param(1.0, 0.0, low_open=True)  # e: c_i in [0, e]
    threshold: float = param(1.0, 0.0, low_open=True)  # T: provided iff sum c >= T
    v_max: float = param(1.0, 0.0, low_open=True)  # v_i ~ U[0, v_max]
    tau: float = param(0.05, 0.0, low_open=True)  # smooth: p = sigmoid((sum c - T) / tau)
    max_steps_in_episode: int = param(2, 1)  # informational: the game always ends after step 1


def _finite(x: jax.Array, dtype) -> jax.Array:
    x = jnp.asarray(x, dtype)
    return jnp.where(jnp.isfinite(x), x, 0.0)


class PublicGoods(MultiAgentEnv):
    def __init__(self, num_players: int = 3, message_dim: int = 1,
                 channel: comms.Channel | str = CONTINUOUS, channel_train: bool = False,
                 smooth: bool = False):
        self.num_players = checks.integer(NAME, "num_players", num_players, low=2)
        message_dim = checks.integer(NAME, "message_dim", message_dim, low=1)
        channel = comms.as_channel(NAME, channel)
        self.channel = channel
        self.channel_train = checks.flag(NAME, "channel_train", channel_train)
        self.smooth = checks.flag(NAME, "smooth", smooth)
        self.message_shape = tuple(channel.message_shape(1, message_dim)[1:])
        self.received_shape = tuple(channel.received_shape(1, message_dim)[1:])
        self.agents = tuple(f"player_{i}" for i in range(self.num_players))

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        n, dtype = self.num_players, default_float()
        u = _bar(jax.random.uniform(key, (n,), dtype))  # see core.normal
        return EnvState(time=jnp.zeros((), jnp.int32), u=u,
                        messages=jnp.zeros((n, *self.received_shape), dtype))

    def valuations(self, state: EnvState, params: EnvParams) -> jax.Array:
        """Every player's valuation ``v_i = v_max u_i``, f[N]."""
        return _bar(params.v_max * state.u)

    def step_env(self, key: jax.Array, state: EnvState, actions: dict, params: EnvParams):
        n, v = self.num_players, self.valuations(state, params)
        first = state.time == 0
        # step 0: cheap talk to everybody
        z = jnp.clip(_finite(actions["message"], v.dtype), -MESSAGE_LIMIT, MESSAGE_LIMIT)
        z_hat, stats = self.channel.send(key, z, train=self.channel_train)
        messages = jnp.where(first, z_hat.astype(v.dtype), state.messages)
        # step 1: contributions, provision and payoffs
        e = jnp.maximum(params.endowment, 0.0)
        c = jnp.where(first, 0.0, jnp.clip(_finite(actions["contribution"], v.dtype), 0.0, e))
        total = sum(c[i] for i in range(n))  # a fixed order: jnp.sum's may vary
        if self.smooth:
            provided = jax.nn.sigmoid((total - params.threshold) / jnp.maximum(params.tau, 1e-30))
        else:
            provided = (total >= params.threshold).astype(v.dtype)
        reward = jnp.where(first, 0.0, (params.endowment - c) + _bar(v * provided))
        welfare = sum(reward[i] for i in range(n))
        s = sum(v[i] for i in range(n))
        feasible = n * params.endowment >= params.threshold
        optimum = n * params.endowment + jnp.where(feasible, jnp.maximum(s - params.threshold,
                                                                         0.0), 0.0)
        info = {"provided": jnp.where(first, 0.0, provided), "welfare": welfare,
                "optimum_welfare": jnp.where(first, 0.0, optimum), "contributions": c,
                "bits": jnp.where(first, stats["bits"], 0.0)}
        return state.replace(messages=messages), reward, ~first, info

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.zeros((), bool)  # the rules end every episode at step 1 (terminated)

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        n = self.num_players
        return {"valuation": self.valuations(state, params)[:, None],
                "messages": jnp.broadcast_to(state.messages, (n, *state.messages.shape)),
                "stage": jnp.full(n, jnp.minimum(state.time, 1), jnp.int32),
                "player": jnp.arange(n, dtype=jnp.int32)}

    def observation_space(self, params: EnvParams | None = None) -> spaces.Dict:
        params = self.default_params if params is None else params
        n = self.num_players
        return spaces.Dict({"valuation": spaces.Box(0.0, params.v_max, (1,), jnp.float32),
                            "messages": spaces.Normal((n, *self.received_shape)),
                            "stage": spaces.Discrete(2), "player": spaces.Discrete(n)})

    def action_space(self, params: EnvParams | None = None) -> spaces.Dict:
        params = self.default_params if params is None else params
        return spaces.Dict({"message": spaces.Normal(self.message_shape),
                            "contribution": spaces.Box(0.0, params.endowment, (), jnp.float32)})


def social_optimum(valuations: jax.Array, params: EnvParams) -> jax.Array:
    """The social optimum's welfare for one draw: ``N e + max(0, sum v - T)`` if ``N e >= T``
    (provide iff ``sum v >= T``, paying exactly ``T``), else ``N e``."""
    v = jnp.asarray(valuations)
    n = v.shape[-1]
    gain = jnp.maximum(v.sum(-1) - params.threshold, 0.0)
    return n * params.endowment + jnp.where(n * params.endowment >= params.threshold, gain, 0.0)


def irwin_hall_excess(n: int, t) -> jax.Array:
    """``E[(X - t)_+]`` for ``X`` the sum of ``n`` independent ``U[0, 1]``: ``n/2 - t +
    sum_k (-1)^k C(n, k) (t - k)_+^(n+1) / (n+1)!``."""
    t = jnp.asarray(t, default_float())
    g = sum((-1) ** k * math.comb(n, k) * jnp.maximum(t - k, 0.0) ** (n + 1)
            for k in range(n + 1)) / math.factorial(n + 1)
    return jnp.maximum(n / 2 - t + g, 0.0)  # >= 0; the max only removes rounding


def irwin_hall_cdf(n: int, t) -> jax.Array:
    """``P(X <= t)`` for ``X`` the sum of ``n`` independent ``U[0, 1]``."""
    t = jnp.asarray(t, default_float())
    f = sum((-1) ** k * math.comb(n, k) * jnp.maximum(t - k, 0.0) ** n
            for k in range(n + 1)) / math.factorial(n)
    return jnp.clip(f, 0.0, 1.0)


def expected_social_optimum(env: PublicGoods, params: EnvParams) -> dict[str, jax.Array]:
    """Expected welfare of the social optimum (``welfare``: ``N e + v_max E[(X - T/v_max)_+]``,
    0 gain if ``N e < T``), of free riding (``free_riding``: ``N e``) and the optimum's
    provision probability (``provided``: ``P(sum v >= T)``), for uniform valuations."""
    n = env.num_players
    t = jnp.asarray(params.threshold, default_float()) / params.v_max
    feasible = n * params.endowment >= params.threshold
    gain = jnp.where(feasible, params.v_max * irwin_hall_excess(n, t), 0.0)
    return {"welfare": n * params.endowment + gain,
            "free_riding": jnp.asarray(n * params.endowment, default_float()),
            "provided": jnp.where(feasible, 1.0 - irwin_hall_cdf(n, t), 0.0)}


def full_information_equilibrium(valuations: jax.Array, params: EnvParams,
                                 margin: float = 1e-5) -> jax.Array:
    """Contributions of the efficient Nash equilibrium with public valuations: ``c_i = T w_i /
    sum w`` with ``w_i = min(v_i, e)`` if ``sum w >= T`` (each ``c_i <= min(v_i, e)``: nobody
    gains by withdrawing, nobody by adding), else 0 for all (free riding). ``margin`` raises the
    contributions by that relative amount (within ``[0, w_i]``) so that float rounding of the
    sum never falls short of ``T``."""
    w = jnp.minimum(jnp.asarray(valuations), params.endowment)
    total = w.sum(-1, keepdims=True)
    share = jnp.minimum(params.threshold * w / jnp.maximum(total, 1e-30) * (1 + margin), w)
    return jnp.where(total >= params.threshold, share, 0.0)


register("PublicGoods-v0", PublicGoods)
