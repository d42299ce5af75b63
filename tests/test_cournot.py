"""CournotInfoSharing-v0: the rules on hand-built states, the closed-form stage-2 equilibria
(exact expected profits and first-order conditions through step, Monte Carlo through
reset/step), the sharing results, the channel, bad params, and the gradient-play baseline."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from baselines import econ
from dcgenv import comms
from dcgenv.envs.cournot import EnvState, equilibrium

CASES = [(u, share) for u in ("demand", "cost") for share in (False, True)]


def make(uncertainty="demand", num_firms=2, **kw):
    return dcgenv.make("CournotInfoSharing-v0", num_firms=num_firms, uncertainty=uncertainty,
                       **kw)


def state_from(env, w):
    """The state at reset whose standard normals are the vector ``w`` (z_theta, z_e, xi)."""
    n, k = env.num_firms, 1 if env.uncertainty == "demand" else env.num_firms
    zeros = jnp.zeros(n, w.dtype)
    return EnvState(time=jnp.zeros((), jnp.int32), z_theta=w[:k], z_e=w[k:k + n],
                    xi=w[k + n:], disclosure=zeros, messages=zeros)


def num_normals(env):
    return (1 if env.uncertainty == "demand" else env.num_firms) + 2 * env.num_firms


def play(env, params, d, coefs, state, key=None):
    """Rewards of one episode from ``state``: disclosures ``d`` f[N], then the linear quantities
    ``q_i = alpha_i + beta_i s_i + gamma_i sum_{j != i} m_j`` (``coefs`` f[N, 3])."""
    k1, k2 = jax.random.split(jax.random.key(0) if key is None else key)
    obs, state, *_ = env.transition(k1, state, d, params)
    m = obs["messages"]
    others = m.sum(1) - jnp.diagonal(m)
    q = coefs[:, 0] + coefs[:, 1] * obs["signal"][:, 0] + coefs[:, 2] * others
    return env.transition(k2, state, q, params)[2]


def expected_rewards(env, params, d, coefs):
    """Exact expected rewards: with the Continuous channel an episode's rewards ``f(w)`` are
    quadratic in the standard normals ``w`` drawn at reset, so ``E f(w) = f(0) + tr(f''(0)) /
    2``, and the second differences ``f(e_k) + f(-e_k) - 2 f(0)`` are ``f''(0)_kk`` exactly."""
    k = num_normals(env)
    points = jnp.concatenate([jnp.zeros((1, k)), jnp.eye(k), -jnp.eye(k)])
    f = jax.vmap(lambda w: play(env, params, d, coefs, state_from(env, w)))(points)
    return (1 - k) * f[0] + 0.5 * f[1:].sum(0)


def eq_coefs(env, params, share):
    eq = equilibrium(env, params, share=share)
    return jnp.tile(jnp.stack([eq["alpha"], eq["beta"], eq["gamma"]]), (env.num_firms, 1)), eq


def test_rules_on_a_hand_built_state():
    env, params = make("demand", num_firms=3, a=5.0, b=2.0, c=1.0, sigma_theta=2.0,
                       sigma_e=0.5)
    w = jnp.array([0.5, 1.0, -2.0, 0.0, 0.3, -1.0, 2.0])  # theta = 1; s = 1.5, 0, 1; xi
    s0 = state_from(env, w)
    obs = env.get_obs(s0, params)
    np.testing.assert_array_equal(obs["stage"], 0)
    np.testing.assert_allclose(obs["signal"], 0.0)  # disclosure is chosen before the signal
    # step 0: firm 0 shares fully, firm 1 nothing, firm 2 half; nobody is paid yet
    obs, s1, reward, term, trunc, info = env.step(jax.random.key(0), s0,
                                                  jnp.array([1.0, -3.0, 0.5]), params)
    sigma_s = np.sqrt(4.0 + 0.25)
    np.testing.assert_allclose(obs["signal"][:, 0], [1.5, 0.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(obs["messages"][1], [1.5, -sigma_s, 0.5 + 0.5 * 2 * sigma_s],
                               rtol=1e-6)
    np.testing.assert_allclose(obs["disclosure"][2], [1.0, 0.0, 0.5])
    np.testing.assert_array_equal(obs["stage"], 1)
    np.testing.assert_allclose(reward, 0.0)
    assert not term and not trunc and float(info["bits"]) == 96.0
    # step 1: q = (1, 0.5, 0.5): P = 5 + 1 - 2 * 2 = 2, profits (P - c) q = (1, 0.5, 0.5)
    obs, s2, reward, term, trunc, info = env.step(jax.random.key(1), s1,
                                                  jnp.array([1.0, 0.5, 0.5]), params)
    np.testing.assert_allclose(reward, [1.0, 0.5, 0.5], rtol=1e-6)
    np.testing.assert_allclose([info["price"], info["intercept"]], [2.0, 6.0], rtol=1e-6)
    assert term and not trunc and float(info["bits"]) == 0.0 and int(s2.time) == 0

    # private costs: c_i = c + theta_i, the intercept is a
    env, params = make("cost", a=5.0, b=1.0, c=1.0, sigma_theta=1.0, sigma_e=0.0)
    s0 = state_from(env, jnp.array([0.5, -1.0, 0.0, 0.0, 0.0, 0.0]))
    _, s1, *_ = env.step(jax.random.key(0), s0, jnp.zeros(2), params)
    _, _, reward, _, _, info = env.step(jax.random.key(1), s1, jnp.array([1.0, 2.0]), params)
    np.testing.assert_allclose(info["costs"], [1.5, 0.0])
    np.testing.assert_allclose(reward, [0.5, 4.0])  # P = 5 - 3 = 2


def test_illegal_actions_are_finite():
    env, params = make("cost")
    s = state_from(env, jnp.ones(6))
    for bad in (jnp.nan, jnp.inf, -1e30):
        obs, s1, *_ = env.step(jax.random.key(0), s, jnp.array([bad, 0.5]), params)
        _, _, reward, *_ = env.step(jax.random.key(1), s1, jnp.array([bad, 1.0]), params)
        assert np.all(np.isfinite(reward)) and np.all(np.isfinite(obs["messages"]))
        assert 0.0 <= float(obs["disclosure"][0, 0]) <= 1.0


@pytest.mark.parametrize("uncertainty, share", CASES)
def test_exact_expected_profits_and_first_order_conditions(uncertainty, share, num_firms=3):
    """Through step, exactly (expected_rewards), for three firms (two: the next test): at each
    closed form, each firm's expected
    profit is the formula and its gradient in its own (alpha, beta, gamma) is 0; scaling a
    coefficient away from it gives a clearly non-zero gradient."""
    env, params = make(uncertainty, num_firms, a=3.0, b=1.5, c=0.5, sigma_theta=1.2,
                       sigma_e=0.8)
    d = jnp.full(num_firms, 1.0 if share else 0.0)
    coefs, eq = eq_coefs(env, params, share)
    np.testing.assert_allclose(expected_rewards(env, params, d, coefs), eq["profit"],
                               rtol=1e-5)
    own = jax.jit(jax.jacrev(lambda c: expected_rewards(env, params, d, c)))
    grads = lambda c: own(c)[jnp.arange(num_firms), jnp.arange(num_firms)]  # [N, 3]
    scale = float(jnp.max(jnp.abs(coefs)))
    np.testing.assert_allclose(grads(coefs), 0.0, atol=1e-5 * scale)
    for j in range(3):  # firm 0 deviates in one coefficient
        away = coefs.at[0, j].add(0.3)
        assert abs(float(grads(away)[0, j])) > 0.05, j


@pytest.mark.parametrize("uncertainty, share", CASES)
def test_gradient_ascent_reaches_the_closed_form(uncertainty, share):
    """Simultaneous gradient ascent of each firm's exact expected profit in its own
    coefficients (two firms), from a different start, converges to the closed form."""
    env, params = make(uncertainty, 2, a=2.0, sigma_e=0.7)
    d = jnp.full(2, 1.0 if share else 0.0)
    target, _ = eq_coefs(env, params, share)
    own = jax.jacrev(lambda c: expected_rewards(env, params, d, c))
    step = lambda c, _: (c + 0.1 * own(c)[jnp.arange(2), jnp.arange(2)], None)
    coefs, _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=600))(
        jnp.array([[0.2, 0.5, -0.4], [1.0, -0.3, 0.6]]))
    np.testing.assert_allclose(coefs, target, atol=1e-4)


def within(samples, expected, sigmas=4.0):
    samples = np.asarray(samples, np.float64)
    se = samples.std() / np.sqrt(len(samples))
    assert abs(samples.mean() - expected) <= sigmas * se + 1e-7, (samples.mean(), expected, se)
    return se


def episode(env, params, share, key):
    """One episode through reset/step at the closed form for ``share`` (all d = 0 or 1)."""
    k0, k1 = jax.random.split(key)
    _, state = env.reset(k0, params)
    coefs, _ = eq_coefs(env, params, share)
    return play(env, params, jnp.full(env.num_firms, float(share)), coefs, state, k1)


@pytest.mark.parametrize("uncertainty", ["demand", "cost"])
def test_monte_carlo_profits_and_sharing_ranking(uncertainty):
    """Monte Carlo through reset/step (fixed key, the same episodes for both profiles): each
    firm's mean profit is the formula within 4 standard errors, and the paired difference
    none - full is the formula's and has the sign of the sharing result, significantly."""
    env, params = make(uncertainty)
    keys = jax.random.split(jax.random.key(7), 40_000)
    none, full = jax.jit(jax.vmap(lambda k: (episode(env, params, False, k),
                                             episode(env, params, True, k))))(keys)
    p_none = float(equilibrium(env, params, share=False)["profit"])
    p_full = float(equilibrium(env, params, share=True)["profit"])
    for i in range(2):
        within(none[:, i], p_none)
        within(full[:, i], p_full)
        diff = np.asarray(none[:, i] - full[:, i], np.float64)
        se = within(diff, p_none - p_full)
        sign = 1.0 if uncertainty == "demand" else -1.0  # demand: keep it; cost: share it
        assert sign * diff.mean() > 4 * se


