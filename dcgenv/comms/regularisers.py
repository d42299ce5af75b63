"""Message regularisers: differentiable penalties to add to a loss (all jittable, scalars).

- ``ddcl_cost(z, delta)``: DDCL's surrogate of the coded length, ``sum log2(2|z|/delta + 1)``.
- ``kl_standard_normal(mean, std)``: ``KL(N(mean, std^2) || N(0, I))`` summed over elements,
  in nats (the "keep messages near a prior" penalty of VIB-style communication).
- ``send_probs(logits)`` / ``expected_length(logits)``: soft STOP. ``logits[t]`` is the
  logit of *continuing after token t*; token 0 is always sent, token ``t`` is sent with
  probability ``prod_{s<t} sigmoid(logits[s])``; the expected length is their sum.
- ``effective_rank(matrix)`` / ``fisher_rank(fn, message)``: the effective rank (Roy &
  Vetterli, EUSIPCO 2007) of the receiver's Jacobian with respect to the message, a penalty
  that keeps protocols non-redundant (few message directions the receiver reacts to);
  ``nuclear_norm(matrix)`` is its convex relative.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def ddcl_cost(z: jax.Array, delta: float) -> jax.Array:
    """DDCL's bit surrogate ``sum log2(2|z|/delta + 1)`` (float32 scalar), as in Freed et al.
    (AAAI 2020) and Kapoor et al. (arXiv 2511.01554); see docs/comms.md."""
    return jnp.sum(jnp.log2(2.0 * jnp.abs(z) / delta + 1.0)).astype(jnp.float32)


def kl_standard_normal(mean: jax.Array, std: jax.Array | float = 1.0) -> jax.Array:
    """``KL(N(mean, std^2) || N(0, 1))`` summed over elements, in nats; ``std > 0``."""
    var = jnp.broadcast_to(jnp.asarray(std, jnp.result_type(mean, float)) ** 2, mean.shape)
    kl = 0.5 * (mean**2 + var - 1.0 - jnp.log(var))
    return jnp.sum(kl).astype(jnp.float32)


def send_probs(continue_logits: jax.Array) -> jax.Array:
    """Probability that each token is sent: ``[1, c0, c0*c1, ...]`` along the last axis."""
    cont = jax.nn.sigmoid(continue_logits[..., :-1])
    ones = jnp.ones_like(continue_logits[..., :1])
    return jnp.cumprod(jnp.concatenate([ones, cont], axis=-1), axis=-1)


def expected_length(continue_logits: jax.Array) -> jax.Array:
    """Expected number of tokens sent under a soft STOP (sum of ``send_probs``)."""
    return jnp.sum(send_probs(continue_logits), axis=-1)


def effective_rank(matrix: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Effective rank ``exp(H(p))`` of a matrix (Roy & Vetterli, "The effective rank: a measure
    of effective dimensionality", EUSIPCO 2007): ``p = s / sum(s)`` its normalised singular
    values, ``H(p) = -sum p log p`` (``0 log 0 = 0``). Between 1 (rank one) and
    ``min(shape)`` (all singular values equal); 1 for the zero matrix (``sum(s)`` floored at
    ``eps``), never NaN. Differentiable where the singular values are distinct and nonzero."""
    s = jnp.linalg.svd(jnp.asarray(matrix, jnp.float32), compute_uv=False)
    p = s / jnp.maximum(jnp.sum(s), eps)
    safe = jnp.where(p > 0, p, 1.0)
    entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(safe), 0.0))
    return jnp.exp(entropy)


def nuclear_norm(matrix: jax.Array) -> jax.Array:
    """Sum of the singular values of ``matrix`` (the convex envelope of the rank)."""
    return jnp.sum(jnp.linalg.svd(jnp.asarray(matrix, jnp.float32), compute_uv=False))


def fisher_rank(fn, message: jax.Array) -> jax.Array:
    """Effective rank of the Jacobian ``d fn(message) / d message`` (``fn``: the receiver's
    policy logits, or any output vector, as a function of one message vector ``[d]``).

    The empirical Fisher of a categorical policy ``softmax(f(m))`` with respect to ``m`` is
    ``J^T (diag(pi) - pi pi^T) J`` with ``J = df/dm``, so its rank is at most ``J``'s; the
    penalty counts how many message directions the receiver's output reacts to, with each
    direction weighted by its singular value. Add ``coef * mean(fisher_rank)`` over sampled
    messages to a loss, beside ``kl_standard_normal``."""
    return effective_rank(jax.jacfwd(fn)(message))
