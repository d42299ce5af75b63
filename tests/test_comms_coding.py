"""Bit coding of integer messages: exact round trips, exact jittable lengths, entropy bound."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dcgenv import comms

FAST = settings(max_examples=40, deadline=None)
INT32 = st.integers(-(2**31), 2**31 - 1)
BIG = st.integers(-(2**90), 2**90)
CODE = st.sampled_from(comms.CODES)


@FAST
@given(st.lists(BIG, max_size=20), CODE)
@example([0, 2**63 + 1], "gamma")  # NumPy would read this list as float64
def test_encode_decode_round_trip_any_integers(ms, code):
    bits = comms.encode(ms, code)
    assert set(bits) <= {"0", "1"}
    assert comms.decode(bits, code) == ms


@FAST
@given(st.lists(INT32, min_size=16, max_size=16), CODE)
def test_code_length_equals_real_length_int32(ms, code):
    lengths = np.asarray(comms.code_length(jnp.asarray(ms, jnp.int32), code))
    assert lengths.tolist() == [len(comms.encode([m], code)) for m in ms]


@FAST
@given(st.lists(BIG, min_size=16, max_size=16), CODE)
def test_code_length_exact_for_integral_floats(ms, code):
    floats = np.asarray(ms, np.float64).astype(np.float32)  # integral floats, up to ~2**90
    lengths = np.asarray(comms.code_length(jnp.asarray(floats), code))
    assert lengths.tolist() == [len(comms.encode([int(f)], code)) for f in floats]


@FAST
@given(INT32, INT32, CODE)
def test_code_length_monotone_in_magnitude(a, b, code):
    if abs(a) > abs(b):
        a, b = b, a
    la, lb = (int(comms.code_length(jnp.int32(m), code)) for m in (a, b))
    assert la <= lb


def test_code_length_jits_and_matches_at_edges():
    edges = [0, 1, -1, 2, -2, 3, 15, 16, -16, 2**24 + 1, 2**31 - 1, -(2**31)]
    for code in comms.CODES:
        got = jax.jit(comms.code_length, static_argnums=1)(jnp.asarray(edges, jnp.int32), code)
        assert np.asarray(got).tolist() == [len(comms.encode([m], code)) for m in edges]
    # a non-finite float message is never cheaper than the largest finite one
    broken = comms.code_length(jnp.array([jnp.inf, -jnp.inf, jnp.nan, 3e38, 7.0]))
    assert np.all(np.asarray(broken[:3]) == int(broken[3])) and int(broken[3]) > int(broken[4])
    # gamma is the shorter code for small integers, delta for large ones
    assert int(comms.code_length(jnp.int32(1), "gamma")) < int(comms.code_length(
        jnp.int32(1), "delta"))
    assert int(comms.code_length(jnp.int32(10**6), "delta")) < int(comms.code_length(
        jnp.int32(10**6), "gamma"))


def test_codes_are_prefix_free():
    for code in comms.CODES:
        words = [comms.encode([m], code) for m in range(-200, 201)]
        for i, w in enumerate(words):
            assert not any(v.startswith(w) for j, v in enumerate(words) if j != i)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="allowed: gamma, delta"):
        comms.encode([1], "huffman")
    with pytest.raises(ValueError, match="integral"):
        comms.encode(np.array([0.5]))
    with pytest.raises(ValueError, match="ends inside a codeword"):
        comms.decode("0001")
    with pytest.raises(ValueError, match="'0' and '1'"):
        comms.decode("012")


def test_empirical_entropy_bits():
    rng = np.random.default_rng(0)
    # one fair bit in position 0, a constant in position 1: 1 bit per message either way
    msgs = np.stack([rng.integers(0, 2, 4000), np.full(4000, 7)], axis=1)
    h = comms.empirical_entropy_bits(msgs)
    # plug-in entropy of a fair coin from 4000 flips: |H - 1| ~ (p - 1/2)^2 * 2 / ln 2 < 1e-2
    assert abs(h - 1.0) < 1e-2
    assert comms.empirical_entropy_bits(msgs, joint=False) == pytest.approx(h)
    # two copies of the same fair bit: joint entropy 1, per-element sum 2
    twins = np.repeat(msgs[:, :1], 2, axis=1)
    assert comms.empirical_entropy_bits(twins, joint=False) == pytest.approx(2 * h)
    assert comms.empirical_entropy_bits(twins) == pytest.approx(h)
    assert comms.empirical_entropy_bits(np.zeros((10, 3))) == 0.0
    with pytest.raises(ValueError, match="batch axis"):
        comms.empirical_entropy_bits(np.zeros((0, 3)))