def test_sharing_ranking_by_formula():
    """Demand: nobody sharing beats everybody sharing (equal when signals are exact); cost:
    the reverse, over a grid of firm counts and noise levels."""
    for n in (2, 3, 5, 10):
        for sigma_e in (0.1, 0.5, 1.0, 3.0):
            for uncertainty, sign in (("demand", 1.0), ("cost", -1.0)):
                env, params = make(uncertainty, n, sigma_e=sigma_e)
                gap = (equilibrium(env, params, share=False)["profit"]
                       - equilibrium(env, params, share=True)["profit"])
                assert sign * float(gap) > 1e-6, (n, sigma_e, uncertainty)
        env, params = make("demand", n, sigma_e=0.0)
        np.testing.assert_allclose(equilibrium(env, params, share=False)["profit"],
                                   equilibrium(env, params, share=True)["profit"], rtol=1e-6)


def test_channel_noise_bits_and_gradient_to_the_disclosure():
    env, params = make("demand", channel=comms.GaussianNoise(std=0.5))
    s0 = state_from(env, jnp.array([1.0, 0.0, 0.0, 0.0, 0.0]))
    obs, *_ , info = env.step(jax.random.key(0), s0, jnp.ones(2), params)
    assert float(info["bits"]) == 64.0
    assert np.all(obs["messages"][0] != 1.0)  # s = 1 arrived with channel noise
    # the other firm's expected profit responds to firm 0's disclosure: its gradient in d_0
    env, params = make("cost")
    coefs, _ = eq_coefs(env, params, True)
    g = jax.grad(lambda d0: expected_rewards(env, params, jnp.stack([d0, 1.0]), coefs)[1])(0.7)
    assert np.isfinite(float(g)) and abs(float(g)) > 1e-3


