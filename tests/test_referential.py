"""Referential-v0: rules, sampling, oracle and silent baselines, gradients, and learning."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv import comms
from dcgenv.envs.referential import EnvState


def play(env, params, key, n, speaker, listener):
    """``n`` episodes: ``speaker(target) -> message``, ``listener(message, candidates) ->
    choice``. Returns (listener reward [n], info of step 0, info of step 1, initial state)."""
    reward, info_0, info_1, first, term = _play(env, params, key, n, speaker, listener)
    assert np.all(np.asarray(term))
    return reward, info_0, info_1, first


@partial(jax.jit, static_argnums=(0, 3, 4, 5))
def _play(env, params, key, n, speaker, listener):
    key_reset, key_0, key_1 = jax.random.split(key, 3)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key_reset, n), params)
    first = state
    message = jax.vmap(speaker)(obs["target"][:, 0])
    space = env.action_space(params).spaces["choice"]
    choice = jnp.zeros((n, 2, *space.shape), space.dtype)
    actions = {"message": jnp.stack([message, jnp.zeros_like(message)], 1), "choice": choice}
    obs, state, _, _, _, info_0 = step(jax.random.split(key_0, n), state, actions, params)
    pick = jax.vmap(listener)(obs["message"][:, 1], obs["candidates"][:, 1])
    actions = {"message": jnp.zeros_like(actions["message"]),
               "choice": jnp.stack([jnp.zeros_like(pick), pick], 1)}
    _, _, reward, term, _, info_1 = step(jax.random.split(key_1, n), state, actions, params)
    return reward[:, 1], info_0, info_1, first, term


# ---- oracles ---------------------------------------------------------------------------------
def token_oracle(n_attributes, n_values, length, vocab):
    """Speaker: the target's index in base ``n_values``, written in base-``vocab`` tokens (sharp
    logits); listener: decode the tokens and pick the candidate with that index."""
    index = lambda x: jnp.sum(jnp.argmax(x.reshape(n_attributes, n_values), -1)
                              * n_values ** jnp.arange(n_attributes))
    place = vocab ** jnp.arange(length)
    speaker = lambda t: 30.0 * jax.nn.one_hot((index(t) // place) % vocab, vocab)
    listener = lambda m, c: jnp.argmax(jax.vmap(index)(c) == jnp.sum(jnp.argmax(m, -1) * place))
    return speaker, listener


def vector_oracle(shape):
    """Speaker: the target's features in the first message slots; listener: nearest candidate."""
    size = int(np.prod(shape))
    speaker = lambda t: jnp.zeros(size).at[: t.size].set(t).reshape(shape)
    listener = lambda m, c: jnp.argmin(jnp.sum((c - m.reshape(-1)[: c.shape[1]]) ** 2, -1))
    return speaker, listener


ORACLE_CASES = {
    "gumbel-eval": ("Referential-v0", {}),
    "gumbel-train": ("Referential-v0", {"channel_train": True}),
    "continuous": ("Referential-v0", {"channel": comms.Continuous(), "message_length": 5,
                                      "message_dim": 10}),
    "ddcl-eval": ("Referential-v0", {"channel": comms.DDCL(0.2), "message_length": 5,
                                     "message_dim": 10, "n_candidates": 5}),
    "continuous-features": ("Referential-continuous-v0", {"channel": comms.Continuous(),
                                                          "message_length": 1}),
}


@pytest.mark.parametrize("case", ORACLE_CASES)
def test_oracle_pair_always_succeeds(case):
    env_id, kwargs = ORACLE_CASES[case]
    env, params = dcgenv.make(env_id, **kwargs)
    if isinstance(env.channel, comms.GumbelSoftmax):
        speaker, listener = token_oracle(env.n_attributes, env.n_values, env.message_length,
                                         env.channel.vocab_size)
    else:
        speaker, listener = vector_oracle(env.sent_shape)
    reward, info_0, info_1, _ = play(env, params, jax.random.key(0), 1000, speaker, listener)
    assert np.all(np.asarray(info_1["success"])) and np.all(np.asarray(reward) == 1.0)
    assert not np.any(np.asarray(info_0["success"]))
    bits = np.asarray(info_0["bits"])
    if isinstance(env.channel, comms.GumbelSoftmax):  # 4 tokens of log2(100) bits
        np.testing.assert_allclose(bits, env.message_length * np.log2(100), rtol=1e-6)
    elif isinstance(env.channel, comms.Continuous):
        assert np.all(bits == 32 * np.prod(env.sent_shape))
    else:  # DDCL(0.2) sends a one-hot target as integers 5 (the 1) and 0, whatever the dither
        zero, five = np.asarray(comms.code_length(jnp.array([0.0, 5.0])))
        assert np.all(bits == (np.prod(env.sent_shape) - env.n_attributes) * zero
                      + env.n_attributes * five)
    assert np.all(np.asarray(info_1["bits"]) == 0)  # the message is counted once, at step 0


