"""PublicGoods-v0: the rules on hand-built states (hard and smooth provision), the closed forms
(Irwin-Hall excess, expected social optimum and free riding; Monte Carlo through reset/step),
free riding under the smooth option, the full-information equilibrium, the channel, jit/vmap,
bad params."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv import comms
from dcgenv.envs.public_goods import (
    EnvState,
    expected_social_optimum,
    full_information_equilibrium,
    irwin_hall_cdf,
    irwin_hall_excess,
    social_optimum,
)
from tests.test_conformance import assert_tree_equal, random_run


def make(num_players=3, **kw):
    return dcgenv.make("PublicGoods-v0", num_players=num_players, **kw)


def state_from(env, u):
    n = env.num_players
    return EnvState(time=jnp.zeros((), jnp.int32), u=jnp.asarray(u, jnp.float32),
                    messages=jnp.zeros((n, *env.received_shape), jnp.float32))


def act(env, message=None, contribution=None):
    n = env.num_players
    return {"message": jnp.zeros((n, *env.message_shape)) if message is None else message,
            "contribution": jnp.zeros(n) if contribution is None else contribution}


def play(env, params, state, contributions, key=None):
    """Talk (each player announces its valuation), then ``contributions``; returns step 1's
    ``(reward, info)``."""
    k1, k2 = jax.random.split(jax.random.key(0) if key is None else key)
    v = env.valuations(state, params)
    obs, state, *_ = env.step(k1, state, act(env, message=v[:, None]), params)
    _, _, reward, term, _, info = env.step(k2, state, act(env, contribution=contributions),
                                           params)
    return reward, info


def test_rules_on_a_hand_built_state():
    env, params = make(endowment=1.0, threshold=1.5, v_max=2.0)
    s0 = state_from(env, [0.4, 0.3, 0.1])  # v = 0.8, 0.6, 0.2
    obs = env.get_obs(s0, params)
    np.testing.assert_allclose(obs["valuation"][:, 0], [0.8, 0.6, 0.2], rtol=1e-6)
    np.testing.assert_array_equal(obs["stage"], 0)
    # step 0: talk; nobody is paid, everybody hears every message
    msg = jnp.array([[0.8], [-3.0], [jnp.nan]])
    obs, s1, reward, term, trunc, info = env.step(jax.random.key(0), s0, act(env, msg), params)
    np.testing.assert_allclose(obs["messages"][2, :, 0], [0.8, -3.0, 0.0])  # NaN read as 0
    np.testing.assert_array_equal(obs["stage"], 1)
    np.testing.assert_array_equal(reward, 0.0)
    assert not term and not trunc and float(info["bits"]) == 96.0
    # step 1: C = 1.5 = T, provided: e - c + v; welfare = optimum = 3 + (1.6 - 1.5)
    step1 = lambda c: env.step(jax.random.key(1), s1, act(env, contribution=jnp.array(c)),
                               params)
    obs, s2, reward, term, trunc, info = step1([0.75, 0.5, 0.25])
    np.testing.assert_allclose(reward, [1.05, 1.1, 0.95], rtol=1e-6)
    np.testing.assert_allclose([info["provided"], info["welfare"], info["optimum_welfare"]],
                               [1.0, 3.1, 3.1], rtol=1e-6)
    assert term and not trunc and float(info["bits"]) == 0.0 and int(s2.time) == 0
    # just short of T: not provided, no refunds
    _, _, reward, *_, info = step1([0.75, 0.5, 0.2])
    np.testing.assert_allclose(reward, [0.25, 0.5, 0.8], rtol=1e-6)
    assert float(info["provided"]) == 0.0
    # illegal contributions: clipped to [0, e], NaN read as 0 (C = 1 < T)
    _, _, reward, *_, info = step1([2.0, -1.0, jnp.nan])
    np.testing.assert_allclose(info["contributions"], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(reward, [0.0, 1.0, 1.0])
    # smooth: at C = T, p = 1/2; the expected payoff e - c + v p
    env, params = make(endowment=1.0, threshold=1.5, v_max=2.0, smooth=True)
    _, s1, *_ = env.step(jax.random.key(0), state_from(env, [0.4, 0.3, 0.1]), act(env), params)
    _, _, reward, *_, info = env.step(jax.random.key(1), s1, act(
        env, contribution=jnp.array([0.75, 0.5, 0.25])), params)
    np.testing.assert_allclose(reward, [0.65, 0.8, 0.85], rtol=1e-6)
    np.testing.assert_allclose(info["provided"], 0.5)


def test_irwin_hall_closed_forms():
    # two uniforms: triangular on [0, 2]; E[(X - 1)+] = 1/6, E[(X - 1.5)+] = 1/48
    np.testing.assert_allclose(irwin_hall_excess(2, 1.0), 1 / 6, rtol=1e-6)
    np.testing.assert_allclose(irwin_hall_excess(2, 1.5), 1 / 48, rtol=1e-5)
    np.testing.assert_allclose(irwin_hall_cdf(2, 1.5), 7 / 8, rtol=1e-6)
    for n in (2, 3, 5):
        np.testing.assert_allclose(irwin_hall_excess(n, 0.0), n / 2, rtol=1e-6)
        np.testing.assert_allclose(irwin_hall_excess(n, float(n)), 0.0, atol=1e-6)
        np.testing.assert_allclose(irwin_hall_cdf(n, n / 2), 0.5, rtol=1e-6)  # symmetric
    # three uniforms at t = 1.5 (the mean): E|X - 1.5| / 2 = 13/64
    np.testing.assert_allclose(irwin_hall_excess(3, 1.5), 13 / 64, rtol=1e-6)
    # the expectation's derivative in t is -P(X > t)
    t = jnp.linspace(0.2, 3.8, 7)
    d = jax.vmap(jax.grad(lambda t: irwin_hall_excess(4, t)))(t)
    np.testing.assert_allclose(d, irwin_hall_cdf(4, t) - 1.0, atol=1e-5)


def within(samples, expected, sigmas=4.0):
    samples = np.asarray(samples, np.float64)
    se = samples.std() / np.sqrt(len(samples))
    assert abs(samples.mean() - expected) <= sigmas * se + 1e-6, (samples.mean(), expected, se)


@pytest.mark.parametrize("n, overrides", [
    (3, {}), (4, {"endowment": 1.5, "threshold": 2.5, "v_max": 1.2})])
def test_monte_carlo_social_optimum_and_free_riding(n, overrides):
    """Through reset/step (fixed key): with truthful talk and the full-information
    equilibrium's contributions computed from the messages, every episode's welfare is its
    optimum and the mean matches the closed form (and so does the provision rate) within 4
    standard errors; free riding gives exactly N e on every episode."""
    env, params = make(n, **overrides)
    bench = expected_social_optimum(env, params)

    def episode(key):
        k0, k1, k2 = jax.random.split(key, 3)
        obs, state = env.reset(k0, params)
        obs, state, *_ = env.step(k1, state, act(env, message=obs["valuation"]), params)
        heard = obs["messages"][0, :, 0]  # the valuations, as announced
        c = full_information_equilibrium(heard, params)
        _, _, _, _, _, info = env.step(k2, state, act(env, contribution=c), params)
        _, _, _, _, _, idle = env.step(k2, state, act(env), params)
        return info, idle

    info, idle = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(5), 20_000))
    np.testing.assert_allclose(info["welfare"], info["optimum_welfare"], rtol=2e-5)
    within(info["welfare"], float(bench["welfare"]))
    within(info["provided"], float(bench["provided"]))
    np.testing.assert_allclose(idle["welfare"], float(bench["free_riding"]), rtol=1e-6)
    np.testing.assert_array_equal(idle["provided"], 0.0)
    assert float(bench["welfare"]) > float(bench["free_riding"]) + 0.1


def test_free_riding_under_smooth_provision():
    """Smooth option, everybody else at 0: where the good cannot be provided (T > e), an
    agent's payoff gradient in its own contribution is <= 0 on all of [0, e], for every
    valuation; where it can (T <= e) the gradient turns positive near c = T."""
    c = jnp.linspace(0.0, 1.0, 21)

    def own_gradient(params, u, ci):
        env = dcgenv.make("PublicGoods-v0", smooth=True)[0]
        _, s1, *_ = env.step(jax.random.key(0), state_from(env, u), act(env), params)
        pay = lambda x: env.step(jax.random.key(1), s1, act(
            env, contribution=jnp.zeros(3).at[0].set(x)), params)[2][0]
        return jax.grad(pay)(ci)

    grads = jax.jit(jax.vmap(jax.vmap(own_gradient, (None, None, 0)), (None, 0, None)))
    env, params = make(threshold=1.5, smooth=True)  # e = v_max = 1, tau = 0.05
    g = grads(params, jnp.array([[0.0, 0, 0], [0.5, 0, 0], [1.0, 0, 0]]), c)
    g = np.asarray(g)
    assert np.all(g <= 0.0) and np.all(g[:, 1:-1] < -0.99)  # at the clip's ends: -1/2
    _, params = make(threshold=0.8, smooth=True)
    g = grads(params, jnp.array([[1.0, 0, 0]]), jnp.array([0.8]))
    np.testing.assert_allclose(g, -1.0 + 1.0 / (4 * 0.05), rtol=1e-4)  # +4: not vacuous


def test_full_information_equilibrium_has_no_profitable_deviation():
    env, params = make(endowment=1.0, threshold=1.2, v_max=1.0)
    state = state_from(env, [0.9, 0.5, 0.3])
    v = env.valuations(state, params)
    c_star = full_information_equilibrium(v, params)
    np.testing.assert_allclose(c_star.sum(), 1.2, rtol=2e-5)
    assert np.all(np.asarray(c_star) <= np.asarray(v))
    reward, info = play(env, params, state, c_star)
    assert float(info["provided"]) == 1.0
    np.testing.assert_allclose(info["welfare"], social_optimum(v, params), rtol=1e-5)
    for i in range(3):
        for dev in (c_star[i] - 0.01, c_star[i] + 0.01, 0.0, 1.0):
            r, _ = play(env, params, state, c_star.at[i].set(dev))
            assert float(r[i]) <= float(reward[i]) + 1e-6, (i, dev)
        assert float(play(env, params, state, c_star.at[i].add(-0.01))[0][i]) < float(
            reward[i]) - 0.1  # withdrawing loses the good
    # sum v < T: nobody contributes; valuations above e: sum min(v, e) < T <= sum v, no
    # efficient equilibrium (the contributions needed exceed what someone would pay)
    np.testing.assert_array_equal(full_information_equilibrium(v, params.replace(
        threshold=1.8)), 0.0)
    poor = params.replace(endowment=0.4)
    assert float(jnp.minimum(v, 0.4).sum()) < 1.2 <= float(v.sum())
    np.testing.assert_array_equal(full_information_equilibrium(v, poor), 0.0)


def test_channels_bits_shapes_and_gradient_through_talk():
    env, params = make(channel=comms.GumbelSoftmax(vocab_size=4), message_dim=7)
    assert env.message_shape == (4,) and env.received_shape == (4,)
    logits = jnp.eye(3, 4) * 5.0
    obs, _, _, _, _, info = env.step(jax.random.key(0), state_from(env, [0.1, 0.2, 0.3]),
                                     act(env, message=logits), params)
    np.testing.assert_array_equal(obs["messages"][1], jnp.eye(3, 4))  # one-hots, to everybody
    assert float(info["bits"]) == 6.0  # 3 symbols of log2(4) bits
    # continuous talk: player 1's payoff responds to player 0's message when contributions
    # depend on what was heard (routing is differentiable)
    env, params = make(message_dim=2, smooth=True)
    s0 = state_from(env, [0.5, 0.5, 0.5])

    def payoff1(m0):
        msg = jnp.zeros((3, 2)).at[0].set(m0)
        obs, s1, *_ = env.step(jax.random.key(0), s0, act(env, message=msg), params)
        c = 0.3 + 0.1 * obs["messages"][:, 0, 0]  # everybody reacts to player 0's message
        return env.step(jax.random.key(1), s1, act(env, contribution=c), params)[2][1]

    g = jax.grad(payoff1)(jnp.array([0.5, -0.2]))
    assert np.all(np.isfinite(g)) and abs(float(g[0])) > 1e-3 and float(g[1]) == 0.0


def test_jit_vmap_bit_identical_smooth_and_gumbel():
    env, params = make(4, channel=comms.GumbelSoftmax(vocab_size=3), channel_train=True,
                       smooth=True)
    run = jax.jit(random_run(env, num_steps=6))
    keys = jax.random.split(jax.random.key(3), 8)
    batched = jax.jit(jax.vmap(run, in_axes=(0, None)))(keys, params)
    for i in range(2):
        assert_tree_equal(run(keys[i], params), jax.tree.map(lambda x, i=i: x[i], batched))
    assert np.all(np.isfinite(np.asarray(batched[2])))


@pytest.mark.parametrize("override, match", [
    ({"num_players": 1}, r"num_players must be an integer in \[2, inf\)"),
    ({"threshold": 0.0}, r"threshold=0.0 is outside its range \(0, inf\)"),
    ({"endowment": -1.0}, r"endowment=-1.0 is outside its range \(0, inf\)"),
    ({"v_max": 0.0}, r"v_max"), ({"tau": 0.0}, r"tau"), ({"message_dim": 0}, "message_dim"),
    ({"smooth": 1}, "smooth"), ({"channel": "gumbl"}, "channel"),
    ({"channel": 3}, "channel")])
def test_bad_params_raise_naming_the_problem(override, match):
    with pytest.raises(ValueError, match=match):
        dcgenv.make("PublicGoods-v0", **override)


@pytest.mark.parametrize("talk", ["continuous", "gumbel"])
def test_gradient_play_baseline_smoke(talk):
    from baselines import econ

    result = econ.main(["public_goods", "--talk", talk, "--steps", "3", "--batch", "8"])
    assert [r["coefficient"] for r in result["rows"]] == ["welfare", "provided"]
    assert all(np.isfinite(r["learned"]) for r in result["rows"])
    env, params = make()
    np.testing.assert_allclose(result["rows"][0]["theory"],
                               expected_social_optimum(env, params)["welfare"], rtol=1e-6)
    assert result["free_riding_welfare"] == 3.0
