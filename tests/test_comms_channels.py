"""Channel API and behaviour: shapes, bits, determinism, gradients, bad input."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dcgenv import comms

KEY = jax.random.key(0)
ALL = [comms.Continuous(), comms.Silent(), comms.GaussianNoise(0.5), comms.DDCL(0.2),
       comms.FakeQuant(4), comms.DRU(2.0), comms.GumbelSoftmax(5), comms.WithStop(comms.DDCL(0.5))]
# training-mode maps that are differentiable functions of z (straight-through ones are not:
# their forward value is piecewise constant, so finite differences see 0; tested below)
SMOOTH = [comms.Continuous(), comms.Silent(), comms.GaussianNoise(0.5), comms.DDCL(0.2),
          comms.DRU(2.0), comms.GumbelSoftmax(5, 0.7, straight_through=False),
          comms.WithStop(comms.DDCL(0.5)), comms.WithStop(comms.GaussianNoise(1.0))]


def _message(ch, length=3, dim=4, key=KEY):
    z = jax.random.normal(key, ch.message_shape(length, dim))
    return jnp.where(z >= 0, z + 0.3, z - 0.3)  # away from 0, where |z| has a kink


@pytest.mark.parametrize("ch", ALL, ids=repr)
def test_send_contract(ch):
    z = _message(ch)
    out = {}
    for train in (True, False):
        send = jax.jit(lambda k, z, t=train: ch.send(k, z, train=t))
        z_hat, stats = send(KEY, z)
        again = send(KEY, z)
        assert z_hat.shape == ch.received_shape(3, 4)
        for name in ("bits", "cost"):
            assert stats[name].shape == () and stats[name].dtype == jnp.float32
        assert np.all(np.isfinite(z_hat))
        # same key, same result, bit for bit; eager agrees up to float rounding
        np.testing.assert_array_equal(z_hat, again[0])
        np.testing.assert_array_equal(stats["bits"], again[1]["bits"])
        np.testing.assert_allclose(z_hat, ch.send(KEY, z, train=train)[0], rtol=1e-6, atol=1e-6)
        out[train] = stats["bits"]
    assert out[True] == out[False]  # train mode reports the bits evaluation would send
    assert hash(ch) == hash(dataclasses.replace(ch)) and ch == dataclasses.replace(ch)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ch.foo = 1
    with pytest.raises(ValueError, match=r"train \(static, not traced\) must be True or False"):
        ch.send(KEY, z, train=jnp.bool_(True))


@pytest.mark.parametrize("ch", ALL[:4], ids=repr)
def test_channel_is_static_arg_and_pytree_and_vmaps(ch):
    z = jax.random.normal(KEY, (6, 3, 4))  # 6 agents
    keys = jax.random.split(KEY, 6)
    static = jax.jit(lambda c, k, z: jax.vmap(lambda k, z: c.send(k, z, train=False))(k, z),
                     static_argnums=0)
    as_pytree = jax.jit(lambda c, k, z: jax.vmap(lambda k, z: c.send(k, z, train=False))(k, z))
    z_hat, stats = static(ch, keys, z)
    z_hat2, _ = as_pytree(ch, keys, z)
    np.testing.assert_array_equal(z_hat, z_hat2)
    assert stats["bits"].shape == (6,)
    for i in range(6):
        zi, si = ch.send(keys[i], z[i], train=False)
        np.testing.assert_allclose(z_hat[i], zi, rtol=1e-6, atol=1e-6)
        assert si["bits"] == stats["bits"][i]


def test_bits_per_channel():
    z = _message(comms.Continuous(), 3, 4)
    bits = lambda ch, z=z: float(ch.send(KEY, z, train=False)[1]["bits"])
    assert bits(comms.Continuous()) == 32 * 12
    assert bits(comms.GaussianNoise(1.0)) == 32 * 12
    assert bits(comms.Silent()) == 0
    assert bits(comms.DRU()) == 12
    assert bits(comms.FakeQuant(bits=4)) == 4 * 12
    assert bits(comms.GumbelSoftmax(8), jnp.zeros((3, 8))) == pytest.approx(3 * math.log2(8))
    for code in comms.CODES:  # DDCL counts the real code: equal to the encoded string
        _, stats = comms.DDCL(0.05, code).send(KEY, 10 * z, train=False)
        wire = comms.encode(stats["symbols"], code)
        assert stats["bits"] == len(wire)
        np.testing.assert_array_equal(comms.decode(wire, code), np.ravel(stats["symbols"]))


def test_ddcl_eval_sends_integers_and_reconstructs_exactly():
    ch = comms.DDCL(0.25)
    z = 3.0 * jax.random.normal(KEY, (50, 4))
    z_hat, stats = ch.send(KEY, z, train=False)
    m = stats["symbols"]
    np.testing.assert_array_equal(m, jnp.round(m))
    np.testing.assert_array_equal(m, ch.quantise(KEY, z))
    np.testing.assert_array_equal(z_hat, ch.dequantise(KEY, m))  # receiver needs only m, key
    assert np.max(np.abs(m)) > 20  # unbounded: no clipping to a fixed alphabet
    z_train, _ = ch.send(KEY, z, train=True)
    np.testing.assert_allclose(z_train - z, ch.dither(KEY, z.shape), atol=1e-6)
    # the cost is the surrogate of the sender's z; bits and cost grow with |z|
    assert stats["cost"] == pytest.approx(float(comms.ddcl_cost(z, 0.25)))
    big = ch.send(KEY, 10 * z, train=False)[1]
    assert big["bits"] > stats["bits"] and big["cost"] > stats["cost"]


@pytest.mark.parametrize("ch", SMOOTH, ids=repr)
def test_check_grads_training_mode(ch):
    z = _message(ch, 2, 3)
    for out in (lambda z: ch.send(KEY, z, train=True)[0],
                lambda z: ch.send(KEY, z, train=True)[1]["cost"]):
        check_grads(jax.jit(out), (z,), order=1, eps=1e-3, atol=2e-2, rtol=2e-2)


def test_straight_through_gradients():
    w = jax.random.normal(jax.random.key(1), (3, 4))
    z = 1.5 * jax.random.normal(KEY, (3, 4))
    # FakeQuant: value on the grid, gradient 1 inside [low, high], 0 outside
    fq = comms.FakeQuant(bits=3, low=-1.0, high=1.0)
    for train in (True, False):
        z_hat, stats = fq.send(KEY, z, train=train)
        step = 2.0 / 7
        np.testing.assert_allclose(z_hat, -1.0 + stats["symbols"] * step, atol=1e-6)
        assert np.all(np.abs(z_hat - np.clip(z, -1, 1)) <= step / 2 + 1e-6)
        assert stats["symbols"].min() >= 0 and stats["symbols"].max() <= 7
        g = jax.grad(lambda z, t=train: jnp.sum(w * fq.send(KEY, z, train=t)[0]))(z)
        np.testing.assert_allclose(g, w * (np.abs(z) < 1.0))
    # DDCL eval: exact reconstruction value, identity gradient
    g = jax.grad(lambda z: jnp.sum(w * comms.DDCL(0.3).send(KEY, z, train=False)[0]))(z)
    np.testing.assert_allclose(g, w)
    # Gumbel straight-through: one-hot forward, the soft sample's gradient backward
    st, soft = comms.GumbelSoftmax(4, 0.5), comms.GumbelSoftmax(4, 0.5, straight_through=False)
    hard, _ = st.send(KEY, z, train=True)
    assert set(np.unique(hard)) == {0.0, 1.0} and np.all(hard.sum(-1) == 1)
    soft_sample, _ = soft.send(KEY, z, train=True)
    np.testing.assert_array_equal(jnp.argmax(hard, -1), jnp.argmax(soft_sample, -1))
    g_st = jax.grad(lambda z: jnp.sum(w * st.send(KEY, z, train=True)[0]))(z)
    g_soft = jax.grad(lambda z: jnp.sum(w * soft.send(KEY, z, train=True)[0]))(z)
    np.testing.assert_allclose(g_st, g_soft, rtol=1e-5, atol=1e-6)
    assert np.abs(g_st).max() > 1e-3


def test_gumbel_samples_follow_softmax_and_eval_is_greedy():
    logits = jnp.log(jnp.array([0.5, 0.3, 0.15, 0.05]))
    n = 20_000
    ch = comms.GumbelSoftmax(4)
    _, stats = ch.send(KEY, jnp.broadcast_to(logits, (n, 4)), train=True)
    freq = np.bincount(np.asarray(stats["symbols"]), minlength=4) / n
    p = np.exp(logits)
    # each frequency: standard error sqrt(p(1-p)/n) <= 0.0036; allow 5 standard errors
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n))
    z_hat, stats = ch.send(KEY, logits[None], train=False)
    assert int(stats["symbols"][0]) == 0 and z_hat[0, 0] == 1.0


def test_dru_and_noise():
    z = jnp.linspace(-3, 3, 12).reshape(3, 4) + 0.01
    z_hat, stats = comms.DRU(2.0).send(KEY, z, train=False)
    np.testing.assert_array_equal(z_hat, z > 0)
    z_train, _ = comms.DRU(2.0).send(KEY, z, train=True)
    assert np.all((z_train > 0) & (z_train < 1))
    np.testing.assert_allclose(comms.DRU(0.0).send(KEY, z, train=True)[0], jax.nn.sigmoid(z),
                               rtol=1e-6)
    n = 40_000
    noise = comms.GaussianNoise(0.5).send(KEY, jnp.zeros(n), train=True)[0]
    # sample std of n normals: standard error 0.5 / sqrt(2n) = 0.0018; 5 standard errors
    assert abs(float(noise.std()) - 0.5) < 5 * 0.5 / math.sqrt(2 * n)
    # silent sends zeros and passes no gradient
    g = jax.grad(lambda z: jnp.sum(comms.Silent().send(KEY, z, train=True)[0]))(z)
    assert np.all(g == 0)


def test_with_stop_hard_and_soft():
    inner = comms.DDCL(0.5)
    ch = comms.WithStop(inner)
    send = jax.jit(ch.send, static_argnames="train")
    payload = 2.0 * jax.random.normal(KEY, (4, 3))
    logits = jnp.array([2.0, 1.0, -1.0, 3.0])  # continue, continue, stop -> 3 tokens
    z = jnp.concatenate([payload, logits[:, None]], axis=1)
    z_hat, stats = send(KEY, z, train=False)
    assert stats["length"] == 3
    assert np.all(z_hat[3] == 0) and np.all(z_hat[:3] != 0)
    keys = jax.random.split(KEY, 4)
    token_bits = jax.vmap(lambda k, x: inner.send(k, x, train=False)[1]["bits"])(keys, payload)
    assert stats["bits"] == token_bits[:3].sum() + 3  # 3 sent tokens, each with a flag
    p = jax.nn.sigmoid(logits)
    np.testing.assert_allclose(stats["expected_length"], 1 + p[0] + p[0] * p[1] +
                               p[0] * p[1] * p[2], rtol=1e-6)
    z_soft, soft = send(KEY, z, train=True)
    np.testing.assert_allclose(z_soft[1], (payload[1] + inner.dither(keys[1], (3,))) * p[0],
                               rtol=1e-5)
    # a longer expected message costs more: d cost / d continue-logit > 0
    g = jax.jit(jax.grad(lambda z: ch.send(KEY, z, train=True)[1]["cost"]))(z)
    assert np.all(g[:-1, -1] > 0) and g[-1, -1] == 0  # the last token's flag is never sent
    assert send(KEY, z.at[:, -1].set(5.0), train=False)[1]["length"] == 4
    assert ch.message_shape(4, 3) == (4, 4)
    assert comms.WithStop(comms.GumbelSoftmax(6)).message_shape(4, 3) == (4, 7)


def test_shapes_declared():
    assert comms.DDCL(0.1).message_shape(4, 8) == (4, 8)
    assert comms.GumbelSoftmax(10).message_shape(4, 8) == (4, 10)
    assert comms.GumbelSoftmax(10).received_shape(4, 8) == (4, 10)
    with pytest.raises(ValueError, match=r"logits \[\.\.\., 10\]"):
        comms.GumbelSoftmax(10).send(KEY, jnp.zeros((4, 8)), train=True)


@pytest.mark.parametrize("make, match", [
    (lambda: comms.DDCL(0.0), r"DDCL: delta must be a finite number in \(0, inf\)"),
    (lambda: comms.DDCL(-1.0), r"DDCL: delta must be a finite number in \(0, inf\)"),
    (lambda: comms.DDCL(float("nan")), "DDCL: delta must be a finite"),
    (lambda: comms.DDCL(jnp.float32(0.1)), "DDCL: delta must be a finite number"),
    (lambda: comms.DDCL(0.1, code="huffman"), "allowed: gamma, delta"),
    (lambda: comms.FakeQuant(bits=0), r"integer in \[1, 16\]"),
    (lambda: comms.FakeQuant(bits=17), r"integer in \[1, 16\]"),
    (lambda: comms.FakeQuant(bits=4.0), r"integer in \[1, 16\]"),
    (lambda: comms.FakeQuant(low=1.0, high=0.0), "low < high"),
    (lambda: comms.GumbelSoftmax(1), r"vocab_size must be an integer in \[2, inf\)"),
    (lambda: comms.GumbelSoftmax(4, temperature=0.0), r"temperature must be .* in \(0, inf\)"),
    (lambda: comms.GumbelSoftmax(4, straight_through=1), "straight_through must be True or"),
    (lambda: comms.GaussianNoise(0.0), r"std must be a finite number in \(0, inf\)"),
    (lambda: comms.DRU(-1.0), r"sigma must be a finite number in \[0, inf\)"),
    (lambda: comms.WithStop("DDCL"), "wraps a dcgenv.comms channel"),
    (lambda: comms.WithStop(comms.DDCL()).send(KEY, jnp.zeros(4), train=True), r"\[L, width"),
])
def test_bad_input_raises(make, match):
    with pytest.raises(ValueError, match=match):
        make()
