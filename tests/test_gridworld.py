"""GridWorldGoal-v0 (DDCL's toy problem): rules, goal sampling, oracle play, message gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import chi2

import dcgenv
from dcgenv import comms
from dcgenv.envs.gridworld import (
    DDCL_GOAL_WEIGHTS,
    EnvState,
    GridWorldGoal,
    goal_probs_from_weights,
    zipf_goal_probs,
)

P_MIN = 1e-3  # chi-square threshold, justified in test_goal_frequencies_match_params_table


@pytest.fixture(scope="module")
def env_params():
    return dcgenv.make("GridWorldGoal-v0")


def make_state(pos, goal, time=0, dim=4):
    return EnvState(time=jnp.asarray(time, jnp.int32), goal=jnp.asarray(goal, jnp.int32),
                    pos=jnp.asarray(pos, jnp.int32), message=jnp.zeros(dim, jnp.float32),
                    has_message=jnp.asarray(False), episode_bits=jnp.zeros((), jnp.float32))


def actions(move, speaker_message=(0.0, 0.0, 0.0, 0.0), speaker_move=0, listener_message=99.0):
    z = jnp.asarray(speaker_message, jnp.float32)
    return {"move": jnp.asarray([speaker_move, move], jnp.int32),
            "message": jnp.stack([z, jnp.full_like(z, listener_message)])}


# ---- rules --------------------------------------------------------------------------------

@pytest.mark.parametrize("move, expected", [(0, (2, 3)), (1, (2, 2)), (2, (2, 4)), (3, (3, 3)),
                                            (4, (1, 3)), (7, (2, 3)), (-1, (2, 3))])
def test_moves_are_the_originals_and_illegal_moves_stay(env_params, move, expected):
    env, params = env_params
    # the speaker's move (4 = west) is ignored; out-of-range moves are read as "stay"
    obs, s, reward, term, trunc, info = env.step(
        jax.random.key(0), make_state((2, 3), (6, 6)), actions(move, speaker_move=4), params)
    np.testing.assert_array_equal(s.pos, expected)
    np.testing.assert_array_equal(obs["position"], [[0, 0], list(expected)])
    np.testing.assert_array_equal(obs["goal"], [[6, 6], [0, 0]])  # speaker sees the goal only
    np.testing.assert_allclose(reward, [-0.01, -0.01])
    assert not term and not trunc and not info["success"]


def test_moves_are_clipped_at_the_border(env_params):
    env, params = env_params
    for pos, move in [((0, 0), 1), ((0, 0), 4), ((7, 7), 2), ((7, 7), 3)]:
        s = env.step(jax.random.key(0), make_state(pos, (4, 4)), actions(move), params)[1]
        np.testing.assert_array_equal(s.pos, pos)


def test_reaching_the_goal_pays_one_terminates_and_resets(env_params):
    env, params = env_params
    obs, s, reward, term, trunc, info = env.step(
        jax.random.key(1), make_state((2, 3), (3, 3), time=7), actions(3), params)
    np.testing.assert_allclose(reward, [1.0, 1.0])
    assert term and not trunc and info["success"]
    np.testing.assert_array_equal(info["final_observation"]["position"][1], [3, 3])
    assert int(s.time) == 0 and not s.has_message  # auto-reset into a fresh episode
    # the reward constants are params
    custom = params.replace(goal_reward=2.5, step_reward=-0.5)
    r_goal = env.step(jax.random.key(1), make_state((2, 3), (3, 3)), actions(3), custom)[2]
    r_step = env.step(jax.random.key(1), make_state((2, 3), (3, 3)), actions(0), custom)[2]
    np.testing.assert_allclose([r_goal[0], r_step[0]], [2.5, -0.5])


def test_truncated_after_50_steps_unless_the_goal_is_reached(env_params):
    env, params = env_params
    assert params.max_steps_in_episode == 50
    _, _, reward, term, trunc, info = env.step(
        jax.random.key(2), make_state((0, 0), (5, 5), time=49), actions(0), params)
    assert trunc and not term and not info["success"]
    np.testing.assert_allclose(reward, [-0.01, -0.01])
    _, _, reward, term, trunc, _ = env.step(
        jax.random.key(2), make_state((4, 5), (5, 5), time=49), actions(3), params)
    assert term and not trunc
    np.testing.assert_allclose(reward, [1.0, 1.0])
    _, _, _, term, trunc, _ = env.step(
        jax.random.key(2), make_state((0, 0), (5, 5), time=48), actions(0), params)
    assert not term and not trunc


def test_message_arrives_next_step_with_bits_and_bad_values_are_finite(env_params):
    env, params = env_params
    z = jnp.array([1.5, -2.0, jnp.nan, 3e38])
    obs, s, _, _, _, info = env.step(
        jax.random.key(3), make_state((1, 1), (5, 5)), actions(0, z), params)
    # Continuous: identity, NaN read as 0, clipped to 1e6; the speaker's own row stays zero
    np.testing.assert_array_equal(obs["message"], [[0, 0, 0, 0], [1.5, -2.0, 0.0, 1e6]])
    np.testing.assert_array_equal(obs["has_message"], [False, True])
    assert float(info["bits"]) == float(info["episode_bits"]) == 32 * 4
    _, _, _, _, _, info = env.step(jax.random.key(4), s, actions(0, z), params)
    assert float(info["episode_bits"]) == 2 * 32 * 4  # running total over the episode

    bounded, p = dcgenv.make("GridWorldGoal-v0", message_bound=1.0)
    obs = bounded.step(jax.random.key(3), make_state((1, 1), (5, 5)), actions(0, z), p)[0]
    np.testing.assert_array_equal(obs["message"][1], [1.0, -1.0, 0.0, 1.0])
    assert float(bounded.action_space(p).spaces["message"].high) == 1.0


def test_channel_noise_comes_from_the_step_key_and_train_switch():
    z = jnp.array([0.33, -1.27, 2.0, 0.0])
    key = jax.random.key(5)
    received = {}
    for train in (True, False):
        channel = comms.DDCL(0.2)
        env, params = dcgenv.make("GridWorldGoal-v0", channel=channel, train_channel=train)
        obs, _, _, _, _, info = env.step(key, make_state((1, 1), (5, 5)), actions(0, z), params)
        # the base class splits the step key once; the channel gets the transition key
        want, stats = channel.send(jax.random.split(key)[0], z[None], train=train)
        np.testing.assert_array_equal(obs["message"][1], want[0])
        assert float(info["bits"]) == float(stats["bits"])
        np.testing.assert_allclose(info["comm_cost"], stats["cost"])
        assert np.all(np.abs(np.asarray(obs["message"][1] - z)) <= 0.1 + 1e-6)
        received[train] = np.asarray(obs["message"][1])
    assert not np.array_equal(received[True], received[False])


# ---- distributions --------------------------------------------------------------------------

def sampled_goals_and_starts(env, params, n, seed=0):
    states = jax.jit(jax.vmap(lambda k: env.reset(k, params)[1]))(
        jax.random.split(jax.random.key(seed), n))
    return np.asarray(states.goal), np.asarray(states.pos)


def chi_square_p(counts, probs):
    expected = counts.sum() * probs
    stat = np.sum((counts - expected) ** 2 / expected)
    return float(chi2.sf(stat, len(counts) - 1))


@pytest.mark.parametrize("env_id", ["GridWorldGoal-v0", "GridWorldGoal-uniform-v0",
                                    "GridWorldGoal-zipf-v0"])
def test_goal_frequencies_match_params_table(env_id):
    # Pearson's statistic over the cells with positive probability is asymptotically
    # chi2(k - 1) for a correct sampler (expected counts here are >= 50, far above the usual 5),
    # so p < 1e-3 would happen for 1 key in 1000; the key is fixed, so the test is
    # deterministic. Power: the same counts reject a table with one weight changed by 1/80.
    env, params = dcgenv.make(env_id)
    n = 16000
    goals, starts = sampled_goals_and_starts(env, params, n)
    probs = np.asarray(params.goal_probs, np.float64).ravel()
    probs = probs / probs.sum()
    counts = np.bincount(goals[:, 0] * 8 + goals[:, 1], minlength=64)
    assert counts[probs == 0].sum() == 0  # cells outside the table never appear
    support = probs > 0
    assert chi_square_p(counts[support], probs[support]) > P_MIN
    assert not np.any(np.all(starts == goals, axis=1))  # the listener never starts on the goal
    if env_id == "GridWorldGoal-v0":
        assert support.sum() == len(DDCL_GOAL_WEIGHTS)
        altered = goal_probs_from_weights({**DDCL_GOAL_WEIGHTS, (4, 3): 1}).ravel()
        assert chi_square_p(counts[support], altered[support]) < P_MIN


def test_start_is_uniform_over_the_other_cells_and_goal_table_is_an_override():
    table = np.zeros((8, 8), np.float32)
    table[3, 4] = 1.0
    env, params = dcgenv.make("GridWorldGoal-v0", goal_probs=table)
    goals, starts = sampled_goals_and_starts(env, params, 63 * 160, seed=1)
    assert np.all(goals == [3, 4])
    counts = np.bincount(starts[:, 0] * 8 + starts[:, 1], minlength=64)
    assert counts[3 * 8 + 4] == 0
    others = np.delete(counts, 3 * 8 + 4)
    assert chi_square_p(others, np.full(63, 1 / 63)) > P_MIN  # same reasoning as above


def test_goal_table_helpers_and_bad_input_raise():
    table = goal_probs_from_weights(DDCL_GOAL_WEIGHTS)
    assert table.shape == (8, 8) and table[0, 0] == pytest.approx(50 / 80)
    assert table[3, 4] == pytest.approx(25 / 80) and table[4, 3] == pytest.approx(2 / 80)
    z = zipf_goal_probs(8, 1.0).ravel()
    assert z.sum() == pytest.approx(1.0) and z[0] / z[9] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="outside the 4x4 grid"):
        GridWorldGoal(grid_size=4)  # the authors' table needs an 8x8 grid
    with pytest.raises(ValueError, match="unknown goals .*allowed"):
        GridWorldGoal(goals="zipfian")
    with pytest.raises(ValueError, match="message_bound"):
        GridWorldGoal(message_bound=-1.0)
    with pytest.raises(ValueError, match="channel"):
        GridWorldGoal(channel=3)
    with pytest.raises(ValueError, match=">= 0"):
        goal_probs_from_weights({(0, 0): -1.0})
    with pytest.raises(ValueError, match="goal_probs"):
        dcgenv.make("GridWorldGoal-v0", goal_probs=np.ones(64))
    env, params = dcgenv.make("GridWorldGoal-v0")
    s = make_state((1, 1), (5, 5))
    with pytest.raises(ValueError, match="keys"):
        env.step(jax.random.key(0), s, {"move": jnp.zeros(2, jnp.int32)}, params)
    with pytest.raises(ValueError, match="shape"):
        env.step(jax.random.key(0), s, {"move": jnp.zeros(2, jnp.int32),
                                        "message": jnp.zeros((2, 3))}, params)


def test_other_grid_and_channel_shapes():
    env, params = dcgenv.make("GridWorldGoal-uniform-v0", grid_size=5,
                              channel=comms.GumbelSoftmax(3), train_channel=False)
    assert env.action_space(params).spaces["message"].shape == (3,)
    obs, s = env.reset(jax.random.key(0), params)
    assert obs["message"].shape == (2, 3) and params.goal_probs.shape == (5, 5)
    a = {"move": jnp.array([0, 2], jnp.int32), "message": jnp.array([[0.0, 5.0, 1.0]] * 2)}
    obs, _, _, _, _, info = env.step(jax.random.key(1), s, a, params)
    np.testing.assert_array_equal(obs["message"][1], [0.0, 1.0, 0.0])  # greedy one-hot
    assert float(info["bits"]) == pytest.approx(np.log2(3))


# ---- oracle play --------------------------------------------------------------------------

def oracle(obs, state):
    """Speaker sends the goal's (x, y) exactly; listener walks greedily to the decoded goal."""
    message = jnp.zeros((2, 4), jnp.float32).at[0, :2].set(obs["goal"][0])
    message = message.at[1].set(-7.0)  # the listener's message is ignored
    target = jnp.round(obs["message"][1, :2]).astype(jnp.int32)
    return {"move": jnp.stack([jnp.int32(3), greedy(obs, target, obs["has_message"][1])]),
            "message": message}


