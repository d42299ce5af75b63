"""Kyle-v0: the rules on hand-built states, the linear equilibrium's payoffs and first-order
conditions through reset/step, pathwise gradients, bad params, and the gradient-play baseline."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from baselines import econ
from dcgenv.envs.kyle import EnvState, equilibrium, sequential_equilibrium


@pytest.fixture(scope="module")
def env_params():
    return dcgenv.make("Kyle-v0", p0=2.0, sigma0=1.5, sigma_u=0.5)


def state(v, u, time=0, x=0.0, price=2.0):
    f = lambda a: jnp.asarray(a, jnp.float32)
    return EnvState(time=jnp.asarray(time, jnp.int32), v=f(v), u=f(u), x=f(x), price=f(price))


def test_two_steps_rewards_observations_and_termination(env_params):
    env, params = env_params
    key = jax.random.key(0)
    s = state(v=3.0, u=-0.5)
    obs = env.get_obs(s, params)
    np.testing.assert_allclose(obs["signal"][:, 0], [3.0, 0.0])
    np.testing.assert_allclose(obs["p0"], [2.0, 2.0])
    np.testing.assert_array_equal(obs["active"], [True, False])

    # step 0: the insider orders x = 2 (the market maker's action is ignored); no rewards yet
    obs, s1, reward, term, trunc, info = env.step(key, s, jnp.array([2.0, 99.0]), params)
    np.testing.assert_allclose(reward, [0.0, 0.0])
    assert not term and not trunc
    np.testing.assert_allclose(obs["signal"][:, 0], [0.0, 1.5])  # y = x + u
    np.testing.assert_array_equal(obs["active"], [False, True])

    # step 1: price p = 2.5: insider (v - p) x = 1, market maker -(p - v)^2 = -0.25,
    # its trading profit (p - v) y = -0.75; the episode ends
    obs, s2, reward, term, trunc, info = env.step(key, s1, jnp.array([99.0, 2.5]), params)
    np.testing.assert_allclose(reward, [1.0, -0.25])
    assert term and not trunc
    np.testing.assert_allclose([info["order_flow"], info["price"], info["mm_profit"]],
                               [1.5, 2.5, -0.75])
    np.testing.assert_allclose(info["final_observation"]["signal"], 0.0)
    assert int(s2.time) == 0  # auto-reset


def test_illegal_actions_are_finite(env_params):
    env, params = env_params
    for bad in (jnp.nan, jnp.inf, -1e30):
        _, s1, *_ = env.step(jax.random.key(0), state(1.0, 0.0), jnp.array([bad, 0.0]), params)
        _, _, reward, *_ = env.step(jax.random.key(1), s1, jnp.array([0.0, bad]), params)
        assert np.all(np.isfinite(reward)) and np.isfinite(float(s1.x))


def payoffs(beta, lam, key, env, params):
    """Rewards and the market maker's profit of one episode, linear strategies, via the env."""
    k0, k1, k2 = jax.random.split(key, 3)
    obs, s = env.reset(k0, params)
    x = beta * (obs["signal"][0, 0] - obs["p0"][0])
    obs, s, r1, *_ = env.step(k1, s, jnp.stack([x, 0.0]), params)
    p = obs["p0"][1] + lam * obs["signal"][1, 0]
    _, _, r2, _, _, info = env.step(k2, s, jnp.stack([0.0, p]), params)
    return r1 + r2, info["mm_profit"]


def within(samples, expected, sigmas=4.0):
    samples = np.asarray(samples, np.float64)
    se = samples.std() / np.sqrt(len(samples))
    assert abs(samples.mean() - expected) <= sigmas * se + 1e-7, (samples.mean(), expected, se)


def test_equilibrium_payoffs_match_kyles_formulas(env_params):
    env, params = env_params
    eq = equilibrium(params)
    np.testing.assert_allclose([eq["beta"], eq["lambda"]], [0.5 / 1.5, 1.5 / 1.0])
    keys = jax.random.split(jax.random.key(1), 20_000)
    rewards, mm_profit = jax.jit(jax.vmap(
        lambda k: payoffs(eq["beta"], eq["lambda"], k, env, params)))(keys)
    within(rewards[:, 0], float(eq["insider_profit"]))  # sigma_u sigma0 / 2 = 0.375
    within(rewards[:, 1], float(eq["mm_reward"]))  # -Var(v | y) = -sigma0^2 / 2
    within(mm_profit, 0.0)  # the competitive market maker breaks even


