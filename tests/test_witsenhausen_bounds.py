"""Lower bounds on Witsenhausen's optimal cost (dcgenv.envs.witsenhausen_bounds)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate

from dcgenv.envs import witsenhausen_bounds as B
from dcgenv.envs import witsenhausen_reference as R

BENCH = (0.2, 5.0)
LEARNED = Path(__file__).resolve().parents[1] / "baselines" / "results" / "witsenhausen.json"


def best_affine(k, sigma):
    """Smallest closed-form affine cost on a fine grid of slopes (an attained cost)."""
    return float(np.min(R.affine_cost(np.linspace(0.0, 1.0, 20001), k, sigma)))


@pytest.fixture(scope="module")
def bench_bounds():
    return {"w68": B.witsenhausen_1968_bound(*BENCH), "gs": B.grover_sahai_bound(*BENCH),
            "gps": B.grover_park_sahai_bound(*BENCH)}


def test_bpsk_mmse_is_the_mmse_of_plus_minus_a():
    """h(a) against its definition, E[(x - E[x|y])^2] for x = +-a, by adaptive quadrature."""
    for a in (0.05, 0.7, 1.3, 3.0, 6.0):
        def integrand(y, a=a):
            dens = 0.5 * (np.exp(-0.5 * (y - a) ** 2) + np.exp(-0.5 * (y + a) ** 2))
            return a * a * (1 - np.tanh(a * y) ** 2) * dens / math.sqrt(2 * math.pi)
        ref = integrate.quad(integrand, -a - 12, a + 12, points=(-a, 0.0, a), epsabs=0,
                             epsrel=1e-11, limit=400)[0]
        assert float(B.bpsk_mmse(a)) == pytest.approx(ref, rel=1e-9)
    # small signals: MMSE = a^2 (1 - a^2 + O(a^4)); huge ones: 0, not NaN
    assert float(B.bpsk_mmse(0.01)) == pytest.approx(1e-4 * (1 - 1e-4), rel=1e-6)
    assert B.bpsk_mmse(np.array([60.0, -60.0])).tolist() == [0.0, 0.0]


def test_witsenhausen_bound_matches_a_brute_force_computation():
    """The kink-aware Gauss-Legendre rule against a dense trapezoid over x0 and a brute-force
    minimum over a (step 4e-3); they agree to the brute force's own accuracy (~1e-5)."""
    k, sigma = 0.5, 2.0
    a = np.arange(0.0, 8 * sigma + 4, 4e-3)
    h = B.bpsk_mmse(a)
    xi = np.linspace(0.0, 8 * sigma, 1501)
    v = np.concatenate([np.min(k**2 * (a - x[:, None]) ** 2 + h, 1) for x in np.array_split(xi, 9)])
    dens = 2 * np.exp(-0.5 * (xi / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    brute = integrate.trapezoid(dens * v, xi)
    assert B.witsenhausen_1968_bound(k, sigma) == pytest.approx(brute, rel=3e-5)


def test_grover_park_sahai_contains_grover_sahai(bench_bounds):
    """sigma_G = 1, L -> inf is the Grover-Sahai bound; the sup over (sigma_G, L) can only
    raise it, and at the benchmark point it does (the sphere-packing gain)."""
    p = np.linspace(0.0, 3.0, 7)
    assert np.allclose(B._gps_eta(p, 5.0, 1.0, 40.0), B._gs_eta(p, 5.0), rtol=1e-12, atol=0)
    assert bench_bounds["gps"] > bench_bounds["gs"] * 1.1


def test_bounds_at_the_benchmark_point(bench_bounds):
    """Values (regression, from the formulas in the docstrings) and their order: the
    sphere-packing bound is the best of the three at k = 0.2, sigma = 5."""
    assert bench_bounds["w68"] == pytest.approx(0.0208952914, rel=1e-7)
    assert bench_bounds["gs"] == pytest.approx(0.0276048, rel=1e-5)
    assert bench_bounds["gps"] == pytest.approx(0.0343110, rel=1e-4)
    assert B.best_lower_bound(*BENCH) == pytest.approx(bench_bounds["gps"], rel=1e-12)


def test_infimum_over_power_is_never_overestimated(bench_bounds):
    """Branch and bound over P against plain dense grids of the same objective: never above
    any attained value, and within the 1e-6 it promises of the grid's minimum."""
    k, sigma = BENCH
    p = np.linspace(0.0, 24.0, 400_001)
    dense = np.min(k**2 * p + B._gs_eta(p, sigma))
    assert dense * (1 - 2e-6) <= bench_bounds["gs"] <= dense
    p = np.linspace(0.6, 0.75, 301)
    dense = np.min(k**2 * p + B._gps_sup(p, sigma)[0])
    assert dense * (1 - 2e-6) <= bench_bounds["gps"] <= dense


def test_bounds_lie_below_the_exact_cost_of_known_policies(bench_bounds):
    best = json.loads(LEARNED.read_text())["best"]
    stair = R.staircase(best["thresholds"], best["levels"], best["slopes"])
    stair_cost = R.expected_cost(stair, *BENCH)
    assert stair_cost == pytest.approx(0.16692635, abs=1e-8)
    two_point = R.expected_cost(R.two_point(BENCH[1]), *BENCH)
    affine = best_affine(*BENCH)
    for value in bench_bounds.values():
        assert 0 < value < stair_cost < two_point < affine
    # Grover, Park & Sahai (2013, abstract): for the scalar problem the lattice strategies
    # are numerically within a factor of 8 of their lower bound
    lattice = R.staircase(6.5 * (np.arange(1, 9) - 0.5), 6.5 * np.arange(9))
    assert R.expected_cost(lattice, *BENCH) / bench_bounds["gps"] < 8
    for k, sigma in [(0.05, 10.0), (1.0, 1.0)]:
        cheap = min(best_affine(k, sigma), R.expected_cost(R.two_point(sigma), k, sigma))
        bounds = [B.witsenhausen_1968_bound(k, sigma), B.grover_sahai_bound(k, sigma)]
        assert all(0 < b < cheap <= B.trivial_upper_bound(k, sigma) for b in bounds)


def test_witsenhausen_bound_for_large_sigma_tends_to_its_limit():
    """As sigma -> inf, sigma * bound -> sqrt(2 / pi) int_0^inf V_k(xi) dxi (the density of
    |x0| is 2 phi(0) / sigma over V_k's support, xi < 16). Regression: V_k was minimised over
    the tabulated a <= 48 only, and the quadrature cells were 8 sigma / 240 wide in xi, so for
    sigma > ~6 the bound came out too large (1.27 > the trivial cost 0.999 at k = 0.2, sigma =
    30; 4354 at k = 1, sigma = 100) and at sigma = 1e4 12% too small."""
    k = 1.0
    a = np.arange(0.0, 24.0, 4e-3)
    h = B.bpsk_mmse(a)
    xi = np.linspace(0.0, 16.0, 801)
    v = np.concatenate([np.min(k**2 * (a - x[:, None]) ** 2 + h, 1) for x in np.array_split(xi, 4)])
    limit = math.sqrt(2 / math.pi) * integrate.trapezoid(v, xi)
    for sigma in (1e3, 1e4):
        assert sigma * B.witsenhausen_1968_bound(k, sigma) == pytest.approx(limit, rel=1e-4)
    for k, sigma in ((0.2, 30.0), (1.0, 100.0)):
        assert 0 < B.witsenhausen_1968_bound(k, sigma) < B.trivial_upper_bound(k, sigma)


def test_grover_sahai_beats_witsenhausen_by_an_unbounded_factor():
    """Grover & Sahai (2010, Int. J. Systems, Control and Communications 2(1-3), abstract):
    "Restricted to the scalar problem, it is shown that the new lower bound can be better than
    Witsenhausen's bound by an arbitrarily large factor." At k = 1 Witsenhausen's bound decays
    like 1 / sigma (previous test) while Grover-Sahai's tends to k^2 / (1 + k^2), the minimum of
    k^2 P + (1 - sqrt(P))^2 that its formula reduces to as sigma -> inf: the ratio grows like
    sigma."""
    k = 1.0
    ratios = [B.grover_sahai_bound(k, s) / B.witsenhausen_1968_bound(k, s)
              for s in (10.0, 1e3, 1e4)]
    assert 1 < ratios[0] and ratios[1] > 50 * ratios[0] and ratios[2] > 9 * ratios[1]
    assert B.grover_sahai_bound(k, 1e4) == pytest.approx(k**2 / (1 + k**2), rel=1e-3)


def test_simple_vector_strategies_within_a_factor_5_of_grover_sahai():
    """Grover (talk abstract, University of Michigan controls seminar, 7 Jan 2011): with the
    information-theoretic lower bound, simple "good" strategies "attain within a factor of 5
    uniformly over all problem parameters" for the infinite-length (vector) problem. Our
    reading: the better of zero-forcing, zero-input and vector quantisation
    (``witsenhausen_vector.asymptotic_cost``) against :func:`grover_sahai_bound`, the
    m -> inf lower bound of Grover & Sahai (2010). Largest ratio: 3.85 on this 13 x 13 grid
    (k 0.46, sigma 1), 4.23 on a 41 x 41 one over the same ranges (k 0.63, sigma 1)."""
    from dcgenv.envs.witsenhausen_vector import asymptotic_cost
    ratios = [asymptotic_cost(k, s) / B.grover_sahai_bound(k, s)
              for k in np.logspace(-3, 1, 13) for s in np.logspace(-1, 3, 13)]
    assert 1 <= min(ratios) and max(ratios) < 5


def test_bounds_increase_with_k(bench_bounds):
    """Each bound is an average or an inf over P of quantities non-decreasing in k."""
    for f, key in ((B.witsenhausen_1968_bound, "w68"), (B.grover_sahai_bound, "gs")):
        lo, hi = f(0.1, 5.0), f(0.4, 5.0)
        assert lo < bench_bounds[key] < hi
    assert B.grover_park_sahai_bound(0.1, 5.0) < bench_bounds["gps"]
    assert [f(0.0, 5.0) for f in (B.witsenhausen_1968_bound, B.grover_sahai_bound,
                                  B.grover_park_sahai_bound)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("k, sigma, name", [(-0.1, 5.0, "k"), (math.nan, 5.0, "k"),
                                            (math.inf, 5.0, "k"), (0.2, 0.0, "sigma"),
                                            (0.2, -1.0, "sigma"), (0.2, math.inf, "sigma"),
                                            ("x", 5.0, "k")])
def test_bad_arguments_name_the_parameter(k, sigma, name):
    for f in (B.witsenhausen_1968_bound, B.grover_sahai_bound, B.grover_park_sahai_bound,
              B.best_lower_bound):
        with pytest.raises(ValueError, match=name):
            f(k, sigma)