def omniscient(obs, state):
    """Listener reads the goal from the state: the fastest any listener can be."""
    return {"move": jnp.stack([jnp.int32(0), greedy(obs, state.goal, True)]),
            "message": jnp.zeros((2, 4), jnp.float32)}


def greedy(obs, target, informed):
    dx, dy = target - obs["position"][1].astype(jnp.int32)
    move = jnp.select([dx > 0, dx < 0, dy > 0, dy < 0], [3, 4, 2, 1], 0).astype(jnp.int32)
    return jnp.where(informed, move, 0)


def play(env, params, policy, key, num_steps=16):
    obs, state = env.reset(jax.random.split(key)[0], params)
    distance = jnp.sum(jnp.abs(state.pos - state.goal))

    def body(carry, k):
        obs, state = carry
        obs, state, reward, term, trunc, info = env.step(k, state, policy(obs, state), params)
        return (obs, state), (reward[0], term, trunc, info["success"], info["bits"],
                              info["episode_bits"])

    keys = jax.random.split(jax.random.split(key)[1], num_steps)
    return distance, jax.lax.scan(body, (obs, state), keys)[1]


@pytest.mark.parametrize("channel, train", [(comms.Continuous(), True), (comms.DDCL(0.2), True),
                                            (comms.DDCL(0.2), False)])
