"""Networks (flax.linen): observation encoders, the CommNet actor, the (centralised) critic.

The actor acts for all ``N`` agents of *one* environment at once (inputs ``[N, D]``), so that
CommNet's communication hops can mix agents; parameters are shared across agents (every layer
is applied row-wise) and a one-hot agent id may be part of the input. Every message goes
through a ``dcgenv.comms`` channel, one key per (hop, sender), and the actor returns the
channel's bits and differentiable cost summed over alive senders. A learnable channel
(``channel.has_params``: ``comms.EntropyCoded``, ``comms.Gated``) gets one parameter entry per
hop, ``channel_{hop}``, trained with the actor through the cost in the loss; the actor then also
returns the sums :func:`message_metrics` turns into the learned-coding metrics.

Action heads follow the environment's action space (:func:`head_spec`, one :class:`Head` per
leaf; each a Dense layer on the actor's last hidden state, orthogonal init with gain 0.01):

- ``Discrete(n)`` -> a categorical over ``n`` logits (``distrax.Categorical``), int32 actions.
- A float ``Box`` / ``Normal`` of any shape -> a diagonal Gaussian over its ``prod(shape)``
  elements, means from the Dense layer and a learned, state-independent log-std
  (``log_std_{name}``, ``[prod(shape)]``, initialised at 0): a 1-d space (GridWorld's
  ``message``) keeps ``distrax.MultivariateNormalDiag`` as before; any other rank is
  ``distrax.Independent(distrax.Normal)`` reshaped to the space, so a 0-d space (Rubinstein's
  ``offer``) gives one scalar per agent and an ``[L, d]`` one (Referential's ``message``,
  Negotiation's ``utterance``) an ``[L, d]`` array. The same density either way: log-probability
  and entropy are sums over the elements.
- An integer ``Box(low, high, shape)`` (Negotiation's ``proposal``; ``low``/``high`` scalars or
  arrays broadcast to ``shape``) -> independent categoricals, one per element over its
  ``high - low + 1`` values (``distrax.Independent(distrax.Categorical)`` over ``[*shape, K]``
  logits, ``K`` the most values of any element, the logits past an element's own count set
  to -1e9), moved by ``low`` and cast to the space's dtype (:class:`Shifted`): every sample and
  mode lies in ``[low, high]``.
- A ``Dict`` of those -> a dict of distributions whose log-probabilities and entropies are
  summed (:func:`log_prob`, :func:`entropy`). Anything else (``Binary``, ``Tuple``, an
  integer box with an infinite bound or more than :data:`MAX_INTEGER_VALUES` values) is a
  ``ValueError`` naming the leaf.

The learner does *not* clip Gaussian samples to a bounded ``Box``: the environment does what its
docstring says with out-of-range actions. Of the registered ids only two have bounded float
actions: ``Rubinstein-v0`` clips ``offer`` to ``[0, 1]`` and accepts iff ``accept > 0.5``
(non-finite read as 0), and ``PublicGoods-v0`` clips ``contribution`` to ``[0, endowment]``;
every other float action is an unbounded ``Normal`` (each environment's docstring says what it
does with non-finite or huge values: ``Referential-*`` and ``Negotiation-v0`` read NaN as 0 and
clip messages and utterances to ``+-action_limit``, 1e6 by default). Integer heads never leave
their box. Log-probabilities are those of the unclipped sample the learner stored.

Embedded observations (the learners' ``obs_embedding: true``). The first layer of every network
is a Dense on the one-hot observation ``x``: ``b + x @ W`` is ``b`` plus the rows of ``W``
selected by the nonzero entries of ``x``, times their values (ones, and the counts of the count
channels). An environment with ``sparse_obs`` (TrafficJunction, PredatorPrey; from
``obs_mode="index"`` it costs a few integer ops per window cell) gives those coordinates,
``(index, value)`` per agent, and :func:`sparse_features` wraps them (plus the agent id, as
entries too) in a :class:`SparseObs`. :class:`Dense` (``nn.Dense`` with the same name, params
and initialisation, so the one-hot and the embedded network share parameter trees and a
checkpoint serves both) then computes the embedding bag ``b + sum_k value_k W[index_k]``, the
same ``[D_onehot, hidden]`` kernel, without building the one-hot: the same function of the same
information, equal up to float summation order. The centralised critic's input (every agent's
observation, then its own) is a :class:`SparseObs` too (:func:`centralise`): agent ``j``'s
entries offset by ``j * D``, the own ones by ``N * D``; the part all agents share is summed
once per environment, not once per agent.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from agents import attention as attn
from agents import vq
from dcgenv import comms, spaces

BOTTLENECK_SALT = 1 << 20  # fold_in offset of the bottleneck's noise key (plus the hop)


MAX_INTEGER_VALUES = 4096  # most values an integer Box's element may take (its head's logits)


class Head(NamedTuple):
    """One action leaf's head: ``kind`` ``categorical`` (``Discrete``), ``gaussian`` (a float
    ``Box``/``Normal``) or ``integer`` (an integer ``Box``); ``shape``, one agent's action;
    ``size``, the Dense layer's outputs (``n``; ``prod(shape)``; ``prod(shape) * max(count)``);
    for ``integer``, ``low`` and ``count`` (values per element) flattened over ``shape`` and
    ``dtype`` the space's. A hashable tuple, so it can be an attribute of a flax module."""

    name: str | None
    kind: str
    size: int
    shape: tuple[int, ...] = ()
    low: tuple[int, ...] = ()
    count: tuple[int, ...] = ()
    dtype: str = "int32"


