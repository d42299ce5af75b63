"""Entropy-coded channels: learned prior, real range coding, the gate, DDCL's cost conventions."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcgenv import comms
from dcgenv.comms import rangecoder

CODED = comms.EntropyCoded(comms.DDCL(delta=0.2), comms.CategoricalPrior(-4, 4))


def ideal_bits(prior, params, symbols) -> float:
    """``-sum log2 P`` in float64 on the host, escape payloads included."""
    probs = np.asarray(prior.probabilities(params), np.float64)
    m = np.asarray(symbols, np.int64)
    probs = np.broadcast_to(probs, (*m.shape, prior.size))
    inside = (m >= prior.low) & (m <= prior.high)
    idx = np.where(inside, m - prior.low, prior.size - 1)
    p = np.take_along_axis(probs, idx[..., None], -1)[..., 0] / probs.sum(-1)
    beyond = np.where(m > prior.high, m - prior.high, prior.low - m)
    payload = np.where(inside, 0, 2 * np.floor(np.log2(np.maximum(beyond, 1)) + 1))
    return float(-np.log2(p).sum() + payload.sum())


@settings(max_examples=20, deadline=None)
@given(data=st.data(), low=st.integers(-6, 2), width=st.integers(0, 8),
       shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=6))
def test_range_coding_round_trips_and_costs_the_ideal_length(data, low, width, shape):
    prior = comms.CategoricalPrior(low, low + width)
    logits = data.draw(hnp.arrays(np.float32, (*shape[1:], prior.size),
                                  elements=st.floats(-6, 6, width=32)))
    params = {"logits": jnp.asarray(logits)}
    symbols = data.draw(hnp.arrays(np.int64, shape, elements=st.one_of(
        st.integers(low - 3, low + width + 3), st.integers(-10**6, 10**6))))
    coded = rangecoder.encode(prior, params, symbols)
    np.testing.assert_array_equal(rangecoder.decode(prior, params, coded, shape), symbols)
    ideal = ideal_bits(prior, params, symbols)
    assert 8 * len(coded) <= 1.01 * ideal + 64, (8 * len(coded), ideal)
    jax_bits = float(jnp.sum(prior.bits(params, jnp.asarray(symbols, jnp.float32))))
    assert jax_bits == pytest.approx(ideal, rel=1e-4, abs=1e-3)


def test_a_large_batch_codes_within_one_percent_of_the_ideal_length():
    params = CODED.init(jax.random.key(0), 1, 8)
    z = 0.5 * jax.random.normal(jax.random.key(1), (5000, 1, 8))
    keys = jax.random.split(jax.random.key(2), 5000)
    _, stats = jax.jit(jax.vmap(lambda k, x: CODED.send(k, x, train=False, params=params)))(
        keys, z)
    coded = rangecoder.encode(CODED.prior, params, stats["symbols"])
    ideal = float(stats["bits"].sum())
    assert ideal == pytest.approx(ideal_bits(CODED.prior, params, stats["symbols"]), rel=1e-5)
    assert ideal <= 8 * len(coded) <= 1.01 * ideal + 64
    np.testing.assert_array_equal(
        rangecoder.decode(CODED.prior, params, coded, stats["symbols"].shape), stats["symbols"])


def test_gated_messages_round_trip_with_their_flags():
    gated = comms.Gated(CODED)
    params = gated.init(jax.random.key(0), 3, 4)
    params["skip_logit"] = jnp.array([2.0, -1.0, 0.5])
    z = jax.random.normal(jax.random.key(1), (400, 3, 5))
    keys = jax.random.split(jax.random.key(2), 400)
    _, stats = jax.vmap(lambda k, x: gated.send(k, x, train=True, params=params))(keys, z)
    coded = rangecoder.encode_gated(gated, params, stats["symbols"], stats["mask"])
    symbols, sent = rangecoder.decode_gated(gated, params, coded, 400, (1, 4))
    np.testing.assert_array_equal(sent, stats["mask"])
    mask = sent.astype(bool)
    np.testing.assert_array_equal(symbols[mask], np.asarray(stats["symbols"])[mask])
    assert 0 < mask.mean() < 1
    ideal = float(stats["bits"].sum())
    assert ideal <= 8 * len(coded) <= 1.01 * ideal + 64


def test_expected_bits_is_the_mean_over_the_dither_of_the_bits_sent():
    """DDCL's symbol is round(z/delta + u): the cost equals the bits averaged over the dither."""
    params = {"logits": jax.random.normal(jax.random.key(0), (1, 3, CODED.prior.size))}
    z = jnp.array([[0.03, -0.47, 0.91]])
    keys = jax.random.split(jax.random.key(1), 40_000)
    _, stats = jax.vmap(lambda k: CODED.send(k, z, train=True, params=params))(keys)
    bits = np.asarray(stats["bits"], np.float64)
    assert np.ptp(bits) > 0  # the dither does change the symbols
    assert float(stats["cost"][0]) == pytest.approx(bits.mean(), abs=4 * bits.std() / 200)