def test_oracle_pair_always_succeeds_in_manhattan_plus_one_steps(channel, train):
    env, params = dcgenv.make("GridWorldGoal-v0", channel=channel, train_channel=train)
    keys = jax.random.split(jax.random.key(7), 256)
    # the omniscient listener (one channel suffices) shows the step geometry: d steps
    runs = [(oracle, 1)] + [(omniscient, 0)] * isinstance(channel, comms.Continuous)
    for policy, delay in runs:
        run = jax.jit(jax.vmap(lambda k, policy=policy: play(env, params, policy, k)))
        distance, (reward, term, trunc, success, bits, episode_bits) = run(keys)
        distance, term = np.asarray(distance), np.asarray(term)
        assert distance.min() >= 1 and distance.max() >= 8  # varied starts, never on the goal
        end = np.argmax(term | np.asarray(trunc), axis=1)  # first episode's last step index
        rows = np.arange(len(keys))
        assert np.all(term[rows, end]) and np.all(np.asarray(success)[rows, end])
        # the message is read one step after it is sent: one "stay" step, then d moves
        np.testing.assert_array_equal(end + 1, distance + delay)
        returns = np.where(np.arange(16) <= end[:, None], np.asarray(reward), 0.0).sum(axis=1)
        np.testing.assert_allclose(returns, 1.0 - 0.01 * (distance + delay - 1), atol=1e-5)
        if policy is oracle:  # the running total restarts each episode
            cumulative = np.cumsum(np.asarray(bits), axis=1)
            np.testing.assert_allclose(np.asarray(episode_bits)[rows, end],
                                       cumulative[rows, end], rtol=1e-6)
            if isinstance(channel, comms.Continuous):
                np.testing.assert_array_equal(np.asarray(episode_bits)[rows, end],
                                              128.0 * (end + 1))


