"""Real bit coding of integer messages: a prefix-free code, its exact length, and the entropy bound.

DDCL sends unbounded integers. On the wire each integer ``m`` is mapped to a positive integer
by zig-zag (``0, -1, 1, -2, 2, ... -> 1, 2, 3, 4, 5, ...``, i.e. ``n = 2m + 1`` for ``m >= 0``
and ``n = -2m`` for ``m < 0``) and ``n`` is written with an Elias code:

- ``"gamma"`` (default): ``bitlen(n) - 1`` zeros, then ``n`` in binary. Length
  ``2 * bitlen(|m|) + 1``: 1 bit for 0, 3 for +-1, 5 for +-2..3, 7 for +-4..7.
- ``"delta"``: gamma code of ``N = bitlen(n)``, then ``n`` without its leading 1. Length
  ``N + 2 * bitlen(N) - 2``; shorter than gamma from ``|m| >= 16`` on.

Both are prefix-free, so a message (any array of integers, read in C order) is the plain
concatenation of its elements' codewords. The length depends only on ``|m|`` and never
decreases as ``|m|`` grows.

- ``code_length(m, code)``: jittable, exact (equals ``len(encode([m], code))`` for every
  integer ``m`` that the dtype holds: all of int32 / int64, and every integral float, which
  DDCL uses so that messages never overflow). Used by ``DDCL``'s ``stats["bits"]``.
- ``encode(messages, code) -> str`` and ``decode(bits, code) -> list[int]``: host-side
  (Python integers, arbitrary size; not jittable), the real bit string of ``'0'``/``'1'``.
- ``empirical_entropy_bits(messages)``: host-side Shannon bound of a batch of messages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

CODES = ("gamma", "delta")


def check_code(code: str) -> str:
    """Return ``code`` if it names a known code, else raise ``ValueError``."""
    if code not in CODES:
        raise ValueError(f"unknown integer code {code!r}; allowed: {', '.join(CODES)}")
    return code


def bit_length(k: jax.Array) -> jax.Array:
    """Number of binary digits of the non-negative integer ``|k|`` (0 for 0); int32, jittable.

    Integer inputs use count-leading-zeros (exact over the whole dtype, ``-2**31`` included);
    float inputs must hold integral values and use the binary exponent (exact for any float;
    inf and NaN count as the largest finite magnitude, so a broken message is never cheap).
    """
    k = jnp.asarray(k)
    if jnp.issubdtype(k.dtype, jnp.integer):
        width = jnp.iinfo(k.dtype).bits
        unsigned = jnp.abs(k).astype(jnp.dtype(f"uint{width}"))  # abs(-2**31) wraps to 2**31
        return (width - jax.lax.clz(unsigned)).astype(jnp.int32)
    _, exponent = jnp.frexp(jnp.abs(k))
    return jnp.where(jnp.isfinite(k), exponent, jnp.finfo(k.dtype).maxexp).astype(jnp.int32)


def code_length(m: jax.Array, code: str = "gamma") -> jax.Array:
    """Elementwise codeword length in bits (int32) of the integers ``m``; jittable and exact."""
    check_code(code)
    n_len = bit_length(m) + 1  # bitlen of the zig-zagged n >= 1
    if code == "gamma":
        return 2 * n_len - 1
    return n_len + 2 * bit_length(n_len) - 2


def _zigzag(m: int) -> int:
    return 2 * m + 1 if m >= 0 else -2 * m


def _unzigzag(n: int) -> int:
    return (n - 1) // 2 if n % 2 else -(n // 2)


def _gamma(n: int) -> str:
    b = bin(n)[2:]
    return "0" * (len(b) - 1) + b


def _codeword(m: int, code: str) -> str:
    n = _zigzag(m)
    if code == "gamma":
        return _gamma(n)
    b = bin(n)[2:]
    return _gamma(len(b)) + b[1:]


def _as_ints(messages: Any) -> list[int]:
    # Python sequences stay Python numbers: NumPy would turn [0, 2**63 + 1] into float64
    arr = np.asarray(messages, dtype=object if isinstance(messages, (list, tuple)) else None)
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        return [int(v) for v in arr.reshape(-1)]
    if arr.dtype != object and not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"encode: messages must be integers, got dtype {arr.dtype}")
    flat = list(arr.reshape(-1))
    for v in flat:
        if isinstance(v, (int, np.integer)):
            continue
        if not (isinstance(v, (float, np.floating)) and math.isfinite(v) and
                float(v).is_integer()):
            raise ValueError(f"encode: messages must be integers or finite integral floats, "
                             f"got {v!r}")
    return [int(v) for v in flat]


def encode(messages: Any, code: str = "gamma") -> str:
    """Bit string (``'0'``/``'1'`` characters) of the integers in ``messages``, C order.

    Host-side; accepts Python ints of any size, numpy/jax integer arrays, or float arrays
    holding integral values (DDCL's ``stats["symbols"]``).
    """
    check_code(code)
    return "".join(_codeword(m, code) for m in _as_ints(messages))


def _read_gamma(bits: str, pos: int) -> tuple[int, int]:
    zeros = 0
    while pos + zeros < len(bits) and bits[pos + zeros] == "0":
        zeros += 1
    end = pos + 2 * zeros + 1
    if end > len(bits):
        raise ValueError(f"decode: bit string ends inside a codeword at bit {pos}")
    return int(bits[pos + zeros:end], 2), end


def decode(bits: str, code: str = "gamma") -> list[int]:
    """Integers whose codewords concatenate to ``bits`` (inverse of ``encode``); host-side."""
    check_code(code)
    if set(bits) - {"0", "1"}:
        raise ValueError("decode: bits must be a string of '0' and '1' characters")
    out, pos = [], 0
    while pos < len(bits):
        n, pos = _read_gamma(bits, pos)
        if code == "delta":
            rest = n - 1
            if pos + rest > len(bits):
                raise ValueError(f"decode: bit string ends inside a codeword at bit {pos}")
            n, pos = int("1" + bits[pos:pos + rest], 2), pos + rest
        out.append(_unzigzag(n))
    return out


def empirical_entropy_bits(messages: Iterable[Any], *, joint: bool = True) -> float:
    """Plug-in Shannon entropy, in bits per message, of a batch of messages (host-side).

    ``messages`` has a leading batch axis; each row (any trailing shape, any dtype) is one
    message. ``joint=True``: the entropy of whole messages as symbols, the bound for any code
    of whole messages. ``joint=False``: the sum over element positions of each position's
    marginal entropy, the bound for codes that code each element on its own (as
    ``encode`` does); it is never below the joint value. Compare with the mean of
    ``stats["bits"]`` (real code) and of ``stats["cost"]`` (surrogate). The plug-in estimate
    is biased low when the batch is small next to the number of distinct messages.
    """
    arr = np.asarray(messages)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError("empirical_entropy_bits: messages needs a non-empty batch axis")
    rows = arr.reshape(arr.shape[0], -1)
    if joint:
        return _entropy(np.unique(rows, axis=0, return_counts=True)[1])
    return float(sum(_entropy(np.unique(col, return_counts=True)[1]) for col in rows.T))


def _entropy(counts: np.ndarray) -> float:
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())
