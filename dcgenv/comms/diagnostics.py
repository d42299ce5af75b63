"""Gradient diagnostics: signal-to-noise of per-sample gradients, and REINFORCE for messages.

- ``gsnr(per_sample_grads)``: gradient signal-to-noise ratio per parameter,
  ``mean_b(g)^2 / var_b(g)`` over the leading batch axis (Liu et al. 2020), same pytree
  structure. Higher means a more reliable gradient; use it to compare estimators.
- ``score_function_loss(loss, log_prob, baseline)``: a surrogate whose *value* is ``loss`` and
  whose *gradient* adds the score-function (REINFORCE) term ``(loss - baseline) * grad
  log_prob``. With discrete messages (sampled symbols carry no pathwise gradient) its mean
  over samples is an unbiased estimate of the gradient of ``E[loss]``; compare it with a
  pathwise estimator (DDCL, Gumbel-softmax) on the same problem with ``gsnr``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def gsnr(per_sample_grads: Any) -> Any:
    """Per-parameter ``mean^2 / var`` over axis 0 (unbiased variance); needs >= 2 samples.

    A parameter whose gradient never varies gets ``mean^2 / tiny`` capped at the largest
    float32 (large, finite), and one that is always 0 gets 0, so the result never holds NaN or
    inf (for finite gradients).
    """
    leaves = jax.tree.leaves(per_sample_grads)
    if not leaves or any(jnp.ndim(x) == 0 or jnp.shape(x)[0] < 2 for x in leaves):
        raise ValueError("gsnr needs per-sample gradients with a leading batch axis of size >= 2")

    def ratio(g):
        g = jnp.asarray(g, jnp.float32)
        mean, var = jnp.mean(g, axis=0), jnp.var(g, axis=0, ddof=1)
        big = jnp.finfo(jnp.float32)
        return jnp.minimum(mean**2 / jnp.maximum(var, big.tiny), big.max)

    return jax.tree.map(ratio, per_sample_grads)


def score_function_loss(loss: jax.Array, log_prob: jax.Array,
                        baseline: jax.Array | float = 0.0) -> jax.Array:
    """``loss + (loss - baseline) * (log_prob - stop_gradient(log_prob))``, elementwise.

    Value: ``loss``. Gradient: the direct gradient of ``loss`` plus
    ``stop_gradient(loss - baseline) * grad(log_prob)`` (REINFORCE with a baseline).
    ``log_prob``: log-probability of the sampled message under the sender's policy.
    """
    advantage = jax.lax.stop_gradient(loss - baseline)
    return loss + advantage * (log_prob - jax.lax.stop_gradient(log_prob))