def head_spec(space: spaces.Space) -> tuple[Head, ...]:
    """The :class:`Head` of each leaf of an action space (module docstring: which space maps to
    which distribution), in the ``Dict``'s order; ``name`` None for a bare leaf. ``ValueError``
    for a space the heads do not cover."""
    return tuple(_head(k, s) for k, s in space.spaces.items()) if isinstance(
        space, spaces.Dict) else (_head(None, space),)


def _head(name, s) -> Head:
    where = "action space" if name is None else f"action space entry {name!r}"
    if isinstance(s, spaces.Discrete):
        return Head(name, "categorical", int(s.n))
    if not isinstance(s, spaces.Box):
        raise ValueError(f"{where}: unsupported space {s!r}; the heads take Discrete, a float "
                         "Box/Normal of any shape, an integer Box, or a Dict of those")
    shape = (int(s.shape),) if np.isscalar(s.shape) else tuple(int(d) for d in s.shape)
    elements = int(np.prod(shape, dtype=np.int64))
    dtype = np.dtype(s.dtype)
    if np.issubdtype(dtype, np.floating):
        return Head(name, "gaussian", elements, shape, dtype=dtype.name)
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"{where}: unsupported dtype {dtype.name} of {s!r}; allowed: a float "
                         "or integer Box")
    low = np.broadcast_to(np.asarray(s.low, np.float64), shape).ravel()
    high = np.broadcast_to(np.asarray(s.high, np.float64), shape).ravel()
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError(f"{where}: an integer Box needs finite low and high, got {s!r}")
    low, high = np.ceil(low).astype(np.int64), np.floor(high).astype(np.int64)
    count = high - low + 1
    if count.size and not 1 <= count.min() <= count.max() <= MAX_INTEGER_VALUES:
        raise ValueError(f"{where}: an integer Box's elements take high - low + 1 values, got "
                         f"{count.min()}..{count.max()} for {s!r}; allowed: 1 to "
                         f"{MAX_INTEGER_VALUES} (MAX_INTEGER_VALUES)")
    k = int(count.max()) if count.size else 1
    return Head(name, "integer", elements * k, shape, tuple(low.tolist()), tuple(count.tolist()),
                dtype.name)


class Shifted(distrax.Distribution):
    """An integer distribution moved by ``low`` and cast to ``dtype``: samples and mode are
    ``low + x``; ``log_prob(a)`` is the inner one's at ``a - low``; the entropy is the inner
    one's (a shift keeps it)."""

    def __init__(self, distribution: distrax.Distribution, low: jax.Array, dtype):
        self.distribution = distribution
        self.low = low
        self._dtype = np.dtype(dtype)

    @property
    def event_shape(self):
        return self.distribution.event_shape

    @property
    def batch_shape(self):
        return self.distribution.batch_shape

    def _sample_n(self, key, n):
        return (self.distribution.sample(seed=key, sample_shape=n) + self.low).astype(self._dtype)

    def log_prob(self, value):
        return self.distribution.log_prob(jnp.asarray(value).astype(jnp.int32) - self.low)

    def mode(self):
        return (self.distribution.mode() + self.low).astype(self._dtype)

    def entropy(self):
        return self.distribution.entropy()


