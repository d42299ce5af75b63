"""Witsenhausen-vector-v0: m = 1 is Witsenhausen-v0, affine and Z^m-lattice policies against
their closed forms (Monte Carlo through reset/step, 4 standard errors), lattice quantisers
against brute force and published second moments, argument errors, and gradients."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv.envs import witsenhausen as W
from dcgenv.envs import witsenhausen_vector as V


def episode_costs(env, params, policy, keys):
    """Per-episode costs of ``policy`` (deterministic), one episode per key, via reset/step."""

    def one(key):
        k0, k1, k2 = jax.random.split(key, 3)
        obs, s = env.reset(k0, params)
        obs, s, r1, *_ = env.step(k1, s, policy(k1, obs), params)
        _, _, r2, term, *_ = env.step(k2, s, policy(k2, obs), params)
        return -(r1[0] + r2[0]), term

    cost, term = jax.jit(jax.vmap(one))(keys)
    assert bool(jnp.all(term))
    return np.asarray(cost, np.float64)


def assert_within_4se(samples, expected):
    mean, se = samples.mean(), samples.std(ddof=1) / math.sqrt(len(samples))
    assert abs(mean - expected) < 4 * se, (mean, se, expected)


def test_dim_1_reproduces_witsenhausen_v0():
    overrides = {"k": 0.5, "sigma": 2.0, "noise_std": 0.5}
    env1, p1 = dcgenv.make("Witsenhausen-v0", **overrides)
    envm, pm = dcgenv.make("Witsenhausen-vector-v0", dim=1, **overrides)
    keys = jax.random.split(jax.random.key(0), 8)
    u = jax.random.normal(jax.random.key(1), (8, 2)) * 3

    def run(env, params, shape):  # reset and step compiled separately, as users call them
        a = u.reshape(8, *shape)
        obs, s = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
        o1, s, r1, *_ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, s, a, params)
        _, _, r2, term, *_ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, s, a, params)
        return obs["signal"].ravel(), o1["signal"].ravel(), r1, r2, term

    for a, b in zip(run(env1, p1, (2,)), run(envm, pm, (2, 1)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)  # ulps apart


def test_affine_policy_monte_carlo_matches_closed_form():
    env, params = dcgenv.make("Witsenhausen-vector-v0", dim=3, k=0.3, sigma=2.0)
    lam = 0.6
    gain = lam**2 * 4.0 / (lam**2 * 4.0 + 1.0)  # controller 2's linear estimate, per coordinate

    def policy(key, obs):
        s = obs["signal"]
        return jnp.where((obs["role"] == 0)[:, None], (lam - 1.0) * s, gain * s)

    costs = episode_costs(env, params, policy, jax.random.split(jax.random.key(2), 4000))
    assert_within_4se(costs, V.affine_cost(lam, 0.3, 2.0, 1.0))


def test_integer_lattice_monte_carlo_matches_scalar_closed_form():
    env, params = dcgenv.make("Witsenhausen-vector-v0", dim=3)  # k = 0.2, sigma = 5
    costs = episode_costs(env, params, V.lattice_policy("Z", 3.0),
                          jax.random.split(jax.random.key(3), 4000))
    assert_within_4se(costs, V.integer_lattice_cost(3.0))


def test_integer_lattice_first_stage_equals_staircase_quadrature():
    a, k, sigma = 3.0, 0.2, 5.0
    levels = a * np.arange(0, 20)  # 57 sigma: far beyond any mass
    thresholds = levels[:-1] + a / 2
    want, _ = W.expected_cost_terms(W.staircase(thresholds, levels), k, sigma)
    got, decode = V.integer_lattice_cost_terms(a, k, sigma)
    assert abs(got - want) < 1e-10
    # second stage: P(decode to n) summed the other way, over the Gaussian's tail masses
    tails = [math.erfc((n - 0.5) * a / math.sqrt(2)) for n in range(1, 12)]
    assert abs(decode - a**2 * sum((2 * n - 1) * t for n, t in enumerate(tails, 1))) < 1e-12


GENERATORS = {"A2": np.array([[1.0, 0.0], [0.5, math.sqrt(3) / 2]]),
              "D4": np.array([[-1.0, -1, 0, 0], [1, -1, 0, 0], [0, 1, -1, 0], [0, 0, 1, -1]]),
              "E8": np.array([[2.0, 0, 0, 0, 0, 0, 0, 0], [-1, 1, 0, 0, 0, 0, 0, 0],
                              [0, -1, 1, 0, 0, 0, 0, 0], [0, 0, -1, 1, 0, 0, 0, 0],
                              [0, 0, 0, -1, 1, 0, 0, 0], [0, 0, 0, 0, -1, 1, 0, 0],
                              [0, 0, 0, 0, 0, -1, 1, 0], [0.5] * 8])}


@pytest.mark.parametrize("lattice", ["A2", "D4", "E8"])
def test_lattice_quantizer_returns_a_nearest_lattice_point(lattice):
    """Against brute force over the lattice points with coefficients near the point's."""
    gen = GENERATORS[lattice]
    m = len(gen)
    x = np.asarray(jax.random.normal(jax.random.key(4), (40, m)) * 3, np.float64)
    q = np.asarray(jax.jit(V.lattice_quantizer(lattice, 1.0))(jnp.asarray(x, jnp.float32)),
                   np.float64)
    coef = np.linalg.solve(gen.T, q.T).T  # q = coef @ gen with integer coef: a lattice point
    np.testing.assert_allclose(coef, np.round(coef), atol=1e-4)
    offsets = np.array(list(itertools.product(*[range(-1, 2)] * m)), np.float64)
    for xi, qi in zip(x, q, strict=True):
        base = np.round(np.linalg.solve(gen.T, xi))
        cands = (base + offsets) @ gen
        best = np.min(np.sum((cands - xi) ** 2, 1))
        assert np.sum((qi - xi) ** 2) <= best + 1e-4


