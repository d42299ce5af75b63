"""The CommNet actor: messages reach the other *alive* agents only, through the channel (bits
and a differentiable cost), with each aggregate; heads follow the action space."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import networks as nets
from dcgenv import comms, spaces

N, D = 4, 6
HEADS = nets.head_spec(spaces.Discrete(3))


def _actor(**kw):
    return nets.Actor(HEADS, hidden=16, **kw)


def _logits(actor, params, obs, alive, train=True):
    carry = jnp.zeros((N, 16))
    _, dists, comm = actor.apply(params, carry, obs, alive, True, jax.random.key(1), train)
    return dists[None].logits, comm


@pytest.mark.parametrize("aggregate", ["mean", "gated", "attention"])
def test_messages_reach_alive_agents_only(aggregate):
    actor = _actor(aggregate=aggregate, channel=comms.DDCL(0.2))
    obs = jax.random.normal(jax.random.key(0), (N, D))
    alive = jnp.array([True, True, True, False])
    params = actor.init(jax.random.key(2), jnp.zeros((N, 16)), obs, alive, True,
                        jax.random.key(1), True)
    base, comm = _logits(actor, params, obs, alive)
    dead_changed, _ = _logits(actor, params, obs.at[3].add(5.0), alive)
    np.testing.assert_allclose(dead_changed[:3], base[:3], rtol=0, atol=0)
    live_changed, _ = _logits(actor, params, obs.at[0].add(5.0), alive)
    assert np.abs(live_changed[1:3] - base[1:3]).max() > 1e-4  # agent 0 was heard
    assert float(comm["messages"]) == 3 and float(comm["bits"]) > 0


def test_no_comm_and_silent_channel_keep_agents_independent():
    obs = jax.random.normal(jax.random.key(0), (N, D))
    alive = jnp.ones(N, bool)
    for actor in (_actor(hops=0), _actor(channel=comms.Silent())):
        params = actor.init(jax.random.key(2), jnp.zeros((N, 16)), obs, alive, True,
                            jax.random.key(1), True)
        base, comm = _logits(actor, params, obs, alive)
        changed, _ = _logits(actor, params, obs.at[0].add(5.0), alive)
        np.testing.assert_allclose(changed[1:], base[1:], rtol=0, atol=0)
        assert float(comm["bits"]) == 0


def test_channel_cost_is_differentiable_and_eval_mode_sends_integers():
    actor = _actor(channel=comms.DDCL(0.2))
    obs = jax.random.normal(jax.random.key(0), (N, D))
    alive = jnp.ones(N, bool)
    params = actor.init(jax.random.key(2), jnp.zeros((N, 16)), obs, alive, True,
                        jax.random.key(1), True)
    grads = jax.grad(lambda p: _logits(actor, p, obs, alive)[1]["cost"])(params)
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads)) > 0
    _, train_comm = _logits(actor, params, obs, alive, train=True)
    _, eval_comm = _logits(actor, params, obs, alive, train=False)
    assert float(train_comm["bits"]) == float(eval_comm["bits"])  # same key: same wire bits


def test_gru_carry_resets_and_dict_heads_sample_and_score():
    heads = nets.head_spec(spaces.Dict({"move": spaces.Discrete(5),
                                        "message": spaces.Normal((4,))}))
    actor = nets.Actor(heads, hidden=8, encoder="gru", hops=0)
    obs, alive = jnp.ones((2, 3)), jnp.ones(2, bool)
    carry = jnp.zeros((2, 8))
    params = actor.init(jax.random.key(0), carry, obs, alive, True, jax.random.key(1), True)
    c1, dists, _ = actor.apply(params, carry, obs, alive, False, jax.random.key(1), True)
    c2, _, _ = actor.apply(params, c1, obs, alive, False, jax.random.key(1), True)
    c3, _, _ = actor.apply(params, c1, obs, alive, True, jax.random.key(1), True)
    assert not np.allclose(c1, c2)  # the carry moves on
    np.testing.assert_array_equal(c3, c1)  # reset: as from zeros
    action = nets.sample(dists, jax.random.key(3))
    assert action["move"].shape == (2,) and action["message"].shape == (2, 4)
    assert nets.log_prob(dists, action).shape == (2,)
    assert nets.mode(dists)["message"].shape == (2, 4)
    with pytest.raises(ValueError, match="action space entry 'flag'.*Binary"):
        nets.head_spec(spaces.Dict({"flag": spaces.Binary((2,))}))


def test_centralised_critic_is_the_dense_layer_on_the_concatenated_input():
    """The critic's factored first layer (the joint part multiplied once per environment)
    computes the MLP on ``[every agent's input, own input]`` with the same parameters."""
    x = jax.random.normal(jax.random.key(1), (3, 5, 7))  # 3 envs, 5 agents
    critic = nets.Critic(16, centralised=True)
    params = critic.init(jax.random.key(0), x[0])
    values = jax.vmap(lambda obs: critic.apply(params, obs))(x)
    p = params["params"]
    joint = jnp.broadcast_to(x.reshape(3, 1, -1), (3, 5, 35))
    h = jnp.concatenate([joint, x], -1)
    for layer in ("Dense_0", "Dense_1"):
        h = jnp.tanh(h @ p["MLP_0"][layer]["kernel"] + p["MLP_0"][layer]["bias"])
    expected = (h @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])[..., 0]
    assert p["MLP_0"]["Dense_0"]["kernel"].shape == (42, 16)  # 5 x 7 joint + 7 own
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6)
    other = x.at[:, 4].add(1.0)  # the last agent's input reaches every agent's value
    changed = jax.vmap(lambda obs: critic.apply(params, obs))(other)
    assert bool((jnp.abs(changed - values)[:, :4] > 1e-6).all())


