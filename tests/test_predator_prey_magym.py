"""Rule tests of ma-gym's Predator-Prey (``dcgenv/envs/predator_prey_magym.py``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv.envs.predator_prey_magym import EnvState, PredatorPreyMagym

DOWN, LEFT, UP, RIGHT, STAY = range(5)
ENV, PARAMS = dcgenv.make("PredatorPrey-magym-v0")
STEP = jax.jit(ENV.step_env)
FAR = [[0, 0], [0, 6], [6, 0], [6, 6]]  # four corners


def state_of(predators, prey, alive=(True, True), time=0):
    return EnvState(time=jnp.asarray(time, jnp.int32),
                    predators=jnp.asarray(predators, jnp.int32),
                    prey=jnp.asarray(prey, jnp.int32), prey_alive=jnp.asarray(alive))


def step(state, actions, key=0):
    return STEP(jax.random.key(key), state, jnp.asarray(actions), PARAMS)


def test_two_adjacent_predators_capture():
    state = state_of([[2, 3], [4, 3], [6, 0], [6, 6]], [[3, 3], [0, 6]])
    state, reward, term, info = step(state, [STAY] * 4)
    np.testing.assert_allclose(reward, np.full(4, -0.01 + 5.0), rtol=1e-6)
    assert info["prey_alive"].tolist() == [False, True] and int(info["captured"]) == 1
    assert not bool(term) and not bool(info["success"])


def test_one_adjacent_predator_penalises_without_capture():
    state = state_of([[2, 3], [0, 0], [6, 0], [6, 6]], [[3, 3], [0, 6]])
    state, reward, term, info = step(state, [STAY] * 4)
    np.testing.assert_allclose(reward, np.full(4, -0.01 - 0.75), rtol=1e-6)
    assert info["prey_alive"].tolist() == [True, True] and int(info["captured"]) == 0
    assert not bool(term)


def test_last_capture_terminates_with_success():
    state = state_of([[2, 3], [4, 3], [6, 0], [6, 6]], [[3, 3], [0, 6]], alive=(True, False))
    _, reward, term, info = step(state, [STAY] * 4)
    assert bool(term) and bool(info["success"]) and int(info["captured"]) == 2
    np.testing.assert_allclose(reward, np.full(4, 4.99), rtol=1e-6)


def test_predators_move_in_index_order_into_vacant_cells():
    # 0 leaves (1,2) first, so 1 can step into it (a simultaneous rule would block it)
    state = state_of([[1, 2], [1, 1], [6, 0], [6, 6]], [[4, 4], [0, 6]])
    state, *_ = step(state, [RIGHT, RIGHT, STAY, STAY])
    assert state.predators[:2].tolist() == [[1, 3], [1, 2]]
    # 0 tries the cell 1 still holds: blocked; then 1 moves on
    state = state_of([[1, 1], [1, 2], [6, 0], [6, 6]], [[4, 4], [0, 6]])
    state, *_ = step(state, [RIGHT, RIGHT, STAY, STAY])
    assert state.predators[:2].tolist() == [[1, 1], [1, 3]]
    # two predators aiming at one cell: the lower index gets it
    state = state_of([[1, 1], [1, 3], [6, 0], [6, 6]], [[4, 4], [0, 6]])
    state, *_ = step(state, [RIGHT, LEFT, STAY, STAY])
    assert state.predators[:2].tolist() == [[1, 2], [1, 3]]


def test_live_prey_blocks_dead_prey_does_not():
    state = state_of([[4, 3], [0, 0], [6, 0], [6, 6]], [[3, 3], [0, 6]], alive=(True, True))
    state2, *_ = step(state, [UP, STAY, STAY, STAY])
    assert state2.predators[0].tolist() == [4, 3]
    state = state.replace(prey_alive=jnp.array([False, True]))
    state2, *_ = step(state, [UP, STAY, STAY, STAY])
    assert state2.predators[0].tolist() == [3, 3]


def test_moves_clamp_at_border_and_illegal_actions_clip():
    state = state_of(FAR, [[3, 3], [3, 5]])
    for actions in ([UP, UP, DOWN, DOWN], [LEFT, RIGHT, LEFT, RIGHT]):
        assert step(state, actions)[0].predators.tolist() == FAR
    out = step(state, [9, 9, 9, -4])[0].predators.tolist()  # 9 -> stay, -4 -> down
    assert out == [[0, 0], [0, 6], [6, 0], [6, 6]]
    out = step(state_of([[0, 0], [0, 6], [6, 0], [5, 5]], [[3, 3], [3, 5]]), [STAY] * 3 + [-4])
    assert out[0].predators[3].tolist() == [6, 5]


def test_prey_move_distribution_far_from_predators():
    state = state_of(FAR, [[3, 3], [1, 3]], alive=(True, False))
    keys = jax.random.split(jax.random.key(4), 4000)
    prey = np.asarray(jax.vmap(lambda k: STEP(k, state, jnp.full(4, STAY), PARAMS)[0].prey[0])(
        keys))
    delta = [tuple(d) for d in (prey - [3, 3]).tolist()]
    freq = {d: delta.count(d) / len(delta) for d in set(delta)}
    assert set(freq) == {(1, 0), (0, -1), (-1, 0), (0, 1), (0, 0)}
    se = np.sqrt(0.3 * 0.7 / len(delta))
    assert abs(freq[(0, 0)] - 0.3) < 5 * se
    for d in [(1, 0), (0, -1), (-1, 0), (0, 1)]:
        assert abs(freq[d] - 0.175) < 5 * np.sqrt(0.175 * 0.825 / len(delta))


def test_prey_avoids_predator_neighbourhood():
    # predator at (2,3) touches the prey at (3,3). Staying is unsafe (a predator next to the
    # cell); down/left/right are safe. Up passes ma-gym's check (it looks only at the target's
    # neighbours, not the target) but the predator's cell is not vacant, so the prey stays.
    state = state_of([[2, 3], [0, 0], [6, 0], [6, 6]], [[3, 3], [0, 5]], alive=(True, False))
    keys = jax.random.split(jax.random.key(5), 4000)
    prey = np.asarray(jax.vmap(lambda k: STEP(k, state, jnp.full(4, STAY), PARAMS)[0].prey[0])(
        keys))
    moved = {tuple(p) for p in prey.tolist()}
    assert moved == {(4, 3), (3, 2), (3, 4), (3, 3)}
    stayed = np.mean(np.all(prey == [3, 3], axis=1))
    p_stay = 0.175 / 0.7 * (1 - 0.3**5) + 0.3**5  # first accepted draw is "up", or none is
    assert abs(stayed - p_stay) < 5 * np.sqrt(p_stay * (1 - p_stay) / len(prey))


def test_observation_encoding():
    state = state_of([[3, 3], [0, 0], [6, 5], [5, 0]], [[1, 4], [6, 3]], time=50)
    obs = np.asarray(ENV.get_obs(state, PARAMS))
    assert obs.shape == (4, 28) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[0, :2], [0.5, 0.5])
    np.testing.assert_allclose(obs[:, 27], 0.5)
    window = obs[:, 2:27].reshape(4, 5, 5)
    assert window[0].sum() == 1 and window[0, 0, 3] == 1  # prey at offset (-2, +1)
    assert window[1].sum() == 0  # both prey out of view
    assert window[2].sum() == 1 and window[2, 2, 0] == 1  # prey at offset (0, -2)
    assert window[3].sum() == 0  # offset (1, 3): outside the 5x5 window
    obs = np.asarray(ENV.get_obs(state.replace(prey_alive=jnp.array([False, True])), PARAMS))
    assert obs[0, 2:27].sum() == 0  # a captured prey is not shown


def test_reset_start_quirk_and_no_prey_next_to_predators():
    states = jax.vmap(ENV.reset_env, in_axes=(0, None))(
        jax.random.split(jax.random.key(6), 3000), PARAMS)
    pred, prey = np.asarray(states.predators), np.asarray(states.prey)
    everyone = np.concatenate([pred, prey], axis=1)
    assert everyone.min() == 0 and everyone.max() == 5  # row/col 6 is never used at reset
    flat = everyone[..., 0] * 7 + everyone[..., 1]
    assert all(len(set(row)) == 6 for row in flat.tolist())
    dist = np.abs(prey[:, :, None] - pred[:, None]).sum(-1)
    assert dist.min() >= 2  # no prey starts next to (or on) a predator
    counts = np.bincount(flat[:, 0], minlength=49).reshape(7, 7)[:6, :6]
    assert counts.min() > 0.6 * counts.mean()  # predator 0 is uniform on the 6x6 region


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="impossible"):
        PredatorPreyMagym(size=4, num_agents=4, num_prey=2)
    with pytest.raises(ValueError, match=r"num_prey must be an integer in \[1, inf\)"):
        PredatorPreyMagym(num_prey=0)
    with pytest.raises(ValueError, match=r"allowed: \['float32', 'uint8', 'index'\]"):
        PredatorPreyMagym(obs_mode="one-hot")


def test_obs_mode_float32_is_the_default_and_onehot_a_deprecated_alias():
    """The default observation (coordinates, a 0/1 prey window, time) is not a one-hot:
    ``"float32"`` names it; ``"onehot"`` still builds the same env, with a warning."""
    assert ENV.obs_mode == "float32"
    with pytest.warns(DeprecationWarning, match="obs_mode='float32'"):
        env, _ = dcgenv.make("PredatorPrey-magym-v0", obs_mode="onehot")
    assert env.obs_mode == "float32"
    key = jax.random.key(2)
    np.testing.assert_array_equal(env.reset(key, PARAMS)[0], ENV.reset(key, PARAMS)[0])
