"""Post-hoc vector quantisation of learned continuous messages: k-means codebooks.

Train with continuous messages, then discretise them: collect messages from rollouts, fit a
``K``-word codebook by k-means (Lloyd, "Least squares quantization in PCM", IEEE Trans.
Inf. Theory 1982; initialisation by k-means++, Arthur & Vassilvitskii, SODA 2007) and, at
evaluation, replace every message by its nearest code word (``Actor(..., codebook=...)``), so
each message costs ``log2(K)`` bits with a fixed-length code (:func:`codebook_bits`).

    codebook = vq.kmeans(key, messages, 16)          # messages [M, D] (rows with weight 0 ignored)
    m_hat = vq.quantise(codebook, m)                 # nearest code word, row by row

Everything is jittable (``k`` and ``iters`` static) and deterministic given the key.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def _check(k: int, iters: int, m: int | None = None) -> None:
    if int(k) < 1:
        raise ValueError(f"kmeans: k = {k!r} is out of range; allowed: an integer >= 1 "
                         "(codebook size)")
    if int(iters) < 0:
        raise ValueError(f"kmeans: iters = {iters!r} is out of range; allowed: an integer >= 0")
    if m is not None and m < 1:
        raise ValueError(f"kmeans: got {m} points; allowed: at least 1 point")


def sq_distances(x: jax.Array, codebook: jax.Array) -> jax.Array:
    """``[M, K]`` squared Euclidean distances (clamped at 0)."""
    d = (jnp.sum(x**2, -1, keepdims=True) - 2.0 * x @ codebook.T
         + jnp.sum(codebook**2, -1)[None, :])
    return jnp.maximum(d, 0.0)


def assign(codebook: jax.Array, x: jax.Array) -> jax.Array:
    """Index ``[M]`` of the nearest code word of every row of ``x`` (ties: the lowest)."""
    return jnp.argmin(sq_distances(x, codebook), -1)


def quantise(codebook: jax.Array, x: jax.Array) -> jax.Array:
    """Every row of ``x`` ``[..., D]`` replaced by its nearest code word (no gradient: the
    quantiser is applied at evaluation)."""
    flat = x.reshape(-1, x.shape[-1])
    return codebook[assign(codebook, flat)].reshape(x.shape)


def kmeans(key: jax.Array, x: jax.Array, k: int, iters: int = 25,
           weights: jax.Array | None = None) -> jax.Array:
    """A ``[k, D]`` codebook fitted to the rows of ``x`` ``[M, D]`` (optional ``weights``
    ``[M]`` >= 0, e.g. an alive mask: zero-weight rows are ignored): k-means++ seeding from
    ``key`` then ``iters`` Lloyd steps. A code word left without points keeps its place."""
    _check(k, iters, x.shape[0])
    x = jnp.asarray(x, jnp.float32)
    w = jnp.ones(x.shape[0], jnp.float32) if weights is None else weights.astype(jnp.float32)
    keys = jax.random.split(key, k)
    first = jax.random.choice(keys[0], x.shape[0], p=w / jnp.maximum(w.sum(), 1e-30))
    codebook = jnp.zeros((k, x.shape[1]), jnp.float32).at[0].set(x[first])

    def seed(i, codebook):  # k-means++: next centre with probability ~ weight * distance^2
        d = sq_distances(x, codebook)
        d = jnp.where(jnp.arange(k)[None, :] < i, d, jnp.inf).min(-1)
        p = w * d
        total = p.sum()
        p = jnp.where(total > 0, p / jnp.maximum(total, 1e-30), w / jnp.maximum(w.sum(), 1e-30))
        return codebook.at[i].set(x[jax.random.choice(keys[i], x.shape[0], p=p)])
    codebook = jax.lax.fori_loop(1, k, seed, codebook)

    def lloyd(_, codebook):
        onehot = jax.nn.one_hot(assign(codebook, x), k) * w[:, None]  # [M, k]
        count = onehot.sum(0)
        mean = (onehot.T @ x) / jnp.maximum(count, 1e-30)[:, None]
        return jnp.where(count[:, None] > 0, mean, codebook)
    return jax.lax.fori_loop(0, iters, lloyd, codebook)


def distortion(codebook: jax.Array, x: jax.Array) -> jax.Array:
    """Mean squared error of quantising the rows of ``x``."""
    return jnp.mean(jnp.min(sq_distances(x, codebook), -1))


def codebook_bits(k: int) -> float:
    """Bits per message of a fixed-length code over ``k`` code words: ``log2(k)``."""
    _check(k, 0)
    return math.log2(int(k))