def distribution(head: Head, out: jax.Array, log_std: jax.Array | None = None):
    """The distrax distribution of ``head`` from its Dense layer's outputs ``out``
    ``[N, head.size]`` (and, for ``gaussian``, its log-std ``[prod(shape)]``); batch shape
    ``[N]``, event shape ``head.shape``."""
    n, shape = out.shape[0], head.shape
    if head.kind == "categorical":
        return distrax.Categorical(logits=out)
    if head.kind == "gaussian":
        if len(shape) == 1:  # the original head, kept exactly
            return distrax.MultivariateNormalDiag(out, jnp.exp(log_std))
        return distrax.Independent(distrax.Normal(out.reshape(n, *shape),
                                                  jnp.exp(log_std).reshape(shape)), len(shape))
    k = head.size // max(len(head.count), 1)
    logits = out.reshape(n, *shape, k)
    count = np.asarray(head.count, np.int64).reshape(shape)
    if count.size and count.min() < k:  # elements with fewer values than the widest
        logits = jnp.where(np.arange(k) < count[..., None], logits, -1e9)
    inner = distrax.Independent(distrax.Categorical(logits=logits), len(shape))
    return Shifted(inner, jnp.asarray(np.asarray(head.low, np.int32).reshape(shape)), head.dtype)


def flatten_obs(obs: Any, num_agents: int, agent_id: bool = False) -> jax.Array:
    """Agent-stacked observation pytree -> float32 ``[N, D]`` (leaves raveled, concatenated),
    followed by a one-hot agent id if ``agent_id``."""
    leaves = [jnp.asarray(x).reshape(num_agents, -1).astype(jnp.float32)
              for x in jax.tree.leaves(obs)]
    if agent_id:
        leaves.append(jnp.eye(num_agents, dtype=jnp.float32))
    return jnp.concatenate(leaves, axis=-1)


@struct.dataclass
class SparseObs:
    """The nonzero entries of a float ``[..., width]`` input: ``value[..., k]`` at column
    ``index[..., k]`` (duplicates add up; padding has value 0), and optionally ``shared_*``
    entries of a part every row has (leading axes without the row axis: the centralised
    critic's joint observation, summed once). A pytree (``width`` static), indexed and
    ``.shape``-d like the dense input it stands for."""

    index: jax.Array  # int32 [..., N, K]
    value: jax.Array  # float32 [..., N, K]
    width: int = struct.field(pytree_node=False)
    shared_index: jax.Array | None = None  # int32 [..., M]
    shared_value: jax.Array | None = None  # float32 [..., M]

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.index.shape[:-1], self.width)

    def __getitem__(self, i) -> SparseObs:
        return jax.tree.map(lambda a: a[i], self)

    def dense(self) -> jax.Array:
        """The dense input (for tests and debugging)."""
        def scatter(index, value):
            return jnp.zeros(self.width, value.dtype).at[index].add(value)
        x = jnp.vectorize(scatter, signature="(k),(k)->(d)")(self.index, self.value)
        if self.shared_index is not None:
            x = x + jnp.vectorize(scatter, signature="(k),(k)->(d)")(
                self.shared_index, self.shared_value)[..., None, :]
        return x


def sparse_features(env, obs: Any, num_agents: int, agent_id: bool = False) -> SparseObs:
    """``flatten_obs(env.expand_obs(obs), num_agents, agent_id)`` as a :class:`SparseObs`:
    ``env.sparse_obs``'s entries (width ``env.sparse_width``), then the agent id as one more
    entry per agent. ``obs``: one environment's agent-stacked observation."""
    index, value = env.sparse_obs(obs)
    width = env.sparse_width
    if agent_id:
        index = jnp.concatenate([index, width + jnp.arange(num_agents)[:, None]], -1)
        value = jnp.concatenate([value, jnp.ones((num_agents, 1), value.dtype)], -1)
        width += num_agents
    return SparseObs(index.astype(jnp.int32), value.astype(jnp.float32), width)