# --- action heads for every Box shape (0-d, n-d, integer) -----------------------------------

INT_BOX = spaces.Box(np.array([-2, 0, 3]), np.array([1, 0, 7]), (3,), jnp.int32)  # array bounds
HEAD_SPACES = {
    "rubinstein": spaces.Dict({"offer": spaces.Box(0.0, 1.0, (), jnp.float32),
                               "accept": spaces.Box(0.0, 1.0, (), jnp.float32)}),
    "referential": spaces.Dict({"message": spaces.Normal((4, 100)), "choice": spaces.Discrete(2)}),
    "negotiation": spaces.Dict({"accept": spaces.Discrete(2),
                                "proposal": spaces.Box(0, 5, (3,), jnp.int32),
                                "utterance": spaces.Normal((6, 10))}),
    "array_bounds": spaces.Dict({"n": INT_BOX, "grid": spaces.Box(-1, 1, (2, 2), jnp.int32)}),
}


def _dists(space, key, n=3):
    """Each head's distribution from random Dense outputs (and log-stds), ``n`` agents."""
    out = {}
    for i, head in enumerate(nets.head_spec(space)):
        k1, k2 = jax.random.split(jax.random.fold_in(key, i))
        log_std = 0.3 * jax.random.normal(k2, (head.size,)) if head.kind == "gaussian" else None
        out[head.name] = nets.distribution(head, jax.random.normal(k1, (n, head.size)), log_std)
    return out


def test_head_spec_of_each_box_shape():
    rub, ref, neg, arr = (nets.head_spec(HEAD_SPACES[k]) for k in HEAD_SPACES)
    assert [(h.name, h.kind, h.shape, h.size) for h in rub] == [
        ("offer", "gaussian", (), 1), ("accept", "gaussian", (), 1)]
    assert [(h.kind, h.shape, h.size) for h in ref] == [("gaussian", (4, 100), 400),
                                                        ("categorical", (), 2)]
    accept, proposal, utterance = neg
    assert (accept.kind, accept.size) == ("categorical", 2)
    assert (proposal.kind, proposal.shape, proposal.size) == ("integer", (3,), 3 * 6)
    assert proposal.low == (0, 0, 0) and proposal.count == (6, 6, 6)
    assert (utterance.kind, utterance.shape, utterance.size) == ("gaussian", (6, 10), 60)
    assert arr[0].low == (-2, 0, 3) and arr[0].count == (4, 1, 5) and arr[0].size == 3 * 5
    assert arr[1].low == (-1,) * 4 and arr[1].count == (3,) * 4
    # the heads of the registered ids are the ones built from these spaces
    import dcgenv
    for env_id, key in (("Rubinstein-v0", "rubinstein"), ("Negotiation-v0", "negotiation"),
                        ("Referential-continuous-v0", "referential")):
        env, params = dcgenv.make(env_id)
        assert nets.head_spec(env.action_space(params)) == nets.head_spec(HEAD_SPACES[key])
    for bad, match in ((spaces.Box(0, np.inf, (2,), jnp.int32), "finite low and high"),
                       (spaces.Box(3, 1, (), jnp.int32), "allowed: 1 to 4096"),
                       (spaces.Box(0, 10**6, (), jnp.int32), "allowed: 1 to 4096"),
                       (spaces.Binary(()), "unsupported space Binary")):
        with pytest.raises(ValueError, match=match):
            nets.head_spec(bad)