def test_first_order_conditions_hold_at_the_equilibrium_and_not_away(env_params):
    """Each player's pathwise gradient of its own expected payoff in its own coefficient is 0 at
    (beta*, lambda*) and points back to it elsewhere. Expected values (Sigma0 = sigma0^2):
    d/dbeta E[(v - p) x] = Sigma0 (1 - 2 lambda beta); d/dlambda E[-(p - v)^2] =
    -2 (lambda (beta^2 Sigma0 + sigma_u^2) - beta Sigma0)."""
    env, params = env_params
    eq = equilibrium(params)
    b0, l0, s0, su = eq["beta"], eq["lambda"], params.sigma0**2, params.sigma_u**2
    keys = jax.random.split(jax.random.key(2), 8192)
    per_episode = lambda f: jax.jit(jax.vmap(jax.grad(f), in_axes=(None, 0)))
    g_insider = per_episode(lambda b, k: payoffs(b, l0, k, env, params)[0][0])
    g_mm = per_episode(lambda lam, k: payoffs(b0, lam, k, env, params)[0][1])
    for scale in (1.0, 0.5, 2.0):
        beta, lam = scale * b0, scale * l0
        within(g_insider(beta, keys), float(s0 * (1 - 2 * l0 * beta)))
        within(g_mm(lam, keys), float(-2 * (lam * (b0**2 * s0 + su) - b0 * s0)))
        if scale != 1.0:  # a clear sign, pointing back to the equilibrium
            sign = 1.0 if scale < 1 else -1.0
            assert sign * float(jnp.mean(g_insider(beta, keys))) > 0.1
            assert sign * float(jnp.mean(g_mm(lam, keys))) > 0.1


