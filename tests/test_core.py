"""Registry, spaces, LogWrapper and rollout: the plumbing every environment shares."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv import spaces
from dcgenv.core import EnvParams, EnvState, MultiAgentEnv
from dcgenv.registry import _REGISTRY


class Countdown(MultiAgentEnv):
    """Toy env for plumbing tests: agent i gets reward i each step; ends when time == length."""

    agents = ("a", "b", "c")

    def __init__(self, length: int = 3):
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.length = length

    @property
    def default_params(self):
        return EnvParams(max_steps_in_episode=100)

    def reset_env(self, key, params):
        return EnvState(time=jnp.zeros((), jnp.int32))

    def step_env(self, key, state, actions, params):
        info = {"success": state.time + 1 == self.length}
        return state, jnp.arange(3.0), state.time + 1 >= self.length, info

    def get_obs(self, state, params):
        return jnp.full((3, 1), state.time, jnp.int32)

    def observation_space(self, params=None):
        return spaces.Box(0, 100, (1,), jnp.int32)

    def action_space(self, params=None):
        return spaces.Discrete(2)


@pytest.fixture
def toy():
    dcgenv.register("Countdown-toy-v0", Countdown, length=3, overwrite=True)
    yield
    _REGISTRY.pop("Countdown-toy-v0")


def test_registry_make_routes_overrides(toy):
    assert "Countdown-toy-v0" in dcgenv.registered()
    env, params = dcgenv.make("Countdown-toy-v0", length=5, max_steps_in_episode=7)
    assert env.length == 5 and params.max_steps_in_episode == 7


def test_registry_errors_name_the_problem(toy):
    with pytest.raises(ValueError, match="did you mean 'Countdown-toy-v0'"):
        dcgenv.make("Countdown-toi-v0")
    with pytest.raises(ValueError, match=r"constructor arguments: \['length'\].*max_steps"):
        dcgenv.make("Countdown-toy-v0", lenght=5)
    with pytest.raises(ValueError, match="length=2.5 must be a int"):
        dcgenv.make("Countdown-toy-v0", length=2.5)
    with pytest.raises(ValueError, match="max_steps_in_episode=True must be a int"):
        dcgenv.make("Countdown-toy-v0", max_steps_in_episode=True)
    with pytest.raises(ValueError, match="length must be >= 1"):
        dcgenv.make("Countdown-toy-v0", length=0)
    with pytest.raises(ValueError, match="already registered"):
        dcgenv.register("Countdown-toy-v0", Countdown)
    with pytest.raises(ValueError, match="not of the form"):
        dcgenv.register("countdown_v0", Countdown)


def test_float_param_override_accepts_ints_and_arrays_rejects_shapes():
    _, params = dcgenv.make("Witsenhausen-v0", k=1, sigma=np.float32(2.0))
    assert params.k == 1.0 and isinstance(params.k, float) and params.sigma == 2.0
    _, params = dcgenv.make("Witsenhausen-v0", sigma=jnp.asarray(3.0))
    assert float(params.sigma) == 3.0
    with pytest.raises(ValueError, match="sigma must be a"):
        dcgenv.make("Witsenhausen-v0", sigma=jnp.ones(3))


def test_params_vmap_over_a_field():
    env, params = dcgenv.make("Witsenhausen-v0")
    batch = params.replace(sigma=jnp.array([1.0, 10.0]))
    _, states = jax.vmap(env.reset, in_axes=(None, jax.tree.map(lambda _: None, params).replace(
        sigma=0)))(jax.random.key(0), batch)
    assert float(states.x0[1]) == pytest.approx(10 * float(states.x0[0]), rel=1e-6)


def test_log_wrapper_episode_statistics(toy):
    env, params = dcgenv.make("Countdown-toy-v0", length=3)
    env = dcgenv.LogWrapper(env)
    traj, _ = dcgenv.rollout(env, params, jax.random.key(0), num_envs=2, num_steps=7)
    info = jax.tree.map(lambda x: np.asarray(x)[:, 0], traj.info)
    np.testing.assert_array_equal(info["returned_episode"], [0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(info["returned_episode_returns"][2], [0, 3, 6])
    assert info["returned_team_return"][2] == 3.0  # mean over agents
    assert info["returned_episode_length"][5] == 3 and info["returned_episode_success"][5]
    stats = dcgenv.summarize(traj.info)
    assert stats == {"episodes": 4, "team_return": 3.0, "length": 3.0, "success_rate": 1.0}


def test_rollout_shapes_and_policy_is_used(toy):
    env, params = dcgenv.make("Countdown-toy-v0")
    policy = lambda key, obs: jnp.ones(3, jnp.int32)
    traj, (obs, state) = dcgenv.rollout(env, params, jax.random.key(1), num_envs=4,
                                        num_steps=5, policy=policy)
    assert traj.reward.shape == (5, 4, 3) and traj.obs.shape == (5, 4, 3, 1)
    assert np.all(np.asarray(traj.actions) == 1) and obs.shape == (4, 3, 1)
    random_traj, _ = dcgenv.rollout(env, params, jax.random.key(1), num_envs=4, num_steps=5)
    assert np.asarray(random_traj.actions).std() > 0


def test_abstract_hooks_are_required():
    class Incomplete(MultiAgentEnv):
        agents = ("a",)

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


def test_spaces_added_on_top_of_gymnax():
    key = jax.random.key(0)
    sample = spaces.Normal((1000,), scale=2.0).sample(key)
    assert np.all(np.isfinite(sample)) and 1.8 < float(sample.std()) < 2.2
    d = spaces.Dict({"x": spaces.Discrete(3), "m": spaces.Binary((2,))})
    value = d.sample(key)
    assert type(value) is dict and bool(d.contains(value))
    assert not bool(d.contains({"x": jnp.int32(3), "m": value["m"]}))
    spaces.check(d, jax.vmap(d.sample)(jax.random.split(key, 5)), batch_dims=1)
    with pytest.raises(ValueError, match=r"\['x'\].*outside"):
        spaces.check(d, {"x": jnp.int32(7), "m": value["m"]})
    with pytest.raises(ValueError, match="dtype float32"):
        spaces.check(spaces.Discrete(3), jnp.float32(1))
    with pytest.raises(ValueError, match="expected keys"):
        spaces.check(d, {"x": jnp.int32(1)})


def test_import_dcgenv_pulls_in_no_learner_dependencies():
    code = ("import sys, dcgenv; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'optax', 'distrax', 'orbax', 'agents', 'baselines'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_demo_help_names_the_command(capsys):
    from dcgenv.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("usage: python -m dcgenv")


def test_demo_prints_a_row_per_environment(capsys):
    from dcgenv.__main__ import main, one_per_class

    classes = {type(dcgenv.make(i)[0]) for i in dcgenv.registered()}
    default = one_per_class()
    assert len(default) == len(classes) and "TrafficJunction-easy-v0" in default
    main(["--env", "Rubinstein-v0", "--env", "Witsenhausen-v0", "--num-envs", "2",
          "--num-steps", "6"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("random policy on 2 environments, 2 envs x 6 steps each")
    rows = [line.split() for line in lines[3:5]]
    assert [r[0] for r in rows] == ["Rubinstein-v0", "Witsenhausen-v0"]
    assert [r[1] for r in rows] == ["2", "2"] and all(int(r[2]) > 0 for r in rows)
    assert lines[5].startswith("2 environments in")