def centralise(obs):
    """The centralised critic's input ``[N, N*D + D]``: every agent's ``[N, D]`` input
    concatenated, then its own. A :class:`SparseObs` stays sparse: the joint part becomes its
    ``shared`` entries (agent ``j``'s columns offset by ``j*D``), the own part is offset by
    ``N*D``: exactly the columns of the dense concatenation. A dense one becomes a
    :class:`JointObs`, the same columns factored."""
    if isinstance(obs, SparseObs):
        n, w = obs.index.shape[0], obs.width
        shared = (obs.index + w * jnp.arange(n)[:, None]).reshape(-1)
        return SparseObs(obs.index + n * w, obs.value, (n + 1) * w, shared,
                         obs.value.reshape(-1))
    return JointObs(obs.reshape(-1), obs)


@struct.dataclass
class JointObs:
    """The centralised critic's dense input ``[N, N*D + D]`` kept factored: ``joint``
    ``[N*D]`` (every agent's input, the same in every row) and ``own`` ``[N, D]``, so that
    :class:`Dense` multiplies the joint part once per environment instead of once per agent
    (``N + 1`` times fewer multiply-adds in the critic's first layer, and no ``[N, N*D + D]``
    copy)."""

    joint: jax.Array  # [..., N*D]
    own: jax.Array  # [..., N, D]

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.own.shape[:-1], self.joint.shape[-1] + self.own.shape[-1])

    def dense(self) -> jax.Array:
        """The concatenated input (for tests and debugging)."""
        joint = jnp.broadcast_to(self.joint[..., None, :], self.shape[:-1] + self.joint.shape[-1:])
        return jnp.concatenate([joint, self.own], -1)


class Dense(nn.Dense):
    """``nn.Dense`` (same name, params and initialisation) that also takes a
    :class:`JointObs` (the joint part multiplied once) or a :class:`SparseObs`: then
    ``bias + sum_k value_k * kernel[index_k]`` (plus the shared entries), an embedding bag
    with the ``[width, features]`` kernel the dense input would have; both equal
    ``Dense(obs.dense())`` up to float summation order."""

    @nn.compact
    def __call__(self, inputs):
        if isinstance(inputs, JointObs):
            kernel = self.param("kernel", self.kernel_init, (inputs.shape[-1], self.features),
                                self.param_dtype)
            split = inputs.joint.shape[-1]
            y = (inputs.joint @ kernel[:split])[..., None, :] + inputs.own @ kernel[split:]
            if self.use_bias:
                y = y + self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            return y
        if not isinstance(inputs, SparseObs):
            return super().__call__(inputs)
        kernel = self.param("kernel", self.kernel_init, (inputs.width, self.features),
                            self.param_dtype)
        bag = lambda index, value: jnp.einsum("...k,...kh->...h", value, kernel[index])
        y = bag(inputs.index, inputs.value)
        if inputs.shared_index is not None:
            y = y + bag(inputs.shared_index, inputs.shared_value)[..., None, :]
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        return y


class MLP(nn.Module):
    hidden: int
    layers: int = 2

    @nn.compact
    def __call__(self, x):
        for _ in range(self.layers):
            x = nn.tanh(Dense(self.hidden)(x))
        return x


