"""Gradient-aware attention, gradient and information budgets: composable pieces for CommNet.

Four pieces the reference actor (:class:`agents.networks.Actor`) composes, each usable alone:

- :func:`gradient_aware_scores` / :class:`GradientAwareAttention`: TarMAC-style attention
  (Das et al., "TarMAC: Targeted Multi-Agent Communication", ICML 2019) whose scores are
  shifted by a statistic of the loss gradient reaching each sender's message::

      s_ij = q_i . k_ij / sqrt(d)  +  tau * log(eps + g_j / gbar)

  ``g_j`` is the running mean of ``||dL/dm_j||`` (the Euclidean norm of the cotangent of the
  loss with respect to sender ``j``'s message, from ``dcgenv.comms`` taps), ``gbar`` the mean
  of ``g`` over the receiver's eligible senders (alive, not itself), ``eps = 1e-3`` and ``tau``
  a temperature (``tau = 0``: plain TarMAC). Direction: a sender whose message the loss is
  more sensitive to gets a larger score, hence more weight; the shift is invariant to the
  scale of ``g`` (only ratios matter), so the loss's normalisation does not matter, and when
  every ``g_j`` is equal (e.g. at initialisation, ``g = 1``) the scores are TarMAC's exactly
  up to a constant per receiver, which the softmax removes. Why it is well defined under
  ``jit``: ``g`` is an *input* of the forward pass (an array carried in the training state,
  read under ``stop_gradient``), not a gradient computed inside it; the forward pass is a
  pure function of ``(params, inputs, g)``. The learner updates ``g`` after each gradient
  step, outside the loss (:func:`update_gradient_stat`). ``gbar`` is floored at ``1e-30``,
  so all-zero statistics give ``log(eps)`` for every sender (a constant shift, no NaN).
- :func:`gradient_budget`: rational inattention for the backward pass. Receiver ``i`` sees
  every sender's message (the forward pass is unchanged) but only its ``k`` eligible senders
  with the largest ``g_j`` pass gradients back; the others go through ``lax.stop_gradient``,
  so ``d(out_i)/d(m_j) = 0`` exactly for them and XLA can prune those backward paths.
- :class:`InformationBottleneck`: a variational bottleneck (Alemi et al., "Deep Variational
  Information Bottleneck", ICLR 2017): mean and log-std heads, a reparameterised sample in
  training (the mean at evaluation), and ``KL(N(mu, sigma^2) || N(0, I))`` in nats
  (``dcgenv.comms.kl_standard_normal``) which the learner prices at a fixed price, or at a
  Lagrange multiplier moved toward a budget in nats per message (:func:`update_multiplier`).
- The Fisher-rank regulariser lives with the other message regularisers:
  ``dcgenv.comms.regularisers.effective_rank`` / ``fisher_rank`` (the effective rank of the
  receiver's Jacobian with respect to the message, Roy & Vetterli, EUSIPCO 2007).

All are pure, jittable and vmappable; randomness only from the key passed in.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from dcgenv import comms

EPS = 1e-3  # floor inside the log of the gradient modulation
LAGRANGE_LR = 1e-2  # step of the multiplier per learner update, per nat of budget violation
LOG_STD_CLIP = (-10.0, 2.0)  # the bottleneck's log-std, clipped


def eligible(alive: jax.Array) -> jax.Array:
    """Bool ``[N, N]``: receiver ``i`` hears sender ``j`` (both alive, ``j != i``)."""
    alive = jnp.asarray(alive, bool)
    return comms.others(alive.shape[0]) & alive[None, :] & alive[:, None]


def gradient_modulation(stat: jax.Array, edges: jax.Array, tau: float = 1.0,
                        eps: float = EPS) -> jax.Array:
    """The score shift ``[N, N]``: ``tau * log(eps + g_j / gbar_i)``, ``gbar_i`` the mean of
    ``stat`` (``g``, ``[N]``, >= 0) over receiver ``i``'s senders (``edges[i]``)."""
    stat = jax.lax.stop_gradient(jnp.asarray(stat, jnp.float32))
    w = edges.astype(jnp.float32)
    mean = (w @ stat) / jnp.maximum(w.sum(-1), 1.0)
    ratio = stat[None, :] / jnp.maximum(mean, 1e-30)[:, None]
    return tau * jnp.log(eps + ratio)


