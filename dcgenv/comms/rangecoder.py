"""Real entropy coding of what ``EntropyCoded`` and ``Gated`` send: bytes you could put on a wire.

Host-side (NumPy in, ``bytes`` out; not jittable), with ``constriction``'s range coder
(``pip install "dcgenv[coding]"``; imported only when these functions run, never by
``import dcgenv``). The model is the channel's learned prior, so the coded length is the
ideal ``-sum log2 P`` that ``stats["bits"]`` reports, plus at most a few 32-bit words per
stream and the rounding of the probabilities to constriction's 24-bit fixed point.

    data = rangecoder.encode(prior, params, symbols)       # bytes
    symbols = rangecoder.decode(prior, params, data, shape)
    data = rangecoder.encode_gated(gated, params, symbols, sent)
    symbols, sent = rangecoder.decode_gated(gated, params, data, batch)

Layout: every category index (C order), then, for each escaped integer in the same order, a
sign bit and the Elias-gamma code of its distance past the prior's range, each bit coded with
probability 1/2 (one bit each, as ``CategoricalPrior.bits`` counts). ``encode_gated`` first
codes every flag (``[batch, L]``, C order) with the flag's prior, then the payloads of the
sent tokens only.
"""

from __future__ import annotations

import numpy as np

from dcgenv.comms.entropy import CategoricalPrior, Gated

HALF = np.array([0.5, 0.5])


def _constriction():
    try:
        import constriction
    except ImportError:
        raise ImportError("dcgenv.comms.rangecoder needs constriction: "
                          "pip install \"dcgenv[coding]\" (or pip install constriction)") from None
    return constriction


def _integers(symbols) -> np.ndarray:
    arr = np.asarray(symbols)
    if np.issubdtype(arr.dtype, np.floating):
        if not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise ValueError("rangecoder: symbols must be integers or integral floats")
        if arr.size and np.abs(arr).max() >= 2.0**62:
            raise ValueError("rangecoder: symbols must be below 2**62 in magnitude")
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"rangecoder: symbols must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _tables(prior: CategoricalPrior, params, shape) -> np.ndarray:
    probs = np.asarray(prior.probabilities(params), np.float64)
    table = np.broadcast_to(probs, (*shape, prior.size)).reshape(-1, prior.size)
    return np.ascontiguousarray(table)  # constriction reads contiguous memory only


def _gamma_bits(n: int) -> list[int]:
    b = bin(n)[2:]
    return [0] * (len(b) - 1) + [int(c) for c in b]


def _encode_into(encoder, prior: CategoricalPrior, params, ints: np.ndarray) -> None:
    c = _constriction()
    flat = ints.reshape(-1)
    inside = (flat >= prior.low) & (flat <= prior.high)
    idx = np.where(inside, flat - prior.low, prior.size - 1).astype(np.int32)
    if flat.size:
        encoder.encode(idx, c.stream.model.Categorical(perfect=False),
                       _tables(prior, params, ints.shape))
    payload = []
    for m in flat[~inside].tolist():
        distance = m - prior.high if m > prior.high else prior.low - m
        payload += [int(m < prior.low)] + _gamma_bits(distance)
    if payload:
        encoder.encode(np.asarray(payload, np.int32),
                       c.stream.model.Categorical(HALF, perfect=False))


def _decode_from(decoder, prior: CategoricalPrior, params, shape) -> np.ndarray:
    c = _constriction()
    n = int(np.prod(shape, dtype=np.int64))
    if n == 0:
        return np.zeros(shape, np.int64)
    idx = decoder.decode(c.stream.model.Categorical(perfect=False), _tables(prior, params, shape))
    out = idx.astype(np.int64) + prior.low
    half = c.stream.model.Categorical(HALF, perfect=False)
    bit = lambda: int(decoder.decode(half))
    for i in np.flatnonzero(idx == prior.size - 1):
        below, zeros = bit(), 0
        while bit() == 0:
            zeros += 1
        distance = 1
        for _ in range(zeros):
            distance = 2 * distance + bit()
        out[i] = prior.low - distance if below else prior.high + distance
    return out.reshape(shape)


