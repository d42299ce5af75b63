"""The API's sharp edges: each is a clear error or a documented behaviour, not a surprise."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import dcgenv
from dcgenv.adapters import stack


@pytest.fixture(scope="module")
def junction():
    env, params = dcgenv.make("TrafficJunction-easy-v0")
    obs, state = env.reset(jax.random.key(0), params)
    return env, params, state


def test_one_agents_action_is_refused(junction):
    env, params, state = junction
    one = env.action_space(params).sample(jax.random.key(1))  # what gymnax users reach for
    with pytest.raises(ValueError, match="sample_actions"):
        env.step(jax.random.key(2), state, one, params)
    with pytest.raises(ValueError, match="num_agents=5"):
        env.transition(jax.random.key(2), state, np.zeros((4,), np.int32), params)


def test_actions_keyed_by_agent_name_point_to_the_adapter(junction):
    env, params, state = junction
    actions = {agent: 0 for agent in env.agents}
    with pytest.raises(ValueError, match="dcgenv.adapters"):
        env.step(jax.random.key(2), state, actions, params)
    stacked = stack({a: np.int32(0) for a in env.agents}, env.agents)  # the fix it names
    env.step(jax.random.key(2), state, stacked, params)


def test_actions_checked_for_dict_action_spaces():
    env, params = dcgenv.make("Negotiation-v0")
    obs, state = env.reset(jax.random.key(0), params)
    actions = env.sample_actions(jax.random.key(1), params)
    env.step(jax.random.key(2), state, actions, params)
    first_leaf = sorted(actions)[0]
    bad = {**actions, first_leaf: actions[first_leaf][0]}  # one leaf lost its agent axis
    with pytest.raises(ValueError, match="agent-stacked"):
        env.step(jax.random.key(2), state, bad, params)


def test_spaces_refuse_an_agent_name(junction):
    env, params, _ = junction
    for space in (env.observation_space, env.action_space):
        with pytest.raises(ValueError, match="agent name"):
            space("car_0")
        assert space(None) is not None and space(params) is not None
    with pytest.raises(ValueError, match="agent name"):
        dcgenv.LogWrapper(env).observation_space("car_0")  # forwarded, still checked


def test_num_actions():
    env, _ = dcgenv.make("TrafficJunction-easy-v0")
    assert env.num_actions == 2
    witsenhausen, _ = dcgenv.make("Witsenhausen-v0")
    with pytest.raises(AttributeError, match="not Discrete"):
        _ = witsenhausen.num_actions
    assert not hasattr(witsenhausen, "num_actions")


def _logged(env_id, num_steps=60):
    env, params = dcgenv.make(env_id)
    traj, _ = dcgenv.rollout(dcgenv.LogWrapper(env), params, jax.random.key(0), num_envs=8,
                             num_steps=num_steps)
    return traj.info


def test_summarize_keeps_success_from_the_returned_keys_alone():
    info = _logged("TrafficJunction-easy-v0")
    full = dcgenv.summarize(info)
    returned = dcgenv.summarize({k: v for k, v in info.items() if k.startswith("returned_")})
    assert full["episodes"] > 0 and "success_rate" in full
    assert returned == full


def test_no_success_key_where_the_env_defines_none():
    info = _logged("Witsenhausen-v0", num_steps=4)
    assert "success" not in info and "returned_episode_success" not in info
    summary = dcgenv.summarize(info)
    assert summary["episodes"] > 0 and "success_rate" not in summary