class Actor(nn.Module):
    """Encoder (MLP or GRU) -> ``hops`` CommNet hops through ``channel`` -> action heads.

    ``__call__(carry, obs, alive, reset, key, train)`` with ``obs`` ``[N, D]``, ``alive``
    bool ``[N]``, ``reset`` a bool scalar (episode start: the GRU carry is zeroed), ``key``
    the step's comm key, ``train`` a Python bool (the channel's static mode). Returns
    ``(carry, dists, comm)``; ``comm`` = ``{"bits", "cost", "messages"}`` summed over the
    alive senders and hops of this step, plus :func:`message_sums` (over hops; ``counts``
    stacked, ``[hops, elements, categories]``) for an entropy-coded or gated channel, whose
    parameters are ``channel_{hop}``. ``hops=0`` is an actor without communication.
    ``cost_weights`` (one float per agent; empty: every weight 1, exactly the plain sum) weighs
    each sender's ``cost`` in that sum, e.g. ``(1, 0)`` prices a speaker's messages only; the
    ``bits`` stay the plain sum. ``cost_into_trunk=False`` computes ``cost`` from a second send
    of the same message projected from ``stop_gradient(h)`` (same key, so the same values): its
    gradient reaches the projection and the channel's parameters, never the encoder or earlier
    hops; ``bits``, messages and everything else come from the first send as before.

    The pieces of :mod:`agents.attention` (all off by default, which is exactly the actor
    without them): ``aggregate="gradient_aware"`` (TarMAC scores shifted by ``gradient_tau *
    log(eps + g_j / mean g)``), ``budget_k >= 1`` (each receiver passes gradients to its
    ``budget_k`` senders with the largest ``g_j`` only; applies to every ``aggregate``: the
    messages and the sender-side keys or gates go through :func:`attn.gradient_budget`),
    ``bottleneck="variational"`` (the message is a reparameterised sample of
    :class:`attn.InformationBottleneck`, noise from ``fold_in(key, BOTTLENECK_SALT + hop)``,
    before the channel; ``comm["kl"]``: its KL to N(0, I) in nats summed over alive senders).
    Optional call arguments: ``stat`` ``[hops, N]`` (``g``, the running mean of
    ``||dL/dm_j||`` per hop and sender slot; default ones), ``perturb`` ``[hops, N, D]``
    (added to the received messages: a zero array the learner taps to read ``dL/dm``),
    ``codebook`` ``[K, D]`` (post-hoc vector quantisation, :mod:`agents.vq`: every message
    replaced by its nearest code word before aggregation). ``expose_messages``: ``comm``
    also holds ``values`` ``[hops, N, D]``, the messages as received.
    """

    heads: tuple[Head, ...]  # head_spec(action space)
    hidden: int = 64
    encoder: str = "mlp"
    hops: int = 1
    message_dim: int = 8
    aggregate: str = "mean"
    channel: comms.Channel = comms.Continuous()
    gradient_tau: float = 1.0
    budget_k: int = 0
    bottleneck: str = "none"
    bottleneck_init_std: float = 1.0  # the bottleneck's noise std at initialisation
    expose_messages: bool = False
    cost_weights: tuple[float, ...] = ()  # per-sender weights of the cost (() = all 1)
    cost_into_trunk: bool = True  # False: the cost's gradient stops at the message projection

    @nn.compact
    def __call__(self, carry, obs, alive, reset, key, train: bool, stat=None, perturb=None,
                 codebook=None):
        n = obs.shape[0]
        if self.encoder == "gru":
            carry = jnp.where(reset, jnp.zeros_like(carry), carry)
            x = nn.tanh(Dense(self.hidden)(obs))
            carry, h0 = nn.GRUCell(self.hidden)(carry, x)
        else:
            h0 = MLP(self.hidden)(obs)
        h, alive_f = h0, alive.astype(jnp.float32)
        bits = cost = jnp.zeros((), jnp.float32)
        shape = self.channel.message_shape(1, self.message_dim)
        sums, kl_total, values = [], jnp.zeros((), jnp.float32), []
        for hop in range(self.hops):
            if self.bottleneck == "variational":
                z, kl = attn.InformationBottleneck(int(np.prod(shape)), self.bottleneck_init_std)(
                    h, jax.random.fold_in(key, BOTTLENECK_SALT + hop), train)
                z = z.reshape(n, *shape)
                kl_total += jnp.sum(kl * alive_f)
            else:
                project = nn.Dense(int(np.prod(shape)))
                z = project(h).reshape(n, *shape)
            keys = jax.random.split(jax.random.fold_in(key, hop), n)
            params = (self.param(f"channel_{hop}", lambda k: self.channel.init(
                k, 1, self.message_dim)) if self.channel.has_params else None)
            send = jax.vmap(lambda k, m, p=params: self.channel.send(k, m, train=train, params=p))
            z_hat, stats = send(keys, z)
            if not self.cost_into_trunk:
                if self.bottleneck != "none":
                    raise ValueError("cost_into_trunk=False needs bottleneck='none'")
                detached = project(jax.lax.stop_gradient(h)).reshape(n, *shape)
                stats = {**stats, "cost": send(keys, detached)[1]["cost"]}
            sums.append(message_sums(self.channel, stats, alive_f))
            m = z_hat.reshape(n, -1)
            if codebook is not None:
                m = vq.quantise(codebook, m)
            if perturb is not None:
                m = m + perturb[hop]
            values.append(m)
            g = jnp.ones(n, jnp.float32) if stat is None else stat[hop]
            c = self._aggregate(h, m, g, alive)
            h = nn.tanh(nn.Dense(self.hidden)(h) + nn.Dense(self.hidden)(c) + h0)
            bits += jnp.sum(stats["bits"] * alive_f)
            weight = alive_f if not self.cost_weights else alive_f * jnp.asarray(
                self.cost_weights, jnp.float32)
            cost += jnp.sum(stats["cost"] * weight)
        messages = self.hops * alive_f.sum()
        dists = {}
        for head in self.heads:
            out = nn.Dense(head.size, kernel_init=nn.initializers.orthogonal(0.01))(h)
            log_std = (self.param(f"log_std_{head.name}", nn.initializers.zeros, (head.size,))
                       if head.kind == "gaussian" else None)
            dists[head.name] = distribution(head, out, log_std)
        comm = {"bits": bits, "cost": cost, "messages": messages}
        if self.bottleneck != "none":
            comm["kl"] = kl_total
        if self.expose_messages and values:
            comm["values"] = jnp.stack(values)
        if sums and sums[0]:  # the learned coding's sums: scalars added, histograms stacked
            comm.update({k: jnp.stack([s[k] for s in sums]) if k == "counts"
                         else sum(s[k] for s in sums) for k in sums[0]})
        return carry, dists, comm

    def _aggregate(self, h, m, g, alive):
        """The message each receiver hears, ``[N, D]``, by ``aggregate``; with ``budget_k``
        every sender-side input goes through the gradient budget (per-receiver views)."""
        if self.aggregate == "gradient_aware":
            if self.budget_k:
                view = lambda x: attn.gradient_budget(x, g, self.budget_k, alive)
                return attn.GradientAwareAttention(self.hidden, self.gradient_tau)(
                    h, view(h), view(m), g, alive)[0]
            return attn.GradientAwareAttention(self.hidden, self.gradient_tau)(
                h, h, m, g, alive)[0]
        if not self.budget_k:  # the original aggregations, unchanged
            if self.aggregate == "gated":
                gate = nn.sigmoid(nn.Dense(1)(h))[:, 0]
                return comms.gated_mean(m, gate, alive)
            if self.aggregate == "attention":
                q, k = nn.Dense(self.hidden)(h), nn.Dense(self.hidden)(h)
                return comms.attention(q, k, m, alive)[0]
            return comms.broadcast_mean(m, alive)
        view = lambda x: attn.gradient_budget(x, g, self.budget_k, alive)
        edges = attn.eligible(alive)
        count = jnp.maximum(edges.sum(-1, keepdims=True), 1).astype(jnp.float32)
        if self.aggregate == "gated":  # IC3Net: gated messages, mean over all neighbours
            gate = nn.sigmoid(nn.Dense(1)(h))[:, 0]
            return attn.aggregate_views(edges * view(gate) / count, view(m))
        if self.aggregate == "attention":  # TarMAC, keys through the budget
            q, k = nn.Dense(self.hidden)(h), nn.Dense(self.hidden)(h)
            scores = attn.gradient_aware_scores(q, view(k), g, edges, tau=0.0)
            return attn.aggregate_views(attn.masked_softmax(scores, edges), view(m))
        return attn.aggregate_views(edges / count, view(m))


