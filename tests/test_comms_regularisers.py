"""Regularisers (KL, DDCL cost, soft STOP length) and diagnostics (GSNR, REINFORCE)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcgenv import comms

KEY = jax.random.key(0)


def test_kl_standard_normal_matches_monte_carlo():
    mean = jnp.array([0.5, -1.0, 2.0])
    std = jnp.array([0.7, 1.3, 1.0])
    n = 20_000
    x = mean + std * jax.random.normal(KEY, (n, 3))
    log_ratio = (jax.scipy.stats.norm.logpdf(x, mean, std)
                 - jax.scipy.stats.norm.logpdf(x)).sum(axis=1)
    # E_q[log q - log p] from n samples: 5 standard errors of the sample mean
    se = float(log_ratio.std()) / math.sqrt(n)
    assert abs(float(log_ratio.mean()) - float(comms.kl_standard_normal(mean, std))) < 5 * se
    assert comms.kl_standard_normal(jnp.zeros(5)) == 0.0
    assert float(comms.kl_standard_normal(jnp.ones(5))) == pytest.approx(2.5)  # 5 * 1/2


def test_ddcl_cost_counts_bits_at_powers_of_two():
    delta = 0.3
    j = np.arange(6)
    z = (2.0**j - 1) * delta / 2  # log2(2|z|/delta + 1) = j exactly
    for zj, want in zip(z, j, strict=True):
        assert float(comms.ddcl_cost(jnp.array([zj, -zj]), delta)) == pytest.approx(2 * want,
                                                                                   abs=1e-5)


def test_expected_length_matches_sampled_stops():
    logits = jnp.array([1.0, -0.5, 2.0, 0.3])
    n = 20_000
    cont = jax.random.bernoulli(KEY, jax.nn.sigmoid(logits[:-1]), (n, 3))
    lengths = 1 + jnp.cumprod(cont, axis=1).sum(axis=1)  # token 0 always, then until a stop
    # sample mean of a length in [1, 4]: standard error <= 1.5 / sqrt(n); 5 of them
    assert abs(float(lengths.mean()) - float(comms.expected_length(logits))) < 7.5 / math.sqrt(n)
    assert float(comms.expected_length(jnp.full(4, 30.0))) == pytest.approx(4.0)
    assert float(comms.expected_length(jnp.full(4, -30.0))) == pytest.approx(1.0)


def test_gsnr():
    g = 2.0 + 0.5 * jax.random.normal(KEY, (4000, 3))
    r = comms.gsnr({"w": g, "b": jnp.zeros((4000,)), "c": jnp.ones((4000, 2)),
                    "d": jnp.full((4, 3), 3.0)})  # constant: mean^2 / tiny overflows, capped
    # true ratio 16; sample variance of n normals has relative error sqrt(2/n) ~ 2.2%
    np.testing.assert_allclose(r["w"], 16.0, rtol=0.12)
    assert np.all(r["b"] == 0) and np.all(np.isfinite(r["c"])) and np.all(r["c"] > 1e30)
    assert np.all(np.isfinite(r["d"])) and np.all(r["d"] >= r["c"].max())
    with pytest.raises(ValueError, match="size >= 2"):
        comms.gsnr({"w": jnp.ones((1, 3))})


def test_reinforce_is_unbiased_and_pathwise_has_higher_gsnr():
    """The same problem two ways: minimise E[(z - 3)^2] for z ~ N(mu, 1) over mu = 0.5.

    Exact gradient 2(mu - 3) = -5. Pathwise: 2(z - 3). REINFORCE: (z - 3)^2 (z - mu).
    """
    mu, n = 0.5, 20_000
    eps = jax.random.normal(KEY, (n,))

    def pathwise(mu, e):
        return (mu + e - 3.0) ** 2

    def reinforce(mu, e):
        z = jax.lax.stop_gradient(mu + e)  # a sample: no pathwise gradient
        log_prob = -0.5 * (z - mu) ** 2
        return comms.score_function_loss((z - 3.0) ** 2, log_prob)

    assert float(reinforce(mu, 1.0)) == pytest.approx(float(pathwise(mu, 1.0)))
    per_sample = {name: jax.vmap(jax.grad(f), (None, 0))(mu, eps)
                  for name, f in [("pathwise", pathwise), ("reinforce", reinforce)]}
    for g in per_sample.values():
        # unbiased: sample mean within 5 standard errors of the exact gradient
        assert abs(float(g.mean()) + 5.0) < 5 * float(g.std()) / math.sqrt(n)
    ratio = comms.gsnr(per_sample)
    assert ratio["pathwise"] > 3 * ratio["reinforce"]


def test_reinforce_for_a_discrete_message():
    """Categorical message k ~ softmax(theta), loss c[k]: REINFORCE matches the exact gradient."""
    theta = jnp.array([0.2, -0.4, 0.9])
    c = jnp.array([1.0, 3.0, -2.0])
    n = 20_000
    ks = jax.random.categorical(KEY, theta, shape=(n,))

    def surrogate(theta, k):
        return comms.score_function_loss(c[k], jax.nn.log_softmax(theta)[k], baseline=0.5)

    g = jax.vmap(jax.grad(surrogate), (None, 0))(theta, ks)
    exact = jax.grad(lambda t: jnp.dot(jax.nn.softmax(t), c))(theta)
    se = g.std(axis=0) / math.sqrt(n)
    assert np.all(np.abs(g.mean(axis=0) - exact) < 5 * se)
