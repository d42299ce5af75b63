"""DDCL's reconstruction error, statistically: uniform on (-delta/2, delta/2), mean zero and
independent of z in both modes, identical in distribution across modes; and *not*
independent of z once the receiver's dither is out of sync with the sender's.

Tolerances (fixed keys, so the tests are deterministic; the thresholds say how unlikely a
failure of a correct implementation would be for a random key). With N = 200_000 errors:

- mean: standard error delta / sqrt(12 N); we allow 5 standard errors (two-sided p ~ 6e-7).
- correlation of two independent variables: standard error 1 / sqrt(N); 5 of them.
- Kolmogorov-Smirnov: P(sqrt(N) * D > c) <= 2 exp(-2 c^2) (Dvoretzky-Kiefer-Wolfowitz), so
  c = 2.7 gives p <= 9e-7 for one sample; for two samples of size N, D < c * sqrt(2 / N).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcgenv import comms

N = 200_000
DELTA = 0.2
KS_C = 2.7
CH = comms.DDCL(DELTA)


def _z(key):
    return 3.0 * jax.random.normal(key, (N,))  # spans ~150 quantisation cells


@jax.jit
def _errors(key_z, key_channel):
    z = _z(key_z)
    train = CH.send(key_channel, z, train=True)[0] - z
    evaluation = CH.send(key_channel, z, train=False)[0] - z
    return z, train, evaluation


def _phase_spread(z):
    """r(delta - r), r = distance of z to the grid: where a desynchronised error varies."""
    r = np.abs(z - DELTA * np.round(z / DELTA))
    return r * (DELTA - r)


def _ks_uniform(x):
    u = np.sort((np.asarray(x, np.float64) + DELTA / 2) / DELTA)
    i = np.arange(1, len(u) + 1)
    return max(np.max(i / len(u) - u), np.max(u - (i - 1) / len(u)))


def _ks_two_sample(a, b):
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return np.max(np.abs(np.searchsorted(a, grid, "right") / len(a)
                         - np.searchsorted(b, grid, "right") / len(b)))


def _corr(a, b):
    return float(np.corrcoef(np.asarray(a, np.float64), np.asarray(b, np.float64))[0, 1])


@pytest.fixture(scope="module")
def errors():
    return [np.asarray(x) for x in _errors(jax.random.key(1), jax.random.key(2))]


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_error_uniform_mean_zero_independent(errors, mode):
    z, err = errors[0], errors[1 if mode == "train" else 2]
    # float32 rounding of m * delta - eps - z is < 1e-6 here
    assert np.all(np.abs(err) <= DELTA / 2 + 1e-5)
    assert abs(err.mean()) < 5 * DELTA / math.sqrt(12 * N)
    assert math.sqrt(N) * _ks_uniform(err) < KS_C
    assert abs(_corr(err, z)) < 5 / math.sqrt(N)
    # independence beyond linear: neither the error nor its spread follows z's grid phase
    assert abs(_corr(err**2, _phase_spread(z))) < 5 / math.sqrt(N)
    assert abs(_corr(err**2, np.abs(z))) < 5 / math.sqrt(N)


def test_train_and_eval_errors_have_same_distribution(errors):
    # independent samples: eval errors from another key than the train errors
    _, _, other_eval = _errors(jax.random.key(3), jax.random.key(4))
    assert _ks_two_sample(errors[1], np.asarray(other_eval)) < KS_C * math.sqrt(2 / N)
    # and a different distribution would be caught: a half-width uniform is far off
    assert _ks_two_sample(errors[1], errors[1] / 2) > 10 * KS_C * math.sqrt(2 / N)


def test_desynchronised_dither_makes_error_depend_on_z():
    key_z, key_sender, key_receiver = jax.random.split(jax.random.key(5), 3)
    z = _z(key_z)
    shared = np.asarray(CH.dequantise(key_sender, CH.quantise(key_sender, z)) - z)
    desync = np.asarray(CH.dequantise(key_receiver, CH.quantise(key_sender, z)) - z)
    spread = _phase_spread(np.asarray(z))
    assert abs(_corr(shared**2, spread)) < 5 / math.sqrt(N)
    # out of sync, Var(error | z) = r(delta - r) + delta^2 / 12 grows with z's grid phase r
    assert _corr(desync**2, spread) > 50 / math.sqrt(N)
    near_grid, half_way = spread < 0.01 * DELTA**2, spread > 0.24 * DELTA**2
    assert desync[half_way].var() > 2.5 * desync[near_grid].var()
    # in sync both variances are delta^2 / 12; relative standard error of a uniform sample's
    # variance is 0.9 / sqrt(n) with n ~ 4000 in the smaller group: 10% is > 5 standard errors
    assert shared[half_way].var() == pytest.approx(shared[near_grid].var(), rel=0.1)
    # its mean is still zero: desynchronisation shows in the spread, not the bias
    assert abs(desync.mean()) < 5 * desync.std() / math.sqrt(N)


def test_eval_straight_through_gradient_is_unbiased():
    """Averaged over the dither, d/dz of a loss of the real reconstruction (straight-through)
    equals the training map's gradient, since m*delta - eps and z + eps have one law."""
    z = jnp.full((N,), 0.37)  # N independent dithers of the same message value
    loss = lambda z, train: jnp.sum(jnp.sin(15.0 * CH.send(jax.random.key(6), z, train=train)[0]))
    g_train, g_eval = (np.asarray(jax.jit(jax.grad(loss), static_argnums=1)(z, t))
                       for t in (True, False))
    # exact: mean of 15 cos(15 (z + u)) over u ~ U(-delta/2, delta/2)
    exact = 15 * (np.sin(15 * (0.37 + DELTA / 2)) - np.sin(15 * (0.37 - DELTA / 2))) / (15 * DELTA)
    for g in (g_train, g_eval):  # 5 standard errors of each sample mean
        assert abs(g.mean() - exact) < 5 * g.std() / math.sqrt(N)
    assert not np.allclose(g_train, g_eval)  # different per-sample values, same expectation