def _compressed(encoder) -> bytes:
    return np.asarray(encoder.get_compressed(), np.uint32).astype("<u4").tobytes()


def _decoder(data: bytes):
    if len(data) % 4:
        raise ValueError("rangecoder: data must be whole 32-bit words (what encode returned)")
    return _constriction().stream.queue.RangeDecoder(np.frombuffer(data, "<u4").astype(np.uint32))


def encode(prior: CategoricalPrior, params, symbols) -> bytes:
    """Range-code the integers ``symbols`` (any shape; ``params["logits"]`` broadcasts
    against it plus a last category axis) under ``prior``; returns the bytes."""
    encoder = _constriction().stream.queue.RangeEncoder()
    _encode_into(encoder, prior, params, _integers(symbols))
    return _compressed(encoder)


def decode(prior: CategoricalPrior, params, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """The integers (int64, ``shape``) that ``encode(prior, params, ...)`` turned into ``data``."""
    return _decode_from(_decoder(data), prior, params, tuple(shape))


def _flag_tables(gated: Gated, params, batch: int) -> np.ndarray:
    p_skip = 1.0 / (1.0 + np.exp(-np.asarray(params["skip_logit"], np.float64)))
    table = np.stack([p_skip, 1.0 - p_skip], -1)  # category 0: skip, 1: send
    return np.ascontiguousarray(np.broadcast_to(table, (batch, *table.shape)).reshape(-1, 2))


def _inner_prior(gated: Gated) -> CategoricalPrior:
    inner = gated.channel
    prior = getattr(inner, "prior", None)
    if not isinstance(prior, CategoricalPrior):
        raise ValueError(f"rangecoder: Gated must wrap an EntropyCoded channel to be coded, "
                         f"got {inner!r}")
    return prior


def encode_gated(gated: Gated, params, symbols, sent) -> bytes:
    """Range-code a batch of ``Gated(EntropyCoded(...))`` messages: ``sent`` ``[B, L]`` (the
    flags, ``stats["mask"]``) and ``symbols`` ``[B, L, ...]`` (``stats["symbols"]``; only the
    sent tokens' are coded)."""
    c = _constriction()
    prior = _inner_prior(gated)
    flags = np.asarray(sent)
    if flags.ndim != 2 or not np.isin(flags, (0, 1)).all():
        raise ValueError(f"encode_gated: sent must be 0/1 flags [batch, L], got {flags!r}")
    ints = _integers(symbols)
    if ints.shape[:2] != flags.shape:
        raise ValueError(f"encode_gated: symbols {ints.shape} do not start with sent's shape "
                         f"{flags.shape}")
    encoder = c.stream.queue.RangeEncoder()
    flags = flags.astype(np.int32)
    if flags.size:
        encoder.encode(flags.reshape(-1), c.stream.model.Categorical(perfect=False),
                       _flag_tables(gated, params, flags.shape[0]))
    _encode_into(encoder, prior, params["inner"], ints[flags.astype(bool)])
    return _compressed(encoder)


def decode_gated(gated: Gated, params, data: bytes, batch: int,
                 token_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(symbols [batch, L, *token_shape], sent [batch, L])`` from ``encode_gated``'s
    ``data``; skipped tokens' symbols are 0."""
    c = _constriction()
    prior = _inner_prior(gated)
    length = int(np.shape(params["skip_logit"])[0])
    decoder = _decoder(data)
    if batch * length:
        flags = decoder.decode(c.stream.model.Categorical(perfect=False),
                               _flag_tables(gated, params, batch)).reshape(batch, length)
    else:
        flags = np.zeros((batch, length), np.int32)
    sent = flags.astype(bool)
    symbols = np.zeros((batch, length, *token_shape), np.int64)
    symbols[sent] = _decode_from(decoder, prior, params["inner"], (int(sent.sum()), *token_shape))
    return symbols, flags.astype(np.int32)
