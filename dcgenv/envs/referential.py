"""Referential (Lewis signalling) game: a speaker names a target, a listener picks it out.

Rules: ``K = n_candidates`` distinct objects are drawn and one of them, at a uniformly random
position, is the target (EGG's discrimination game: the listener sees the target among
``K - 1`` distractors, shuffled). The speaker sees only the target and sends a message
``[L, d]`` through ``channel`` (any ``dcgenv.comms`` channel, a constructor argument); the
listener sees the ``K`` candidates and the received message and picks one. Both agents get the
same reward: 1 if the pick is the target, else 0.

Objects (``objects=``): ``"onehot"`` (default, EGG) -- ``n_attributes`` attributes with
``n_values`` values each, drawn uniformly, shown as concatenated one-hots
(``F = n_attributes * n_values`` features); the ``K`` candidates are distinct (sampled without
replacement, as EGG's objects game). ``"continuous"`` -- ``F = n_attributes`` i.i.d. N(0, 1)
features per object (``n_values`` is unused).

Episode: two steps, because the listener must see the message before it chooses. Step 0: the
speaker speaks (the listener's action is ignored; reward 0); the channel delivers the message
into the state. Step 1: the listener chooses (the speaker's action is ignored); reward, then the
episode terminates. The channel runs inside ``step`` with the step key as the noise shared by
sender and receiver, in training mode if ``channel_train`` (``channel.send(..., train=True)``:
Gumbel samples, DDCL's reparameterised ``z + eps``) else evaluation mode (what really goes on the
wire). Routing is differentiable: the listener's reward has a gradient with respect to the
speaker's message (straight-through where the channel is discrete).

Differentiable option (``differentiable=True``): the listener's ``choice`` is a vector of
logits over the candidates (pass log-probabilities to submit probabilities) and the reward is
the probability of the target, ``softmax(choice)[target]``; ``jax.grad`` of the reward then
flows listener -> channel -> speaker through ``reset``/``step``. ``success`` is still the
argmax pick.

Observation (per agent, a dict; agent-stacked in ``obs``; zeros where a role sees nothing):

============== ================= ===========================================================
``role``        int32             0 = speaker, 1 = listener
``active``      bool              whether it is this agent's turn (step 0 speaker, 1 listener)
``target``      f32[F]            the target's features (speaker; zeros for the listener)
``candidates``  f32[K, F]         the candidates in shuffled order (listener; zeros for speaker)
``message``     f32[received]     the received message (listener at step 1; else zeros);
                                  ``channel.received_shape(L, d)``, e.g. one-hots ``[L, vocab]``
============== ================= ===========================================================

Actions (per agent, a dict; agent-stacked):

============== ================= ===========================================================
``message``     f32[sent]         ``channel.message_shape(L, d)`` (Gumbel: logits ``[L, vocab]``);
                                  used for the speaker at step 0, ignored otherwise
``choice``      int32 in [0, K)   the listener's pick at step 1 (ignored otherwise); with
                or f32[K]         ``differentiable=True``, logits over the candidates
============== ================= ===========================================================

Illegal actions, inside ``jit``: ``choice`` is clipped to ``[0, K - 1]``; float actions read
NaN as 0 and are clipped to ``[-action_limit, action_limit]`` (1e6 by default).

``info`` (every step): ``bits`` -- bits the message costs on the wire (channel ``stats``; on
step 0, 0 on step 1, so summing over an episode gives bits per message); ``message_cost`` --
the channel's differentiable surrogate of the bits (for a ``lambda * cost`` penalty; step 0);
``success`` -- the listener picked the target (step 1). ``max_steps_in_episode`` is
informational: every episode terminates after step 1.

Constructor arguments (static; ``make`` overrides): ``n_attributes=5``, ``n_values=10`` (each
>= 1; with one-hot objects ``n_values ** n_attributes >= K``), ``n_candidates=2`` (K >= 2),
``message_length=4`` (L >= 1), ``message_dim=8`` (d >= 1; Gumbel tokens are ``vocab_size`` wide
instead), ``channel=GumbelSoftmax(vocab_size=100)``, ``channel_train=False``,
``differentiable=False``, ``objects="onehot"``. Parameters (``EnvParams``; ``make`` and
``params.replace_checked`` refuse other values): ``action_limit`` > 0, ``max_steps_in_episode``
>= 1 (informational). Inside ``jit`` a traced ``action_limit`` <= 0 sets every float action
to ``action_limit``. The reward always lies in [0, 1].

Registered ids:

- ``Referential-v0``: EGG's game, 5 x 10 one-hots, K = 2, 4 tokens of a 100-symbol
  straight-through Gumbel-softmax, integer pick (reward 0 or 1).
- ``Referential-continuous-v0``: the same with 5 continuous features.
- ``Referential-differentiable-v0``: continuous features, the ``Continuous`` channel (messages
  in R^{L x d}, the identity on the wire) and ``differentiable=True``: the return is a smooth
  function of the speaker's message and the listener's logits, so ``jax.grad`` of it is the
  pathwise gradient end to end.

The first two are not differentiable as registered: the listener's pick is an integer, so the
return is piecewise constant and its gradient with respect to the message is exactly zero.
Any id becomes differentiable with ``differentiable=True`` (then ``jax.grad`` reaches the
message through the channel's training map or its straight-through gradient), e.g.
``dcgenv.make("Referential-v0", channel=comms.DDCL(0.2), differentiable=True)``. A complete
training loop (both steps, vmapped, pathwise gradients): ``baselines/referential.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from dcgenv import checks, comms, spaces
from dcgenv.core import EnvParams as BaseParams
from dcgenv.core import EnvState as BaseState
from dcgenv.core import MultiAgentEnv, normal, param
from dcgenv.registry import register

NAME = "Referential"
OBJECTS = ("onehot", "continuous")
EGG_CHANNEL = comms.GumbelSoftmax(vocab_size=100)  # EGG: vocab 100, straight-through


@struct.dataclass
class EnvState(BaseState):
    candidates: jax.Array  # f32[K, F] object features, in the listener's order
    target_index: jax.Array  # int32, position of the target among the candidates
    message: jax.Array  # f32[received shape], what the listener received (zeros until sent)


@struct.dataclass
class EnvParams(BaseParams):
    action_limit: float = param(1e6, 0.0, low_open=True)  # float actions clipped to +-this
    max_steps_in_episode: int = param(2, 1)  # informational: the game always ends after step 1


class Referential(MultiAgentEnv):
    agents = ("speaker", "listener")
    turn_based = True  # obs["active"] is whose turn it is

    def __init__(self, n_attributes: int = 5, n_values: int = 10, n_candidates: int = 2,
                 message_length: int = 4, message_dim: int = 8,
                 channel: comms.Channel | str = EGG_CHANNEL,
                 channel_train: bool = False, differentiable: bool = False,
                 objects: str = "onehot"):
        self.n_attributes = checks.integer(NAME, "n_attributes", n_attributes, 1)
        self.n_values = checks.integer(NAME, "n_values", n_values, 1)
        self.n_candidates = checks.integer(NAME, "n_candidates", n_candidates, 2)
        self.message_length = checks.integer(NAME, "message_length", message_length, 1)
        self.message_dim = checks.integer(NAME, "message_dim", message_dim, 1)
        checks.choice(NAME, "objects", objects, OBJECTS)
        if objects == "onehot" and n_values**n_attributes < n_candidates:
            raise ValueError(f"Referential: {n_values}**{n_attributes} distinct objects cannot "
                             f"fill n_candidates={n_candidates}; raise n_values or n_attributes")
        channel = comms.as_channel(NAME, channel)
        self.channel, self.objects = channel, objects
        self.channel_train = checks.flag(NAME, "channel_train", channel_train)
        self.differentiable = checks.flag(NAME, "differentiable", differentiable)
        self.num_features = n_attributes * (n_values if objects == "onehot" else 1)
        self.sent_shape = channel.message_shape(message_length, message_dim)
        self.received_shape = channel.received_shape(message_length, message_dim)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        key_objects, key_target = jax.random.split(key)
        k, a = self.n_candidates, self.n_attributes
        if self.objects == "continuous":
            features = normal(key_objects, (k, a), jnp.float32)
        else:
            values = _distinct_objects(key_objects, k, a, self.n_values)
            features = jax.nn.one_hot(values, self.n_values, dtype=jnp.float32).reshape(k, -1)
        return EnvState(time=jnp.zeros((), jnp.int32), candidates=features,
                        target_index=jax.random.randint(key_target, (), 0, k, jnp.int32),
                        message=jnp.zeros(self.received_shape, jnp.float32))

    def step_env(self, key: jax.Array, state: EnvState, actions: dict, params: EnvParams):
        if tuple(actions["message"].shape[1:]) != self.sent_shape:
            raise ValueError(f"Referential: actions['message'] must be [2, *{self.sent_shape}] "
                             f"for {self.channel!r}, got {actions['message'].shape}")
        finite = lambda x: jnp.clip(jnp.where(jnp.isnan(x), 0.0, x), -params.action_limit,
                                    params.action_limit)
        first = state.time == 0
        z = finite(jnp.asarray(actions["message"][0], jnp.float32))
        z_hat, stats = self.channel.send(key, z, train=self.channel_train)
        message = jnp.where(first, z_hat.astype(jnp.float32), state.message)

        choice = actions["choice"][1]
        if self.differentiable:
            logits = finite(jnp.asarray(choice, jnp.float32))
            pick = jnp.argmax(logits)
            payoff = jax.nn.softmax(logits)[state.target_index]
        else:
            pick = jnp.clip(choice, 0, self.n_candidates - 1)
            payoff = (pick == state.target_index).astype(jnp.float32)
        success = ~first & (pick == state.target_index)
        reward = jnp.where(first, 0.0, payoff) * jnp.ones(2)
        info = {"bits": jnp.where(first, stats["bits"], 0.0),
                "message_cost": jnp.where(first, stats["cost"], 0.0), "success": success}
        return state.replace(message=message), reward, ~first, info

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.zeros((), bool)  # the rules end every episode at step 1 (terminated)

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        target = state.candidates[state.target_index]
        pad = lambda speaker, listener: jnp.stack([speaker, listener])
        return {"role": jnp.arange(2, dtype=jnp.int32),
                "active": pad(state.time == 0, state.time == 1),
                "target": pad(target, jnp.zeros_like(target)),
                "candidates": pad(jnp.zeros_like(state.candidates), state.candidates),
                "message": pad(jnp.zeros_like(state.message), state.message)}

    def observation_space(self, params: EnvParams | None = None) -> spaces.Dict:
        k, f = self.n_candidates, self.num_features
        features = lambda shape: (spaces.Box(0.0, 1.0, shape) if self.objects == "onehot"
                                  else spaces.Normal(shape))
        return spaces.Dict({"role": spaces.Discrete(2), "active": spaces.Binary(),
                            "target": features((f,)), "candidates": features((k, f)),
                            "message": spaces.Normal(self.received_shape)})

    def action_space(self, params: EnvParams | None = None) -> spaces.Dict:
        k = self.n_candidates
        choice = spaces.Normal((k,)) if self.differentiable else spaces.Discrete(k)
        return spaces.Dict({"message": spaces.Normal(self.sent_shape), "choice": choice})


def _distinct_objects(key: jax.Array, k: int, n_attributes: int, n_values: int) -> jax.Array:
    """``k`` distinct attribute vectors, int32 ``[k, n_attributes]``, uniform over ordered
    tuples of distinct objects (each is redrawn until it differs from those before it)."""

    def draw(key):
        key, sub = jax.random.split(key)
        return jax.random.randint(sub, (n_attributes,), 0, n_values, jnp.int32), key

    def place(i, carry):
        objs, key = carry
        clash = lambda c: jnp.any(jnp.all(objs == c[0], -1) & (jnp.arange(k) < i))
        obj, key = jax.lax.while_loop(clash, lambda c: draw(c[1]), draw(key))
        return objs.at[i].set(obj), key

    objs = jnp.zeros((k, n_attributes), jnp.int32)
    return jax.lax.fori_loop(0, k, place, (objs, key))[0]


register("Referential-v0", Referential)
register("Referential-continuous-v0", Referential, objects="continuous")
register("Referential-differentiable-v0", Referential, objects="continuous",
         channel=comms.Continuous(), differentiable=True)