def gradient_aware_scores(queries: jax.Array, keys: jax.Array, stat: jax.Array,
                          edges: jax.Array, tau: float = 1.0) -> jax.Array:
    """Attention scores ``[N, N]``: ``q_i . k_ij / sqrt(d) + tau * log(eps + g_j / gbar_i)``.

    ``queries`` ``[N, d]``; ``keys`` ``[N, d]`` (one key per sender) or ``[N, N, d]`` (per
    receiver, e.g. after :func:`gradient_budget`); ``stat`` ``[N]``; ``edges`` bool ``[N, N]``.
    Non-edges get the dtype's minimum (zero weight after the softmax)."""
    if keys.ndim == 2:
        keys = jnp.broadcast_to(keys[None], (queries.shape[0],) + keys.shape)
    scores = jnp.einsum("id,ijd->ij", queries, keys) / jnp.sqrt(
        jnp.asarray(queries.shape[-1], queries.dtype))
    scores = scores + gradient_modulation(stat, edges, tau)
    return jnp.where(edges, scores, jnp.finfo(scores.dtype).min)


def masked_softmax(scores: jax.Array, edges: jax.Array) -> jax.Array:
    """Softmax over senders, zero off ``edges``; a receiver with no sender gets zeros."""
    return jax.nn.softmax(scores, axis=-1) * edges


def per_receiver(x: jax.Array) -> jax.Array:
    """``[N, ...] -> [N, N, ...]`` with ``out[i, j] = x[j]`` (every receiver's view)."""
    return jnp.broadcast_to(x[None], (x.shape[0],) + x.shape)


def top_k_senders(stat: jax.Array, edges: jax.Array, k: int) -> jax.Array:
    """Bool ``[N, N]``: ``j`` is among receiver ``i``'s ``k`` eligible senders (``edges[i]``)
    with the largest ``stat`` (ties: the lower index first). Deterministic, jittable."""
    stat = jnp.asarray(stat)
    n = stat.shape[0]
    idx = jnp.arange(n)
    beats = (stat[None, :] > stat[:, None]) | ((stat[None, :] == stat[:, None])
                                              & (idx[None, :] < idx[:, None]))  # [j, l]: l beats j
    rank = jnp.einsum("il,jl->ij", edges.astype(jnp.int32), beats.astype(jnp.int32))
    return edges & (rank < k)


def gradient_budget(messages: jax.Array, stat: jax.Array, k: int,
                    alive: jax.Array | None = None, edges: jax.Array | None = None) -> jax.Array:
    """Per-receiver views ``[N, N, ...]`` of ``messages`` ``[N, ...]``: ``out[i, j] =
    messages[j]`` in value; its gradient reaches ``messages[j]`` only if ``j`` is one of the
    ``k`` senders receiver ``i`` hears (alive, ``j != i``) with the largest ``stat`` (``[N]``,
    e.g. the running mean of ``||dL/dm_j||``); for every other ``j`` it is
    ``lax.stop_gradient(messages[j])``. ``k >= N - 1`` keeps every gradient.

    ``edges`` (optional, bool ``[R, N]``) replaces ``eligible(alive)`` as who hears whom, for
    ``R`` receivers that are not the senders themselves (e.g. one listener whose ``N``
    "senders" are the tokens of one message: ``edges = ones([1, L])``); the views are then
    ``[R, N, ...]`` and ``alive`` is ignored. Raises ``ValueError`` for ``k < 1``."""
    if int(k) < 1:
        raise ValueError(f"gradient_budget: k = {k!r} is out of range; allowed: an integer "
                         ">= 1 (number of senders that pass gradients to each receiver)")
    n = messages.shape[0]
    if edges is None:
        alive = jnp.ones(n, bool) if alive is None else alive
        edges, view = eligible(alive), per_receiver
    else:
        if edges.ndim != 2 or edges.shape[1] != n:
            raise ValueError(f"gradient_budget: edges has shape {tuple(edges.shape)}; allowed: "
                             f"[receivers, {n}] (one column per sender of messages)")
        view = lambda x: jnp.broadcast_to(x[None], (edges.shape[0],) + x.shape)
    keep = top_k_senders(jax.lax.stop_gradient(stat), edges, int(k))
    keep = keep.reshape(keep.shape + (1,) * (messages.ndim - 1))
    return jnp.where(keep, view(messages), view(jax.lax.stop_gradient(messages)))


