"""Gradient taps (d loss / d message without plumbing) and stop_incoming."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcgenv import comms

KEY = jax.random.key(0)
CH = comms.DDCL(0.1)


def _speaker(params, x):
    return jnp.tanh(x @ params["w_s"])


def _listener(params, z_hat):
    return z_hat @ params["w_l"]


def _loss(params, x, y):
    z = comms.tap("speaker", _speaker(params, x))
    z_hat, stats = CH.send(KEY, z, train=True)
    z_hat = comms.tap("received", z_hat)
    return jnp.mean((_listener(params, z_hat) - y) ** 2) + 1e-3 * stats["cost"], stats["bits"]


PARAMS = {"w_s": jax.random.normal(jax.random.key(1), (3, 4)),
          "w_l": jax.random.normal(jax.random.key(2), (4, 2))}
X = jax.random.normal(jax.random.key(3), (8, 3))
Y = jax.random.normal(jax.random.key(4), (8, 2))


def test_tap_cotangents_equal_message_gradients():
    fn = jax.jit(comms.value_and_grad_with_taps(_loss, has_aux=True))
    (loss, bits), grads, taps = fn(PARAMS, X, Y)
    (ref_loss, _), ref_grads = jax.value_and_grad(_loss, has_aux=True)(PARAMS, X, Y)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 grads, ref_grads)
    assert bits.shape == ()
    # the same cotangents by hand: split the loss at the message
    z = _speaker(PARAMS, X)

    def from_message(z):
        z_hat, stats = CH.send(KEY, z, train=True)
        return jnp.mean((_listener(PARAMS, z_hat) - Y) ** 2) + 1e-3 * stats["cost"]

    def from_received(z_hat):
        return jnp.mean((_listener(PARAMS, z_hat) - Y) ** 2)

    z_hat = CH.send(KEY, z, train=True)[0]
    np.testing.assert_allclose(taps["speaker"], jax.grad(from_message)(z), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(taps["received"], jax.grad(from_received)(z_hat), rtol=1e-5,
                               atol=1e-7)
    assert not np.allclose(taps["speaker"], taps["received"])  # the cost term differs


def test_taps_with_argnums_and_outside_transform():
    loss_only = lambda p, x, y: _loss(p, x, y)[0]
    value, (g_params, g_x), taps = comms.value_and_grad_with_taps(loss_only, (0, 1))(
        PARAMS, X, Y)
    np.testing.assert_allclose(g_x, jax.grad(loss_only, 1)(PARAMS, X, Y), rtol=1e-5, atol=1e-7)
    assert set(taps) == {"speaker", "received"} and taps["speaker"].shape == (8, 4)
    z = jnp.ones(3)
    assert comms.tap("anything", z) is z  # identity outside the transform

    def twice(p, x, y):
        return comms.tap("a", x).sum() + comms.tap("a", x).sum()

    def python_branch(p, n):  # non-differentiated arguments stay concrete, as in jax.grad
        z = comms.tap("z", 2.0 * p["w_l"])
        return jnp.sum(z**2) if n > 1 else jnp.sum(z)

    _, _, taps = comms.value_and_grad_with_taps(python_branch)(PARAMS, 2)
    np.testing.assert_allclose(taps["z"], 4.0 * PARAMS["w_l"], rtol=1e-6)

    with pytest.raises(ValueError, match="used twice"):
        comms.value_and_grad_with_taps(twice)(PARAMS, X, Y)


def test_stop_incoming_keeps_only_own_message_in_graph():
    msgs = jax.random.normal(KEY, (4, 3))
    view = comms.stop_incoming(msgs)
    np.testing.assert_array_equal(view, jnp.broadcast_to(msgs, (4, 4, 3)))
    weights = jax.random.normal(jax.random.key(9), (4, 4, 3))
    g = jax.grad(lambda m: jnp.sum(weights * comms.stop_incoming(m)))(msgs)
    # only receiver i's use of its own message i carries gradient
    np.testing.assert_allclose(g, weights[np.arange(4), np.arange(4)], rtol=1e-6)
    full = jax.grad(lambda m: jnp.sum(weights * m[None]))(msgs)
    assert not np.allclose(full, g)
