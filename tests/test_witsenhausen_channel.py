"""Witsenhausen-channel-v0: the Silent channel is Witsenhausen-v0; exact and Monte Carlo costs of
quantise-and-forward through Continuous, FakeQuant and DDCL; gradients through the channel."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv import comms
from dcgenv.envs.witsenhausen_channel import (
    EnvState,
    ddcl_expected_bits,
    ddcl_mse,
    fakequant_mse,
)

N = 20_000  # Monte Carlo episodes; tolerances are 4 standard errors


def episodes(env, params, keys, policy):
    """Reset and two steps per key with ``actions = policy(obs)``; vmapped, one compile."""

    def one(key):
        k0, k1, k2 = jax.random.split(key, 3)
        obs0, s = env.reset(k0, params)
        obs1, s, r0, *_, info0 = env.step(k1, s, policy(obs0), params)
        _, _, r1, term, _, info1 = env.step(k2, s, policy(obs1), params)
        return obs0, obs1, r0, r1, term, info0, info1

    return jax.jit(jax.vmap(one))(keys)


def forward(obs, scale=1.0):
    """Quantise and forward: ``u1 = 0``, message ``scale * x0``, ``u2`` = what arrived."""
    return {"control": jnp.stack([0.0, obs["message"][1, 0]]),
            "message": scale * obs["signal"]}


def within_4se(samples, expected):
    samples = np.asarray(samples, np.float64)
    se = samples.std() / math.sqrt(samples.size)
    assert abs(samples.mean() - expected) <= 4 * se, (samples.mean(), expected, se)


def test_silent_channel_is_witsenhausen_v0():
    env, params = dcgenv.make("Witsenhausen-channel-v0", channel=comms.Silent(), bit_cost=0.5)
    base, base_params = dcgenv.make("Witsenhausen-v0")
    keys = jax.random.split(jax.random.key(0), 64)
    controls = jax.random.normal(jax.random.key(1), (64, 2, 2)) * 3  # [episode, step, agent]
    messages = jax.random.normal(jax.random.key(2), (64, 2, 2, 1))

    def run(env, params, wrap):
        def one(key, u, m):
            k0, k1, k2 = jax.random.split(key, 3)
            obs0, s = env.reset(k0, params)
            obs1, s, r0, *_ = env.step(k1, s, wrap(u[0], m[0]), params)
            obs2, _, r1, term, *_ = env.step(k2, s, wrap(u[1], m[1]), params)
            return obs0, obs1, obs2, r0, r1, term
        return jax.jit(jax.vmap(one))(keys, controls, messages)

    ours = run(env, params, lambda u, m: {"control": u, "message": m})
    theirs = run(base, base_params, lambda u, m: u)
    for a, b in zip(ours[3:], theirs[3:], strict=True):  # rewards and termination, bit for bit
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for o, t in zip(ours[:3], theirs[:3], strict=True):
        for name in t:
            np.testing.assert_array_equal(np.asarray(o[name]), np.asarray(t[name]))
        np.testing.assert_array_equal(np.asarray(o["message"]), 0.0)  # nothing arrives


def test_fakequant_mse_closed_form():
    # Max (1960, IRE Trans. Inf. Theory 6(1)): the optimal 1-bit quantiser of N(0, s^2) has
    # levels +-s sqrt(2/pi) and MSE s^2 (1 - 2/pi)
    s = 3.0
    c = s * math.sqrt(2 / math.pi)
    assert fakequant_mse(1, -c, c, s) == pytest.approx(s**2 * (1 - 2 / math.pi), rel=1e-12)
    # fine and wide: the high-resolution limit step^2 / 12
    step = 20.0 / (2**12 - 1)
    assert fakequant_mse(12, -10.0, 10.0, 1.0) == pytest.approx(step**2 / 12, rel=1e-6)
    with pytest.raises(ValueError, match="sigma"):
        fakequant_mse(3, -1.0, 1.0, sigma=0.0)
    with pytest.raises(ValueError, match="bits"):
        fakequant_mse(0, -1.0, 1.0)


def test_quantise_and_forward_fakequant_costs_its_mse_plus_bits():
    channel = comms.FakeQuant(bits=3, low=-10.0, high=10.0)
    env, params = dcgenv.make("Witsenhausen-channel-v0", channel=channel, bit_cost=0.01)
    _, _, r0, r1, _, info0, info1 = episodes(
        env, params, jax.random.split(jax.random.key(4), N), forward)
    within_4se(-np.asarray(r1[:, 0]), fakequant_mse(3, -10.0, 10.0, 5.0))
    np.testing.assert_array_equal(np.asarray(info0["bits"]), 3.0)
    np.testing.assert_allclose(np.asarray(r0[:, 0]), -0.03, rtol=1e-6)  # bit_cost * 3 bits


def test_quantise_and_forward_ddcl_error_uniform_and_expected_bits():
    env, params = dcgenv.make("Witsenhausen-channel-v0")  # DDCL(delta=1), bit_cost 0.01
    obs0, obs1, r0, r1, _, info0, _ = episodes(
        env, params, jax.random.split(jax.random.key(5), N), forward)
    error = np.asarray(obs1["message"][:, 1, 0]) - np.asarray(obs0["signal"][:, 0, 0])
    assert np.all(np.abs(error) <= 0.5 + 1e-5)  # subtractive dither: |error| <= delta / 2
    within_4se(-np.asarray(r1[:, 0]), ddcl_mse(1.0))
    bits = np.asarray(info0["bits"])
    within_4se(bits, ddcl_expected_bits(1.0, 5.0))
    np.testing.assert_allclose(np.asarray(r0[:, 0]), -0.01 * bits, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(info0["message_cost"]), 0.01 * bits, rtol=1e-6)


def test_continuous_channel_free_bits_cost_zero_and_gradient_reaches_the_message():
    env, params = dcgenv.make("Witsenhausen-channel-v0", channel=comms.Continuous(),
                              bit_cost=0.0)
    keys = jax.random.split(jax.random.key(6), 512)
    # message x0, u2 = what arrived: cost exactly 0, 32 bits (one float). Reset and steps are
    # separate programs here: inside one program XLA may recompute the Gaussian draw for two
    # consumers and round it apart in the last bit.
    obs0, s = jax.jit(jax.vmap(env.reset, (0, None)))(keys, params)
    step = jax.jit(jax.vmap(env.step, (0, 0, 0, None)))
    obs1, s, r0, _, _, info0 = step(keys, s, jax.vmap(forward)(obs0), params)
    _, _, r1, term, _, _ = step(keys, s, jax.vmap(forward)(obs1), params)
    np.testing.assert_array_equal(np.asarray(r0), 0.0)
    np.testing.assert_array_equal(np.asarray(r1), 0.0)
    assert np.all(np.asarray(term))
    np.testing.assert_array_equal(obs1["message"][:, 1], obs0["signal"][:, 0])
    np.testing.assert_array_equal(np.asarray(info0["bits"]), 32.0)

    def cost(theta):  # u1 = 0, message theta * x0, controller 2 plays what arrived
        def one(key):
            k0, k1, k2 = jax.random.split(key, 3)
            obs, s = env.reset(k0, params)
            obs, s, r0, *_ = env.step(k1, s, forward(obs, theta), params)
            _, _, r1, *_ = env.step(k2, s, forward(obs, theta), params)
            return -(r0[0] + r1[0]), s.x0
        c, x0 = jax.vmap(one)(keys)
        return jnp.mean(c), x0

    # d/dtheta E (x0 - theta x0)^2 = E[-2 x0^2 (1 - theta)], through the channel
    grad, x0 = jax.jit(jax.grad(cost, has_aux=True))(0.5)
    analytic = float(jnp.mean(-2 * x0**2 * 0.5))
    assert analytic < -1.0
    np.testing.assert_allclose(float(grad), analytic, rtol=1e-5)


@pytest.mark.parametrize("charge", ["bits", "cost"])
def test_charge_prices_the_coded_bits_or_the_surrogate(charge):
    env, params = dcgenv.make("Witsenhausen-channel-v0", charge=charge, bit_cost=0.5)
    f = lambda v: jnp.asarray(v, jnp.float32)
    state = EnvState(time=jnp.asarray(0, jnp.int32), x0=f(1.0), w=f(0.0), x1=f(1.0),
                     message=jnp.zeros(1))
    actions = {"control": jnp.zeros(2), "message": jnp.array([[2.0], [-7.0]])}
    # DDCL(delta=1) sends m = round(2 + U(-1/2, 1/2)) = 2 for every key: zig-zag 5, Elias gamma
    # 00101, 5 bits; the surrogate log2(2 |z| / delta + 1) = log2(5)
    state, reward, _, info = env.step_env(jax.random.key(7), state, actions, params)
    price = {"bits": 5.0, "cost": math.log2(5.0)}[charge]
    np.testing.assert_allclose([info["bits"], info["channel_cost"]], [5.0, math.log2(5.0)],
                               rtol=1e-6)
    np.testing.assert_allclose(reward, [-0.5 * price] * 2, rtol=1e-6)
    assert abs(float(state.message[0]) - 2.0) <= 0.5  # controller 2's message is ignored


def test_argument_errors_name_the_argument():
    for kwargs, name in (({"message_dim": 0}, "message_dim"), ({"charge": "joules"}, "charge"),
                         ({"channel": "ddcl2"}, "channel"), ({"channel": 3}, "channel"),
                         ({"bit_cost": -1.0}, "bit_cost"), ({"channel_train": "yes"},
                                                            "channel_train")):
        with pytest.raises(ValueError, match=name):
            dcgenv.make("Witsenhausen-channel-v0", **kwargs)
    env, params = dcgenv.make("Witsenhausen-channel-v0", channel=comms.GumbelSoftmax(4))
    assert env.action_space(params).spaces["message"].shape == (4,)  # logits
    assert env.observation_space(params).spaces["message"].shape == (4,)  # one-hot
