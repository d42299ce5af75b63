"""SupplyFunction-v0: exact clearing of random schedules, monotone repair, pathwise gradients
against finite differences, Klemperer & Meyer's SFE (payoff and first-order conditions through
reset/step), bad params, and the gradient-play baseline."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from baselines import econ
from dcgenv.envs.supply_function import EnvState, sfe_profit, sfe_slope


def supply(schedule, prices, p):
    """Reference S(p) in NumPy: the running maximum of ``schedule``, interpolated on ``prices``
    and extended linearly beyond them with the end segments' slopes."""
    q = np.maximum.accumulate(np.asarray(schedule, np.float64))
    k = np.clip(np.searchsorted(prices, p) - 1, 0, len(prices) - 2)
    return q[k] + (q[k + 1] - q[k]) * (p - prices[k]) / (prices[k + 1] - prices[k])


def at(env, params, z, schedules):
    """One step from a hand-built state whose demand shock is eps_mean + eps_std z."""
    s = EnvState(time=jnp.zeros((), jnp.int32), z=jnp.asarray(z, jnp.result_type(float)))
    return env.step(jax.random.key(0), s, jnp.asarray(schedules, jnp.result_type(float)), params)


@pytest.mark.parametrize("x64", [False, True])
def test_clearing_price_solves_supply_equals_demand_for_random_schedules(x64):
    with jax.enable_x64(x64):
        env, params = dcgenv.make("SupplyFunction-v0", num_firms=3, grid_size=6, gamma=0.7,
                                  price_min=1.0, price_max=6.0)
        prices = np.linspace(1.0, 6.0, 6)
        rng = np.random.default_rng(0)
        step = jax.jit(lambda z, q: at(env, params, z, q))
        outside = 0
        for _ in range(40):  # raw draws: non-monotone, and prices below/inside/above the grid
            q = rng.normal(2.0, 2.0, (3, 6))
            z = rng.normal(0.0, 3.0)
            _, _, reward, term, _, info = step(z, q)
            p, eps = float(info["price"]), 10.0 + 2.0 * z
            outside += not 1.0 <= p <= 6.0
            sold = [supply(q[i], prices, p) for i in range(3)]
            tol = 1e-10 if x64 else 2e-5 * (1 + abs(eps))
            np.testing.assert_allclose(sum(sold), eps - 0.7 * p, atol=tol)
            np.testing.assert_allclose(info["quantities"], sold, atol=tol)
            np.testing.assert_allclose(reward, p * np.array(sold) - np.array(sold) ** 2 / 2,
                                       atol=10 * tol * (1 + abs(p)))
            assert bool(term)
        assert outside >= 3  # the end-segment extensions were exercised


def test_non_monotone_schedules_act_as_their_running_maximum_and_never_nan():
    env, params = dcgenv.make("SupplyFunction-v0", grid_size=4, price_max=3.0)
    q = jnp.array([[3.0, 1.0, 2.0, 5.0], [0.0, 4.0, 1.0, 1.0]])
    repaired = jnp.array([[3.0, 3.0, 3.0, 5.0], [0.0, 4.0, 4.0, 4.0]])
    for z in (-3.0, 0.0, 2.0):
        _, _, r1, _, _, i1 = at(env, params, z, q)
        _, _, r2, _, _, i2 = at(env, params, z, repaired)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(i1["price"], i2["price"])
    for bad in (jnp.nan, jnp.inf, -jnp.inf, 1e30):
        _, _, r, _, _, info = at(env, params, 0.0, q.at[0, 1].set(bad))
        assert np.all(np.isfinite(r)) and np.isfinite(float(info["price"]))
    # a grid whose float32 points merge (steps below the float32 spacing at 1e6): still finite
    env32, p32 = dcgenv.make("SupplyFunction-v0", grid_size=4, price_min=1e6,
                             price_max=1e6 + 0.1, eps_mean=1e6)
    for z in (-1.0, 0.0, 1.0):
        _, _, r, _, _, info = at(env32, p32, z, jnp.zeros((2, 4)))
        assert np.all(np.isfinite(r)) and np.isfinite(float(info["price"]))
    # flat schedules (zero total slope): demand alone fixes the price
    _, _, _, _, _, info = at(env, params, 0.0, jnp.zeros((2, 4)))
    np.testing.assert_allclose(info["price"], 10.0)  # eps - gamma p = 0


def test_profit_gradient_in_schedule_entries_matches_finite_differences():
    with jax.enable_x64(True):
        env, params = dcgenv.make("SupplyFunction-v0", num_firms=3, grid_size=6, gamma=0.7,
                                  price_max=12.0, cost=0.5)
        keys = jax.random.split(jax.random.key(0), 64)

        def mean_profit(q):  # firm 0's expected profit over 64 demand shocks
            def one(key):
                obs, s = env.reset(key, params)
                return env.step(key, s, q, params)[2][0]
            return jnp.mean(jax.vmap(one)(keys))

        rng = np.random.default_rng(1)
        f, g = jax.jit(mean_profit), jax.jit(jax.grad(mean_profit))
        for _ in range(3):
            q = jnp.asarray(np.sort(rng.uniform(0, 6, (3, 6)), axis=1))
            grad = g(q)
            assert np.all(np.isfinite(grad)) and float(jnp.abs(grad).max()) > 1e-3
            h = 1e-6
            for i, k in [(0, 1), (0, 4), (1, 2), (2, 5)]:
                e = jnp.zeros_like(q).at[i, k].set(h)
                np.testing.assert_allclose(grad[i, k], (f(q + e) - f(q - e)) / (2 * h),
                                           rtol=1e-5, atol=1e-7)


