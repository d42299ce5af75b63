"""Message regularisers: differentiable penalties to add to a loss (all jittable, scalars).

- ``ddcl_cost(z, delta)``: DDCL's surrogate of the coded length, ``sum log2(2|z|/delta + 1)``.
- ``kl_standard_normal(mean, std)``: ``KL(N(mean, std^2) || N(0, I))`` summed over elements,
  in nats (the "keep messages near a prior" penalty of VIB-style communication).
- ``send_probs(logits)`` / ``expected_length(logits)``: soft STOP. ``logits[t]`` is the
  logit of *continuing after token t*; token 0 is always sent, token ``t`` is sent with
  probability ``prod_{s<t} sigmoid(logits[s])``; the expected length is their sum.
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
