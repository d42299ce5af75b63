"""Item negotiation with a grounded proposal channel and cheap talk (Cao et al. 2018, ICLR).

Rules: at reset a pool of 3 item types is drawn, each count uniform in ``{0..5}``, and each agent
gets private utilities, uniform over ``{0..10}^3`` without the all-zero vector (each agent sees
only its own). The number of turns ``N`` is ``Poisson(turns_mean)`` clipped to ``[min_turns,
max_turns]`` (default ``Poisson(7)`` clipped to ``[4, 10]``), drawn at reset and hidden in the
state (the paper says "truncated Poisson"; here it is clipped, which puts the tails on the
ends: ``P(N = 4) = P(Poisson(7) <= 4) ~ 0.17``). Agents alternate turns, agent 0 (``role``
0) on even turns. On its turn an agent either *accepts* the standing proposal (the other agent's
previous one), which ends the game, or makes a proposal -- how many of each item it takes for
itself -- together with an utterance (cheap talk: 6 tokens, vocabulary 10 by default) that goes
through ``channel`` (any ``dcgenv.comms`` channel, a constructor argument). With no agreement after
``N`` turns both get 0. On agreement the last proposer gets its claim and the accepter the rest of
the pool.

Reward, on the step of agreement (0 on every other step), normalised by the best achievable:

- self-interested (``prosocial=False``, a params field): ``u_i . share_i / u_i . pool``;
- prosocial (``prosocial=True``): both get the joint reward
  ``(u_0 . share_0 + u_1 . share_1) / sum_k pool_k max(u_0k, u_1k)``.

A zero denominator (nothing in the pool worth anything) gives 0.

Channel switches (constructor flags, the paper's ablations): ``proposal=False`` hides proposals
from the other agent (accepting still accepts the hidden proposal); ``linguistic=False`` sends
no utterances (0 bits). The channel runs in training mode if ``channel_train`` (Gumbel samples,
DDCL's reparameterised ``z + eps``), else evaluation mode, with the step key as the noise shared
by sender and receiver; routing is differentiable (straight-through for discrete channels).

Observation (per agent, a dict; agent-stacked; zeros where there is nothing to show):

============== ============= ================================================================
``role``        int32         0 = moves on even turns, 1 = on odd turns
``active``      bool          whether it is this agent's turn (its action is used)
``can_accept``  bool          action mask: active and a standing proposal exists (turn >= 1)
``turn``        int32         turns taken so far, in ``[0, max_turns]`` (``N`` is not shown)
``utilities``   int32[3]      own utilities
``pool``        int32[3]      the item pool
``proposal``    int32[3]      the other agent's last proposal (what it claims for itself)
``utterance``   f32[recv]     the last utterance received, ``channel.received_shape(L, d)``
============== ============= ================================================================

Actions (per agent, a dict; agent-stacked; the inactive agent's action is ignored):
``accept`` int32 (1 accepts the standing proposal), ``proposal`` int32[3] (items claimed),
``utterance`` f32 ``channel.message_shape(L, d)`` (GumbelSoftmax: logits ``[L, vocab]``), with
``L = message_length`` (6) and ``d = message_dim`` (10, the width for non-Gumbel channels).

Illegal actions, inside ``jit``: ``accept`` and ``proposal`` are rounded (NaN read as 0), and
clipped: ``accept`` to ``{0, 1}``, a proposal into the pool (``0 <= claim <= pool`` per item), so
every allocation is feasible; ``accept`` on turn 0 (``can_accept`` false) is ignored and the turn
is an ordinary proposal. Utterances read NaN as 0 and are clipped to ``[-action_limit,
action_limit]``.

``info`` (every step): ``bits`` -- bits the utterance costs on the wire (0 when linguistic is off
or the agent accepts); ``message_cost`` -- the channel's differentiable surrogate; ``success`` --
agreement on this step; ``joint_reward`` -- the normalised joint reward of the agreement (either
reward mode; 0 without agreement); ``allocation`` int32[2, 3] -- items each agent receives on
agreement (zeros otherwise).

Parameters (``EnvParams``), with the ranges ``make`` and ``params.replace_checked`` enforce:
``prosocial`` a bool, ``turns_mean`` >= 0, ``1 <= min_turns <= max_turns <=
max_steps_in_episode`` (the step limit only truncates, so it must not cut the game short),
``action_limit`` > 0. Rewards lie in [0, 1]. Inside ``jit``, where params may be traced and
nothing is checked: ``min_turns > max_turns`` gives every game ``max_turns`` turns, a step
limit below the horizon truncates games early, and ``action_limit`` <= 0 sets every utterance
entry to ``action_limit``; rewards stay in [0, 1].

Registered id: ``Negotiation-v0`` (both channels, ``GumbelSoftmax(vocab_size=10)``), e.g.
``dcgenv.make("Negotiation-v0", linguistic=False, prosocial=True)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dcgenv import checks, comms, spaces
from dcgenv.core import EnvParams as BaseParams
from dcgenv.core import EnvState as BaseState
from dcgenv.core import MultiAgentEnv, param
from dcgenv.registry import register

NUM_TYPES, MAX_ITEMS, MAX_UTILITY = 3, 5, 10
PAPER_CHANNEL = comms.GumbelSoftmax(vocab_size=10)


@struct.dataclass
class EnvState(BaseState):
    pool: jax.Array  # int32[3]
    utilities: jax.Array  # int32[2, 3], private
    horizon: jax.Array  # int32, the number of turns N (hidden from the agents)
    claim: jax.Array  # int32[3], the standing proposal: what the last mover claims
    heard_proposal: jax.Array  # int32[2, 3], the other's last proposal, as each agent saw it
    heard: jax.Array  # f32[2, *received], the last utterance each agent received


@struct.dataclass
class EnvParams(BaseParams):
    prosocial: bool = param(False, 0, 1)
    turns_mean: float = param(7.0, 0.0)  # Poisson mean of the hidden number of turns
    min_turns: int = param(4, 1)
    max_turns: int = param(10, 1)
    action_limit: float = param(1e6, 0.0, low_open=True)  # utterances clipped to +-this
    max_steps_in_episode: int = param(10, 1)

    def validate(self, owner: str | None = None) -> EnvParams:
        super().validate(owner)
        values = (self.min_turns, self.max_turns, self.max_steps_in_episode)
        if not any(isinstance(v, jax.core.Tracer) for v in values):
            lo, hi, limit = map(np.asarray, values)  # possibly batched
            if not np.all((lo <= hi) & (hi <= limit)):
                raise ValueError(f"{owner or 'Negotiation'}: params need min_turns <= max_turns "
                                 f"<= max_steps_in_episode, got min_turns={lo}, "
                                 f"max_turns={hi}, max_steps_in_episode={limit}")
        return self


class _Counts(spaces.Box):
    """Integer vector space whose ``sample`` is uniform over ``{low..high}`` (gymnax's
    ``Box.sample`` truncates a float draw, so it never yields ``high``)."""

    def __init__(self, high: int, shape: tuple[int, ...] = (NUM_TYPES,)):
        super().__init__(0, high, shape, jnp.int32)

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, self.shape, 0, self.high + 1, jnp.int32)


def _ints(x: jax.Array, low, high) -> jax.Array:
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.floating):
        x = jnp.round(jnp.where(jnp.isnan(x), 0.0, x))
    return jnp.clip(x, low, high).astype(jnp.int32)


def _ratio(num: jax.Array, den: jax.Array) -> jax.Array:
    return jnp.where(den > 0, num / jnp.maximum(den, 1), 0.0)


class Negotiation(MultiAgentEnv):
    agents = ("agent_0", "agent_1")
    turn_based = True  # obs["active"] is whose turn it is

    def __init__(self, channel: comms.Channel | str = PAPER_CHANNEL, linguistic: bool = True,
                 proposal: bool = True, message_length: int = 6, message_dim: int = 10,
                 channel_train: bool = False):
        channel = comms.as_channel("Negotiation", channel)
        self.linguistic = checks.flag("Negotiation", "linguistic", linguistic)
        self.proposal = checks.flag("Negotiation", "proposal", proposal)
        self.channel_train = checks.flag("Negotiation", "channel_train", channel_train)
        message_length = checks.integer("Negotiation", "message_length", message_length, 1)
        message_dim = checks.integer("Negotiation", "message_dim", message_dim, 1)
        self.channel = channel
        self.sent_shape = channel.message_shape(message_length, message_dim)
        self.received_shape = channel.received_shape(message_length, message_dim)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        k_pool, k_util, k_turns = jax.random.split(key, 3)
        pool = jax.random.randint(k_pool, (NUM_TYPES,), 0, MAX_ITEMS + 1, jnp.int32)
        # uniform over the non-zero utility vectors: a base-11 number in [1, 11^3)
        code = jax.random.randint(k_util, (2, 1), 1, (MAX_UTILITY + 1) ** NUM_TYPES, jnp.int32)
        utilities = code // (MAX_UTILITY + 1) ** jnp.arange(NUM_TYPES) % (MAX_UTILITY + 1)
        turns = jax.random.poisson(k_turns, params.turns_mean, (), jnp.int32)
        return EnvState(time=jnp.zeros((), jnp.int32), pool=pool, utilities=utilities,
                        horizon=jnp.clip(turns, params.min_turns, params.max_turns),
                        claim=jnp.zeros(NUM_TYPES, jnp.int32),
                        heard_proposal=jnp.zeros((2, NUM_TYPES), jnp.int32),
                        heard=jnp.zeros((2, *self.received_shape), jnp.float32))

    def step_env(self, key: jax.Array, state: EnvState, actions: dict, params: EnvParams):
        if tuple(actions["utterance"].shape[1:]) != self.sent_shape:
            raise ValueError(f"Negotiation: actions['utterance'] must be [2, *{self.sent_shape}] "
                             f"for {self.channel!r}, got {actions['utterance'].shape}")
        mover = state.time % 2
        receiver = 1 - mover
        accept = (state.time >= 1) & (_ints(actions["accept"][mover], 0, 1) == 1)
        claim = jnp.clip(_ints(actions["proposal"][mover], 0, MAX_ITEMS), 0, state.pool)

        # agreement: the last proposer (now the receiver) gets its claim, the accepter the rest
        shares = jnp.where(jnp.arange(2)[:, None] == receiver, state.claim,
                           state.pool - state.claim)
        allocation = jnp.where(accept, shares, 0)
        values = jnp.sum(state.utilities * allocation, axis=1)
        own = _ratio(values, jnp.sum(state.utilities * state.pool, axis=1))
        joint = _ratio(values.sum(), jnp.sum(state.utilities.max(0) * state.pool))
        reward = jnp.where(params.prosocial, joint, own)

        heard, bits, cost = state.heard, jnp.float32(0.0), jnp.float32(0.0)
        if self.linguistic:
            z = jnp.asarray(actions["utterance"][mover], jnp.float32)
            z = jnp.clip(jnp.where(jnp.isnan(z), 0.0, z), -params.action_limit,
                         params.action_limit)
            z_hat, stats = self.channel.send(key, z, train=self.channel_train)
            heard = jnp.where(accept, heard, heard.at[receiver].set(z_hat.astype(jnp.float32)))
            bits, cost = (jnp.where(accept, 0.0, stats[k]) for k in ("bits", "cost"))
        seen = state.heard_proposal
        if self.proposal:
            seen = jnp.where(accept, seen, seen.at[receiver].set(claim))

        terminated = accept | (state.time + 1 >= state.horizon)
        info = {"bits": bits, "message_cost": cost, "success": accept,
                "joint_reward": joint, "allocation": allocation}
        state = state.replace(claim=jnp.where(accept, state.claim, claim), heard=heard,
                              heard_proposal=seen)
        return state, reward, terminated, info

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        active = jnp.arange(2) == state.time % 2
        return {"role": jnp.arange(2, dtype=jnp.int32), "active": active,
                "can_accept": active & (state.time >= 1),
                "turn": jnp.full(2, state.time, jnp.int32), "utilities": state.utilities,
                "pool": jnp.broadcast_to(state.pool, (2, NUM_TYPES)),
                "proposal": state.heard_proposal, "utterance": state.heard}

    def observation_space(self, params: EnvParams | None = None) -> spaces.Dict:
        params = self.default_params if params is None else params
        lo, hi = int(params.min_turns), int(params.max_turns)
        if not 1 <= lo <= hi:
            raise ValueError(f"Negotiation: need 1 <= min_turns <= max_turns, got min_turns={lo}, "
                             f"max_turns={hi}")
        return spaces.Dict({"role": spaces.Discrete(2), "active": spaces.Binary(),
                            "can_accept": spaces.Binary(), "turn": spaces.Discrete(hi + 1),
                            "utilities": _Counts(MAX_UTILITY), "pool": _Counts(MAX_ITEMS),
                            "proposal": _Counts(MAX_ITEMS),
                            "utterance": spaces.Normal(self.received_shape)})

    def action_space(self, params: EnvParams | None = None) -> spaces.Dict:
        return spaces.Dict({"accept": spaces.Discrete(2), "proposal": _Counts(MAX_ITEMS),
                            "utterance": spaces.Normal(self.sent_shape)})


register("Negotiation-v0", Negotiation)
