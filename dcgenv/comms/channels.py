"""Channels: what a message becomes between sender and receiver, and what it costs.

Every channel is a small immutable, hashable object (usable as a static argument of ``jit``
and as an environment constructor argument; it is also a leaf-less pytree, so passing it as
an ordinary ``jit`` argument works too) with one signature::

    z_hat, stats = channel.send(key, z, train=True)   # train: a Python bool (static)

- ``z``: the float message the sender emits, any shape (per agent typically ``[L, d]``:
  ``L`` tokens of ``d`` features; ``vmap`` over agents). ``channel.message_shape(L, d)``
  gives the shape a channel expects and ``channel.received_shape(L, d)`` what arrives.
  ``GumbelSoftmax`` fixes the token width itself: ``z`` is logits ``[..., vocab_size]``
  (the last axis indexes symbols) and ``z_hat`` is one-hot ``[..., vocab_size]``.
- ``key``: the shared randomness. Sender and receiver draw their noise from this one key,
  so the receiver can subtract the dither the sender added (DDCL). Same key, same result.
- ``train=True``: the differentiable training map. ``train=False``: what is really sent;
  where a gradient is defined there it is straight-through (the training map's Jacobian).
- ``stats``: ``"bits"`` (float32 scalar) -- bits this message costs on the wire at
  evaluation with this key (train mode reports the same number, so learning curves show
  real bandwidth); ``"cost"`` (float32 scalar) -- the differentiable surrogate to put in a
  loss (for fixed-rate channels it equals ``bits`` and has zero gradient). Discrete channels
  add ``"symbols"``: what goes on the wire (integers; DDCL keeps them in float32, exact and
  unbounded).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from dcgenv import checks
from dcgenv.comms import coding
from dcgenv.comms.regularisers import ddcl_cost

Stats = dict[str, jax.Array]


def static_dataclass(cls: type) -> type:
    """Make ``cls`` a frozen (hashable) dataclass registered as a leaf-less (static) pytree."""
    return jax.tree_util.register_static(dataclasses.dataclass(frozen=True)(cls))


@jax.custom_jvp
def straight_through(surrogate: jax.Array, value: jax.Array) -> jax.Array:
    """Return ``value`` exactly, with the derivative of ``surrogate``."""
    return value


@straight_through.defjvp
def _straight_through_jvp(primals, tangents):
    return primals[1], tangents[0]


def as_float(z: jax.Array) -> jax.Array:
    """``z`` as an array of a float dtype (integers become float32); helper for channels."""
    z = jnp.asarray(z)
    return z if jnp.issubdtype(z.dtype, jnp.floating) else z.astype(jnp.float32)


def make_stats(bits, cost, **extra) -> Stats:
    """A channel's ``stats``: float32 ``bits`` and ``cost``, plus any ``extra`` entries."""
    return {"bits": jnp.asarray(bits, jnp.float32), "cost": jnp.asarray(cost, jnp.float32),
            **extra}


class Channel(abc.ABC):
    """Base class: ``send``, plus the message shapes a channel expects and delivers."""

    has_params: ClassVar[bool] = False  # True: ``send`` needs ``params`` from ``init``

    @abc.abstractmethod
    def send(self, key: jax.Array, z: jax.Array, *, train: bool,
             params: Any = None) -> tuple[jax.Array, Stats]:
        ...

    def init(self, key: jax.Array, length: int, dim: int) -> Any:
        """The channel's learnable parameters for messages of ``length`` tokens of ``dim``
        features (a pytree to train with the agents; ``{}`` for a fixed channel)."""
        return {}

    def message_shape(self, length: int, dim: int) -> tuple[int, ...]:
        """Shape of ``z`` for ``length`` tokens of ``dim`` features."""
        return (length, dim)

    def received_shape(self, length: int, dim: int) -> tuple[int, ...]:
        """Shape of ``z_hat`` the receiver gets for that message."""
        return self.message_shape(length, dim)


def check_channel(owner: str, channel) -> None:
    """``ValueError`` naming ``owner`` unless ``channel`` is a ``dcgenv.comms`` channel."""
    if not isinstance(channel, Channel):
        from dcgenv.comms.registry import CHANNELS  # the table imports this module

        names = ", ".join(c.__name__ for c in CHANNELS.values())
        raise ValueError(f"{owner}: channel must be a dcgenv.comms channel ({names}, or "
                         f"WithStop, EntropyCoded or Gated around one; dcgenv.comms.make(name) "
                         f"builds one by name), got {channel!r}")


def as_channel(owner: str, channel) -> Channel:
    """``channel`` itself, or, for a name, ``dcgenv.comms.make(name)`` with its defaults (so a
    YAML config's ``env_kwargs`` can name one, e.g. ``{channel: silent}``); ``ValueError``
    naming ``owner`` for anything else."""
    if isinstance(channel, str):
        from dcgenv.comms.registry import make  # the table imports this module

        try:
            return make(channel)
        except ValueError as err:
            raise ValueError(f"{owner}: channel {err}") from None
    check_channel(owner, channel)
    return channel


