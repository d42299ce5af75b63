"""Compact observation modes (``obs_mode="uint8"`` / ``"index"``) of the grid environments.

For each environment and compact mode: random trajectories (vmapped, auto-reset included)
run side by side with the ``"onehot"`` environment from the same keys, and
``env.expand_obs`` must give the one-hot observation bit for bit, ``final_observation``
included; the compact observation lies in its space, and it is smaller.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv import spaces
from dcgenv.envs.predator_prey import PredatorPrey
from dcgenv.envs.predator_prey_magym import PredatorPreyMagym
from dcgenv.envs.traffic_junction import TrafficJunction

MODES = ("uint8", "index")
# (name, constructor, kwargs, params overrides, steps, envs); hard levels only in the size table
CASES = [
    ("tj-easy", TrafficJunction, {"level": "easy"}, {"add_rate": 0.5}, 300, 4),
    ("tj-medium", TrafficJunction, {"level": "medium"}, {"add_rate": 0.3}, 200, 2),
    ("pp-easy", PredatorPrey, {"dim": 5, "num_agents": 3, "vision": 0}, {}, 300, 4),
    ("pp-uint16-ids", PredatorPrey, {"dim": 17, "num_agents": 4, "vision": 1},
     {"max_steps_in_episode": 30}, 200, 3),
    ("magym", PredatorPreyMagym, {}, {"max_steps_in_episode": 40}, 300, 4),
]


def bytes_per_agent(space) -> int:
    leaves = space.spaces.values() if isinstance(space, spaces.Dict) else [space]
    return sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in leaves)


def make_run(envs, params, steps):
    """``key -> (first obs, (obs, final obs) per step)`` for several envs of one game, all
    driven by the same keys and actions."""

    def run(key):
        key_reset, key_run = jax.random.split(key)
        carry = [env.reset(key_reset, params) for env in envs]

        def body(carry, key):
            key_act, key_step = jax.random.split(key)
            actions = envs[0].sample_actions(key_act, params)
            out = [env.step(key_step, state, actions, params)
                   for env, (_, state) in zip(envs, carry, strict=True)]
            return [o[:2] for o in out], [(o[0], o[5]["final_observation"]) for o in out]

        first = [obs for obs, _ in carry]
        return first, jax.lax.scan(body, carry, jax.random.split(key_run, steps))[1]

    return run


def rollouts(envs, params, steps, num_envs, key):
    keys = jax.random.split(key, num_envs)
    return jax.jit(jax.vmap(make_run(envs, params, steps)))(keys)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_expand_obs_recovers_onehot_bit_for_bit(case):
    _, cls, kwargs, overrides, steps, num_envs = case
    envs = [cls(**kwargs)] + [cls(**kwargs, obs_mode=mode) for mode in MODES]  # default first
    params = envs[0].default_params.replace(**overrides)
    first, traj = rollouts(envs, params, steps, num_envs, jax.random.key(len(case[0])))
    ref_first, (ref_obs, ref_final) = first[0], traj[0]
    for env, obs0, (obs, final) in zip(envs[1:], first[1:], traj[1:], strict=True):
        space = env.observation_space(params)
        for x, batch in ((obs0, 2), (obs, 3), (final, 3)):
            spaces.check(space, x, batch_dims=batch, where=env.obs_mode)
        expand = jax.jit(lambda xs, env=env: [  # batched, and vmapped over envs
            *(env.expand_obs(x, params) for x in xs),
            jax.vmap(lambda x: env.expand_obs(x, params))(xs[0])])
        full = expand([obs0, obs, final])
        ref = [ref_first, ref_obs, ref_final, ref_first]
        assert jax.tree.structure(full) == jax.tree.structure(ref)
        for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(ref), strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the trajectories were not trivial: the episode ended and the window saw something
    assert any(np.asarray(leaf).std() > 0 for leaf in jax.tree.leaves(ref_final))


@pytest.mark.parametrize("case", [CASES[0], CASES[2]], ids=["tj-easy", "pp-easy"])
def test_compact_obs_jit_vmap_same_key_same_result(case):
    """vmap == loop for the index mode (the dynamics are the one-hot env's, covered by the
    conformance test; this covers the compact get_obs)."""
    _, cls, kwargs, overrides, _, _ = case
    env = cls(**kwargs, obs_mode="index")
    params = env.default_params.replace(**overrides)
    run = make_run([env], params, 12)
    keys = jax.random.split(jax.random.key(7), 3)
    batched = jax.jit(jax.vmap(run))(keys)
    for i in (0, 2):
        one = jax.jit(run)(keys[i])
        for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(one), strict=True):
            np.testing.assert_array_equal(np.asarray(a)[i], np.asarray(b))
    assert not all(np.all(np.asarray(x)[0] == np.asarray(x)[2]) for x in jax.tree.leaves(batched))


# Bytes of one agent's observation per mode (onehot, uint8, index), as the docs list them.
SIZES = [
    ("TrafficJunction-easy-v0", (69, 18, 5)),
    ("TrafficJunction-medium-v0", (2133, 534, 21)),
    ("TrafficJunction-hard-v0", (5301, 1326, 21)),
    ("PredatorPrey-easy-v0", (117, 30, 4)),
    ("PredatorPrey-medium-v0", (3745, 937, 28)),
    ("PredatorPrey-hard-v0", (14545, 3637, 55)),
    ("PredatorPrey-magym-v0", (112, 31, 8)),
]


@pytest.mark.parametrize("env_id,sizes", SIZES)
def test_compact_modes_are_smaller(env_id, sizes):
    envs = [dcgenv.make(env_id)[0]] + [dcgenv.make(env_id, obs_mode=m)[0] for m in MODES]
    got = tuple(bytes_per_agent(env.observation_space()) for env in envs)
    assert got == sizes
    onehot, uint8, index = got
    assert uint8 <= onehot / 3.5 and index <= onehot / 10 and index < uint8


def test_compact_obs_arrays_have_the_space_dtypes():
    env, params = dcgenv.make("TrafficJunction-hard-v0", obs_mode="index")
    obs = jax.eval_shape(env.reset, jax.random.key(0), params)
    assert obs[0]["obs"].dtype == jnp.uint8 and obs[0]["obs"].shape == (20, 20)
    env = PredatorPrey(dim=20, num_agents=10, vision=1, obs_mode="index")
    assert env.observation_space().spaces["view"].dtype == jnp.uint16  # ids up to 401


@pytest.mark.parametrize("cls", [TrafficJunction, PredatorPrey, PredatorPreyMagym])
def test_bad_obs_mode_raises(cls):
    with pytest.raises(ValueError, match=r"'(onehot|float32)', 'uint8', 'index'"):
        cls(obs_mode="float16")
    with pytest.raises(ValueError, match="obs_mode"):
        cls(obs_mode="index ")


def test_bad_obs_mode_through_make_and_uint8_cap():
    with pytest.raises(ValueError, match="allowed"):
        dcgenv.make("TrafficJunction-hard-v0", obs_mode="onehot8")
    with pytest.raises(ValueError, match="obs_mode"):
        dcgenv.make("PredatorPrey-magym-v0", obs_mode=3)
    with pytest.raises(ValueError, match="counts <= 255"):
        TrafficJunction("easy", num_agents=300, obs_mode="uint8")
    assert TrafficJunction("easy", num_agents=300, obs_mode="index").observation_space() \
        .spaces["obs"].dtype == jnp.uint16