@pytest.mark.parametrize("inner", [comms.DDCL(delta=0.25), comms.FakeQuant(bits=3)])
def test_the_rate_reaches_the_prior_and_the_sender(inner):
    channel = comms.EntropyCoded(inner, comms.CategoricalPrior(-3, 8))
    shape = channel.init(jax.random.key(0), 1, 4)["logits"].shape  # a prior in mid-training:
    params = {"logits": jax.random.normal(jax.random.key(3), shape)}  # no two lengths equal
    z = jnp.array([[0.12, -0.4, 0.33, 0.7]])
    cost = lambda p, z: channel.send(jax.random.key(1), z, train=True, params=p)[1]["cost"]
    g_params, g_z = jax.grad(cost, argnums=(0, 1))(params, z)
    assert np.all(np.isfinite(g_params["logits"])) and np.abs(g_params["logits"]).sum() > 0
    assert np.all(np.abs(g_z) > 0)


def test_training_the_prior_brings_the_bits_to_the_entropy_of_the_symbols():
    """Fit the prior alone on a fixed message distribution: bits -> empirical entropy."""
    channel = comms.EntropyCoded(comms.DDCL(delta=0.5), comms.CategoricalPrior(-8, 8))
    params = channel.init(jax.random.key(0), 1, 2)
    goals = jax.random.categorical(jax.random.key(1), jnp.log(jnp.array([0.7, 0.2, 0.1])),
                                   shape=(4096,))
    z = jnp.array([[0.0, 0.0], [1.5, -1.0], [-2.0, 3.0]])[goals][:, None]
    keys = jax.random.split(jax.random.key(2), 4096)
    send = jax.vmap(lambda p, k, x: channel.send(k, x, train=False, params=p),
                    in_axes=(None, 0, 0))
    opt = optax.adam(0.1)

    def step(carry, _):
        p, s = carry
        g = jax.grad(lambda p: send(p, keys, z)[1]["cost"].mean())(p)
        u, s = opt.update(g, s)
        return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=300)
    _, stats = send(params, keys, z)
    entropy = comms.empirical_entropy_bits(stats["symbols"], joint=False)
    assert float(stats["bits"].mean()) == pytest.approx(entropy, rel=0.03, abs=0.02)
    assert float(stats["bits"].mean()) < 0.5 * float(stats["elias_bits"].mean())


def test_a_mostly_silent_gate_is_nearly_free_once_its_prior_learns_the_skip_rate():
    gated = comms.Gated(comms.DDCL(delta=0.2))
    params = gated.init(jax.random.key(0), 1, 4)
    z = jnp.concatenate([jnp.ones((2048, 1, 4)), jnp.full((2048, 1, 1), -4.0)], -1)
    keys = jax.random.split(jax.random.key(1), 2048)
    send = jax.vmap(lambda p, k, x: gated.send(k, x, train=True, params=p),
                    in_axes=(None, 0, 0))
    opt = optax.adam(0.1)
    step = jax.jit(lambda p, s: _adam_step(opt, send, keys, z, p, s))
    state = opt.init(params)
    for _ in range(150):  # the prior learns P(skip) from the cost alone
        params, state = step(params, state)
    z_hat, stats = send(params, keys, z)
    skipped = 1.0 - stats["mask"][:, 0]
    assert skipped.mean() > 0.95
    per_skip = float((stats["skip_bits"] * skipped).sum() / skipped.sum())
    assert per_skip < 0.1
    np.testing.assert_array_equal(np.asarray(z_hat)[skipped.astype(bool)], 0.0)
    # a gate that always sends: its flag costs its entropy, ~0 once learned; an untrained
    # prior (P(skip) = 1/2) charges a full bit
    always = z.at[..., -1].set(6.0)
    _, fresh = send(gated.init(jax.random.key(0), 1, 4), keys, always)
    assert float(fresh["skip_bits"].mean()) == pytest.approx(1.0)


