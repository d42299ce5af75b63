"""Witsenhausen-misaligned-v0: bias 0 is Witsenhausen-v0; per-agent costs on a hand-built state;
Monte Carlo welfare losses of the biased best response and of the affine Nash equilibrium
against their closed forms, with both controllers' gradients through reset/step."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv.envs.witsenhausen import EnvState
from dcgenv.envs.witsenhausen_misaligned import affine_nash, welfare_loss
from dcgenv.envs.witsenhausen_reference import affine_cost, best_affine_lambdas

N = 20_000  # Monte Carlo episodes; tolerances are 4 standard errors


def within_4se(samples, expected):
    samples = np.asarray(samples, np.float64)
    se = samples.std() / math.sqrt(samples.size)
    assert abs(samples.mean() - expected) <= 4 * se, (samples.mean(), expected, se)


def test_bias_zero_is_witsenhausen_v0():
    env, params = dcgenv.make("Witsenhausen-misaligned-v0", bias=0.0)
    base, base_params = dcgenv.make("Witsenhausen-v0")
    keys = jax.random.split(jax.random.key(0), 64)
    actions = jax.random.normal(jax.random.key(1), (64, 2, 2)) * 3  # [episode, step, agent]

    def run(env, params):
        def one(key, a):
            k0, k1, k2 = jax.random.split(key, 3)
            obs0, s = env.reset(k0, params)
            obs1, s, r0, _, _, i0 = env.step(k1, s, a[0], params)
            obs2, _, r1, term, _, i1 = env.step(k2, s, a[1], params)
            costs = [i[n] for i in (i0, i1) for n in ("stage1_cost", "stage2_cost")]
            return (obs0, obs1, obs2, term, costs), (r0, r1)
        return jax.jit(jax.vmap(one))(keys, actions)

    (same, (r0, r1)), (base_same, (b0, b1)) = run(env, params), run(base, base_params)
    for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(base_same), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(r0[:, 0]), np.asarray(b0[:, 0]))  # controller 1
    np.testing.assert_array_equal(np.asarray(r1), np.asarray(b1))  # both, on step 1
    np.testing.assert_array_equal(np.asarray(r0[:, 1]), 0.0)  # controller 2: its step only


def test_per_agent_costs_on_a_hand_built_state():
    env, params = dcgenv.make("Witsenhausen-misaligned-v0", k=0.5, bias=0.5)
    f = lambda v: jnp.asarray(v, jnp.float32)
    s = EnvState(time=jnp.asarray(0, jnp.int32), x0=f(3.0), w=f(0.25), x1=f(3.0))
    key = jax.random.key(0)
    _, s, reward, term, _, info = env.step(key, s, jnp.array([-1.0, 99.0]), params)
    np.testing.assert_array_equal(reward, [-0.25, 0.0])  # k^2 u1^2 for controller 1 only
    assert not term and float(s.x1) == 2.0
    _, _, reward, term, _, info = env.step(key, s, jnp.array([99.0, 1.5]), params)
    # controller 1: (x1 - u2)^2 = 0.25; controller 2: (x1 + bias - u2)^2 = 1
    np.testing.assert_array_equal(reward, [-0.25, -1.0])
    assert term and float(info["controller2_cost"]) == 1.0 and float(info["stage2_cost"]) == 0.25


def test_welfare_loss_of_biased_best_response_and_affine_nash_match_closed_forms():
    """For both affine team optima (slopes ~0.042 and ~0.958): with controller 1 committed to
    ``x1 = lam x0`` and controller 2's biased best response ``a y + bias``, the team pays
    ``affine_cost + bias^2``, controller 2's own cost is its mmse and its gradient is 0 while
    controller 1 would gain by an offset (gradient ``-2 (1 - a) bias``); at the affine Nash
    equilibrium both gradients vanish and the team pays ``affine_cost + bias^2 + k^2 d^2``."""
    k, sigma, bias = 0.2, 5.0, 1.0
    env, params = dcgenv.make("Witsenhausen-misaligned-v0", k=k, sigma=sigma, bias=bias)
    keys = jax.random.split(jax.random.key(2), N)

    def episode(theta, key):  # theta = (lam, offset, slope, intercept)
        lam, d, a, c = theta
        k0, k1, k2 = jax.random.split(key, 3)
        obs, s = env.reset(k0, params)
        x0 = obs["signal"][0, 0]
        obs, s, r0, *_ = env.step(k1, s, jnp.stack([(lam - 1) * x0 + d, 0.0]), params)
        y = obs["signal"][1, 0]
        _, _, r1, *_ = env.step(k2, s, jnp.stack([0.0, a * y + c]), params)
        return -(r0 + r1)  # both controllers' costs

    def per_sample(theta):
        costs = jax.vmap(episode, (None, 0))(theta, keys)
        grads = jax.vmap(jax.jacrev(episode), (None, 0))(theta, keys)  # [N, agent] per leaf
        return costs, grads[1][:, 0], grads[3][:, 1]  # d c1 / d offset, d c2 / d intercept

    run = jax.jit(per_sample)
    for lam in best_affine_lambdas(k, sigma):
        nash = affine_nash(lam, bias, k, sigma)
        a, base = nash["slope"], affine_cost(lam, k, sigma)
        f32 = lambda *v: tuple(jnp.float32(x) for x in v)

        costs, g1, g2 = run(f32(lam, 0.0, a, bias))  # controller 1 leads, 2 best-responds
        within_4se(np.asarray(costs[:, 0]) - base, welfare_loss(bias))
        within_4se(costs[:, 1], nash["controller2_cost"])
        within_4se(g2, 0.0)
        within_4se(g1, -2 * (1 - a) * bias)
        assert abs(float(np.mean(g1))) > 8 * float(np.std(g1)) / math.sqrt(N)  # not Nash

        costs, g1, g2 = run(f32(lam, nash["offset"], a, nash["intercept"]))
        within_4se(costs[:, 0], nash["team_cost"])
        within_4se(costs[:, 1], nash["controller2_cost"])
        within_4se(g1, 0.0)
        within_4se(g2, 0.0)
        assert np.all(np.isfinite(np.asarray(g1))) and np.any(np.asarray(g1) != 0)


def test_closed_forms_and_argument_errors():
    lam = best_affine_lambdas()[0]
    nash = affine_nash(lam, bias=0.0)
    assert nash["offset"] == 0.0 and nash["team_cost"] == affine_cost(lam)
    assert welfare_loss(-2.0) == 4.0
    with pytest.raises(ValueError, match="k"):
        affine_nash(lam, 1.0, k=0.0)
    with pytest.raises(ValueError, match="bias"):
        dcgenv.make("Witsenhausen-misaligned-v0", bias=math.nan)
