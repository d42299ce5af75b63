"""Messages as token sequences with a soft STOP: ``WithStop(channel)``.

``z`` is ``[L, w + 1]``: ``L`` tokens, each ``w`` payload features (what ``channel`` expects
per token) plus, in the last column, the logit of *continuing after this token*. Token 0 is
always sent; token ``t`` is sent with probability ``p_t = prod_{s<t} sigmoid(logit_s)``
(``regularisers.send_probs``). Each token goes through ``channel`` with its own key (split
from ``key``, so noise is still shared between sender and receiver).

- ``train=True``: the receiver gets every token scaled by ``p_t`` (differentiable in the
  logits); ``cost = sum_t p_t * cost_t + sum_{t<L-1} p_t`` (expected payload cost plus one
  flag bit per token that needs a continue/stop flag).
- ``train=False``: hard stop. Tokens are sent while the logits are positive; the rest arrive
  as zeros. ``bits = sum of the sent tokens' bits + min(n, L - 1)`` flag bits.

``stats`` adds ``"length"`` (tokens sent under the hard stop, float32; train mode reports it
too), ``"expected_length"`` (``sum_t p_t``), ``"mask"`` (``[L]``, what scaled each token) and
the inner channel's extra entries stacked per token (e.g. ``"symbols"`` ``[L, ...]``, listed
for every token: ``mask`` says which were sent).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dcgenv.comms.channels import (
    Channel,
    as_float,
    check_train,
    make_stats,
    static_dataclass,
)
from dcgenv.comms.regularisers import send_probs


@static_dataclass
class WithStop(Channel):
    """Sequence messages with a soft STOP around any per-token ``channel``."""

    channel: Channel

    def __post_init__(self):
        if not isinstance(self.channel, Channel):
            raise ValueError(f"WithStop wraps a dcgenv.comms channel, got {self.channel!r}")
        if self.channel.has_params:
            raise ValueError(f"WithStop wraps a fixed channel; {type(self.channel).__name__} "
                             f"has learned parameters (Gated gives per-token send/skip "
                             f"flags around a learnable channel)")

    def message_shape(self, length: int, dim: int) -> tuple[int, ...]:
        """``(length, width + 1)``: the inner channel's token width plus a continue logit."""
        return (length, self.channel.message_shape(length, dim)[-1] + 1)

    def received_shape(self, length: int, dim: int) -> tuple[int, ...]:
        return self.channel.received_shape(length, dim)

    def send(self, key, z, *, train, params=None):
        check_train("WithStop", train, params)
        z = as_float(z)
        if z.ndim != 2 or z.shape[-1] < 2:
            raise ValueError(f"WithStop wants z of shape [L, width + 1], got {z.shape}")
        payload, logits = z[:, :-1], z[:, -1]
        keys = jax.random.split(key, z.shape[0])
        z_hat, inner = jax.vmap(lambda k, x: self.channel.send(k, x, train=train))(keys, payload)
        probs = send_probs(logits)
        go_on = (logits[:-1] > 0).astype(z.dtype)
        hard = jnp.cumprod(jnp.concatenate([jnp.ones(1, z.dtype), go_on]))
        mask = probs if train else hard
        flags = jnp.ones_like(mask).at[-1].set(0.0)
        bits = jnp.sum(hard * (inner.pop("bits") + flags))
        cost = jnp.sum(mask * (inner.pop("cost") + flags))
        z_hat = z_hat * mask.reshape((-1,) + (1,) * (z_hat.ndim - 1))
        return z_hat, make_stats(bits, cost, length=jnp.sum(hard), expected_length=jnp.sum(probs),
                             mask=mask, **inner)