def message_sums(channel, stats, weight) -> dict[str, jax.Array]:
    """What the learned-coding metrics (:func:`message_metrics`) need from one send per sender
    (``stats`` of the vmapped ``channel.send``), summed over senders weighted by ``weight``
    ``[n]`` (alive): under ``comms.Gated``, ``sent`` (tokens sent) and ``tokens``; with
    ``comms.EntropyCoded`` (possibly inside), ``elias_bits`` (the prior-free count: the Elias
    code of the sent tokens' integers, plus one bit per token for the send flag when gated)
    and ``counts`` ``[elements, categories]``, the histogram of the sent symbols over the
    prior's categories (``prior.index``, escape lumped), from one-hot counts. ``{}`` for any
    other channel."""
    gated = isinstance(channel, comms.Gated)
    inner = channel.channel if gated else channel
    n = weight.shape[0]
    mask = stats["mask"] if gated else jnp.ones((n, 1), jnp.float32)  # [n, tokens]
    w = mask * weight[:, None]
    sums = {}
    if gated:
        sums["sent"], sums["tokens"] = jnp.sum(w), jnp.sum(weight) * mask.shape[1]
    if isinstance(inner, comms.EntropyCoded):
        elias = jnp.sum(stats["elias_bits"].reshape(w.shape) * w)
        sums["elias_bits"] = elias + sums["tokens"] if gated else elias
        symbols = stats["symbols"].reshape(*w.shape, -1)  # [n, tokens, d]
        onehot = jax.nn.one_hot(inner.prior.index(symbols), inner.prior.size)
        sums["counts"] = jnp.einsum("nl,nlds->lds", w, onehot).reshape(-1, inner.prior.size)
    return sums