def check_train(owner: str, train, params: Any = None) -> bool:
    """``train`` must be a Python bool: it picks the map at trace time (``jit`` static).
    ``params`` must be ``None`` or empty: a fixed channel has nothing to learn."""
    if params is not None and jax.tree.leaves(params):
        raise ValueError(f"{owner} is a fixed channel and takes no params (got {params!r}); "
                         f"learnable channels: EntropyCoded, Gated")
    return checks.flag(owner, "train (static, not traced)", train)


@static_dataclass
class Continuous(Channel):
    """Identity; counted at 32 bits per float (the DDCL papers' continuous baseline)."""

    def send(self, key, z, *, train, params=None):
        check_train("Continuous", train, params)
        z = as_float(z)
        return z, make_stats(32.0 * z.size, 32.0 * z.size)


@static_dataclass
class Silent(Channel):
    """No communication: the receiver gets zeros; 0 bits, no gradient to the sender."""

    def send(self, key, z, *, train, params=None):
        check_train("Silent", train, params)
        return jnp.zeros_like(as_float(z)), make_stats(0.0, 0.0)


@static_dataclass
class GaussianNoise(Channel):
    """Analog channel ``z + std * N(0, 1)`` in both modes; a float on the wire (32 bits).

    ``cost``: the AWGN capacity used per element, ``0.5 * log2(1 + z^2 / std^2)``, summed.
    """

    std: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "std",
                           checks.real("GaussianNoise", "std", self.std, 0, low_open=True))

    def send(self, key, z, *, train, params=None):
        check_train("GaussianNoise", train, params)
        z = as_float(z)
        z_hat = z + self.std * jax.random.normal(key, z.shape, z.dtype)
        cost = jnp.sum(0.5 * jnp.log2(1.0 + (z / self.std) ** 2))
        return z_hat, make_stats(32.0 * z.size, cost)