def test_silent_channel_leaves_listener_at_chance():
    """With ``Silent`` the listener sees zeros, so any listener is right with probability 1/K
    (the target's position is uniform and independent of the candidates). The oracle listener
    then picks the candidate nearest the origin, a non-trivial function of the candidates.
    Tolerance: 4 binomial standard errors (sqrt(p(1 - p)/n), n = 4000), a 6e-5 two-sided false
    alarm rate for an unlucky key; the key is fixed, so the test is deterministic."""
    n, k = 4000, 4
    env, params = dcgenv.make("Referential-continuous-v0", channel=comms.Silent(),
                              n_candidates=k, message_length=1)
    speaker, listener = vector_oracle(env.sent_shape)
    reward, info_0, info_1, _ = play(env, params, jax.random.key(1), n, speaker, listener)
    rate = float(np.mean(np.asarray(info_1["success"])))
    assert abs(rate - 1 / k) < 4 * np.sqrt((1 / k) * (1 - 1 / k) / n), rate
    assert np.all(np.asarray(info_0["bits"]) == 0)
    # the same pair over a continuous channel is always right: the channel made the difference
    env, params = dcgenv.make("Referential-continuous-v0", channel=comms.Continuous(),
                              n_candidates=k, message_length=1)
    _, _, info_1, _ = play(env, params, jax.random.key(1), n, speaker, listener)
    assert np.all(np.asarray(info_1["success"]))


# ---- rules on hand-built states ----------------------------------------------------------------
def test_two_steps_observations_rewards_and_ignored_actions():
    env, params = dcgenv.make("Referential-v0", n_attributes=1, n_values=3, n_candidates=3,
                              channel=comms.Continuous(), message_length=1, message_dim=2)
    cands = jnp.eye(3)[jnp.array([2, 0, 1])]
    state = EnvState(time=jnp.int32(0), candidates=cands, target_index=jnp.int32(1),
                     message=jnp.zeros((1, 2)))
    obs = env.get_obs(state, params)
    np.testing.assert_array_equal(obs["target"], [[1, 0, 0], [0, 0, 0]])  # cands[1], speaker
    np.testing.assert_array_equal(obs["candidates"], np.stack([np.zeros((3, 3)), cands]))
    np.testing.assert_array_equal(obs["active"], [True, False])
    np.testing.assert_array_equal(obs["role"], [0, 1])

    msg = jnp.array([[[0.5, -2.0]], [[7.0, 7.0]]])  # the listener's message is ignored
    obs, s1, reward, term, trunc, info = env.step(
        jax.random.key(0), state, {"message": msg, "choice": jnp.array([1, 2])}, params)
    assert not term and not trunc and not info["success"]
    np.testing.assert_array_equal(reward, [0.0, 0.0])
    np.testing.assert_array_equal(obs["message"], [[[0.0, 0.0]], [[0.5, -2.0]]])
    np.testing.assert_array_equal(obs["active"], [False, True])
    assert float(info["bits"]) == 64.0 and int(s1.time) == 1

    for choice, right in ((1, True), (2, False), (0, False)):  # the speaker's choice: ignored
        out = env.step(jax.random.key(1), s1, {"message": -msg, "choice": jnp.array([1, choice])},
                       params)
        _, s2, reward, term, trunc, info = out
        assert term and not trunc and bool(info["success"]) == right
        np.testing.assert_array_equal(reward, [float(right)] * 2)
        assert float(info["bits"]) == 0.0 and int(s2.time) == 0  # auto-reset
        np.testing.assert_array_equal(info["final_observation"]["message"][1], [[0.5, -2.0]])

    # illegal actions: choices are clipped into [0, K - 1]; NaN messages are read as 0
    for target, choice, right in ((0, -5, True), (2, 99, True), (2, -5, False)):
        *_, info = env.step(jax.random.key(1), s1.replace(target_index=jnp.int32(target)),
                            {"message": msg, "choice": jnp.array([0, choice])}, params)
        assert bool(info["success"]) == right
    _, s1, *_ = env.step(jax.random.key(0), state,
                         {"message": jnp.full((2, 1, 2), jnp.nan), "choice": jnp.zeros(2, int)},
                         params)
    np.testing.assert_array_equal(s1.message, [[0.0, 0.0]])