def message_zeros(channel, hops: int, dim: int) -> dict[str, jax.Array]:
    """Zeros shaped like the actor's (or IQL's, ``hops=1``) :func:`message_sums` for messages
    of ``dim`` features: where a rollout or an evaluation starts adding them up."""
    gated = isinstance(channel, comms.Gated)
    inner = channel.channel if gated else channel
    zero = jnp.zeros((), jnp.float32)
    sums = {"sent": zero, "tokens": zero} if gated else {}
    if isinstance(inner, comms.EntropyCoded):
        elements = int(np.prod(inner.message_shape(1, dim)))
        sums.update(elias_bits=zero,
                    counts=jnp.zeros((hops, elements, inner.prior.size), jnp.float32))
    return sums


def message_metrics(sums: dict, messages) -> dict[str, jax.Array]:
    """The learned-coding metrics (docs/metrics.md) of :func:`message_sums` added up over a
    rollout or an evaluation (``counts`` ``[hops, elements, categories]``) and the messages
    sent (alive senders x hops): ``sent_fraction`` (gated), ``elias_bits_per_message`` and
    ``symbol_entropy`` (entropy-coded). ``{}`` for other channels."""
    out = {}
    if "sent" in sums:
        out["sent_fraction"] = sums["sent"] / jnp.maximum(sums["tokens"], 1.0)
    if "counts" in sums:
        out["elias_bits_per_message"] = sums["elias_bits"] / jnp.maximum(messages, 1.0)
        out["symbol_entropy"] = symbol_entropy(sums["counts"])
    return out


def symbol_entropy(counts: jax.Array) -> jax.Array:
    """Plug-in entropy, in bits per message, of the histograms ``counts [hops, elements,
    categories]``: each element's ``-sum p log2 p`` (``p`` its counts normalised; 0 if it has
    none), summed over the elements of a message, averaged over hops (one message each)."""
    p = counts / jnp.maximum(counts.sum(-1, keepdims=True), 1.0)
    h = -jnp.sum(jnp.where(p > 0, p * jnp.log2(jnp.where(p > 0, p, 1.0)), 0.0), -1)
    return jnp.abs(h).sum() / counts.shape[0]  # abs: -0.0 where one category holds all


class Critic(nn.Module):
    """Per-agent values ``[N]`` from ``[N, D]`` inputs; ``centralised``: every agent sees the
    concatenation of all agents' inputs (MAPPO) plus its own; otherwise its own (IPPO)."""

    hidden: int = 64
    centralised: bool = True

    @nn.compact
    def __call__(self, obs):
        if self.centralised:
            obs = centralise(obs)
        return nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))(
            MLP(self.hidden)(obs))[:, 0]


def _split(dists, action):
    return [(d, action if name is None else action[name]) for name, d in dists.items()]


def sample(dists, key):
    """One action per agent (the env's action pytree); a bare leaf where the space is one."""
    keys = jax.random.split(key, len(dists))
    out = {name: d.sample(seed=k) for (name, d), k in zip(dists.items(), keys, strict=True)}
    return out[None] if None in out else out


def mode(dists):
    """Greedy action: argmax of each categorical, mean of each Gaussian."""
    out = {name: d.mode() for name, d in dists.items()}
    return out[None] if None in out else out


def log_prob(dists, action) -> jax.Array:
    return sum(d.log_prob(a) for d, a in _split(dists, action))


def entropy(dists, per_head: bool = False):
    """The summed entropy of the heads ``[N]``; ``per_head``: a dict of each head's instead
    (for per-head entropy weights, ``ent_coef_heads``)."""
    if per_head:
        return {name: d.entropy() for name, d in dists.items()}
    return sum(d.entropy() for d in dists.values())
