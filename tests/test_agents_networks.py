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
    with pytest.raises(ValueError, match="unsupported action space"):
        nets.head_spec(spaces.Box(0.0, 1.0, (2, 2)))


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