@pytest.mark.parametrize("override, match", [
    ({"num_firms": 1}, "num_firms"), ({"uncertainty": "supply"}, "uncertainty"),
    ({"sigma_theta": 0.0}, "sigma_theta"), ({"sigma_e": -1.0}, "sigma_e"), ({"b": 0.0}, "b"),
    ({"channel": "gaussain"}, "channel"), ({"channel": 3}, "channel")])
def test_bad_params_raise_naming_the_problem(override, match):
    with pytest.raises(ValueError, match=match):
        dcgenv.make("CournotInfoSharing-v0", **override)


def test_gradient_play_baseline_smoke():
    result = econ.main(["cournot", "--share", "--uncertainty", "cost", "--steps", "3",
                        "--batch", "8", "--set", "sigma_e=2"])
    assert [r["coefficient"] for r in result["rows"]][:3] == ["alpha firm 0", "beta firm 0",
                                                              "gamma firm 0"]
    assert all(np.isfinite(r["learned"]) for r in result["rows"])
    env, params = make("cost", sigma_e=2.0)
    eq = equilibrium(env, params, share=True)
    np.testing.assert_allclose([r["theory"] for r in result["rows"][:3]],
                               [eq["alpha"], eq["beta"], eq["gamma"]], rtol=1e-6)


def test_learned_disclosure_smoke():
    result = econ.main(["cournot", "--learn-disclosure", "--uncertainty", "cost", "--firms", "3",
                        "--steps", "3", "--batch", "8", "--warmup", "1"])
    d = [r["learned"] for r in result["rows"] if r["coefficient"].startswith("d firm")]
    profits = [r["learned"] for r in result["rows"] if r["coefficient"].startswith("profit")]
    assert len(d) == 3 and all(0.0 <= x <= 1.0 for x in d)
    assert len(profits) == 3 and np.all(np.isfinite(profits))
    assert np.isfinite([result["polar"]["none"], result["polar"]["full"]]).all()
    assert isinstance(result["matches"], bool)


@pytest.mark.parametrize("uncertainty, sign", [("demand", -1.0), ("cost", 1.0)])
def test_learned_disclosure_moves_the_way_theory_predicts(uncertainty, sign):
    """A short two-timescale run from d = 0.5: the disclosures fall under demand uncertainty
    (not sharing pays) and rise under cost uncertainty (sharing pays), for every firm."""
    result = econ.run_cournot_disclosure(2, uncertainty, steps=150, batch=512,
                                         disclosure_lr=0.01, warmup=50, d0=0.5,
                                         eval_batch=1024)
    d = np.asarray(result["policy"]["d"])
    assert np.all(sign * (d - 0.5) > 0.1), d
    path = np.asarray(result["d_path"])
    np.testing.assert_allclose(path[0], 0.5)  # frozen through the warm-up