@jax.jit
def _draws(key):
    """For every space of HEAD_SPACES (3 agents): a sample, the mode, their log-probs, the
    entropy, and 400 samples of each integer leaf with their log-probs: one program."""
    out = {}
    for case, space in HEAD_SPACES.items():
        dists = _dists(space, key)
        action = nets.sample(dists, jax.random.key(2))
        many = {k: d.sample(seed=jax.random.key(3), sample_shape=400) for k, d in dists.items()
                if isinstance(d, nets.Shifted)}
        out[case] = {"action": action, "mode": nets.mode(dists),
                     "log_prob": nets.log_prob(dists, action), "entropy": nets.entropy(dists),
                     "many": many, "many_log_prob": {k: dists[k].log_prob(v)
                                                     for k, v in many.items()}}
    # an integer value past an element's count: element 1 of "n" has the single value 0
    out["past"] = _dists(HEAD_SPACES["array_bounds"], key)["n"].log_prob(
        jnp.broadcast_to(jnp.array([1, 1, 7]), (3, 3)))
    return out


def test_samples_and_modes_fit_the_space():
    """Shapes and dtypes as ``space.sample``'s (one per agent), integer values inside
    ``[low, high]`` (every value of every element drawn), unbounded ones inside the space; the
    Gaussian on a bounded float Box is not clipped (the env clips)."""
    draws = jax.device_get(_draws(jax.random.key(0)))
    signature = lambda tree: jax.tree.map(lambda x: (x.shape, np.dtype(x.dtype)), tree)
    for case, space in HEAD_SPACES.items():
        d = draws[case]
        reference = spaces.sample_agents(space, jax.random.key(1), 3)
        assert signature(d["action"]) == signature(reference) == signature(d["mode"]), case
        assert d["log_prob"].shape == (3,) == d["entropy"].shape
        assert np.all(np.isfinite(d["log_prob"])) and np.all(np.isfinite(d["entropy"]))
        if case != "rubinstein":  # Normal, Discrete and integer leaves: inside the space
            spaces.check(space, d["action"], batch_dims=1)
            spaces.check(space, d["mode"], batch_dims=1)
        for name, sub in space.spaces.items():
            if isinstance(sub, spaces.Box) and np.issubdtype(np.dtype(sub.dtype), np.integer):
                many = d["many"][name]  # [400, 3, ...]
                assert np.all(np.isfinite(d["many_log_prob"][name]))
                np.testing.assert_array_equal(many.min((0, 1)), np.broadcast_to(sub.low,
                                                                                sub.shape))
                np.testing.assert_array_equal(many.max((0, 1)), np.broadcast_to(sub.high,
                                                                                sub.shape))
    assert sum(len(draws[case]["many"]) for case in HEAD_SPACES) == 3  # the integer leaves
    assert draws["rubinstein"]["action"]["offer"].shape == (3,)  # 0-d: a scalar per agent
    assert np.all(draws["past"] < -1e8)


def test_gaussian_nd_head_log_prob_and_entropy_are_elementwise_sums():
    head = nets.head_spec(spaces.Normal((2, 3)))[0]
    scalar_head = nets.head_spec(spaces.Box(0.0, 1.0, ()))[0]
    out = jax.random.normal(jax.random.key(0), (4, 6))
    log_std = jnp.linspace(-1.0, 0.5, 6)

    @jax.jit
    def draw(out, log_std):
        dist = nets.distribution(head, out, log_std)
        a = dist.sample(seed=jax.random.key(1))
        scalar = nets.distribution(scalar_head, out[:, :1], log_std[:1])  # 0-d: per agent
        return (a, dist.log_prob(a), dist.entropy(), dist.mode(),
                scalar.sample(seed=jax.random.key(2)), scalar.log_prob(jnp.full(4, 0.25)))

    a, log_prob, entropy, mode, scalar_sample, scalar_log_prob = draw(out, log_std)
    mu, sigma = np.asarray(out).reshape(4, 2, 3), np.exp(np.asarray(log_std)).reshape(2, 3)
    by_hand = (-0.5 * ((np.asarray(a) - mu) / sigma) ** 2 - np.log(sigma)
               - 0.5 * np.log(2 * np.pi)).sum((1, 2))
    assert a.shape == (4, 2, 3)
    np.testing.assert_allclose(log_prob, by_hand, rtol=1e-5)
    np.testing.assert_allclose(entropy, np.full(4, (0.5 * np.log(2 * np.pi * np.e)
                                                    + np.log(sigma)).sum()), rtol=1e-6)
    np.testing.assert_array_equal(mode, mu)
    assert scalar_sample.shape == (4,)
    np.testing.assert_allclose(
        scalar_log_prob, -0.5 * ((0.25 - np.asarray(out[:, 0])) / np.exp(log_std[0])) ** 2
        - log_std[0] - 0.5 * np.log(2 * np.pi), rtol=1e-5)


