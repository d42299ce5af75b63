"""Witsenhausen-v0: rules on hand-built states, and pathwise gradients through reset/step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv.envs.witsenhausen import EnvState


@pytest.fixture(scope="module")
def env_params():
    return dcgenv.make("Witsenhausen-v0", k=0.5, sigma=2.0, noise_std=0.5)


def state(x0, w, time=0, x1=None):
    f = lambda v: jnp.asarray(v, jnp.float32)
    return EnvState(time=jnp.asarray(time, jnp.int32), x0=f(x0), w=f(w),
                    x1=f(x0 if x1 is None else x1))


def test_two_stages_costs_observations_and_termination(env_params):
    env, params = env_params
    key = jax.random.key(0)
    s = state(x0=3.0, w=0.25)
    obs = env.get_obs(s, params)
    np.testing.assert_allclose(obs["signal"][:, 0], [3.0, 0.0])
    np.testing.assert_array_equal(obs["active"], [True, False])

    # stage 1: u1 = -1 (controller 2's action ignored); cost k^2 u1^2 = 0.25
    obs, s1, reward, term, trunc, info = env.step(key, s, jnp.array([-1.0, 99.0]), params)
    np.testing.assert_allclose(reward, [-0.25, -0.25])
    assert not term and not trunc
    assert float(s1.x1) == 2.0
    np.testing.assert_allclose(obs["signal"][:, 0], [0.0, 2.25])  # y = x1 + w
    np.testing.assert_array_equal(obs["active"], [False, True])
    np.testing.assert_allclose([info["stage1_cost"], info["stage2_cost"]], [0.25, 0.0])

    # stage 2: u2 = 1.5 (controller 1's action ignored); cost (x1 - u2)^2 = 0.25; episode ends
    obs, s2, reward, term, trunc, info = env.step(key, s1, jnp.array([99.0, 1.5]), params)
    np.testing.assert_allclose(reward, [-0.25, -0.25])
    assert term and not trunc
    np.testing.assert_allclose([info["stage1_cost"], info["stage2_cost"]], [0.0, 0.25])
    np.testing.assert_allclose(info["final_observation"]["signal"], 0.0)
    assert int(s2.time) == 0  # auto-reset


def test_illegal_actions_are_finite(env_params):
    env, params = env_params
    s = state(x0=1.0, w=0.0)
    for bad in (jnp.nan, jnp.inf, -1e30):
        _, s1, reward, *_ = env.step(jax.random.key(0), s, jnp.array([bad, 0.0]), params)
        assert np.all(np.isfinite(reward)) and np.isfinite(float(s1.x1))


def test_reset_distribution_matches_params(env_params):
    env, params = env_params
    _, states = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(1), 20_000), params)
    # std of the sample std of 20k normals is sigma/sqrt(2n) = 0.5%: 5% is a loose 10-sigma bound
    np.testing.assert_allclose(np.std(states.x0), params.sigma, rtol=0.05)
    np.testing.assert_allclose(np.std(states.w), params.noise_std, rtol=0.05)


def mlp(theta, x):
    """A tiny tanh MLP R -> R with parameters theta = (w1, b1, w2, b2)."""
    w1, b1, w2, b2 = theta
    return jnp.tanh(x * w1 + b1) @ w2 + b2


def mean_cost(thetas, keys, env, params):
    """Mean episode cost J through env.reset/env.step with gamma_i = MLP_i(own signal)."""
    theta1, theta2 = thetas

    def episode(key):
        k0, k1, k2 = jax.random.split(key, 3)
        obs, s = env.reset(k0, params)
        u1 = mlp(theta1, obs["signal"][0, 0])
        obs, s, r1, *_ = env.step(k1, s, jnp.stack([u1, 0.0]), params)
        u2 = mlp(theta2, obs["signal"][1, 0])
        _, _, r2, *_ = env.step(k2, s, jnp.stack([0.0, u2]), params)
        return -(r1[0] + r2[0])

    return jnp.mean(jax.vmap(episode)(keys))


def test_grad_through_reset_and_step_matches_finite_differences():
    with jax.enable_x64(True):  # float64 so central differences are accurate to ~1e-8
        env, params = dcgenv.make("Witsenhausen-v0")
        init = lambda key: tuple(0.5 * jax.random.normal(k, s) for k, s in
                                 zip(jax.random.split(key, 4), [(8,), (8,), (8,), ()],
                                     strict=True))
        thetas = (init(jax.random.key(2)), init(jax.random.key(3)))
        keys = jax.random.split(jax.random.key(4), 256)
        f = jax.jit(lambda t: mean_cost(t, keys, env, params))
        grads = jax.jit(jax.grad(lambda t: mean_cost(t, keys, env, params)))(thetas)
        assert jax.tree.leaves(grads)[0].dtype == jnp.float64
        assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))  # both policies

        for i, key in enumerate(jax.random.split(jax.random.key(5), 3)):
            leaves, tree = jax.tree.flatten(thetas)
            dirs = [jax.random.normal(k, x.shape) for k, x in
                    zip(jax.random.split(key, len(leaves)), leaves, strict=True)]
            if i == 0:  # first direction moves only gamma_1, so its gradient is checked alone
                dirs = dirs[:4] + [jnp.zeros_like(d) for d in dirs[4:]]
            norm = jnp.sqrt(sum(jnp.sum(d**2) for d in dirs))
            v = jax.tree.unflatten(tree, [d / norm for d in dirs])
            h = 1e-5  # truncation O(h^2) ~ 1e-10, rounding O(1e-16 * J / h) ~ 1e-10
            shift = lambda s, v=v, h=h: jax.tree.map(lambda a, b: a + s * h * b, thetas, v)
            fd = (f(shift(1.0)) - f(shift(-1.0))) / (2 * h)
            analytic = sum(jnp.vdot(g, d) for g, d in
                           zip(jax.tree.leaves(grads), jax.tree.leaves(v), strict=True))
            np.testing.assert_allclose(float(analytic), float(fd), rtol=1e-6, atol=1e-8)