def _adam_step(opt, send, keys, z, params, state):
    grads = jax.grad(lambda p: send(p, keys, z)[1]["cost"].mean())(params)
    updates, state = opt.update(grads, state)
    return optax.apply_updates(params, updates), state


FAKEQUANT = comms.EntropyCoded(comms.FakeQuant(bits=4), comms.CategoricalPrior(0, 15))


@pytest.mark.parametrize("channel",
                         [CODED, FAKEQUANT, comms.Gated(CODED), comms.Gated(comms.DRU())],
                         ids=["ddcl", "fakequant", "gated-coded", "gated-dru"])
def test_new_channels_jit_vmap_and_same_key_same_result(channel):
    params = channel.init(jax.random.key(0), 2, 3)
    shape = channel.message_shape(2, 3)
    z = jax.random.normal(jax.random.key(1), (16, *shape))
    keys = jax.random.split(jax.random.key(2), 16)
    for train in (True, False):
        run = jax.jit(jax.vmap(lambda k, x, t=train: channel.send(k, x, train=t, params=params)))
        a, b = run(keys, z), run(keys, z)
        jax.tree.map(np.testing.assert_array_equal, a, b)
        looped = [channel.send(k, x, train=train, params=params)
                  for k, x in zip(keys, z, strict=True)]
        np.testing.assert_allclose(a[0], np.stack([out[0] for out in looped]), rtol=1e-6)
        assert a[0].shape == (16, *channel.received_shape(2, 3))
        assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(a))


def test_ddcl_cost_conventions():
    z = jnp.zeros((20_000, 4))
    keys = jax.random.split(jax.random.key(0), 20_000)
    for train in (True, False):
        clean = jax.vmap(lambda k, x, t=train: comms.DDCL(0.2).send(k, x, train=t)[1])(keys, z)
        received = jax.vmap(lambda k, x, t=train: comms.DDCL(0.2, cost_on="received").send(
            k, x, train=t)[1])(keys, z)
        assert float(clean["cost"].max()) == 0.0
        # |eps| / delta ~ U(0, 1/2): E log2(1 + 2|eps|/delta) = 2 - 1/ln 2 per element
        assert float(received["cost"].mean()) / 4 == pytest.approx(2 - 1 / math.log(2), abs=0.01)
        np.testing.assert_array_equal(clean["bits"], received["bits"])
    grad = jax.grad(lambda x: comms.DDCL(0.2, cost_on="received").send(
        jax.random.key(1), x, train=True)[1]["cost"])(jnp.full(3, 0.3))
    assert np.all(grad > 0)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="cost_on.*allowed"):
        comms.DDCL(cost_on="noisy")
    with pytest.raises(ValueError, match=r"levels 0..15.*CategoricalPrior\(0, 15\)"):
        comms.EntropyCoded(comms.FakeQuant(bits=4), comms.CategoricalPrior(-3, 3))
    with pytest.raises(ValueError, match="DDCL or FakeQuant"):
        comms.EntropyCoded(comms.Continuous())
    with pytest.raises(ValueError, match="low <= high"):
        comms.CategoricalPrior(3, 2)
    with pytest.raises(ValueError, match="needs params"):
        CODED.send(jax.random.key(0), jnp.zeros((1, 2)), train=True)
    with pytest.raises(ValueError, match="fixed channel and takes no params"):
        comms.DDCL().send(jax.random.key(0), jnp.zeros(2), train=True,
                          params=CODED.init(jax.random.key(0), 1, 2))
    with pytest.raises(ValueError, match="Gated"):
        comms.WithStop(CODED)
    with pytest.raises(ValueError, match="integral"):
        rangecoder.encode(CODED.prior, CODED.init(jax.random.key(0), 1, 2), np.array([0.5]))
