"""Rule tests of IC3Net's Predator-Prey (``dcgenv/envs/predator_prey.py``) on hand-built states."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv.envs.predator_prey import MODES, EnvState, PredatorPrey, distinct_cells

UP, RIGHT, DOWN, LEFT, STAY = range(5)


def state_of(predators, prey, frozen=None, time=0):
    predators = jnp.asarray(predators, jnp.int32)
    frozen = jnp.zeros(len(predators), bool) if frozen is None else jnp.asarray(frozen)
    return EnvState(time=jnp.asarray(time, jnp.int32), predators=predators,
                    prey=jnp.asarray(prey, jnp.int32), frozen=frozen,
                    catch_time=jnp.zeros((), jnp.int32))


def step(env_id, state, actions, **overrides):
    env, params = dcgenv.make(env_id, **overrides)
    return jax.jit(env.step_env)(jax.random.key(0), state, jnp.asarray(actions), params)


def test_predator_on_prey_freezes_and_ignores_actions():
    state = state_of([[2, 1], [0, 0], [4, 4]], [2, 2])
    state, reward, term, info = step("PredatorPrey-easy-v0", state, [RIGHT, STAY, STAY])
    assert state.frozen.tolist() == [True, False, False]
    assert state.predators[0].tolist() == [2, 2]
    assert not bool(term) and int(info["on_prey"]) == 1
    state, *_ = step("PredatorPrey-easy-v0", state, [UP, DOWN, UP])
    assert state.predators.tolist() == [[2, 2], [1, 0], [3, 4]]  # the frozen one did not move
    assert state.frozen.tolist() == [True, False, False]
    env, params = dcgenv.make("PredatorPrey-easy-v0")
    assert env.get_obs(state, params)["active"].tolist() == [False, True, True]


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_reward(mode):
    # two predators step onto the prey, a third does not
    state = state_of([[1, 2], [3, 2], [0, 0]], [2, 2])
    state, reward, term, info = step("PredatorPrey-easy-v0", state, [DOWN, UP, STAY], mode=mode)
    k = 2
    on = {"mixed": 0.0, "cooperative": 0.05 * k, "competitive": 0.05 / k}[mode]
    np.testing.assert_allclose(reward, [on, on, -0.05], rtol=1e-6)
    assert not bool(term) and not bool(info["success"])


@pytest.mark.parametrize("mode", MODES)
def test_all_on_prey_ends_only_mixed_and_reports_catch(mode):
    state = state_of([[1, 2], [2, 2], [2, 3]], [2, 2], frozen=[False, True, False], time=6)
    state, reward, term, info = step("PredatorPrey-easy-v0", state, [DOWN, STAY, LEFT],
                                     mode=mode)
    assert bool(info["success"]) and int(info["on_prey"]) == 3
    assert int(info["steps_to_catch"]) == 7  # caught on the 7th step
    assert bool(term) == (mode == "mixed")
    if mode != "mixed":  # later steps keep the first catch time
        state = state.replace(time=state.time + 1)
        *_, info = step("PredatorPrey-easy-v0", state, [UP, UP, UP], mode=mode)
        assert int(info["steps_to_catch"]) == 7


def test_steps_to_catch_counts_steps_until_caught():
    state = state_of([[0, 0], [0, 1], [1, 0]], [4, 4], time=11)
    *_, info = step("PredatorPrey-easy-v0", state, [STAY] * 3)
    assert int(info["steps_to_catch"]) == 12 and not bool(info["success"])


def test_moves_clamp_at_border_and_illegal_actions_clip():
    state = state_of([[0, 0], [4, 4], [0, 4], [4, 0], [2, 2]], [3, 3])
    env = PredatorPrey(dim=5, num_agents=5, vision=0)
    params = env.default_params
    run = jax.jit(env.step_env)
    moved = lambda actions: run(jax.random.key(0), state, jnp.asarray(actions), params)[0]
    assert moved([UP, DOWN, RIGHT, LEFT, STAY]).predators.tolist() == state.predators.tolist()
    assert moved([LEFT, RIGHT, UP, DOWN, STAY]).predators.tolist() == state.predators.tolist()
    # out of range: 7 reads as 4 (stay), -3 as 0 (up)
    out = moved([7, 7, 7, 7, -3]).predators.tolist()
    assert out == [[0, 0], [4, 4], [0, 4], [4, 0], [1, 2]]


def test_observation_encoding_vision_1():
    env, params = dcgenv.make("PredatorPrey-medium-v0")  # 10x10, vision 1, vocab 104
    state = state_of([[0, 0], [1, 1], [1, 1], [9, 9], [5, 5]], [0, 1])
    view = np.asarray(env.get_obs(state, params)["view"])
    assert view.shape == (5, 3, 3, 104) and view.dtype == np.float32
    base, outside, prey, pred = 100, 101, 102, 103
    v0 = view[0]  # predator at the top-left corner
    assert v0[0, :, outside].tolist() == [1, 1, 1] and v0[:, 0, outside].tolist() == [1, 1, 1]
    assert v0[1, 1, 0] == 1 and v0[1, 2, 1] == 1 and v0[2, 2, 11] == 1  # cell ids r*10+c
    assert v0[1, 2, prey] == 1 and v0[..., prey].sum() == 1
    assert v0[1, 1, pred] == 1 and v0[2, 2, pred] == 2  # a count: two predators share (1,1)
    assert np.all(view[..., base] == 0)  # IC3Net's unused vocabulary slot
    assert np.all(view[..., :outside + 1].sum(-1) == 1)  # exactly one cell id or "outside"
    v3 = view[3]  # bottom-right corner
    assert v3[2, :, outside].tolist() == [1, 1, 1] and v3[1, 1, 99] == 1
    assert v3[..., prey].sum() == 0


def test_observation_vision_0_shapes_and_vocab():
    for level, n, vocab in [("easy", 3, 29), ("hard", 10, 404)]:
        env, params = dcgenv.make(f"PredatorPrey-{level}-v0")
        obs, _ = env.reset(jax.random.key(1), params)
        side = 2 * env.vision + 1
        assert obs["view"].shape == (n, side, side, vocab)
        assert obs["active"].shape == (n,) and bool(obs["active"].all())


def test_reset_places_everyone_on_distinct_cells():
    env, params = dcgenv.make("PredatorPrey-hard-v0")
    states = jax.vmap(env.reset_env, in_axes=(0, None))(
        jax.random.split(jax.random.key(2), 200), params)
    cells = np.concatenate([states.predators, states.prey[:, None]], axis=1)
    assert cells.min() >= 0 and cells.max() < 20
    flat = cells[..., 0] * 20 + cells[..., 1]
    assert all(len(set(row)) == 11 for row in flat.tolist())


def test_distinct_cells_uniform_over_ordered_tuples():
    draws = np.asarray(jax.vmap(lambda k: distinct_cells(k, 5, 3))(
        jax.random.split(jax.random.key(3), 6000)))
    assert all(len(set(d)) == 3 for d in draws.tolist()) and draws.max() < 5
    counts = np.bincount(draws[:, 0] * 25 + draws[:, 1] * 5 + draws[:, 2], minlength=125)
    seen = counts[counts > 0]
    assert len(seen) == 60  # every ordered triple of 5 cells occurs
    expected = len(draws) / 60
    chi2 = ((seen - expected) ** 2 / expected).sum()
    assert chi2 < 110  # 59 degrees of freedom: P(chi2 > 110) < 1e-4


def test_mode_is_vmappable_params_field():
    env, params = dcgenv.make("PredatorPrey-easy-v0")
    state = state_of([[1, 2], [3, 2], [0, 0]], [2, 2])
    modes = jnp.arange(3)
    rewards = jax.vmap(lambda m: env.step_env(jax.random.key(0), state,
                                              jnp.array([DOWN, UP, STAY]),
                                              params.replace(mode=m))[1])(modes)
    assert len({tuple(r) for r in np.asarray(rewards).tolist()}) == 3


def test_bad_python_input_raises():
    with pytest.raises(ValueError, match="unknown mode.*allowed.*mixed.*cooperative.*competitive"):
        dcgenv.make("PredatorPrey-easy-v0", mode="selfish")
    with pytest.raises(ValueError, match="impossible"):
        PredatorPrey(dim=2, num_agents=4)
    with pytest.raises(ValueError, match="distinct"):
        distinct_cells(jax.random.key(0), 3, 4)