def test_differentiable_choice_with_non_finite_logits_stays_finite():
    env, params = dcgenv.make("Referential-v0", n_candidates=3, differentiable=True)
    _, state = env.reset(jax.random.key(0), params)
    state = state.replace(time=jnp.int32(1), target_index=jnp.int32(1))
    message = jnp.zeros((2, *env.sent_shape))
    for logits, want in (([jnp.nan, jnp.inf, -jnp.inf], 1.0), ([0.0, -jnp.inf, jnp.nan], 0.0),
                         ([jnp.nan] * 3, 1 / 3), ([3.0, 1e30, 2.0], 1.0)):
        choice = jnp.stack([jnp.zeros(3), jnp.array(logits)])
        _, _, reward, term, _, info = env.step(jax.random.key(1), state,
                                               {"message": message, "choice": choice}, params)
        assert term and np.all(np.isfinite(np.asarray(reward)))
        np.testing.assert_allclose(reward, [want, want], atol=1e-6)
        assert bool(info["success"]) == (want == 1.0)


def test_candidates_distinct_uniform_and_shuffled():
    # 1 attribute x 3 values, K = 2: each of the 6 ordered pairs of distinct objects has
    # probability 1/6, and the target's position is 0 or 1 with probability 1/2
    n = 6000
    env, params = dcgenv.make("Referential-v0", n_attributes=1, n_values=3, n_candidates=2)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(2), n), params)
    values = np.asarray(jnp.argmax(state.candidates, -1))
    assert np.all(values[:, 0] != values[:, 1])
    counts = np.bincount(values[:, 0] * 3 + values[:, 1], minlength=9)
    assert counts[[0, 4, 8]].sum() == 0
    sd = np.sqrt(n * (1 / 6) * (5 / 6))
    assert np.all(np.abs(counts[[1, 2, 3, 5, 6, 7]] - n / 6) < 4 * sd), counts  # 4 sigma
    target = np.asarray(state.target_index)
    assert abs(target.mean() - 0.5) < 4 * np.sqrt(0.25 / n)
    np.testing.assert_array_equal(obs["target"][:, 0],
                                  np.asarray(state.candidates)[np.arange(n), target])

    # K equal to the number of objects: every episode shows all of them, in a random order
    env, params = dcgenv.make("Referential-v0", n_attributes=2, n_values=2, n_candidates=4)
    _, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(3), 500), params)
    index = np.asarray(jnp.argmax(state.candidates.reshape(500, 4, 2, 2), -1) @ np.array([1, 2]))
    assert np.all(np.sort(index, 1) == np.arange(4))
    assert len({tuple(row) for row in index}) > 20  # of the 24 orders


# ---- gradients -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["continuous", "silent", "ddcl-train"])
def test_differentiable_reward_is_target_probability_with_pathwise_gradient(name):
    """reward(m) = softmax(C m_hat)[t] for a listener scoring candidates by C m_hat (m_hat: the
    received message): the env's value and its gradient with respect to the speaker's message m
    match the closed form (m_hat = m, 0, or m + the dither of DDCL's training map)."""
    channel = {"continuous": comms.Continuous(), "silent": comms.Silent(),
               "ddcl-train": comms.DDCL(0.1)}[name]
    env, params = dcgenv.make("Referential-v0", n_attributes=2, n_values=3, n_candidates=3,
                              channel=channel, channel_train=name == "ddcl-train",
                              message_length=2, message_dim=3, differentiable=True)
    _, state = env.reset(jax.random.key(4), params)
    key_0, key_1 = jax.random.split(jax.random.key(5))

    def reward(m):
        actions = {"message": jnp.stack([m, jnp.zeros_like(m)]), "choice": jnp.zeros((2, 3))}
        obs, s1, *_ = env.step(key_0, state, actions, params)
        logits = obs["candidates"][1] @ obs["message"][1].reshape(-1)
        actions = {"message": jnp.zeros((2, 2, 3)), "choice": jnp.stack([jnp.zeros(3), logits])}
        return env.step(key_1, s1, actions, params)[2][1]

    m = jax.random.normal(jax.random.key(6), (2, 3))
    value, grad = jax.jit(jax.value_and_grad(reward))(m)
    c, t = state.candidates, state.target_index
    if name == "silent":
        received = jnp.zeros_like(m)
    elif name == "ddcl-train":  # split(key_0)[0] is the step's key, shared with the channel
        received = m + channel.dither(jax.random.split(key_0)[0], m.shape)
    else:
        received = m
    p = jax.nn.softmax(c @ received.reshape(-1))
    np.testing.assert_allclose(value, p[t], rtol=1e-5)
    want = 0.0 if name == "silent" else (p[t] * (c[t] - p @ c)).reshape(2, 3)
    np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-7)
    assert name == "silent" or np.abs(np.asarray(grad)).max() > 1e-3