def test_grad_through_reset_and_step_matches_finite_differences():
    with jax.enable_x64(True):
        env, params = dcgenv.make("Kyle-v0", p0=1.0, sigma0=2.0, sigma_u=0.7)
        keys = jax.random.split(jax.random.key(3), 256)
        f = jax.jit(lambda t: jnp.mean(jax.vmap(lambda k: payoffs(t[0], t[1], k, env,
                                                                  params)[0])(keys), 0))
        theta = jnp.array([0.8, 0.6])
        jac = jax.jit(jax.jacrev(f))(theta)
        assert jac.dtype == jnp.float64 and np.all(np.abs(np.asarray(jac)) > 1e-3)
        h = 1e-5
        for j in range(2):
            e = jnp.zeros(2).at[j].set(h)
            np.testing.assert_allclose(jac[:, j], (f(theta + e) - f(theta - e)) / (2 * h),
                                       rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("field, value", [("sigma_u", 0.0), ("sigma_u", -1.0),
                                          ("sigma0", 0.0), ("p0", float("inf"))])
def test_bad_params_raise_naming_the_field_and_range(field, value):
    with pytest.raises(ValueError, match=rf"{field}.*(\(0, inf\)|range)"):
        dcgenv.make("Kyle-v0", **{field: value})
    _, params = dcgenv.make("Kyle-v0")
    with pytest.raises(ValueError, match=field):
        params.replace_checked(**{field: value})


def test_gradient_play_baseline_smoke():
    result = econ.main(["kyle", "--steps", "3", "--batch", "8", "--set", "sigma0=2"])
    names = [r["coefficient"] for r in result["rows"]]
    assert names == ["beta", "lambda"]
    assert all(np.isfinite(r["learned"]) for r in result["rows"])
    np.testing.assert_allclose([r["theory"] for r in result["rows"]], [0.5, 1.0])


# --- sequential auctions (Kyle 1985, Section 3) ---

def test_sequential_equilibrium_with_one_auction_is_kyles_theorem_1(env_params):
    _, params = env_params
    eq, one = sequential_equilibrium(params, 1), equilibrium(params)
    np.testing.assert_allclose([eq["order_coef"][0], eq["lambda"][0], eq["insider_profit"],
                                eq["mm_reward"]],
                               [one["beta"], one["lambda"], one["insider_profit"],
                                one["mm_reward"]], rtol=1e-6)


def test_sequential_equilibrium_prices_are_bayesian_and_profits_rise_towards_the_limit():
    """Each lambda_n is the regression coefficient of v on y_n given the past, ``b Sigma_{n-1} /
    (b^2 Sigma_{n-1} + sigma_u^2 dt)``, and Sigma_n its posterior variance; profit rises with N
    towards sigma_u sigma0 (Kyle's continuous-auction limit) and the last Sigma towards 0."""
    _, params = dcgenv.make("Kyle-v0", sigma0=1.5, sigma_u=0.5)
    profits = []
    for n in (1, 2, 4, 16):
        eq = sequential_equilibrium(params, n)
        prior = np.concatenate([[1.5**2], eq["sigma2"][:-1]])
        b, noise = eq["order_coef"], 0.5**2 / n
        np.testing.assert_allclose(eq["lambda"], b * prior / (b**2 * prior + noise), rtol=1e-9)
        np.testing.assert_allclose(eq["sigma2"], prior * (1 - b * eq["lambda"]), rtol=1e-9)
        profits.append(eq["insider_profit"])
    assert np.all(np.diff(profits) > 0) and profits[-1] < 0.5 * 1.5 and profits[-1] > 0.6
    assert sequential_equilibrium(params, 32)["sigma2"][-1] < 0.1 * 1.5**2


def test_sequential_rules_on_a_hand_built_state():
    env, params = dcgenv.make("Kyle-v0", auctions=2, p0=1.0)
    assert params.max_steps_in_episode == 4
    f = lambda a: jnp.asarray(a, jnp.float32)
    s = EnvState(time=jnp.asarray(0, jnp.int32), v=f(2.0), u=f([0.5, -1.0]), x=f(0.0),
                 price=f(1.0))
    key, rewards = jax.random.key(0), []
    for t, action in enumerate([(1.0, 0.0), (0.0, 1.5), (2.0, 0.0), (0.0, 1.8)]):
        obs, s, r, term, trunc, info = env.step(key, s, jnp.array(action), params)
        rewards.append(np.asarray(r))
        assert bool(term) == (t == 3) and not trunc
        if t == 0:  # the market maker of auction 0 sees y_0 = 1 + 0.5
            np.testing.assert_allclose(obs["signal"][1, 0], 1.5)
        if t == 1:  # the price moved to 1.5 for everybody; auction 1 starts
            np.testing.assert_allclose(obs["price"], [1.5, 1.5])
            np.testing.assert_array_equal(obs["auction"], [1, 1])
        if t == 2:
            np.testing.assert_allclose(obs["signal"][1, 0], 1.0)  # y_1 = 2 - 1
    # insider (v - p_n) x_n: 0.5 * 1, then 0.2 * 2; market maker -(p_n - v)^2
    np.testing.assert_allclose(np.array(rewards)[[1, 3]], [[0.5, -0.25], [0.4, -0.04]],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="auctions"):
        dcgenv.make("Kyle-v0", auctions=0)


def test_sequential_equilibrium_payoffs_and_first_order_conditions_through_the_env():
    """Three auctions: Monte Carlo payoffs match the theory; each player's pathwise gradient of
    its own payoff in its own coefficients (the insider's total profit in every beta_n,
    anticipating its price impact; auction n's market maker in lambda_n) is zero at the
    equilibrium, and the insider's is not at half its coefficients."""
    env, params = dcgenv.make("Kyle-v0", auctions=3, sigma0=1.5, sigma_u=0.5)
    eq = sequential_equilibrium(params, 3)
    theta = {"beta": jnp.asarray(eq["order_coef"], jnp.float32),
             "lambda": jnp.asarray(eq["lambda"], jnp.float32)}
    keys = jax.random.split(jax.random.key(4), 16_384)

    @jax.jit
    def per_episode(theta, keys):
        jac = jax.vmap(jax.jacrev(econ.kyle_payoffs), in_axes=(None, 0, None, None))(
            theta, keys, env, params)
        payoff = jax.vmap(econ.kyle_payoffs, in_axes=(None, 0, None, None))(
            theta, keys, env, params)
        return payoff, jac["beta"][:, 0], jnp.stack([jac["lambda"][:, 1 + n, n]
                                                     for n in range(3)], -1)

    payoff, g_beta, g_lambda = per_episode(theta, keys)
    within(payoff[:, 0], eq["insider_profit"])
    for n in range(3):
        within(payoff[:, 1 + n], -eq["sigma2"][n])
        within(g_beta[:, n], 0.0)
        within(g_lambda[:, n], 0.0)
    _, g_half, _ = per_episode({**theta, "beta": theta["beta"] / 2}, keys)
    assert np.all(np.asarray(g_half.mean(0)) > 0.1)  # ordering more pays off


def test_sequential_gradient_play_smoke():
    result = econ.main(["kyle", "--auctions", "2", "--steps", "3", "--batch", "8"])
    assert [r["coefficient"] for r in result["rows"]] == ["beta_0", "beta_1", "lambda_0",
                                                          "lambda_1"]
    _, params = dcgenv.make("Kyle-v0")
    theory = sequential_equilibrium(params, 2)
    np.testing.assert_allclose([r["theory"] for r in result["rows"]],
                               np.concatenate([theory["order_coef"], theory["lambda"]]),
                               rtol=1e-6)
