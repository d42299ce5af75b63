"""The PettingZoo ParallelEnv adapter: PettingZoo's own API and seed tests, and agreement with
dcgenv's step."""

from __future__ import annotations

import importlib.util
import sys
import warnings

import gymnasium
import jax
import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

import dcgenv
from dcgenv.adapters import pettingzoo as pz_adapter
from dcgenv.adapters.pettingzoo import parallel_env, to_gymnasium


@pytest.mark.parametrize("env_id", ["TrafficJunction-easy-v0", "GridWorldGoal-v0"])
def test_pettingzoo_parallel_api_and_seed_tests_pass_without_warnings(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the API test only warns about some violations
        parallel_api_test(parallel_env(env_id), num_cycles=60)
        parallel_seed_test(lambda: parallel_env(env_id), num_cycles=60)


def test_observations_and_rewards_match_dcgenv_and_the_final_step_is_kept():
    env, params = dcgenv.make("TrafficJunction-easy-v0")
    pz = parallel_env("TrafficJunction-easy-v0", render_mode="rgb_array")
    obs, infos = pz.reset(seed=7)
    assert pz.agents == list(env.agents) and set(infos) == set(pz.agents)
    key = jax.random.key(7)
    key, k = jax.random.split(key)
    ref_obs, state = env.reset(k, params)
    gas = {a: np.int64(0) for a in pz.agents}
    for t in range(params.max_steps_in_episode):
        for i, a in enumerate(env.agents):
            np.testing.assert_array_equal(obs[a]["obs"], ref_obs["obs"][i])
            assert obs[a]["alive"] == ref_obs["alive"][i]
            assert pz.observation_space(a).contains(obs[a])
        obs, rewards, terms, truncs, infos = pz.step(gas)
        key, k = jax.random.split(key)
        ref_obs, state, reward, _, truncated, info = env.step(
            k, state, np.zeros(env.num_agents, np.int32), params)
        assert [rewards[a] for a in env.agents] == np.asarray(reward).tolist()
        assert all(truncs.values()) == bool(truncated) == (t == params.max_steps_in_episode - 1)
        assert not any(terms.values())
        assert infos["car_0"]["collisions"] == info["collisions"]
    ref_obs = info["final_observation"]  # the adapter returns the ended episode's last obs
    for i, a in enumerate(env.agents):
        np.testing.assert_array_equal(obs[a]["obs"], ref_obs["obs"][i])
    assert pz.agents == []
    frame = pz.render()  # the final state, not the next episode's empty road
    assert frame.shape == (56, 56, 3) and frame.dtype == np.uint8
    with pytest.raises(ValueError, match="reset"):
        pz.step(gas)


def test_dict_actions_and_spaces_round_trip():
    pz = parallel_env("GridWorldGoal-uniform-v0", grid_size=4)
    space = pz.action_space("listener")
    assert isinstance(space, gymnasium.spaces.Dict) and space["move"].n == 5
    assert space["message"].shape == (4,) and np.isinf(space["message"].high).all()
    assert pz.action_space("listener") is pz.action_space("listener")
    assert pz.action_space("listener") is not pz.action_space("speaker")  # seeded per agent
    obs, _ = pz.reset(seed=0)
    start = obs["listener"]["position"].copy()
    goal = obs["speaker"]["goal"]
    step = np.int64(3 if goal[0] > start[0] else 4 if goal[0] < start[0] else 1)
    message = np.zeros(4, np.float32)
    obs, *_ = pz.step({"speaker": {"move": np.int64(0), "message": message + 1.5},
                       "listener": {"move": step, "message": message}})
    assert np.abs(obs["listener"]["position"] - start).sum() == 1  # the move was applied
    np.testing.assert_allclose(obs["listener"]["message"], 1.5)  # continuous channel
    assert obs["listener"]["has_message"].dtype == np.int8


def test_every_registered_space_converts_leaf_for_leaf():
    def leaves(space):
        if isinstance(space, (gymnasium.spaces.Dict, dcgenv.spaces.Dict)):
            return [x for k in sorted(space.spaces) for x in leaves(space.spaces[k])]
        if isinstance(space, (gymnasium.spaces.Tuple, dcgenv.spaces.Tuple)):
            return [x for s in space.spaces for x in leaves(s)]
        if isinstance(space, (gymnasium.spaces.Discrete, dcgenv.spaces.Discrete)):
            return [("discrete", int(space.n))]
        return [(tuple(space.shape), "bool" if "Binary" in type(space).__name__
                 else np.dtype(space.dtype).name)]

    for env_id in dcgenv.registered():
        env, params = dcgenv.make(env_id)
        for space in (env.observation_space(params), env.action_space(params)):
            converted = to_gymnasium(space)
            assert leaves(converted) == leaves(space), env_id
            assert converted.contains(converted.sample()), env_id


def test_bad_input_raises_value_errors():
    with pytest.raises(ValueError, match="render_mode"):
        parallel_env("TrafficJunction-easy-v0", render_mode="human")
    with pytest.raises(ValueError, match="no render"):
        parallel_env("Witsenhausen-v0", render_mode="rgb_array")
    pz = parallel_env("TrafficJunction-easy-v0")
    with pytest.raises(ValueError, match="possible agents"):
        pz.observation_space("car_99")
    pz.reset(seed=0)
    with pytest.raises(ValueError, match=r"missing \['car_4'\]"):
        pz.step({f"car_{i}": 0 for i in range(4)})


def test_adapter_without_pettingzoo_fails_only_when_used(monkeypatch):
    monkeypatch.setitem(sys.modules, "pettingzoo", None)  # `import pettingzoo` now fails
    spec = importlib.util.spec_from_file_location("pz_copy", pz_adapter.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # importing the adapter still works
    assert module.PETTINGZOO_MISSING
    with pytest.raises(ImportError, match="pip install 'pettingzoo"):
        module.parallel_env("TrafficJunction-easy-v0")
