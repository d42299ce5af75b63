"""Witsenhausen benchmark: exact costs (quadrature) against published values, closed forms, an
independent computation and 10^6-episode Monte Carlo through the environment."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv.envs import witsenhausen as W


def test_best_affine_cost_is_096_at_both_published_lambdas():
    lams = W.best_affine_lambdas(0.2, 5.0)
    np.testing.assert_allclose(lams, [0.04174, 0.95826], atol=1e-5)
    for lam in lams:
        assert abs(W.expected_cost(W.affine(lam), 0.2, 5.0) - 0.96) < 1e-6


def test_best_affine_where_the_two_minima_merge_and_y_beyond_every_mass_point():
    """At k = 0.5, sigma = 2 the affine cost is flat at its minimum (k^2 sigma^2 = 1, where the
    two minima merge): one lambda, the grid's minimum. The posterior table stays defined on a
    y chunk that starts more than 15 noise std beyond the last mass point (the y grid's last
    point, 15.1 here, is alone in its chunk)."""
    (lam,) = W.best_affine_lambdas(0.5, 2.0)
    grid = np.linspace(0.0, 1.0, 20_001)
    assert W.affine_cost(lam, 0.5, 2.0) <= W.affine_cost(grid, 0.5, 2.0).min() + 1e-12
    from dcgenv.envs.witsenhausen_reference import _posterior_table

    y, dens, mean, var = _posterior_table(np.array([0.0]), np.array([1.0]), 1.0, h=0.7,
                                          chunk=1)
    assert y[-1] > 15.0 and np.all(np.isfinite(dens)) and np.all(mean == 0.0)
    np.testing.assert_allclose(dens, np.exp(-0.5 * y**2) / np.sqrt(2 * np.pi), rtol=1e-12)


def test_two_point_cost_is_published_value():
    assert abs(W.expected_cost(W.two_point(5.0), 0.2, 5.0) - 0.4042532) < 1e-6
    # the same policy written as a one-step staircase, and as a jitted function
    assert abs(W.expected_cost(W.staircase([], [5.0])) - 0.4042532) < 1e-6
    assert abs(W.expected_cost(jax.jit(W.two_point(5.0))) - 0.4042532) < 1e-6


@pytest.mark.parametrize("lam,k,sigma,noise_std", [(0.5, 0.2, 5.0, 1.0), (1.3, 0.5, 2.0, 1.0),
                                                   (-0.4, 0.1, 3.0, 0.5), (0.0, 1.0, 1.0, 2.0)])
def test_affine_matches_closed_form(lam, k, sigma, noise_std):
    got = W.expected_cost(W.affine(lam), k, sigma, noise_std)
    assert abs(got - W.affine_cost(lam, k, sigma, noise_std)) < 1e-9


def _independent_flat_staircase_cost(thresholds, levels, k, sigma):
    """Flat odd staircase by other means: stage 1 from truncated-normal moments (erf), stage 2
    from the exact discrete distribution of x1 on a fine, wide y grid."""
    edges = np.concatenate([[0.0], thresholds, [np.inf]]) / sigma
    cdf = lambda z: 0.5 * (1 + np.vectorize(math.erf)(z / np.sqrt(2)))
    pdf = lambda z: np.where(np.isinf(z), 0.0, np.exp(-0.5 * np.minimum(z, 1e3) ** 2)
                             / np.sqrt(2 * np.pi))
    lo, hi = edges[:-1], edges[1:]
    mass = cdf(hi) - cdf(lo)
    m1 = sigma * (pdf(lo) - pdf(hi))  # E[x0; bin] for x0 >= 0
    zhi = np.where(np.isinf(hi), 0.0, hi)
    m2 = sigma**2 * (mass + lo * pdf(lo) - zhi * pdf(hi))  # E[x0^2; bin]
    a = np.asarray(levels)
    stage1 = 2 * k**2 * np.sum(a**2 * mass - 2 * a * m1 + m2)  # both signs
    values, probs = np.concatenate([-a, a]), np.concatenate([mass, mass])
    y = np.linspace(-a.max() - 15, a.max() + 15, 60_001)
    joint = probs * np.exp(-0.5 * (y[:, None] - values) ** 2) / np.sqrt(2 * np.pi)
    p = joint.sum(1)
    mean = joint @ values / p
    stage2 = np.sum(joint @ values**2 - p * mean**2) * (y[1] - y[0])
    return stage1, stage2


def test_jumps_off_the_grid_match_an_independent_computation():
    thresholds, levels = [3.31, 9.87, 16.4], [0.23, 6.6, 13.1, 19.9]
    got = W.expected_cost_terms(W.staircase(thresholds, levels), 0.2, 5.0)
    want = _independent_flat_staircase_cost(np.array(thresholds), levels, 0.2, 5.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_optimal_gamma2_of_affine_is_the_linear_estimator():
    lam = 0.3
    gamma2 = jax.jit(W.optimal_gamma2(W.affine(lam), sigma=5.0))
    y = jnp.linspace(-10, 10, 101)
    gain = lam**2 * 25 / (lam**2 * 25 + 1)
    np.testing.assert_allclose(gamma2(y), gain * y, atol=1e-4)


def test_expected_cost_leaves_x64_off_and_rejects_bad_input():
    W.expected_cost(W.two_point(5.0))
    assert jnp.zeros(1).dtype == jnp.float32 and not jax.config.jax_enable_x64
    with pytest.raises(ValueError, match="sigma"):
        W.expected_cost(W.two_point(5.0), sigma=0.0)
    with pytest.raises(ValueError, match="k must"):
        W.expected_cost(W.two_point(5.0), k=-1.0)
    with pytest.raises(ValueError, match="elementwise"):
        W.expected_cost(lambda x0: jnp.sum(x0))
    with pytest.raises(ValueError, match="NaN"):
        W.expected_cost(lambda x0: jnp.where(x0 > 1, jnp.nan, x0))
    with pytest.raises(ValueError, match="thresholds"):
        W.staircase([3.0, 2.0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("name,gamma1", [
    ("best affine", W.affine(W.best_affine_lambdas()[0])),
    ("two-point", W.two_point(5.0)),
    ("sloped staircase", W.staircase([6.6, 13.4], [3.3, 9.9, 16.8], 0.035)),
])
def test_monte_carlo_through_the_env_agrees_with_quadrature(name, gamma1):
    """10^6 episodes of Witsenhausen-v0 with controller 2 playing the optimal E[x1 | y]; the
    mean cost is within 3 standard errors of the exact value (a fixed key: deterministic)."""
    env, params = dcgenv.make("Witsenhausen-v0")
    policy = W.env_policy(gamma1, W.optimal_gamma2(gamma1))
    rollout = lambda key: dcgenv.rollout(env, params, key, num_envs=10**6, num_steps=2,
                                         policy=policy)  # LLVM on (conftest.py turns it off)
    traj, _ = jax.jit(rollout, compiler_options={"xla_backend_optimization_level": 1})(
        jax.random.key(0))
    assert bool(jnp.all(traj.terminated[1])) and not bool(jnp.any(traj.terminated[0]))
    cost = -np.asarray(traj.reward[:, :, 0], np.float64).sum(0)
    se = cost.std() / np.sqrt(cost.size)
    assert abs(cost.mean() - W.expected_cost(gamma1)) < 3 * se, name