@static_dataclass
class DDCL(Channel):
    """Dithered quantisation with shared noise (Freed et al. 2020; Kapoor et al. 2025).

    Dither ``eps ~ U(-delta/2, delta/2)`` from ``key``; sender ``m = round((z + eps)/delta)``
    (any integer); receiver ``m * delta - eps``. ``train=True`` returns the reparameterised
    ``z + eps`` (same error distribution, identity gradient); ``train=False`` returns exactly
    ``m * delta - eps`` with a straight-through gradient. ``bits``: the real coded length of
    ``m`` (``coding.code_length``, zig-zag + Elias ``code``) in both modes; ``cost``:
    ``sum log2(2|x|/delta + 1)``; ``symbols``: ``m`` (float32).

    ``cost_on`` picks ``x``, the two conventions of the authors' code
    (AdityaKapoor74/Multi-Agent-Limited-Comms): ``"clean"`` (default) prices the sender's
    ``z`` (their ToyProblem GridWorld code); ``"received"`` prices what arrives, ``z + eps``
    in training and ``m * delta - eps`` in evaluation (their MAGIC and on-policy code; a
    ``z = 0`` then costs ``2 - 1/ln 2 ~ 0.56`` bit per element on average, not 0).
    """

    delta: float = 0.2
    code: str = "gamma"
    cost_on: str = "clean"

    COST_ON: ClassVar[tuple[str, ...]] = ("clean", "received")
    DITHERED: ClassVar[bool] = True  # the symbol is round(rate_position(z) + U(-1/2, 1/2))

    def __post_init__(self):
        object.__setattr__(self, "delta",
                           checks.real("DDCL", "delta", self.delta, 0, low_open=True))
        coding.check_code(self.code)
        checks.choice("DDCL", "cost_on", self.cost_on, self.COST_ON)

    def rate_position(self, z: jax.Array) -> jax.Array:
        """``z / delta``: the symbol sent is ``round(z / delta + u)``, ``u ~ U(-1/2, 1/2)``
        the dither over ``delta`` (``EntropyCoded`` prices its expected code length)."""
        return as_float(z) / self.delta

    def dither(self, key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        half = self.delta / 2
        return jax.random.uniform(key, shape, dtype, -half, half)

    def quantise(self, key: jax.Array, z: jax.Array) -> jax.Array:
        """Sender: the integers ``m`` (float dtype, exact) for message ``z``."""
        z = as_float(z)
        return jnp.round((z + self.dither(key, z.shape, z.dtype)) / self.delta)

    def dequantise(self, key: jax.Array, m: jax.Array) -> jax.Array:
        """Receiver: ``m * delta - eps`` with the dither drawn from ``key``."""
        m = as_float(m)
        return m * self.delta - self.dither(key, m.shape, m.dtype)

    def send(self, key, z, *, train, params=None):
        check_train("DDCL", train, params)
        z = as_float(z)
        m = jax.lax.stop_gradient(self.quantise(key, z))
        if train:
            z_hat = z + self.dither(key, z.shape, z.dtype)
        else:
            z_hat = straight_through(z, self.dequantise(key, m))
        bits = jnp.sum(coding.code_length(m, self.code))
        priced = z if self.cost_on == "clean" else z_hat
        return z_hat, make_stats(bits, ddcl_cost(priced, self.delta), symbols=m)


@static_dataclass
class FakeQuant(Channel):
    """Uniform ``bits``-bit quantisation of ``clip(z, low, high)``, straight-through gradient.

    ``2**bits`` levels spaced ``(high - low) / (2**bits - 1)``; the same map in both modes.
    The gradient is 1 inside ``[low, high]`` and 0 outside (as TensorFlow's fake_quant).
    """

    bits: int = 8
    low: float = -1.0
    high: float = 1.0

    DITHERED: ClassVar[bool] = False  # the symbol is round(rate_position(z)), deterministic

    def __post_init__(self):
        object.__setattr__(self, "bits", checks.integer("FakeQuant", "bits", self.bits, 1, 16))
        low = checks.real("FakeQuant", "low", self.low)
        high = checks.real("FakeQuant", "high", self.high)
        if not low < high:
            raise ValueError(f"FakeQuant needs low < high, got low={low}, high={high}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def rate_position(self, z: jax.Array) -> jax.Array:
        """``(clip(z, low, high) - low) / step``: the level sent is its rounding."""
        step = (self.high - self.low) / (2**self.bits - 1)
        return (jnp.clip(as_float(z), self.low, self.high) - self.low) / step

    def send(self, key, z, *, train, params=None):
        check_train("FakeQuant", train, params)
        z = as_float(z)
        step = (self.high - self.low) / (2**self.bits - 1)
        clipped = jnp.clip(z, self.low, self.high)
        q = jnp.round((jax.lax.stop_gradient(clipped) - self.low) / step)
        z_hat = straight_through(clipped, self.low + q * step)
        bits = float(self.bits * z.size)
        return z_hat, make_stats(bits, bits, symbols=q.astype(jnp.int32))


@static_dataclass
class DRU(Channel):
    """DIAL's discretise/regularise unit: train ``sigmoid(z + sigma * N(0, 1))``, eval
    ``1{z > 0}`` (straight-through ``sigmoid(z)`` gradient); 1 bit per element."""

    sigma: float = 2.0

    def __post_init__(self):
        object.__setattr__(self, "sigma", checks.real("DRU", "sigma", self.sigma, 0))

    def send(self, key, z, *, train, params=None):
        check_train("DRU", train, params)
        z = as_float(z)
        if train:
            noisy = z + self.sigma * jax.random.normal(key, z.shape, z.dtype)
            z_hat, symbols = jax.nn.sigmoid(noisy), noisy > 0
        else:
            symbols = z > 0
            z_hat = straight_through(jax.nn.sigmoid(z), symbols.astype(z.dtype))
        bits = float(z.size)
        return z_hat, make_stats(bits, bits, symbols=symbols.astype(jnp.int32))


@static_dataclass
class GumbelSoftmax(Channel):
    """Discrete symbols from logits ``z[..., vocab_size]`` (one symbol per leading index).

    Train: a Gumbel-softmax sample at ``temperature``; with ``straight_through`` the forward
    value is its one-hot argmax (gradient of the soft sample). Eval: one-hot of
    ``argmax(z)`` (greedy), straight-through ``softmax(z / temperature)`` gradient.
    ``bits = tokens * log2(vocab_size)``; ``symbols``: int32 ``[...]`` (train: the sample).
    """

    vocab_size: int = 2
    temperature: float = 1.0
    straight_through: bool = True

    def __post_init__(self):
        name = "GumbelSoftmax"
        object.__setattr__(self, "vocab_size",
                           checks.integer(name, "vocab_size", self.vocab_size, 2))
        object.__setattr__(self, "temperature",
                           checks.real(name, "temperature", self.temperature, 0, low_open=True))
        object.__setattr__(self, "straight_through",
                           checks.flag(name, "straight_through", self.straight_through))

    def message_shape(self, length: int, dim: int | None = None) -> tuple[int, ...]:
        """``(length, vocab_size)``: the channel fixes the token width, ``dim`` is ignored."""
        return (length, self.vocab_size)

    def send(self, key, z, *, train, params=None):
        check_train("GumbelSoftmax", train, params)
        z = as_float(z)
        if z.ndim == 0 or z.shape[-1] != self.vocab_size:
            raise ValueError(f"GumbelSoftmax wants logits [..., {self.vocab_size}] "
                             f"(last axis = vocab_size), got shape {z.shape}")
        if train:
            z = z + jax.random.gumbel(key, z.shape, z.dtype)
        soft = jax.nn.softmax(z / self.temperature, axis=-1)
        symbols = jnp.argmax(z, axis=-1)
        hard = jax.nn.one_hot(symbols, self.vocab_size, dtype=z.dtype)
        z_hat = soft if train and not self.straight_through else straight_through(soft, hard)
        bits = symbols.size * math.log2(self.vocab_size)
        return z_hat, make_stats(bits, bits, symbols=symbols.astype(jnp.int32))
