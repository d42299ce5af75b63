"""Topologies: who hears whom. Agent-stacked messages ``[N, ...]`` in, one input per agent out.

All functions are jittable, take an ``alive`` mask (bool ``[N]``; dead agents neither send
nor receive: their output row is zero) and an ``adjacency`` where relevant: bool ``[N, N]``,
``adjacency[i, j]`` = receiver ``i`` hears sender ``j``. An agent with nobody to hear gets
zeros (never NaN).

- ``broadcast_mean``: CommNet, ``c_i = mean_{j != i, alive} m_j``.
- ``masked_mean``: the same mean restricted to an ``adjacency``, e.g. ``vision_adjacency``.
- ``gated_mean``: IC3Net, each sender's message scaled by its gate in ``[0, 1]`` before the
  mean (the mean still divides by all alive neighbours, as IC3Net does).
- ``attention``: TarMAC, soft attention of each receiver's query over senders' keys.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

METRICS = ("chebyshev", "euclidean", "manhattan")


def others(num_agents: int) -> jax.Array:
    """Adjacency of a full broadcast without self-messages: ``~eye(N)``."""
    return ~jnp.eye(num_agents, dtype=bool)


def _edges(adjacency: jax.Array, alive: jax.Array) -> jax.Array:
    alive = jnp.asarray(alive, bool)
    return jnp.asarray(adjacency, bool) & alive[None, :] & alive[:, None]


def _per_receiver(x: jax.Array, ndim: int) -> jax.Array:
    return x.reshape(x.shape + (1,) * (ndim - 1))


def masked_mean(messages: jax.Array, adjacency: jax.Array, alive: jax.Array) -> jax.Array:
    """``out[i] = mean of messages[j]`` over alive ``j`` with ``adjacency[i, j]``; else 0."""
    w = _edges(adjacency, alive).astype(messages.dtype)
    total = jnp.tensordot(w, messages, axes=1)
    count = jnp.maximum(w.sum(axis=1), 1.0)
    return total / _per_receiver(count, messages.ndim)


def broadcast_mean(messages: jax.Array, alive: jax.Array) -> jax.Array:
    """CommNet: the mean message of the *other* alive agents."""
    return masked_mean(messages, others(messages.shape[0]), alive)


def gated_mean(messages: jax.Array, gate: jax.Array, alive: jax.Array,
               adjacency: jax.Array | None = None) -> jax.Array:
    """IC3Net: ``masked_mean(gate[j] * messages[j])``; ``gate`` is ``[N]`` in ``[0, 1]``."""
    adjacency = others(messages.shape[0]) if adjacency is None else adjacency
    return masked_mean(messages * _per_receiver(gate, messages.ndim), adjacency, alive)


def vision_adjacency(positions: jax.Array, radius, metric: str = "chebyshev") -> jax.Array:
    """Bool ``[N, N]``: ``j`` is within ``radius`` of ``i`` (``j != i``). ``positions``: ``[N, D]``.

    ``"chebyshev"`` matches a ``(2r+1) x (2r+1)`` grid vision window.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
    if isinstance(radius, (int, float)) and radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius!r}")
    diff = jnp.abs(positions[:, None, :] - positions[None, :, :]).astype(jnp.float32)
    dist = {"chebyshev": lambda: diff.max(-1), "manhattan": lambda: diff.sum(-1),
            "euclidean": lambda: jnp.sqrt((diff**2).sum(-1))}[metric]()
    return (dist <= radius) & others(positions.shape[0])


def attention(queries: jax.Array, keys: jax.Array, values: jax.Array, alive: jax.Array,
              adjacency: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """TarMAC: ``out[i] = sum_j a_ij values[j]``, ``a_i = softmax_j(q_i . k_j / sqrt(dk))``
    over alive senders allowed by ``adjacency`` (default: all others). Returns ``(out, a)``.

    ``queries``, ``keys``: ``[N, dk]``; ``values``: ``[N, ...]``; ``a``: ``[N, N]``.
    """
    adjacency = others(queries.shape[0]) if adjacency is None else adjacency
    edges = _edges(adjacency, alive)
    scores = queries @ keys.T / jnp.sqrt(jnp.asarray(queries.shape[-1], queries.dtype))
    scores = jnp.where(edges, scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1) * edges
    return jnp.tensordot(weights, values, axes=1), weights
