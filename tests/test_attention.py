"""Gradient-aware attention, gradient budget, information bottleneck (agents/attention.py),
the Fisher-rank regulariser (dcgenv/comms/regularisers.py) and post-hoc VQ (agents/vq.py)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import attention as attn
from agents import networks as nets
from agents import vq
from agents.config import PPOConfig
from dcgenv import comms
from dcgenv.comms.regularisers import effective_rank, fisher_rank, nuclear_norm


@jax.jit
def _weights(q, k, g, tau):
    edges = attn.eligible(jnp.ones(4, bool))
    return attn.masked_softmax(attn.gradient_aware_scores(q, k, g, edges, tau), edges)


def test_modulation_raises_the_weight_of_high_gradient_senders():
    # receiver 0 hears senders 1, 2, 3 with identical q.k: plain TarMAC weights are 1/3 each
    q = jnp.ones((4, 2))
    k = jnp.ones((4, 2))
    g = jnp.array([1.0, 1.0, 4.0, 1.0])
    w = _weights(q, k, g, 1.0)
    # by hand: receiver 0, mean g over {1, 2, 3} = 2; shifts log(eps + g_j / 2)
    shift = np.log(attn.EPS + np.array([0.5, 2.0, 0.5]))
    expected = np.exp(shift) / np.exp(shift).sum()
    np.testing.assert_allclose(w[0, 1:], expected, rtol=1e-5)
    assert w[0, 2] > w[0, 1] == w[0, 3]  # the documented direction: larger g, more weight
    assert w[0, 0] == 0.0
    # tau = 0 or equal statistics: exactly TarMAC's weights (comms.attention)
    q2 = jnp.arange(8.0).reshape(4, 2) / 7
    k2 = jnp.cos(jnp.arange(8.0)).reshape(4, 2)
    _, tarmac = jax.jit(comms.attention)(q2, k2, jnp.eye(4), jnp.ones(4, bool))
    for stat, tau in ((g, 0.0), (jnp.full(4, 3.0), 2.0)):
        np.testing.assert_allclose(_weights(q2, k2, stat, tau), tarmac, atol=1e-6)
    # larger tau sharpens toward the high-gradient sender; zero statistics stay finite
    assert _weights(q, k, g, 3.0)[0, 2] > w[0, 2]
    np.testing.assert_allclose(_weights(q, k, jnp.zeros(4), 1.0)[0, 1:], 1 / 3, rtol=1e-6)


def test_gradient_budget_zeroes_the_gradients_of_non_selected_senders():
    m = jnp.arange(12.0).reshape(4, 3) / 10
    stat = jnp.array([0.1, 0.5, 0.3, 0.9])
    alive = jnp.array([True, True, True, True])
    views = attn.gradient_budget(m, stat, 1, alive)
    np.testing.assert_array_equal(views, jnp.broadcast_to(m[None], (4, 4, 3)))  # same values
    # receiver i's output: the mean of the others' messages, through the budget
    edges = attn.eligible(alive)
    weights = edges / edges.sum(-1, keepdims=True)
    jac = jax.jit(jax.jacobian(lambda m: attn.aggregate_views(
        weights, attn.gradient_budget(m, stat, 1, alive))))(m)  # [i, d, j, d']
    reaches = np.abs(np.asarray(jac)).sum((1, 3)) > 0  # [receiver, sender]
    expected = np.zeros((4, 4), bool)  # by hand: top-1 of the others by stat
    expected[[0, 1, 2, 3], [3, 3, 3, 1]] = True
    np.testing.assert_array_equal(reaches, expected)
    # k = 2, sender 3 dead: receiver 0 keeps {1, 2}, receiver 1 keeps {2, 0}
    alive2 = jnp.array([True, True, True, False])
    grads = jax.jit(jax.jacobian(lambda m: attn.gradient_budget(m, stat, 2, alive2).sum(
        (1, 2))))(m)[:2]  # [receiver, sender, d]
    assert [np.flatnonzero(np.abs(g).sum(1)).tolist() for g in grads] == [[1, 2], [0, 2]]
    with pytest.raises(ValueError, match="k = 0"):
        attn.gradient_budget(m, stat, 0)


def test_actor_budget_and_modulation_under_jit_vmap_grad():
    actor = nets.Actor((nets.Head("a", "categorical", 3),), hidden=8, message_dim=4,
                       aggregate="gradient_aware", channel=comms.Continuous(), budget_k=1,
                       bottleneck="variational")
    n = 4
    obs = jnp.linspace(-1, 1, n * 5).reshape(n, 5)
    alive = jnp.ones(n, bool)
    carry = jnp.zeros((n, 1))
    key = jax.random.key(3)
    params = jax.jit(actor.init, static_argnums=6)(key, carry, obs, alive, True, key, True)
    stat = jnp.array([[1.0, 1.0, 5.0, 1.0]])

    @jax.jit
    @jax.vmap
    def receiver0_grad(key):  # d(receiver 0's logits) / d(messages), and the step's KL
        def f(perturb):
            _, dists, comm = actor.apply(params, carry, obs, alive, True, key, True,
                                         stat=stat, perturb=perturb)
            return dists["a"].logits[0].sum(), comm["kl"]
        return jax.grad(f, has_aux=True)(jnp.zeros((1, n, 4)))
    keys = jnp.stack([jax.random.key_data(key)] * 2 + [jax.random.key_data(
        jax.random.fold_in(key, 1))])
    g, kl = receiver0_grad(jax.random.wrap_key_data(keys))
    norms = np.abs(np.asarray(g)).sum(-1)[:, 0]  # [batch, sender]
    assert np.all(norms[:, 2] > 0) and np.all(norms[:, [0, 1, 3]] == 0.0)  # top-1 sender only
    assert np.all(np.isfinite(kl)) and np.all(kl > 0)
    np.testing.assert_array_equal(g[0], g[1])  # same key, same result (inside one vmap)
    assert kl[0] == kl[1]
    assert not np.allclose(g[2], g[0])  # another key: another bottleneck sample
    g2, kl2 = receiver0_grad(jax.random.wrap_key_data(keys))  # and across calls
    np.testing.assert_array_equal(g, g2)


def test_pieces_vmap_as_unbatched():
    m = jax.random.normal(jax.random.key(0), (3, 4, 2))
    stat = jnp.abs(jax.random.normal(jax.random.key(1), (3, 4)))
    alive = jnp.array([[True] * 4, [True, False, True, True], [True] * 4])

    def f(m, stat, alive):
        edges = attn.eligible(alive)
        w = attn.masked_softmax(attn.gradient_aware_scores(m, m, stat, edges), edges)
        return attn.aggregate_views(w, attn.gradient_budget(m, stat, 2, alive))
    batched = jax.jit(jax.vmap(f))(m, stat, alive)
    for i in range(3):
        np.testing.assert_allclose(batched[i], f(m[i], stat[i], alive[i]), rtol=1e-5,
                                   atol=1e-6)
    assert np.all(batched[1, 1] == 0.0)  # a dead receiver hears nothing, no NaN


def test_effective_rank_value_and_gradient_by_hand():
    rank = jax.jit(effective_rank)  # one compile for the 2 x 2 cases
    assert float(rank(jnp.eye(2))) == pytest.approx(2.0, rel=1e-6)
    assert float(rank(jnp.outer(jnp.arange(1.0, 3), jnp.ones(2)))) == pytest.approx(
        1.0, abs=1e-5)
    assert float(rank(jnp.zeros((2, 2)))) == 1.0  # no NaN at zero
    a, b = 2.0, 1.0
    p, q = a / (a + b), b / (a + b)
    h = -(p * math.log(p) + q * math.log(q))
    value, grad = jax.jit(jax.value_and_grad(
        lambda a: effective_rank(jnp.diag(jnp.stack([a, jnp.float32(b)])))))(a)
    assert float(value) == pytest.approx(math.exp(h), rel=1e-6)
    # d erank / da = erank * (log q - log p) * b / (a + b)^2
    assert float(grad) == pytest.approx(math.exp(h) * (math.log(q) - math.log(p)) * b
                                        / (a + b) ** 2, rel=1e-4)
    # nuclear norm: sum of singular values; gradient U V^T (the identity for a positive diag)
    value, grad = jax.value_and_grad(nuclear_norm)(jnp.diag(jnp.array([3.0, 4.0])))
    assert float(value) == pytest.approx(7.0)
    np.testing.assert_allclose(grad, np.eye(2), atol=1e-6)
    # the Fisher rank of a linear receiver is the effective rank of its matrix, under jit
    A = jnp.array([[1.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    r = jax.jit(lambda m: fisher_rank(lambda x: A @ x, m))(jnp.ones(3))
    assert float(r) == pytest.approx(float(effective_rank(A)), rel=1e-6)
    assert float(effective_rank(A)) == pytest.approx(
        math.exp(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75))), rel=1e-6)


def test_bottleneck_kl_sampling_and_budget_updates():
    layer = attn.InformationBottleneck(3)
    h = jnp.linspace(-1, 1, 8).reshape(2, 4)
    key = jax.random.key(0)
    params = jax.jit(layer.init, static_argnums=3)(key, h, key, True)
    apply = jax.jit(layer.apply, static_argnums=3)
    z_eval, kl = apply(params, h, key, False)
    mu = h @ params["params"]["mean"]["kernel"] + params["params"]["mean"]["bias"]
    log_std = h @ params["params"]["log_std"]["kernel"] + params["params"]["log_std"]["bias"]
    np.testing.assert_allclose(z_eval, mu, rtol=1e-6)
    by_hand = 0.5 * (mu**2 + jnp.exp(2 * log_std) - 1 - 2 * log_std).sum(-1)
    np.testing.assert_allclose(kl, by_hand, rtol=1e-5, atol=1e-6)
    z1, _ = apply(params, h, key, True)
    z2, _ = apply(params, h, key, True)
    np.testing.assert_array_equal(z1, z2)
    assert not np.allclose(z1, mu)
    # running statistic: mean norm over alive samples, decayed; a slot never alive keeps it
    grads = jnp.array([[[[3.0, 4.0], [1.0, 0.0], [9.0, 9.0]]],
                       [[[0.0, 0.0], [0.0, 2.0], [9.0, 9.0]]]])  # [B=2, hops=1, N=3, D=2]
    alive = jnp.array([[True, True, False], [True, True, False]])
    stat = attn.update_gradient_stat(jnp.ones((1, 3)), grads, alive, decay=0.5)
    np.testing.assert_allclose(stat, [[0.5 + 0.5 * 2.5, 0.5 + 0.5 * 1.5, 1.0]])
    assert float(attn.update_multiplier(jnp.float32(0.1), jnp.float32(3.0), 1.0, lr=0.01)) \
        == pytest.approx(0.12)
    assert float(attn.update_multiplier(jnp.float32(0.01), jnp.float32(0.0), 5.0)) == 0.0


def test_vq_kmeans_finds_clusters_and_is_deterministic():
    key = jax.random.key(1)
    centres = jnp.array([[-5.0, 0.0], [5.0, 1.0], [0.0, 8.0]])
    x = (centres[:, None, :] + 0.1 * jax.random.normal(key, (3, 50, 2))).reshape(-1, 2)
    fit = jax.jit(vq.kmeans, static_argnums=(2, 3))
    book = fit(key, x, 3, 10, jnp.ones(150))
    np.testing.assert_array_equal(book, fit(key, x, 3, 10, jnp.ones(150)))
    order = np.argsort(np.asarray(book)[:, 0])
    np.testing.assert_allclose(np.asarray(book)[order], centres[jnp.array([0, 2, 1])],
                               atol=0.1)
    q = vq.quantise(book, x)
    assert float(vq.distortion(book, x)) < 0.05
    assert set(map(tuple, np.asarray(q).round(4))) <= set(map(tuple, np.asarray(book).round(4)))
    weights = jnp.concatenate([jnp.ones(100), jnp.zeros(50)])  # the third cluster ignored
    book2 = fit(key, x, 3, 10, weights)
    assert np.all(np.asarray(book2)[:, 1] < 4)
    assert vq.codebook_bits(16) == 4.0
    with pytest.raises(ValueError, match="k = 0"):
        vq.kmeans(key, x, 0)


def test_config_keys_validated():
    with pytest.raises(ValueError, match="gradient_aware"):
        PPOConfig(aggregate="gradient_awar")
    with pytest.raises(ValueError, match="'bottleneck'.*comm: none"):
        PPOConfig(comm="none", bottleneck="variational")
    with pytest.raises(ValueError, match="variational"):
        PPOConfig(bottleneck="vib")
    with pytest.raises(ValueError, match="gradient_budget_k"):
        PPOConfig(gradient_budget_k=-1)
    c = PPOConfig(aggregate="gradient_aware", gradient_budget_k=2, bottleneck="variational",
                  bottleneck_budget=1.5, channel="continuous")
    assert (c.gradient_budget_k, c.bottleneck_budget) == (2, 1.5)


def test_gradient_budget_and_attention_with_rectangular_edges():
    """``edges`` [R, N]: R receivers (e.g. a listener's candidates) over N senders (tokens)."""
    m = jnp.arange(8.0).reshape(4, 2) / 10
    stat = jnp.array([0.4, 0.1, 0.9, 0.3])
    edges = jnp.array([[True, True, True, True], [True, True, False, True]])
    views = attn.gradient_budget(m, stat, 2, edges=edges)
    np.testing.assert_array_equal(views, jnp.broadcast_to(m[None], (2, 4, 2)))
    jac = jax.jit(jax.jacobian(lambda m: attn.gradient_budget(m, stat, 2, edges=edges).sum(
        (1, 2))))(m)
    # receiver 0: top-2 of all by stat = {2, 0}; receiver 1 (no edge to 2): {0, 3}
    assert [np.flatnonzero(np.abs(g).sum(1)).tolist() for g in jac] == [[0, 2], [0, 3]]
    with pytest.raises(ValueError, match=r"edges has shape \(2, 3\); allowed: \[receivers, 4\]"):
        attn.gradient_budget(m, stat, 1, edges=edges[:, :3])
    layer = attn.GradientAwareAttention(hidden=4, tau=1.0)
    h, senders = jnp.ones((2, 3)), jnp.arange(12.0).reshape(4, 3) / 10
    alive = jnp.ones(4, bool)
    out, w = jax.jit(lambda: layer.init_with_output(jax.random.key(0), h, senders, m, stat,
                                                    alive, edges=edges)[0])()
    assert out.shape == (2, 2) and w.shape == (2, 4)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    assert float(w[1, 2]) == 0.0  # no edge, no weight


def test_bottleneck_init_std_sets_the_starting_noise_and_is_checked():
    """``init_std`` is the noise std of an untrained bottleneck (its log-std head's bias); the
    config key rejects values outside the head's clip, naming the range."""
    h = jnp.zeros((4, 5))  # zero input: log_std is the bias alone
    key = jax.random.key(0)
    for std in (1.0, 0.0067):
        layer = attn.InformationBottleneck(6, init_std=std)
        params = layer.init(key, h, key, True)
        z, kl = layer.apply(params, h, key, True)
        mu = params["params"]["mean"]["bias"]
        eps = jax.random.normal(key, (4, 6))
        np.testing.assert_allclose(z, mu + std * eps, rtol=1e-5, atol=1e-7)
        by_hand = 0.5 * 6 * (std**2 - 1 - 2 * math.log(std))
        np.testing.assert_allclose(kl, by_hand, rtol=1e-4)
    from agents.config import Config
    base = {"algorithm": "mappo", "env": "TrafficJunction-easy-v0", "bottleneck": "variational"}
    assert Config.from_dict({**base, "bottleneck_init_std": 0.0067}).bottleneck_init_std == 0.0067
    for bad in (0.0, 1e-5, 10.0):
        with pytest.raises(ValueError, match=r"'bottleneck_init_std'.*allowed: \[4.54e-05, 7.39\]"):
            Config.from_dict({**base, "bottleneck_init_std": bad})
    with pytest.raises(ValueError, match=r"'bottleneck_init_std'.*\[0, inf\), got -1.0"):
        Config.from_dict({**base, "bottleneck_init_std": -1.0})
