"""JaxMARL environments behind dcgenv's API: JaxMARL's own trajectories, through dcgenv's."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv import spaces
from dcgenv.adapters import stack
from dcgenv.adapters.from_jaxmarl import from_jaxmarl

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


def test_agents_with_different_shapes_and_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="different observation shapes"):
        from_jaxmarl("MPE_simple_tag_v3")
    with pytest.raises(ValueError, match="only go with an id"):
        from_jaxmarl(jaxmarl.make("MPE_simple_spread_v3"), num_agents=3)
    env, _ = from_jaxmarl("MPE_simple_spread_v3", num_agents=4)
    assert env.num_agents == 4 and isinstance(env.action_space(), spaces.Discrete)
    assert jnp.shape(env.sample_actions(jax.random.key(0))) == (4,)
