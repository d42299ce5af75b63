"""Witsenhausen-multistage-v0: T = 2 is Witsenhausen-v0, who observes what, linear policies
against their exact cost (closed forms and Monte Carlo through reset/step), argument errors and
gradients."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv.envs import witsenhausen_multistage as M


def test_two_stages_reproduce_witsenhausen_v0():
    overrides = {"k": 0.5, "sigma": 2.0, "noise_std": 0.5}
    env1, p1 = dcgenv.make("Witsenhausen-v0", **overrides)
    env2, p2 = dcgenv.make("Witsenhausen-multistage-v0", stages=2, **overrides)
    keys = jax.random.split(jax.random.key(0), 8)
    u = jax.random.normal(jax.random.key(1), (8, 2)) * 3

    def run(env, params):  # reset and step as separately compiled programs, as users call them
        obs, s = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
        o1, s, r1, *_ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, s, u, params)
        _, _, r2, term, *_ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, s, u, params)
        return obs["signal"], o1["signal"], r1, r2, term

    for a, b in zip(run(env1, p1), run(env2, p2), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)  # ulps apart


def test_each_controller_sees_x0_or_all_noisy_looks_so_far():
    env, params = dcgenv.make("Witsenhausen-multistage-v0", k=0.5)  # T = 3
    obs, s = env.reset(jax.random.key(2), params)
    x0, w = float(s.x0), np.asarray(s.w)
    np.testing.assert_array_equal(obs["active"], [True, False, False])
    np.testing.assert_allclose(obs["signal"], [[x0, 0], [0, 0], [0, 0]])
    obs, s, r1, term, *_ = env.step(jax.random.key(3), s, jnp.array([1.0, 9.0, 9.0]), params)
    y2 = x0 + 1.0 + w[0]
    np.testing.assert_allclose(obs["signal"], [[0, 0], [y2, 0], [0, 0]], rtol=1e-6)
    obs, s, r2, term2, *_ = env.step(jax.random.key(4), s, jnp.array([9.0, -2.0, 9.0]), params)
    y3 = x0 + 1.0 - 2.0 + w[1]
    np.testing.assert_allclose(obs["signal"], [[0, 0], [0, 0], [y2, y3]], rtol=1e-6)
    _, _, r3, term3, *_ = env.step(jax.random.key(5), s, jnp.array([9.0, 9.0, 0.5]), params)
    np.testing.assert_allclose([r1[0], r2[0], r3[0]], [-0.25, -1.0, -(x0 - 1.0 - 0.5) ** 2],
                               rtol=1e-6)
    assert not term and not term2 and term3


def test_linear_cost_closed_forms():
    for lam in (-0.4, 0.0, 0.5, 0.95826):  # T = 2: Witsenhausen's affine cost
        for k, sigma, n in ((0.2, 5.0, 1.0), (0.7, 1.5, 0.3)):
            assert abs(M.linear_cost(lam, (), None, k, sigma, n)
                       - M.affine_cost(lam, k, sigma, n)) < 1e-12
    # idle middle controllers: the last averages T - 1 independent looks at x1
    for stages in (3, 5):
        idle = [np.zeros(i + 1) for i in range(stages - 2)]
        want = M.affine_cost(0.3, 0.2, 5.0, 1.0 / math.sqrt(stages - 1))
        assert abs(M.linear_cost(0.3, idle) - want) < 1e-12
        np.testing.assert_allclose(M.optimal_final_gain(0.3, idle),
                                   np.full(stages - 1, M.optimal_final_gain(0.3, idle)[0]))
    # a middle controller that moves the state: the stated gains beat the optimal's cost never
    gains = [np.array([-0.4])]
    best = M.linear_cost(0.5, gains)
    assert best < M.linear_cost(0.5, gains, np.array([0.3, 0.3]))


def test_linear_policy_monte_carlo_matches_exact_cost():
    env, params = dcgenv.make("Witsenhausen-multistage-v0", k=0.3, sigma=2.0)  # T = 3
    lam, gains = 0.7, [np.array([-0.25])]
    policy = M.linear_policy(lam, gains, sigma=2.0)

    def one(key):
        keys = jax.random.split(key, 4)
        obs, s = env.reset(keys[0], params)
        total = 0.0
        for t in range(3):
            obs, s, r, *_ = env.step(keys[t + 1], s, policy(keys[t + 1], obs), params)
            total = total - r[0]
        return total

    costs = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(6), 4000)),
                       np.float64)
    mean, se = costs.mean(), costs.std(ddof=1) / math.sqrt(len(costs))
    want = M.linear_cost(lam, gains, None, 0.3, 2.0)
    assert abs(mean - want) < 4 * se, (mean, se, want)


def test_grad_through_reset_and_step_matches_the_cost_formula():
    """d/d(u1, u2, u3, sigma) of one episode's cost, pathwise through reset and step, against
    the derivative of k^2 (u1^2 + u2^2) + (x0 + u1 + u2 - u3)^2 with x0 = sigma z."""
    env, params = dcgenv.make("Witsenhausen-multistage-v0", k=0.5)
    key = jax.random.key(7)

    def cost(u, sigma):
        p = params.replace(sigma=sigma)
        _, s0 = env.reset(key, p)
        s, total = s0, 0.0
        for _ in range(3):
            _, s, r, *_ = env.step(key, s, u, p)
            total = total - r[0]
        return total, s0.x0

    u = jnp.array([0.3, -1.0, 2.0])
    (gu, gs), x0 = jax.jit(jax.grad(cost, argnums=(0, 1), has_aux=True))(u, 5.0)
    err = x0 + u[0] + u[1] - u[2]
    np.testing.assert_allclose(gu, [2 * 0.25 * u[0] + 2 * err, 2 * 0.25 * u[1] + 2 * err,
                                    -2 * err], rtol=1e-5)
    np.testing.assert_allclose(gs, 2 * err * x0 / 5.0, rtol=1e-5)


def test_bad_arguments_raise():
    for stages in (1, 2.5, True):
        with pytest.raises(ValueError, match="stages"):
            dcgenv.make("Witsenhausen-multistage-v0", stages=stages)
    with pytest.raises(ValueError, match=r"gains\[1\]"):
        M.linear_cost(0.5, [[0.1], [0.1]])
    with pytest.raises(ValueError, match="final"):
        M.linear_cost(0.5, [[0.1]], [1.0])
    with pytest.raises(ValueError, match="lam"):
        M.linear_policy(float("nan"))
    with pytest.raises(ValueError, match="noise_std"):
        M.optimal_final_gain(0.5, (), 5.0, 0.0)
    with pytest.raises(ValueError, match="k"):
        dcgenv.make("Witsenhausen-multistage-v0", k=-1.0)
