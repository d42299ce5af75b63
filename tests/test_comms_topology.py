"""Topologies: CommNet mean, masks, vision radius, IC3Net gating, TarMAC attention."""

import jax
import jax.numpy as jnp
import numpy as np

from dcgenv import comms

MSG = jax.random.normal(jax.random.key(0), (5, 2, 3))  # 5 agents, [L=2, d=3] messages
ALIVE = jnp.array([True, True, False, True, True])


def _reference_mean(messages, adjacency, alive):
    m, out = np.asarray(messages), np.zeros(messages.shape)
    for i in range(len(m)):
        senders = [j for j in range(len(m)) if adjacency[i][j] and alive[j]]
        if alive[i] and senders:
            out[i] = m[senders].mean(axis=0)
    return out


def test_broadcast_mean_is_mean_of_other_alive_agents():
    out = jax.jit(comms.broadcast_mean)(MSG, ALIVE)
    adj = ~np.eye(5, dtype=bool)
    np.testing.assert_allclose(out, _reference_mean(MSG, adj, ALIVE), rtol=1e-6, atol=1e-6)
    assert np.all(out[2] == 0)  # a dead agent receives nothing
    # the dead agent's message does not leak into anyone's input
    changed = comms.broadcast_mean(MSG.at[2].set(100.0), ALIVE)
    np.testing.assert_allclose(changed, out, atol=1e-6)
    # own message is excluded: no gradient from out[i] to messages[i]
    g = jax.grad(lambda m: comms.broadcast_mean(m, ALIVE)[0].sum())(MSG)
    assert np.all(g[0] == 0) and np.all(g[1] != 0)


def test_masked_mean_and_lonely_agents():
    adj = np.zeros((5, 5), bool)
    adj[0, 1] = adj[0, 3] = adj[1, 2] = True  # agent 1 hears only the dead agent 2
    out = comms.masked_mean(MSG, jnp.asarray(adj), ALIVE)
    np.testing.assert_allclose(out, _reference_mean(MSG, adj, ALIVE), rtol=1e-6, atol=1e-6)
    assert np.all(out[1] == 0) and np.all(np.isfinite(out))
    none = comms.broadcast_mean(MSG, jnp.array([True, False, False, False, False]))
    assert np.all(none == 0)


def test_vision_adjacency():
    pos = jnp.array([[0, 0], [1, 1], [0, 2], [3, 3]])
    adj = np.asarray(comms.vision_adjacency(pos, 1))
    expected = np.zeros((4, 4), bool)
    expected[0, 1] = expected[1, 0] = expected[1, 2] = expected[2, 1] = True
    np.testing.assert_array_equal(adj, expected)
    np.testing.assert_array_equal(comms.vision_adjacency(pos, 0), np.zeros((4, 4), bool))
    manhattan = np.asarray(comms.vision_adjacency(pos, 2, "manhattan"))
    assert manhattan[0, 1] and manhattan[0, 2] and not manhattan[0, 3]
    euclid = np.asarray(comms.vision_adjacency(pos, 1.5, "euclidean"))
    assert euclid[0, 1] and not euclid[0, 2]
    for bad, match in [(dict(radius=-1), "radius must be >= 0"),
                       (dict(radius=1, metric="l7"), "allowed: chebyshev")]:
        try:
            comms.vision_adjacency(pos, **bad)
        except ValueError as err:
            assert match in str(err)
        else:
            raise AssertionError("no ValueError")


def test_gated_mean():
    gate = jnp.array([1.0, 0.0, 1.0, 0.5, 1.0])
    out = comms.gated_mean(MSG, gate, ALIVE)
    np.testing.assert_allclose(out, comms.broadcast_mean(MSG * gate[:, None, None], ALIVE),
                               rtol=1e-6)
    np.testing.assert_allclose(comms.gated_mean(MSG, jnp.ones(5), ALIVE),
                               comms.broadcast_mean(MSG, ALIVE), rtol=1e-6)
    # a silent agent (gate 0) contributes nothing, but still counts in the mean (IC3Net)
    g = jax.grad(lambda m: comms.gated_mean(m, gate, ALIVE).sum())(MSG)
    assert np.all(g[1] == 0) and np.all(g[3] != 0)


def test_attention():
    q, k = jax.random.normal(jax.random.key(1), (2, 5, 4))
    out, w = jax.jit(comms.attention)(q, k, MSG, ALIVE)
    w = np.asarray(w)
    assert np.all(np.isfinite(out)) and np.all(w >= 0)
    np.testing.assert_allclose(w.sum(1), [1, 1, 0, 1, 1], rtol=1e-6)  # dead receiver: none
    assert np.all(w[:, 2] == 0) and np.all(np.diag(w) == 0)  # nobody hears dead or self
    logits = np.asarray(q @ k.T) / 2.0
    p = np.exp(logits[0, [1, 3, 4]]) / np.exp(logits[0, [1, 3, 4]]).sum()
    np.testing.assert_allclose(w[0, [1, 3, 4]], p, rtol=1e-5)
    np.testing.assert_allclose(out[0], np.tensordot(w[0], MSG, axes=1), rtol=1e-5, atol=1e-6)
    # equal keys: attention is the plain mean of the others
    flat, _ = comms.attention(q, jnp.zeros_like(k), MSG, ALIVE)
    np.testing.assert_allclose(flat, comms.broadcast_mean(MSG, ALIVE), rtol=1e-5, atol=1e-6)
    lonely, w1 = comms.attention(q, k, MSG, jnp.array([True, False, False, False, False]))
    assert np.all(lonely == 0) and np.all(w1 == 0)
