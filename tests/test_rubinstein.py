"""Rules of Rubinstein-v0: SPE outcome, role alternation, discounting, cap, smooth gradients."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dcgenv
from dcgenv.envs.rubinstein import Rubinstein, spe_policy, spe_share

DELTAS = [(0.9, 0.9), (0.9, 0.5), (0.3, 0.8), (0.99, 0.95), (0.5, 0.0)]


def play(env, params, actions_seq):
    """Step through a list/array of agent-stacked actions from reset; per-step outputs."""
    def body(carry, actions):
        obs, state = carry
        obs2, state, reward, term, trunc, info = env.step(jax.random.key(0), state, actions,
                                                          params)
        return (obs2, state), (obs, reward, term, trunc, info)

    obs, state = env.reset(jax.random.key(0), params)
    return jax.lax.scan(body, (obs, state), actions_seq)[1]


def acts(offers, accepts):
    """Agent-stacked actions for a sequence of steps from [steps, 2] arrays."""
    return {"offer": jnp.asarray(offers, jnp.float32), "accept": jnp.asarray(accepts, jnp.float32)}


@pytest.mark.parametrize("d1,d2", DELTAS)
def test_spe_strategies_give_rubinstein_split_at_once(d1, d2):
    env, params = dcgenv.make("Rubinstein-v0", delta1=d1, delta2=d2)
    traj, _ = dcgenv.rollout(env, params, jax.random.key(0), num_envs=1, num_steps=2,
                             policy=spe_policy)
    reward = np.asarray(traj.reward[:, 0])
    first = (1 - d2) / (1 - d1 * d2)
    np.testing.assert_allclose(reward[1], [first, 1 - first], atol=1e-5)  # f32 deltas
    np.testing.assert_array_equal(reward[0], [0.0, 0.0])
    assert not bool(traj.terminated[0, 0]) and bool(traj.terminated[1, 0])


def test_spe_vmapped_over_discount_params():
    env, params = dcgenv.make("Rubinstein-v0")
    d1, d2 = (jnp.asarray(x, jnp.float32) for x in zip(*DELTAS, strict=True))
    policy = lambda obs: spe_policy(None, obs)

    def episode(delta1, delta2):
        p = params.replace(delta1=delta1, delta2=delta2)
        obs, state = env.reset(jax.random.key(0), p)
        obs, state, r0, *_ = env.step(jax.random.key(1), state, policy(obs), p)
        return r0 + env.step(jax.random.key(2), state, policy(obs), p)[2]

    returns = jax.vmap(episode)(d1, d2)
    np.testing.assert_allclose(returns[:, 0], (1 - d2) / (1 - d1 * d2), atol=1e-5)


@pytest.mark.parametrize("d1,d2", DELTAS[:3])
def test_greedy_proposal_rejected_then_spe_of_second_round(d1, d2):
    """Player 1 asks for more than its SPE share: player 2 rejects and gets its own SPE share
    as proposer in round 1, both discounted once; roles and observations swap."""
    env, params = dcgenv.make("Rubinstein-v0", delta1=d1, delta2=d2)
    obs, state = env.reset(jax.random.key(0), params)
    greedy = {"offer": jnp.full(2, float(spe_share(d1, d2)) + 0.05), "accept": jnp.zeros(2)}
    rewards = []
    for t in range(4):
        assert obs["round"].tolist() == [t // 2] * 2 and obs["phase"].tolist() == [t % 2] * 2
        assert obs["role"].tolist() == ([0, 1] if t < 2 else [1, 0])
        assert obs["active"].tolist() == [[True, False], [False, True]][(t // 2 + t % 2) % 2]
        actions = greedy if t < 2 else spe_policy(None, obs)
        obs, state, reward, term, trunc, info = env.step(jax.random.key(t), state, actions, params)
        rewards.append(np.asarray(reward))
        assert bool(term) == (t == 3)
    assert np.all(np.asarray(rewards[:3]) == 0)
    second = (1 - d1) / (1 - d1 * d2)  # player 2's share as first proposer of round 1
    np.testing.assert_allclose(rewards[3], [d1 * (1 - second), d2 * second], atol=1e-6)


def test_observation_reports_offer_from_each_side_and_discounts():
    env, params = dcgenv.make("Rubinstein-v0", delta1=0.7, delta2=0.4)
    obs, _, _, _, _ = play(env, params, acts([[0.8, 0.1], [0.5, 0.0]], [[0, 0], [1, 0]]))
    np.testing.assert_allclose(obs["offer"][1], [0.8, 0.2], atol=1e-7)  # respond step
    np.testing.assert_allclose(obs["discounts"][0], [[0.7, 0.4], [0.4, 0.7]], atol=1e-7)


@pytest.mark.parametrize("max_rounds", [1, 3])
def test_no_agreement_by_the_cap_pays_nothing_and_terminates(max_rounds):
    env, params = dcgenv.make("Rubinstein-v0", max_rounds=max_rounds)
    n = 2 * max_rounds
    obs, reward, term, trunc, info = play(env, params, acts(np.full((n, 2), 0.9),
                                                            np.zeros((n, 2))))
    assert np.all(np.asarray(reward) == 0)
    assert np.asarray(term).tolist() == [False] * (n - 1) + [True]
    assert not np.any(np.asarray(trunc))


def test_last_round_proposer_takes_everything_discounted():
    env, params = dcgenv.make("Rubinstein-v0", delta1=0.8, delta2=0.6, max_rounds=3)
    accept_last = np.zeros((6, 2))
    accept_last[5] = 1.0
    _, reward, term, _, _ = play(env, params, acts(np.ones((6, 2)), accept_last))
    np.testing.assert_allclose(np.asarray(reward).sum(0), [0.8**2, 0.0], atol=1e-7)


def test_spe_share_finite_cap_by_backward_induction():
    assert float(spe_share(0.8, 0.6, 1)) == 1.0  # ultimatum game
    np.testing.assert_allclose(float(spe_share(0.8, 0.6, 2)), 1 - 0.6, atol=1e-7)
    np.testing.assert_allclose(float(spe_share(0.8, 0.6, 3)), 1 - 0.6 * (1 - 0.8), atol=1e-7)
    np.testing.assert_allclose(float(spe_share(0.8, 0.6, 200)), float(spe_share(0.8, 0.6)),
                               atol=1e-6)
    with pytest.raises(ValueError, match="rounds"):
        spe_share(0.8, 0.6, 0)


def test_illegal_actions_are_clipped_and_nan_rejects():
    env, params = dcgenv.make("Rubinstein-v0", delta1=0.9, delta2=0.9)
    _, reward, term, _, _ = play(env, params, acts([[7.0, 0], [0, 0]], [[0, 0], [0, 1]]))
    np.testing.assert_allclose(np.asarray(reward[1]), [1.0, 0.0])  # a claim of 7 is 1
    _, reward, term, _, _ = play(env, params, acts([[0.3, 0], [0, 0]], [[0, 0], [0, np.nan]]))
    assert np.all(np.asarray(reward) == 0) and not np.any(np.asarray(term))


def test_bad_max_rounds_raises():
    with pytest.raises(ValueError, match=r"max_rounds=0 is outside its range \[1, inf\)"):
        dcgenv.make("Rubinstein-v0", max_rounds=0)
    env, params = dcgenv.make("Rubinstein-v0")
    with pytest.raises(ValueError, match="max_rounds"):  # replace() checks nothing
        env.observation_space(params.replace(max_rounds=0))


STEPS = 12
ENVS = {smooth: Rubinstein(smooth_accept=smooth) for smooth in (False, True)}
_jit_play = jax.jit(play, static_argnums=0)
unit_or_junk = st.one_of(st.floats(-2, 3, width=32), st.sampled_from([np.nan, np.inf, -np.inf]))


@pytest.mark.parametrize("smooth", [False, True])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_shares_never_exceed_the_surplus(smooth, data):
    env = ENVS[smooth]
    params = env.default_params.replace(max_rounds=4, delta1=data.draw(st.floats(0, 1)),
                                        delta2=data.draw(st.floats(0, 1)))
    arrays = hnp.arrays(np.float32, (STEPS, 2), elements=unit_or_junk)
    _, reward, term, _, _ = _jit_play(env, params, acts(data.draw(arrays), data.draw(arrays)))
    reward, term = np.asarray(reward), np.asarray(term)
    assert np.all(np.isfinite(reward)) and np.all(reward >= 0)
    assert np.all(reward.sum(1) <= 1 + 1e-6)
    episode = np.cumsum(np.concatenate([[0], term[:-1]]))  # episode index of each step
    for e in np.unique(episode):
        assert reward[episode == e].sum() <= 1 + 1e-6



def test_smooth_return_gradient_matches_finite_differences():
    env = Rubinstein(smooth_accept=True)
    params = env.default_params.replace(delta1=0.9, delta2=0.7, max_rounds=3)

    def player_return(offers, player):
        """Proposers claim ``offers[round]``; responders accept with a sigmoid of the offer."""
        obs, state = env.reset(jax.random.key(0), params)
        total = jnp.zeros(2)
        for t in range(6):
            accept = jax.nn.sigmoid((obs["offer"] - 0.35) / 0.1)
            actions = {"offer": jnp.full(2, offers[t // 2]), "accept": accept}
            obs, state, reward, *_ = env.step(jax.random.key(t), state, actions, params)
            total = total + reward
        return total[player]

    offers = jnp.array([0.62, 0.55, 0.7])
    eps = 2e-3
    value, grad_fn = jax.jit(player_return, static_argnums=1), jax.jit(
        jax.grad(player_return), static_argnums=1)
    for player in (0, 1):
        grad = grad_fn(offers, player)
        fd = [(value(offers.at[i].add(eps), player) - value(offers.at[i].add(-eps), player))
              / (2 * eps) for i in range(3)]
        np.testing.assert_allclose(grad, np.asarray(fd), rtol=2e-3, atol=2e-4)
        assert np.all(np.abs(np.asarray(grad)) > 1e-3)


def test_ppo_baseline_trains_on_the_registered_game_one_run_per_pair():
    """baselines.rubinstein's MAPPO config: Rubinstein-v0 itself (hard acceptance, scalar
    offer/accept boxes with 0-d Gaussian heads), the pair and the cap as env_kwargs."""
    from agents import networks as nets
    from baselines import rubinstein as rub

    cfg = rub.Config(pairs=((0.9, 0.5), (0.6, 0.7)), max_rounds=3, ppo_updates=2)
    for d1, d2 in cfg.pairs:
        config = rub.ppo_config(cfg, d1, d2)
        env, params = config.environment
        assert config.env == "Rubinstein-v0" and type(env) is Rubinstein
        assert not env.smooth_accept
        np.testing.assert_allclose([params.delta1, params.delta2], [d1, d2])
        assert (params.max_rounds, params.max_steps_in_episode) == (3, 6)
        heads = nets.head_spec(env.action_space(params))
        assert [(h.name, h.kind, h.shape) for h in heads] == [("offer", "gaussian", ()),
                                                               ("accept", "gaussian", ())]
        assert config.turn_taking is True
    off = dataclasses.replace(cfg, ppo_turn_taking=False)
    assert rub.ppo_config(off, 0.9, 0.5).turn_taking is False