def aggregate_views(weights: jax.Array, views: jax.Array) -> jax.Array:
    """``out[i] = sum_j weights[i, j] * views[i, j]`` (``views`` ``[N, N, D]``)."""
    return jnp.einsum("ij,ijd->id", weights, views)


class GradientAwareAttention(nn.Module):
    """TarMAC attention over senders with gradient-modulated scores
    (:func:`gradient_aware_scores`). ``__call__(h, sender_h, values, stat, alive)``:
    ``h`` ``[N, H]`` receivers' states (queries), ``sender_h`` ``[N, H]`` or per-receiver
    ``[N, N, H]`` senders' states (keys), ``values`` ``[N, D]`` or ``[N, N, D]`` messages,
    ``stat`` ``[N]`` (``g``, read under ``stop_gradient``). Returns ``(out [N, D], weights
    [N, N])``. Optional ``edges`` (bool ``[R, N]``) replaces ``eligible(alive)``: ``R``
    receivers (``h`` ``[R, H]``) over ``N`` senders that are not themselves (e.g. each
    candidate of a referential game attending over one message's tokens); the outputs are
    then ``[R, D]`` and ``[R, N]``."""

    hidden: int = 64
    tau: float = 1.0

    @nn.compact
    def __call__(self, h, sender_h, values, stat, alive, edges=None):
        edges = eligible(alive) if edges is None else edges
        q = nn.Dense(self.hidden, name="query")(h)
        k = nn.Dense(self.hidden, name="key")(sender_h)
        weights = masked_softmax(gradient_aware_scores(q, k, stat, edges, self.tau), edges)
        if values.ndim == 2:
            return weights @ values, weights
        return aggregate_views(weights, values), weights


class InformationBottleneck(nn.Module):
    """Variational bottleneck ``h -> z``: ``mu = Dense(h)``, ``log_sigma = Dense(h)``
    (clipped to ``LOG_STD_CLIP``, its bias initialised at ``log(init_std)``), ``z = mu + sigma
    * eps`` with ``eps ~ N(0, I)`` from ``key`` in training, ``z = mu`` otherwise. Returns
    ``(z [N, features], kl [N])`` with ``kl`` the per-row ``KL(N(mu, sigma^2) || N(0, I))`` in
    nats (Alemi et al., ICLR 2017). ``init_std`` 1 (the default) starts the noise at the
    prior's scale; their demo starts it near 0.0067 (softplus(rho - 5))."""

    features: int
    init_std: float = 1.0

    @nn.compact
    def __call__(self, h, key, train: bool):
        mu = nn.Dense(self.features, name="mean")(h)
        bias = nn.initializers.constant(math.log(self.init_std))
        log_std = jnp.clip(nn.Dense(self.features, name="log_std", bias_init=bias)(h),
                           *LOG_STD_CLIP)
        std = jnp.exp(log_std)
        z = mu + std * jax.random.normal(key, mu.shape, mu.dtype) if train else mu
        kl = jax.vmap(comms.kl_standard_normal)(mu, std)
        return z, kl


def update_gradient_stat(stat: jax.Array, message_grads: jax.Array, alive: jax.Array,
                         decay: float = 0.9) -> jax.Array:
    """Running mean of ``||dL/dm_j||`` per sender slot: ``decay * stat + (1 - decay) *
    batch``, ``batch[..., j]`` the mean over the alive samples of the norm of
    ``message_grads`` (``[B, hops, N, D]``; ``alive`` bool ``[B, N]``) over its last axis.
    ``stat``: ``[hops, N]``. A slot with no alive sample keeps its value."""
    norms = jnp.sqrt(jnp.sum(jnp.square(message_grads), -1))  # [B, hops, N]
    w = alive.astype(jnp.float32)[:, None, :]
    count = w.sum(0)
    batch = (norms * w).sum(0) / jnp.maximum(count, 1.0)
    new = decay * stat + (1.0 - decay) * batch
    return jnp.where(count > 0, new, stat)


def update_multiplier(lam: jax.Array, kl_per_message: jax.Array, budget: float,
                      lr: float = LAGRANGE_LR) -> jax.Array:
    """Dual ascent on ``lam >= 0`` for the constraint ``KL per message <= budget`` (nats):
    ``max(0, lam + lr * (kl - budget))``."""
    return jnp.maximum(0.0, lam + lr * (jax.lax.stop_gradient(kl_per_message) - budget))