# ---- gradients ----------------------------------------------------------------------------

@pytest.mark.parametrize("channel", [comms.Continuous(), comms.DDCL(0.2)])
def test_received_message_gradient_is_identity_through_step(channel):
    env, params = dcgenv.make("GridWorldGoal-v0", channel=channel)
    z0 = jnp.array([0.3, -1.2, 2.0, 0.7])

    def received(z_speaker, z_listener, goal, key):
        a = {"move": jnp.array([0, 3], jnp.int32), "message": jnp.stack([z_speaker, z_listener])}
        obs, _, _, _, _, info = env.step(key, make_state((2, 3), goal), a, params)
        return obs["message"][1], info["final_observation"]["message"][1]

    key = jax.random.key(8)
    jac_obs, jac_final = jax.jacobian(received)(z0, jnp.zeros(4), (6, 6), key)
    np.testing.assert_allclose(jac_obs, np.eye(4), atol=1e-6)
    np.testing.assert_allclose(jac_final, np.eye(4), atol=1e-6)
    np.testing.assert_array_equal(jax.jacobian(received, argnums=1)(z0, z0, (6, 6), key)[0], 0)
    # on the step that reaches the goal the returned obs is the next episode's (no gradient),
    # while the final observation still carries the message and its gradient
    jac_obs, jac_final = jax.jacobian(received)(z0, jnp.zeros(4), (3, 3), key)
    np.testing.assert_array_equal(jac_obs, 0)
    np.testing.assert_allclose(jac_final, np.eye(4), atol=1e-6)