@pytest.mark.parametrize("env_id", ["Referential-differentiable-v0", "Referential-v0",
                                    "Referential-continuous-v0"])
def test_registered_ids_say_whether_the_return_is_differentiable(env_id):
    """``jax.grad`` of an episode's return with respect to the speaker's message, for a fixed
    listener that scores candidates against the received message: nonzero for the
    differentiable id, exactly zero for the two others (an integer pick has no gradient)."""
    env, params = dcgenv.make(env_id)
    assert env.differentiable == (env_id == "Referential-differentiable-v0")
    _, state = env.reset(jax.random.key(0), params)
    key_0, key_1 = jax.random.split(jax.random.key(1))
    proj = 0.1 * jax.random.normal(jax.random.key(2), (np.prod(env.received_shape),
                                                       env.num_features))

    def episode_return(m):
        pick = jnp.zeros((2, env.n_candidates)) if env.differentiable else jnp.zeros(2, int)
        obs, s1, r0, *_ = env.step(key_0, state, {"message": jnp.stack([m, m]), "choice": pick},
                                   params)
        scores = obs["candidates"][1] @ (obs["message"][1].reshape(-1) @ proj)
        choice = scores if env.differentiable else jnp.argmax(scores)
        actions = {"message": jnp.zeros((2, *env.sent_shape)),
                   "choice": jnp.stack([jnp.zeros_like(choice), choice])}
        return (r0 + env.step(key_1, s1, actions, params)[2])[0]

    m = jax.random.normal(jax.random.key(3), env.sent_shape)
    grad = np.asarray(jax.jit(jax.grad(episode_return))(m))
    if env.differentiable:
        assert np.abs(grad).max() > 1e-4
    else:
        assert np.all(grad == 0)


@pytest.mark.parametrize("channel", ["continuous", "ddcl"])
def test_gradient_training_reaches_95_percent(channel):
    """Tiny flax speaker and listener trained with pathwise gradients (optax Adam) through the
    differentiable option, the channel in training mode; accuracy measured on 1024 fresh
    episodes with the channel in evaluation mode (DDCL sends real integers) and argmax picks."""
    from baselines.referential import Config, train

    cfg = Config(n_attributes=3, n_values=4, n_candidates=4, message_length=1, message_dim=4,
                 channel=channel, delta=0.5, cost_weight=1e-3, hidden=32, batch=128, iters=200,
                 lr=1e-2, eval_every=200)
    history = train(cfg, log=lambda line: None)
    assert history["accuracy"][-1] >= 0.95, history
    bits = history["bits_per_message"][-1]
    if channel == "continuous":
        assert bits == 32 * 4
    else:  # a real Elias-gamma code of 4 integers: at least 1 bit each, finite
        assert 4 <= bits < 200


# ---- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"n_candidates": 1}, "n_candidates"),
    ({"objects": "images"}, "onehot"),
    ({"n_attributes": 1, "n_values": 3, "n_candidates": 4}, "distinct objects"),
    ({"channel": "dccl"}, "channel"), ({"channel": 3}, "channel"),
    ({"channel_train": 1}, "channel_train"),
    ({"message_length": 0}, "message_length"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dcgenv.make("Referential-v0", **kwargs)


def test_wrong_message_shape_raises():
    env, params = dcgenv.make("Referential-v0")
    _, state = env.reset(jax.random.key(0), params)
    actions = {"message": jnp.zeros((2, 4, 8)), "choice": jnp.zeros(2, jnp.int32)}
    with pytest.raises(ValueError, match="4, 100"):
        env.step(jax.random.key(1), state, actions, params)