def test_sfe_slope_solves_klemperer_meyer():
    np.testing.assert_allclose(sfe_slope(2, 1.0, 1.0), (np.sqrt(5) - 1) / 2, rtol=1e-6)
    for n, gamma, cost in [(1, 2.0, 0.5), (2, 0.3, 3.0), (3, 1.0, 1.0), (5, 0.5, 2.0)]:
        b = float(sfe_slope(n, gamma, cost))
        np.testing.assert_allclose(b, 1 / (cost + 1 / (gamma + (n - 1) * b)), rtol=1e-6)
    assert np.isinf(sfe_slope(2, 1.0, 0.0))  # no finite SFE without costs


def profits(slopes, key, env, params):
    """Every firm's profit in one episode with linear schedules ``slopes[i] * p`` (grid from 0)."""
    k0, k1 = jax.random.split(key)
    obs, s = env.reset(k0, params)
    return env.step(k1, s, slopes[:, None] * obs["prices"], params)[2]


def test_sfe_payoff_and_first_order_conditions_through_the_env():
    n, gamma, cost, mean, std = 3, 0.8, 1.5, 6.0, 2.0
    env, params = dcgenv.make("SupplyFunction-v0", num_firms=n, gamma=gamma, cost=cost,
                              eps_mean=mean, eps_std=std)
    beta = float(sfe_slope(n, gamma, cost))
    keys = jax.random.split(jax.random.key(2), 20_000)
    r = np.asarray(jax.jit(jax.vmap(lambda k: profits(jnp.full(n, beta), k, env, params)))(keys),
                   np.float64)
    se = r[:, 0].std() / np.sqrt(len(r))
    assert abs(r[:, 0].mean() - float(sfe_profit(n, gamma, cost, mean, std))) < 4 * se

    # firm 0's own-slope gradient, others at beta: zero at beta sample by sample (an ex-post
    # best response), positive below, negative above, and equal to the closed form's derivative
    def grad_own(b0):
        f = lambda b, k: profits(jnp.full(n, beta).at[0].set(b), k, env, params)[0]
        return np.asarray(jax.jit(jax.vmap(jax.grad(f), in_axes=(None, 0)))(b0, keys[:4096]))

    at_sfe = grad_own(beta)
    assert np.abs(at_sfe).max() < 1e-4 * (mean + 4 * std) ** 2
    closed = jax.grad(lambda b: sfe_profit(n, gamma, cost, mean, std, slope=b))
    for b0, sign in [(0.6 * beta, 1.0), (1.6 * beta, -1.0)]:
        g = grad_own(b0)
        assert sign * g.mean() > 0.1
        assert abs(g.mean() - float(closed(b0))) < 4 * g.std() / np.sqrt(len(g))


def test_every_schedule_entry_is_at_a_stationary_point_at_the_sfe():
    """Against the others' beta p, firm 0's profit has zero gradient in every entry of its
    schedule at q = beta p (its crossing with residual demand is already the optimal point)."""
    env, params = dcgenv.make("SupplyFunction-v0")
    beta = sfe_slope(2, 1.0, 1.0)
    prices = jnp.linspace(0.0, 10.0, 11)
    keys = jax.random.split(jax.random.key(3), 512)

    def mean_profit(q0):
        q = jnp.stack([q0, beta * prices])
        one = lambda k: env.step(k, env.reset(k, params)[1], q, params)[2][0]
        return jnp.mean(jax.vmap(one)(keys))

    g = jax.jit(jax.grad(mean_profit))
    assert float(jnp.abs(g(beta * prices)).max()) < 1e-4
    assert float(jnp.abs(g(0.5 * beta * prices)).max()) > 0.1


@pytest.mark.parametrize("overrides, match", [
    ({"gamma": 0.0}, r"gamma.*\(0, inf\)"), ({"cost": -1.0}, r"cost.*\[0, inf\)"),
    ({"eps_std": -1.0}, r"eps_std"),
    ({"price_min": 5.0, "price_max": 5.0}, "price_min < price_max"),
    ({"num_firms": 0}, r"num_firms.*\[1, inf\)"), ({"grid_size": 1}, r"grid_size.*\[2, inf\)")])
def test_bad_params_raise_naming_the_problem(overrides, match):
    with pytest.raises(ValueError, match=match):
        dcgenv.make("SupplyFunction-v0", **overrides)


def test_gradient_play_baseline_smoke():
    result = econ.main(["supply_function", "--steps", "3", "--batch", "8", "--firms", "3"])
    assert [r["coefficient"] for r in result["rows"]] == [f"slope firm {i}" for i in range(3)]
    assert all(np.isfinite(r["learned"]) for r in result["rows"])
    np.testing.assert_allclose(result["rows"][0]["theory"], sfe_slope(3, 1.0, 1.0), rtol=1e-6)