def test_listener_message_has_a_gradient_wrt_the_speakers_message():
    """The README's claim: no gradient of the return, but the routed message is
    differentiable, so a speaker learns through the listener's loss."""
    env, params = dcgenv.make("GridWorldGoal-v0")
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    actions = env.sample_actions(key, params)

    def heard(message):
        moved = {**actions, "message": actions["message"].at[0].set(message)}
        obs = env.step(key, state, moved, params)[0]
        return jnp.sum(obs["message"][1] * jnp.arange(1.0, 5.0))

    np.testing.assert_allclose(jax.grad(heard)(jnp.ones(4)), np.arange(1.0, 5.0))


def test_talk_first_gives_the_original_optimum_and_ignores_the_first_move():
    """``talk_first``: the oracle pair's return is the original's (the omniscient listener's,
    ``1 - 0.01 (d - 1)``) in ``d + 1`` steps; a move on the talk step is ignored and unpaid;
    truncation after ``max_steps_in_episode + 1`` steps; a channel may be given by name."""
    env, params = dcgenv.make("GridWorldGoal-talkfirst-v0", channel="continuous")
    keys = jax.random.split(jax.random.key(8), 128)
    run = jax.jit(jax.vmap(lambda k: play(env, params, oracle, k)))
    distance, (reward, term, trunc, success, bits, episode_bits) = run(keys)
    distance, term = np.asarray(distance), np.asarray(term)
    end = np.argmax(term | np.asarray(trunc), axis=1)
    np.testing.assert_array_equal(end + 1, distance + 1)
    returns = np.where(np.arange(16) <= end[:, None], np.asarray(reward), 0.0).sum(axis=1)
    np.testing.assert_allclose(returns, 1.0 - 0.01 * (distance - 1), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(reward)[:, 0], 0.0)  # the talk step is free

    _, state = env.reset(jax.random.key(0), params)
    east = {"move": jnp.array([0, 3], jnp.int32), "message": jnp.zeros((2, 4))}
    _, moved, reward, *_ = env.step(jax.random.key(1), state, east, params)
    np.testing.assert_array_equal(moved.pos, state.pos)  # step 0: nobody moves
    assert float(reward[0]) == 0.0
    short, stay = params.replace(max_steps_in_episode=3), {**east, "move": jnp.zeros(2, int)}
    s, truncated = state, []
    for t in range(4):  # the listener stays off the goal: 3 moves after the talk step
        _, s, _, term_t, trunc_t, _ = env.step(jax.random.key(t), s, stay, short)
        assert not term_t
        truncated.append(bool(trunc_t))
    assert truncated == [False, False, False, True]
    silent, _ = dcgenv.make("GridWorldGoal-v0", channel="silent")
    assert isinstance(silent.channel, comms.Silent)
    with pytest.raises(ValueError, match="talk_first"):
        dcgenv.make("GridWorldGoal-v0", talk_first=1)
    with pytest.raises(ValueError, match="channel"):
        dcgenv.make("GridWorldGoal-v0", channel="nope")