def test_one_d_gaussian_and_discrete_heads_are_the_original_ones():
    """The 1-d Gaussian and the categorical: the same parameters (names, shapes) and, from the
    same Dense outputs, bit-identical samples, modes and log-probabilities as the heads had
    before n-d and integer boxes were added (MultivariateNormalDiag, Categorical)."""
    import distrax
    space = spaces.Dict({"move": spaces.Discrete(5), "message": spaces.Normal((4,))})
    heads = nets.head_spec(space)
    actor = nets.Actor(heads, hidden=8, hops=0)
    obs, alive = jnp.ones((2, 3)), jnp.ones(2, bool)
    params = jax.eval_shape(actor.init, jax.random.key(0), jnp.zeros((2, 1)), obs, alive, True,
                            jax.random.key(1), True)["params"]  # shapes only: no compile
    shapes = {k: jax.tree.map(lambda x: x.shape, v) for k, v in params.items() if k != "MLP_0"}
    assert shapes == {"Dense_0": {"kernel": (8, 5), "bias": (5,)},
                      "Dense_1": {"kernel": (8, 4), "bias": (4,)}, "log_std_message": (4,)}
    out = {"move": jax.random.normal(jax.random.key(2), (2, 5)),
           "message": jax.random.normal(jax.random.key(3), (2, 4))}
    log_std = 0.2 * jax.random.normal(jax.random.key(4), (4,))

    @jax.jit  # one program (a different density would differ in the last bits)
    def both(out, log_std, key):
        new = {h.name: nets.distribution(h, out[h.name], log_std) for h in heads}
        old = {"move": distrax.Categorical(logits=out["move"]),
               "message": distrax.MultivariateNormalDiag(out["message"], jnp.exp(log_std))}
        keys = jax.random.split(key, 3)
        return [{"sample": [nets.sample(d, k) for k in keys],
                 "log_prob": [nets.log_prob(d, nets.sample(old, k)) for k in keys],
                 "mode": nets.mode(d), "entropy": nets.entropy(d)} for d in (new, old)]

    new, old = both(out, log_std, jax.random.key(5))
    jax.tree.map(np.testing.assert_array_equal, new, old)


@pytest.mark.parametrize("env_id", ["Rubinstein-v0", "Negotiation-v0"])
def test_mappo_trains_on_box_action_games(env_id):
    """Two MAPPO updates (tiny) on the games whose actions are 0-d, n-d and integer boxes
    (Negotiation's ``[6, 10]`` utterance and Discrete accept are the head types of
    ``Referential-continuous-v0`` too): finite losses and parameters, actions shaped like the
    space."""
    from agents import make_trainer
    from agents.config import PPOConfig
    config = PPOConfig(env=env_id, comm="none", num_envs=4, num_steps=8, hidden=16,
                       num_minibatches=1, update_epochs=1, num_updates=2)
    trainer = make_trainer(config)

    @jax.jit
    def updates(key):
        runner = jax.tree.map(lambda a: a[0], trainer.init(key).runners)

        def one(runner, _):
            runner, batch = trainer.collect(runner)
            runner, losses = trainer.learn(runner, batch)
            return runner, (losses, batch.traj.action, batch.traj.episode_end)
        return jax.lax.scan(one, runner, None, length=2)

    runner, (losses, action, ended) = jax.device_get(updates(jax.random.key(0)))
    assert all(np.all(np.isfinite(v)) for v in losses.values()), losses
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(runner.params))
    env, params = config.environment
    if env_id == "Rubinstein-v0":  # unclipped Gaussians: the env clips offers to [0, 1]
        action = jax.tree.map(lambda v: np.clip(v, 0, 1), action)
    spaces.check(env.action_space(params), action, batch_dims=4)  # [update, T, E, N, ...]
    assert ended.any()  # whole episodes were played
