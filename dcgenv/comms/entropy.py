"""Entropy-coded channels: a learned prior prices what a quantising channel sends, and silence.

An Elias code (``coding``) needs at least one bit per integer, however predictable the
integers are. An entropy coder driven by a model ``P`` of the integers sends a message in
``-sum log2 P(m)`` bits (plus a few bits per stream), which is as low as the model is good.
Here the model is learned with the agents, as the rate term of learned compression.

- ``CategoricalPrior(low, high)``: per message element, a categorical over the integers
  ``low..high`` plus one *escape* category; an escaped integer ``m`` also sends a sign bit and
  the Elias-gamma code of its distance past the edge, ``|m - high|`` or ``|m - low|``
  (``2 * bitlen(distance)`` bits in all). So every integer has a finite code length.
- ``EntropyCoded(channel, prior)``: wraps ``DDCL`` or ``FakeQuant``. ``stats["bits"]`` is the
  ideal code length of the symbols sent under the prior, ``stats["cost"]`` a differentiable
  rate (below), ``stats["elias_bits"]`` the wrapped channel's own count (the prior-free
  figure). ``dcgenv.comms.rangecoder`` writes the real bytes (host-side, ``constriction``).
- ``Gated(channel)``: a send/skip flag per token (the last column of ``z`` is its logit, as
  in ``WithStop``). A skipped token arrives as zeros and costs ``-log2 P(skip)`` under a
  learned Bernoulli prior; a sent one costs ``-log2 P(send)`` plus its payload. A protocol
  that nearly always stays silent is then nearly free.

The rate (``cost``): DDCL sends ``round(z / delta + u)`` with ``u ~ U(-1/2, 1/2)`` the shared
dither, so with ``y = z / delta = k + f`` (``k`` integer, ``0 <= f < 1``) the symbol is ``k``
with probability ``1 - f`` and ``k + 1`` with probability ``f``. The expected code length
over the dither is therefore exactly ``(1 - f) L(k) + f L(k + 1)`` (``L = -log2 P``), a
piecewise-linear function of ``z``: differentiable in ``z`` (the sender) and in the prior's
logits, and no Jensen gap between the rate trained on and the bits sent on average. For
``FakeQuant`` (no dither) ``cost`` equals the bits sent, with that interpolation's gradient.

Learnable channels take their parameters as ``send(key, z, train=..., params=...)``;
``channel.init(key, length, dim)`` makes them (``has_params`` is True). The learners in
``agents`` keep them with the network's parameters and train them on ``comm_coef * cost``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from dcgenv import checks
from dcgenv.comms import coding
from dcgenv.comms.channels import (
    DDCL,
    Channel,
    FakeQuant,
    as_float,
    check_channel,
    check_train,
    make_stats,
    static_dataclass,
    straight_through,
)

LN2 = math.log(2.0)


@static_dataclass
class CategoricalPrior:
    """A factorised model of integer symbols: per element, categorical over ``low..high`` and
    an escape (the integers outside, each then also coded with a sign and Elias gamma).

    Parameters (``init``): ``{"logits": [*shape, high - low + 2]}``, the last column the
    escape's. They start as the Elias-gamma code: ``P(k) = 2^-code_length(k)`` inside the
    range and the rest of the mass on the escape, so an untrained prior prices every
    in-range integer exactly as ``DDCL``'s Elias count does, and learning only improves on it.
    """

    low: int = -15
    high: int = 15

    def __post_init__(self):
        low = checks.integer("CategoricalPrior", "low", self.low)
        high = checks.integer("CategoricalPrior", "high", self.high)
        if not low <= high:
            raise ValueError(f"CategoricalPrior needs low <= high, got low={low}, high={high}")
        if high - low > 4096:
            raise ValueError(f"CategoricalPrior: at most 4097 symbols (high - low <= 4096), "
                             f"got low={low}, high={high}; the escape codes the tails")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def size(self) -> int:
        """Number of categories: the ``high - low + 1`` integers and the escape."""
        return self.high - self.low + 2

    def init(self, key: jax.Array, shape: tuple[int, ...]) -> dict[str, jax.Array]:
        del key  # deterministic start
        k = np.arange(self.low, self.high + 1)
        lengths = 2.0 * np.floor(np.log2(np.maximum(np.abs(k), 1))) + 1 + 2.0 * (k != 0)
        inside = -lengths * LN2  # log of 2^-(2 bitlen(|k|) + 1), the Elias-gamma length
        tail = max(1.0 - float(np.exp(inside).sum()), 2.0**-20)  # Kraft: the rest escapes
        row = jnp.asarray(np.concatenate([inside, [math.log(tail)]]), jnp.float32)
        return {"logits": jnp.broadcast_to(row, (*shape, self.size))}

    def fit(self, symbols: jax.Array, pseudo_count: float = 0.01) -> dict[str, jax.Array]:
        """Maximum-likelihood parameters for a batch ``symbols [batch, *shape]``: each
        element's category counts plus ``pseudo_count`` (so unseen integers stay codable).
        Codes a batch at about its per-element empirical entropy; jittable."""
        counts = jax.nn.one_hot(self.index(symbols), self.size).sum(0) + pseudo_count
        return {"logits": jnp.log(counts)}

    def index(self, m: jax.Array) -> jax.Array:
        """The category of each integer ``m``: ``m - low`` inside the range, else the escape
        (``size - 1``); int32, same shape."""
        m = as_float(m)
        inside = (m >= self.low) & (m <= self.high)
        return jnp.where(inside, m - self.low, self.size - 1).astype(jnp.int32)

    def escape_bits(self, m: jax.Array) -> jax.Array:
        """Bits an escaped ``m`` sends after its escape category (0 inside the range): a sign
        and the Elias-gamma code of ``|m - high|`` or ``|m - low|``, ``2 * bitlen`` in all."""
        m = as_float(m)
        beyond = jnp.where(m > self.high, m - self.high, jnp.where(m < self.low, self.low - m, 0))
        return jnp.where(beyond > 0, 2.0 * coding.bit_length(beyond), 0.0)

    def bits(self, params: dict, m: jax.Array) -> jax.Array:
        """Ideal code length ``-log2 P(m)`` of each integer ``m`` (float32, ``m``'s shape;
        ``params["logits"]`` broadcasts against it)."""
        log_p = jax.nn.log_softmax(params["logits"].astype(jnp.float32), axis=-1)
        idx = self.index(m)
        log_p = jnp.broadcast_to(log_p, (*jnp.broadcast_shapes(idx.shape, log_p.shape[:-1]),
                                         self.size))
        picked = jnp.take_along_axis(log_p, jnp.broadcast_to(idx, log_p.shape[:-1])[..., None],
                                     axis=-1)[..., 0]
        return -picked / LN2 + self.escape_bits(m)

    def expected_bits(self, params: dict, y: jax.Array) -> jax.Array:
        """``(1 - f) bits(k) + f bits(k + 1)`` at ``y = k + f``: the expected code length of
        ``round(y + u)``, ``u ~ U(-1/2, 1/2)``; differentiable in ``y`` and the logits."""
        y = as_float(y)
        k = jax.lax.stop_gradient(jnp.floor(y))
        f = y - k
        return (1.0 - f) * self.bits(params, k) + f * self.bits(params, k + 1.0)

    def probabilities(self, params: dict) -> jax.Array:
        """``P`` over the categories, ``[*shape, size]`` (the range coder's tables)."""
        return jax.nn.softmax(params["logits"].astype(jnp.float32), axis=-1)


@static_dataclass
class EntropyCoded(Channel):
    """``channel`` (``DDCL`` or ``FakeQuant``) priced by a learned ``prior`` of its symbols.

    ``send(key, z, train=..., params=channel.init(...))`` returns the wrapped channel's
    ``z_hat`` unchanged; ``stats``: ``bits`` = ``sum -log2 P(symbols)`` (the ideal length, what
    ``rangecoder.encode`` sends up to a few bits per stream), ``cost`` = the expected length
    over DDCL's dither (exact, differentiable; see the module docstring), ``elias_bits`` = the
    wrapped channel's ``bits``, ``elias_cost`` its ``cost``, and ``symbols``.
    """

    channel: Channel = DDCL()
    prior: CategoricalPrior = CategoricalPrior()

    has_params: ClassVar[bool] = True

    def __post_init__(self):
        check_channel("EntropyCoded", self.channel)
        if not isinstance(self.channel, (DDCL, FakeQuant)):
            raise ValueError(f"EntropyCoded wraps a quantising channel (DDCL or FakeQuant), "
                             f"got {self.channel!r}")
        if not isinstance(self.prior, CategoricalPrior):
            raise ValueError(f"EntropyCoded: prior must be a CategoricalPrior, got {self.prior!r}")
        if isinstance(self.channel, FakeQuant):
            top = 2**self.channel.bits - 1
            if not (self.prior.low <= 0 and self.prior.high >= top):
                raise ValueError(f"EntropyCoded: {self.channel} sends the levels 0..{top}, but "
                                 f"the prior covers {self.prior.low}..{self.prior.high}; use "
                                 f"CategoricalPrior(0, {top})")

    def message_shape(self, length: int, dim: int) -> tuple[int, ...]:
        return self.channel.message_shape(length, dim)

    def init(self, key, length, dim):
        return self.prior.init(key, self.channel.message_shape(length, dim))

    def send(self, key, z, *, train, params=None):
        check_train("EntropyCoded", train)
        if params is None:
            raise ValueError("EntropyCoded.send needs params=channel.init(key, length, dim): "
                             "the prior's logits, trained with the agents")
        z = as_float(z)
        z_hat, inner = self.channel.send(key, z, train=train)
        symbols = inner.pop("symbols")
        bits = jnp.sum(self.prior.bits(params, symbols))
        expected = jnp.sum(self.prior.expected_bits(params, self.channel.rate_position(z)))
        cost = expected if self.channel.DITHERED else straight_through(expected, bits)
        return z_hat, make_stats(bits, cost, elias_bits=inner.pop("bits"),
                                 elias_cost=inner.pop("cost"), symbols=symbols, **inner)


@static_dataclass
class Gated(Channel):
    """A learned send/skip flag per token around any ``channel`` (learnable or not).

    ``z`` is ``[L, w + 1]``: ``L`` tokens of ``w`` payload features (one token is a
    length-1 message of ``channel``) and, last, the logit of *sending* the token. Training
    samples the flag from ``sigmoid(logit)`` with the shared key (straight-through: the
    forward value is the 0/1 flag, the gradient that of the probability); evaluation sends
    when the logit is positive. A skipped token arrives as zeros.

    Parameters: ``{"skip_logit": [L], "inner": channel.init(key, 1, w)}``, the Bernoulli
    prior of the flag (starting at P(skip) = 1/2) and the wrapped channel's. ``bits``: per
    token ``-log2 P(skip)`` if skipped, ``-log2 P(send) + payload bits`` if sent; ``cost``:
    its expectation under the sender's send probability, using the payload's ``cost``
    (differentiable in the logit, the prior and the payload). ``stats`` adds ``sent``
    (tokens sent), ``send_prob`` (``[L]``), ``skip_bits`` (the flag's share of ``bits``)
    and the wrapped channel's entries stacked per token (e.g. ``symbols`` ``[L, 1, ...]``).
    """

    channel: Channel = DDCL()

    has_params: ClassVar[bool] = True

    def __post_init__(self):
        check_channel("Gated", self.channel)

    def message_shape(self, length: int, dim: int) -> tuple[int, ...]:
        return (length, self.channel.message_shape(1, dim)[-1] + 1)

    def received_shape(self, length: int, dim: int) -> tuple[int, ...]:
        return (length, self.channel.received_shape(1, dim)[-1])

    def init(self, key, length, dim):
        return {"skip_logit": jnp.zeros((length,), jnp.float32),
                "inner": self.channel.init(key, 1, dim)}

    def send(self, key, z, *, train, params=None):
        check_train("Gated", train)
        if params is None:
            raise ValueError("Gated.send needs params=channel.init(key, length, dim): the "
                             "flag's prior (and the wrapped channel's parameters)")
        z = as_float(z)
        if z.ndim != 2 or z.shape[-1] < 2:
            raise ValueError(f"Gated wants z of shape [L, width + 1], got {z.shape}")
        payload, logit = z[:, None, :-1], z[:, -1]
        k_flag, k_tokens = jax.random.split(key)
        inner = params["inner"] if self.channel.has_params else None
        keys = jax.random.split(k_tokens, z.shape[0])
        z_hat, stats = jax.vmap(
            lambda k, x: self.channel.send(k, x, train=train, params=inner))(keys, payload)
        send_prob = jax.nn.sigmoid(logit)
        if train:
            hard = jax.random.bernoulli(k_flag, send_prob).astype(z.dtype)
        else:
            hard = (logit > 0).astype(z.dtype)
        flag = straight_through(send_prob, hard)
        log2_skip = jax.nn.log_sigmoid(params["skip_logit"]) / LN2
        log2_send = jax.nn.log_sigmoid(-params["skip_logit"]) / LN2
        flag_bits = hard * -log2_send + (1.0 - hard) * -log2_skip
        bits = jnp.sum(flag_bits + hard * stats.pop("bits"))
        cost = jnp.sum(send_prob * (-log2_send + stats.pop("cost")) + (1 - send_prob) * -log2_skip)
        z_hat = z_hat[:, 0] * flag[:, None]
        return z_hat, make_stats(bits, cost, sent=jnp.sum(hard), send_prob=send_prob,
                                 skip_bits=jnp.sum(flag_bits), mask=hard, **stats)

