"""JaxMARL environments behind dcgenv's API: JaxMARL's own trajectories, through dcgenv's."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv import spaces
from dcgenv.adapters import stack, unstack
from dcgenv.adapters.from_jaxmarl import from_jaxmarl, merge_spaces

jaxmarl = pytest.importorskip("jaxmarl")  # the dev extra installs it; core installs do not


def test_simple_spread_matches_jaxmarl_step_for_step_with_auto_reset():
    inner = jaxmarl.make("MPE_simple_spread_v3")
    env, params = from_jaxmarl(inner)
    assert env.agents == tuple(inner.agents) and params.max_steps_in_episode == inner.max_steps + 1
    key = jax.random.key(0)
    obs, state = env.reset(key, params)
    ref_obs, ref_state = inner.reset(key)
    step, ref_step = jax.jit(env.step), jax.jit(inner.step)
    ends = 0
    for t in range(2 * inner.max_steps + 3):
        k_act, k_step = jax.random.split(jax.random.fold_in(key, t))
        actions = env.sample_actions(k_act, params)
        obs, state, reward, term, trunc, info = step(k_step, state, actions, params)
        ref_obs, ref_state, ref_rew, ref_done, _ = ref_step(
            k_step, ref_state, {a: actions[i] for i, a in enumerate(env.agents)})
        # equal up to float32 rounding: XLA fuses the two programs' arithmetic differently
        np.testing.assert_allclose(obs, stack(ref_obs, env.agents), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(reward, stack(ref_rew, env.agents), rtol=1e-5, atol=1e-6)
        assert bool(term | trunc) == bool(ref_done["__all__"]) and not bool(term)
        ends += int(trunc)
        spaces.check(env.observation_space(params), obs, batch_dims=1)
    assert ends == 2  # MPE's time limit: truncated, never terminated


def test_dcgenv_tools_run_on_it_and_a_shorter_limit_truncates():
    env, params = from_jaxmarl("MPE_simple_spread_v3")
    params = params.replace_checked(max_steps_in_episode=5)
    traj, _ = dcgenv.rollout(dcgenv.LogWrapper(env), params, jax.random.key(1), num_envs=4,
                             num_steps=12)
    assert traj.obs.shape == (12, 4, 3, 18) and traj.reward.shape == (12, 4, 3)
    assert np.asarray(traj.truncated).sum(axis=0).tolist() == [2] * 4
    summary = dcgenv.summarize(traj.info)
    assert summary["episodes"] == 8 and summary["length"] == 5.0
    assert np.isfinite(summary["team_return"])


def test_bad_arguments_are_refused_and_a_missing_jaxmarl_says_what_to_install(monkeypatch):
    with pytest.raises(ValueError, match="only go with an id"):
        from_jaxmarl(jaxmarl.make("MPE_simple_spread_v3"), num_agents=3)
    with pytest.raises(ValueError, match="scenario.*'3s_vs_5z'"):
        from_jaxmarl("HeuristicEnemySMAX", scenario="3s_vs_6z")
    with pytest.raises(ValueError, match="refused keyword arguments.*'scenaro'"):
        dcgenv.make("jaxmarl:HeuristicEnemySMAX", scenaro="3s_vs_5z")
    with pytest.raises(ValueError, match="cannot be padded"):
        merge_spaces("observation", [spaces.Box(0, 1, (2, 3)), spaces.Box(0, 1, (4,))])
    with pytest.raises(ValueError, match="action_mask_in_obs=True needs Discrete"):
        from_jaxmarl("MPE_simple_world_comm_v3", action_mask_in_obs=True)  # Box actions
    env, params = from_jaxmarl("MPE_simple_spread_v3", num_agents=4, max_steps_in_episode=7)
    assert env.num_agents == 4 and params.max_steps_in_episode == 7
    assert isinstance(env.action_space(), spaces.Discrete) and not env.has_avail_actions
    assert jnp.shape(env.sample_actions(jax.random.key(0))) == (4,)
    monkeypatch.setitem(__import__("sys").modules, "jaxmarl", None)  # as if not installed
    with pytest.raises(ImportError, match=r'pip install "dcgenv\[jaxmarl\]"'):
        dcgenv.make("jaxmarl:MPE_simple_spread_v3")


def test_different_spaces_are_padded_with_a_mask_and_extra_actions_clipped():
    """simple_speaker_listener: the speaker sees 3 numbers and has 3 actions, the listener
    11 and 5; simple_tag's adversaries see 16, the good agent 14; simple_world_comm's
    (continuous) leader has 9 action entries, the others 5."""
    inner = jaxmarl.make("MPE_simple_speaker_listener_v4")
    env, params = from_jaxmarl(inner)
    assert env.observation_space(params).shape == (11,) and env.action_space(params).n == 5
    assert env.obs_mask.sum(1).tolist() == [3, 11]
    key = jax.random.key(0)
    obs, state = env.reset(key, params)
    ref_obs, ref_state = inner.reset(key)
    np.testing.assert_array_equal(env.get_avail_actions(state),
                                  [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    step = jax.jit(env.step)
    for t, (speaker, listener) in enumerate([(4, 1), (2, 3), (-1, 4)]):  # 4 -> 2, -1 -> 0
        k_step = jax.random.fold_in(key, t)
        obs, state, reward, *_ = step(k_step, state, jnp.array([speaker, listener]), params)
        ref_obs, ref_state, ref_reward, *_ = inner.step(
            k_step, ref_state, {"speaker_0": jnp.clip(speaker, 0, 2), "listener_0": listener})
        assert not np.asarray(obs[0, 3:]).any()  # padding
        np.testing.assert_allclose(obs[0, :3], ref_obs["speaker_0"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(obs[1], ref_obs["listener_0"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(reward, stack(ref_reward, env.agents), rtol=1e-5, atol=1e-6)
    tag, _ = from_jaxmarl("MPE_simple_tag_v3")
    assert tag.observation_space().shape == (16,)
    assert tag.obs_mask.sum(1).tolist() == [16, 16, 16, 14]
    comm, _ = from_jaxmarl("MPE_simple_world_comm_v3")
    assert comm.action_space().shape == (9,)
    assert comm.obs_mask.sum(1).tolist() == [34] * 4 + [28] * 2
    cut = comm._unstack_actions(jnp.ones((comm.num_agents, 9)))
    assert [cut[a].shape for a in comm.agents] == [(9,)] + [(5,)] * 5


# --------------------------------------------------------------- SMAX (JaxMARL's StarCraft)

SMAX_STEPS = 9  # max_steps=3: JaxMARL's SMAX ends its episodes on their 4th step


def smax_run(env, inner, params):
    """``(key, win) -> trajectory`` of random legal actions through the adapter, beside
    JaxMARL's own ``step`` on the same keys and actions. With ``win`` every enemy starts at
    zero health, so the first step wins the battle (a termination, not a time limit)."""

    def kill_enemies(inner_state, win):
        smax = inner_state.state
        enemy = jnp.arange(smax.unit_health.shape[0]) >= inner.num_allies
        return inner_state.replace(state=smax.replace(
            unit_health=jnp.where(win & enemy, 0.0, smax.unit_health)))

    def run(key, win):
        k_reset, k_run = jax.random.split(key)
        obs, state = env.reset(k_reset, params)
        _, ref_state = inner.reset(k_reset)
        state = state.replace(inner=kill_enemies(state.inner, win))
        ref_state = kill_enemies(ref_state, win)

        def body(carry, key):
            obs, state, ref_state = carry
            k_act, k_step = jax.random.split(key)
            logits = jnp.where(obs["action_mask"], 0.0, -jnp.inf)
            actions = jax.random.categorical(k_act, logits).astype(jnp.int32)
            obs, state, reward, term, trunc, info = env.step(k_step, state, actions, params)
            ref_obs, ref_state, ref_reward, ref_dones, _ = inner.step(
                k_step, ref_state, unstack(actions, env.agents))
            ref = (stack({a: ref_obs[a] for a in env.agents}, env.agents),
                   stack(ref_reward, env.agents), ref_dones["__all__"],
                   stack({a: ref_dones[a] for a in env.agents}, env.agents),
                   stack(inner.get_avail_actions(ref_state), env.agents))
            out = (obs, reward, term, trunc, info["dones"], info["world_state"], actions,
                   info["success"])
            return (obs, state, ref_state), (out, ref)

        return jax.lax.scan(body, (obs, state, ref_state), jax.random.split(k_run, SMAX_STEPS))[1]

    return run


def test_smax_3s_vs_5z_matches_jaxmarl_is_deterministic_and_vmaps():
    env, params = dcgenv.make("jaxmarl:HeuristicEnemySMAX", scenario="3s_vs_5z", max_steps=3,
                              action_mask_in_obs=True)
    inner = env.jaxmarl_env
    assert env.agents == ("ally_0", "ally_1", "ally_2") and env.has_avail_actions
    assert env.action_space(params).n == 10  # 5 moves (stop = 4) + 5 enemies to attack
    assert env.observation_space(params).spaces["obs"].shape == (101,)
    run = smax_run(env, inner, params)
    keys, wins = jax.random.split(jax.random.key(0), 2), jnp.array([False, True])
    o1 = {"xla_backend_optimization_level": 1}  # as test_conformance.py compares bit for bit
    batched = jax.jit(jax.vmap(run), compiler_options=o1)(keys, wins)
    single = jax.jit(run, compiler_options=o1)
    for i in range(2):
        one = single(keys[i], wins[i])
        again = single(keys[i], wins[i])
        for x, y, z in zip(jax.tree.leaves(one), jax.tree.leaves(again),
                           jax.tree.leaves(batched), strict=True):
            np.testing.assert_array_equal(x, y)  # same key, same result, bit for bit
            np.testing.assert_array_equal(x, z[i])  # vmapped == one at a time
        (obs, reward, term, trunc, dones, world, actions, success), ref = one
        ref_obs, ref_reward, ref_done, ref_dones, ref_avail = ref
        np.testing.assert_allclose(obs["obs"], ref_obs, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(obs["action_mask"], ref_avail.astype(bool))
        np.testing.assert_allclose(reward, ref_reward, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(term | trunc, ref_done)
        np.testing.assert_array_equal(dones, ref_dones)
        assert not (term & trunc).any() and world.shape == (SMAX_STEPS, 96)
        assert np.take_along_axis(np.asarray(obs["action_mask"])[:-1], np.asarray(actions)[1:,
                                  :, None], -1).all()  # the sampled actions were legal
        spaces.check(env.observation_space(params), obs, batch_dims=2)
        ends = np.flatnonzero(np.asarray(term | trunc)).tolist()
        if wins[i]:  # won on the first step (reward: the won-battle bonus), then time limits
            assert ends == [0, 4, 8] and term.tolist() == [True] + [False] * (SMAX_STEPS - 1)
            np.testing.assert_allclose(reward[0], 1.0)
            assert success.tolist() == [True] + [False] * (SMAX_STEPS - 1)
        else:
            assert ends == [3, 7] and not term.any() and not success.any()