@pytest.mark.parametrize("lattice", ["Z", "A2", "D4", "E8"])
def test_lattice_normalized_second_moment_matches_conway_sloane(lattice):
    """Uniform points in a box 12 cells wide: E||x - Q(x)||^2 / (m V^(2/m)) is G."""
    m = {"Z": 3, "A2": 2, "D4": 4, "E8": 8}[lattice]
    volume = {"Z": 1.0, "A2": math.sqrt(3) / 2, "D4": 2.0, "E8": 1.0}[lattice]
    x = jax.random.uniform(jax.random.key(5), (20_000, m), minval=0.0, maxval=12.0)
    err = jax.jit(lambda x: jnp.sum((x - V.lattice_quantizer(lattice, 1.0)(x)) ** 2, -1))(x)
    err = np.asarray(err, np.float64)
    assert_within_4se(err / m / volume ** (2 / m), V.NORMALIZED_SECOND_MOMENT[lattice])


def test_asymptotic_cost_is_the_best_of_its_three_strategies():
    # vector quantisation wins at the benchmark point (k^2 n^2 below both linear extremes)
    assert V.asymptotic_cost(0.2, 5.0) == pytest.approx(0.2**2)
    # zero input wins when control is dear; zero forcing when the state is small
    assert V.asymptotic_cost(3.0, 5.0) == pytest.approx(25 / 26)
    assert V.asymptotic_cost(0.5, 0.5, 2.0) == pytest.approx(0.25 * 0.25)


def test_bad_arguments_raise():
    for dim in (0, 1.5, True):
        with pytest.raises(ValueError, match="dim"):
            dcgenv.make("Witsenhausen-vector-v0", dim=dim)
    with pytest.raises(ValueError, match="lattice"):
        V.lattice_quantizer("B3")
    with pytest.raises(ValueError, match="scale"):
        V.lattice_policy("Z", 0.0)
    with pytest.raises(ValueError, match="multiple of 8"):
        V.lattice_quantizer("E8")(jnp.zeros(4))
    with pytest.raises(ValueError, match="scale"):
        V.integer_lattice_cost(-1.0)
    with pytest.raises(ValueError, match="sigma"):
        V.asymptotic_cost(0.2, 0.0)
    with pytest.raises(ValueError, match="sigma"):
        dcgenv.make("Witsenhausen-vector-v0", sigma=-1.0)


def test_grad_through_reset_and_step_matches_the_cost_formula():
    """d/d(u1, u2, sigma) of one episode's cost, pathwise through reset and step, against
    the derivative of (k^2 ||u1||^2 + ||x0 + u1 - u2||^2) / m with x0 = sigma z."""
    env, params = dcgenv.make("Witsenhausen-vector-v0", dim=3, k=0.5)
    key = jax.random.key(6)
    u1, u2 = jnp.array([0.3, -1.0, 2.0]), jnp.array([1.0, 0.5, -0.2])

    def cost(u1, u2, sigma):
        p = params.replace(sigma=sigma)
        _, s0 = env.reset(key, p)
        _, s, r1, *_ = env.step(key, s0, jnp.stack([u1, u1]), p)
        _, _, r2, *_ = env.step(key, s, jnp.stack([u2, u2]), p)
        return -(r1[0] + r2[0]), s0.x0

    (g1, g2, gs), x0 = jax.jit(jax.grad(cost, argnums=(0, 1, 2), has_aux=True))(u1, u2, 5.0)
    err = x0 + u1 - u2
    np.testing.assert_allclose(g1, 2 * (0.25 * u1 + err) / 3, rtol=1e-5)
    np.testing.assert_allclose(g2, -2 * err / 3, rtol=1e-5)
    np.testing.assert_allclose(gs, 2 * jnp.dot(err, x0 / 5.0) / 3, rtol=1e-5)
