"""Lower bounds on the optimal cost of Witsenhausen's (scalar) counterexample.

The problem (Witsenhausen 1968, SIAM J. Control 6(1)): ``x0 ~ N(0, sigma^2)``, controller 1
sees ``x0`` and sets ``x1 = x0 + u1``, controller 2 sees ``y = x1 + w`` with ``w ~ N(0, 1)``
and plays ``u2``; the cost is ``k^2 E[u1^2] + E[(x1 - u2)^2]``. Its optimal cost
``J*(k, sigma)`` is unknown; these functions bound it from below, so that the gap between a
policy's exact cost (:func:`dcgenv.envs.witsenhausen_reference.expected_cost`) and the best
bound says how far from optimal that policy can at most be. Host-side numpy/scipy, float64;
values are cached per ``(k, sigma)`` (the functions are deterministic).

- :func:`witsenhausen_1968_bound` -- Witsenhausen (1968), Theorem 2.
- :func:`grover_sahai_bound` -- Grover & Sahai (2010), "Witsenhausen's counterexample as
  assisted interference suppression", Int. J. Systems, Control and Communications 2(1-3):
  the vector bound, valid at every vector length, hence for the scalar case.
- :func:`grover_park_sahai_bound` -- Grover, Park & Sahai (2013), "Approximately optimal
  solutions to the finite-dimensional Witsenhausen counterexample", IEEE Trans. Automatic
  Control (arXiv:1003.0514), the "sphere-packing" bound at vector length ``m = 1``.
- :func:`best_lower_bound` -- the largest of these.

Every bound is ``0`` at ``k = 0`` (the optimal cost is then 0) and, at ``k > 0``, lies in
``(0, min(k^2 sigma^2, sigma^2 / (sigma^2 + 1))]``, the cost of the best of the two trivial
affine policies. Each function's docstring gives the formula, its derivation in short, and the
numerical accuracy; all computed values are (up to the stated quadrature error) *valid* lower
bounds: a free parameter that a bound maximises over is searched on a grid (so the search
only ever loses tightness), and a parameter it minimises over is bracketed so that the
minimum is never overestimated.

Sources: each formula is re-derived in its docstring (the derivation is what the tests
check, with an independent brute-force evaluation of Witsenhausen's integral and of its
sigma -> inf limit). Only the papers' abstracts and first pages could be read here, not
their tables or figures, so no printed value of a bound is reproduced; the printed claims
checked instead (``tests/test_witsenhausen_bounds.py``, ``docs/witsenhausen.md``) are
Grover, Park & Sahai's (scalar lattice quantisers within a factor 8 of their bound) and
Grover & Sahai's (their bound beats Witsenhausen's by an arbitrarily large factor in the
scalar case; checking that one found, and fixed, a defect of this module at large sigma).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import special

__all__ = ["witsenhausen_1968_bound", "grover_sahai_bound", "grover_park_sahai_bound",
           "best_lower_bound", "bpsk_mmse", "trivial_upper_bound"]

_SQRT_2PI = np.sqrt(2 * np.pi)


def _check(k: float, sigma: float) -> tuple[float, float]:
    try:
        k, sigma = float(k), float(sigma)
    except (TypeError, ValueError) as err:
        raise ValueError(f"k and sigma must be real numbers, got k={k!r}, sigma={sigma!r}") \
            from err
    if not (np.isfinite(k) and k >= 0):
        raise ValueError(f"k must be a finite number >= 0, got {k!r}")
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    return k, sigma


def trivial_upper_bound(k: float, sigma: float) -> float:
    """``min(k^2 sigma^2, sigma^2 / (sigma^2 + 1))``: the cost of ``x1 = 0`` (controller 1
    cancels the state) or of ``x1 = x0`` (controller 1 does nothing, controller 2 estimates).
    Every lower bound must lie below it."""
    k, sigma = _check(k, sigma)
    return min(k**2 * sigma**2, sigma**2 / (sigma**2 + 1))


# ---- Witsenhausen 1968 -----------------------------------------------------------------------
_Y_STEP = 0.25 / 48  # trapezoid step in y for a <= 48 (see bpsk_mmse)
_Y = np.arange(0.0, 12.0 + _Y_STEP / 2, _Y_STEP)
_Y_W = np.full(_Y.shape, _Y_STEP)
_Y_W[0] = _Y_STEP / 2  # the integrand is even: 2 * (trapezoid on [0, 12]); the end is ~1e-32
_A_MAX = 48.0  # h(a) < a^2 exp(-a^2 / 2) < 1e-496 (0 in float64) beyond


def bpsk_mmse(a) -> np.ndarray:
    """``h(a) = sqrt(2 pi) a^2 phi(a) int phi(y) / cosh(a y) dy``: the minimum mean-square error
    of estimating an equiprobable ``x = +-a`` from ``x + N(0, 1)``.

    (The density of ``y`` is ``sqrt(2 pi) phi(a) phi(y) cosh(a y)``, the estimate is
    ``a tanh(a y)``, and ``a^2 E[1 - tanh^2(a y)]`` gives the formula.) Trapezoid rule on
    ``y in [0, 12]`` with step ``0.25 / 48``: ``1 / cosh(a y)`` has its nearest poles at
    ``|Im y| = pi / (2 a)``, so the rule's relative error is ``~exp(-pi^2 / (a step))``,
    below 1e-16 for ``a <= 48``; beyond, ``h(a) < 1e-496`` and 0 is returned. Vectorised.
    """
    a = np.abs(np.asarray(a, np.float64))
    flat = a.reshape(-1)
    out = np.zeros(flat.shape)
    inside = flat <= _A_MAX
    for start in range(0, int(inside.sum()), 512):
        ai = flat[inside][start:start + 512, None]
        t = np.exp(-ai * _Y)  # 1 / cosh(a y) = 2 t / (1 + t^2), no overflow
        integral = 2 * np.sum(_Y_W * np.exp(-0.5 * _Y**2) / _SQRT_2PI * 2 * t / (1 + t * t), 1)
        idx = np.flatnonzero(inside)[start:start + 512]
        out[idx] = ai[:, 0] ** 2 * np.exp(-0.5 * ai[:, 0] ** 2) * integral
    return out.reshape(a.shape)


@functools.lru_cache(maxsize=1)
def _h_table(step: float = 0.004) -> tuple[np.ndarray, np.ndarray]:
    a = np.arange(0.0, _A_MAX + step, step)
    return a, bpsk_mmse(a)


def _argmin_a(k: float, xi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid minimum over ``a`` of ``k^2 (a - xi)^2 + h(a)``: (value, index into the table)."""
    a, h = _h_table()
    vals, idx = np.empty(xi.shape), np.empty(xi.shape, int)
    for start in range(0, len(xi), 256):
        f = k**2 * (a - xi[start:start + 256, None]) ** 2 + h
        idx[start:start + 256] = np.argmin(f, 1)
        vals[start:start + 256] = f[np.arange(f.shape[0]), idx[start:start + 256]]
    return vals, idx


def _v_k(k: float, xi: np.ndarray) -> np.ndarray:
    """``V_k(xi) = min_a k^2 (a - xi)^2 + h(a)`` for ``xi >= 0``: a grid over ``a`` (step
    0.004, where h is tabulated), then a parabola through the best grid point and its two
    neighbours, whose vertex is evaluated exactly; the minimum of the evaluated values is kept.
    Each value is an attained one, so it is >= the true minimum, by at most ~1e-10 (the
    parabola's error, O(step^3)). Beyond the table, ``a > 48``, ``h(a) < 1e-496`` and the
    cost is ``k^2 (a - xi)^2``: its infimum there, ``k^2 ((48 - xi)^+)^2``, is included (0
    for ``xi >= 48``, where ``a = xi`` is best)."""
    a, h = _h_table()
    step = a[1] - a[0]
    best, i = _argmin_a(k, xi)
    i = np.clip(i, 1, len(a) - 2)
    f0, f1, f2 = (k**2 * (a[j] - xi) ** 2 + h[j] for j in (i - 1, i, i + 1))
    denom = f0 - 2 * f1 + f2
    shift = np.where(denom > 0, 0.5 * (f0 - f2) / np.where(denom > 0, denom, 1.0), 0.0)
    a_star = a[i] + np.clip(shift, -1, 1) * step
    # a beyond the table (a > a[-1] = 48, where h(a) < 1e-496): the cost is k^2 (a - xi)^2,
    # whose infimum there is k^2 (a[-1] - xi)^2 if xi < a[-1] and 0 otherwise
    beyond = k**2 * np.maximum(a[-1] - xi, 0.0) ** 2
    return np.minimum(np.minimum(best, k**2 * (a_star - xi) ** 2 + bpsk_mmse(a_star)), beyond)


def _z_grid(sigma: float, z_max: float, cells: int, xi_step: float) -> np.ndarray:
    """``cells + 1`` equispaced points ``z = xi / sigma`` in ``[0, z_max]``, plus, where those
    are more than ``xi_step`` apart in ``xi`` (large ``sigma``), points ``xi_step`` apart in
    ``xi`` below ``xi = 48``: ``V_k``'s features have widths of order 1 in ``xi`` whatever
    ``sigma``, and ``V_k(xi) <= h(xi) < 1e-496`` beyond 48 (``a = xi``)."""
    z = np.linspace(0.0, z_max, cells + 1)
    if sigma * z_max / cells > xi_step * (1 + 1e-9):  # not for a rounding difference
        z = np.union1d(z, np.arange(0.0, min(sigma * z_max, _A_MAX), xi_step) / sigma)
    return z


def _kinks(k: float, sigma: float, z_max: float) -> list[float]:
    """Points ``z = xi / sigma`` where the minimising ``a`` jumps from one branch to another
    (``V_k`` has a kink there): a scan of 2001 points (at most 0.02 apart in ``xi`` below 48,
    see ``_z_grid``), then bisection to 1e-13."""
    a, _ = _h_table()
    z = _z_grid(sigma, z_max, 2000, 0.02)
    _, idx = _argmin_a(k, sigma * z)
    out = []
    for j in np.flatnonzero(np.abs(np.diff(a[idx])) > 0.25):
        lo, hi, a_lo, a_hi = z[j], z[j + 1], a[idx[j]], a[idx[j + 1]]
        while hi - lo > 1e-13 * max(1.0, hi):
            mid = 0.5 * (lo + hi)
            a_mid = a[_argmin_a(k, np.array([sigma * mid]))[1][0]]
            if abs(a_mid - a_lo) <= abs(a_mid - a_hi):
                lo = mid
            else:
                hi = mid
        out.append(0.5 * (lo + hi))
    return out


def witsenhausen_1968_bound(k: float, sigma: float, panels: int = 240) -> float:
    """Witsenhausen's lower bound (1968, SIAM J. Control 6(1):131-147, Theorem 2).

    ``J*(k, sigma) >= (1 / sigma) int phi(xi / sigma) V_k(xi) dxi``, with
    ``V_k(xi) = min_a [k^2 (a - xi)^2 + h(a)]`` and ``h`` the MMSE of a +-a signal in unit
    noise (:func:`bpsk_mmse`); restated in this form by Grover & Sahai (2010), Int. J. Systems,
    Control and Communications 2(1-3).

    Derivation (checks the formula): give controller 2 ``|x0|`` as side information, which
    cannot raise the optimal cost. Given ``|x0| = xi``, ``x1`` is one of ``b = x1(xi)``,
    ``c = x1(-xi)``, equally likely; the estimation error is at least ``h((b - c) / 2)``
    and, by convexity, ``k^2 ((b - xi)^2 + (c + xi)^2) / 2 >= k^2 ((b - c) / 2 - xi)^2``;
    minimising over ``a = (b - c) / 2`` gives ``V_k(xi)``, averaged over ``x0``.

    Numerics: ``V_k`` is even and continuous, smooth between the points where the minimising
    ``a`` jumps branch, and below ``h(xi) < 1e-20`` for ``xi > 10``; the integral over ``z =
    xi / sigma in [0, 8]`` (the rest has mass 1.2e-15 times ``max V <= 0.48``) is a composite
    8-point Gauss-Legendre rule on ``panels`` equal cells, further split at the kinks (located
    by bisection) and, for ``sigma > 5``, into cells at most ``40 / panels`` wide in ``xi``
    below ``xi = 48`` (``V_k``'s features keep their width in ``xi`` as ``sigma`` grows).
    Against 4x more cells the default changes the value by under 1e-11 relative at k 0.05-1,
    sigma 1-1e4 (the fifteen points tried); the inner minimum adds < 1e-10 (see ``_v_k``).
    """
    k, sigma = _check(k, sigma)
    return _witsenhausen_1968(k, sigma, int(panels))


@functools.lru_cache(maxsize=512)
def _witsenhausen_1968(k: float, sigma: float, panels: int) -> float:
    if k == 0:
        return 0.0
    edges = np.union1d(_z_grid(sigma, 8.0, panels, 40.0 / panels), _kinks(k, sigma, 8.0))
    x, w = np.polynomial.legendre.leggauss(8)
    mid, half = (edges[:-1] + edges[1:]) / 2, (edges[1:] - edges[:-1]) / 2
    z = (mid[:, None] + half[:, None] * x).ravel()
    wz = (half[:, None] * w).ravel() * 2 * np.exp(-0.5 * z**2) / _SQRT_2PI
    return float(np.sum(wz * _v_k(k, sigma * z)))


# ---- Grover & Sahai 2010, Grover, Park & Sahai 2013 ------------------------------------------
def _kappa(p: np.ndarray, sigma: float) -> np.ndarray:
    return sigma**2 / ((sigma + np.sqrt(p)) ** 2 + 1)


def _gs_eta(p: np.ndarray, sigma: float) -> np.ndarray:
    return np.maximum(np.sqrt(_kappa(p, sigma)) - np.sqrt(p), 0.0) ** 2


def _c_d(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``c_1(L) = 1 / Pr(Z^2 <= L^2)`` and ``d_1(L) = Pr(chi2_3 <= L^2) / Pr(chi2_1 <= L^2)``
    (the per-dimension second moment of a unit Gaussian truncated to ``|z| <= L``)."""
    p1 = special.erf(L / np.sqrt(2))
    d = 1 - np.sqrt(2 / np.pi) * L * np.exp(-0.5 * L**2) / p1
    return 1 / p1, d


def _gps_eta(p, sigma, sg, L):
    """``eta(P, sigma^2, sigma_G^2, L)`` of Grover, Park & Sahai (2013) at ``m = 1``;
    broadcasts over its arguments (``sg`` is sigma_G, not its square)."""
    c, d = _c_d(L)
    kappa2 = sigma**2 * sg**2 / (c**2 * np.exp(1 - d) * ((sigma + np.sqrt(p)) ** 2 + d * sg**2))
    prefactor = sg / c * np.exp(-0.5 * L**2 * (sg**2 - 1))
    return prefactor * np.maximum(np.sqrt(kappa2) - np.sqrt(p), 0.0) ** 2


def _inf_over_power(k: float, sigma: float, eta_sup, rtol: float = 1e-6, points: int = 100):
    """``inf_{P >= 0} k^2 P + S(P)`` for a non-increasing ``S`` (a sup of non-increasing
    functions of P), never overestimated, by branch and bound: ``P`` in a cell
    ``[P_0, P_1]`` costs at least ``k^2 P_0 + S(P_1)``; cells whose lower value is below the
    best attained value ``k^2 P + S(P)`` (minus ``rtol`` relative) are split in 8 until none is
    left; the result is the smallest lower value of the cells kept. ``P`` beyond ``U / k^2``
    (``U = trivial_upper_bound``) costs more than ``U >= J*`` and is not searched; returns
    ``min(value, U)``."""
    upper = trivial_upper_bound(k, sigma)
    edges = np.linspace(0.0, np.sqrt(upper) / k, points) ** 2  # dense near P = 0
    lo, hi = edges[:-1], edges[1:]
    s_lo, s_hi = eta_sup(lo), eta_sup(hi)
    lower_kept = upper  # smallest lower value among cells dropped as settled
    for _ in range(60):
        best = min(upper, float(np.min(k**2 * lo + s_lo)), float(np.min(k**2 * hi + s_hi)))
        low = k**2 * lo + s_hi
        open_ = low < best * (1 - rtol)
        lower_kept = min(lower_kept, float(np.min(low[~open_], initial=upper)))
        if not open_.any():
            break
        lo, hi, s_lo, s_hi = lo[open_], hi[open_], s_lo[open_], s_hi[open_]
        cuts = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, 9)
        s_cut = eta_sup(cuts[:, 1:-1].ravel()).reshape(len(lo), 7)
        s_all = np.concatenate([s_lo[:, None], s_cut, s_hi[:, None]], 1)
        lo, hi = cuts[:, :-1].ravel(), cuts[:, 1:].ravel()
        s_lo, s_hi = s_all[:, :-1].ravel(), s_all[:, 1:].ravel()
    else:
        lower_kept = min(lower_kept, float(np.min(k**2 * lo + s_hi)))
    return min(lower_kept, upper)


def grover_sahai_bound(k: float, sigma: float) -> float:
    """Grover & Sahai's lower bound (2010, Int. J. Systems, Control and Communications
    2(1-3), written there for the vector problem of any length ``m``).

    ``J* >= inf_{P >= 0} k^2 P + ((sqrt(kappa(P)) - sqrt(P))^+)^2``, with
    ``kappa(P) = sigma^2 / ((sigma + sqrt(P))^2 + 1)``.

    Derivation: with power ``P = E[u1^2]``, ``E[y^2] <= (sigma + sqrt(P))^2 + 1``, so
    ``I(x0; y) <= 1/2 log((sigma + sqrt(P))^2 + 1)`` (Gaussian maximises entropy), and by
    rate-distortion any function of ``y`` -- ``u2`` in particular -- estimates ``x0`` with
    ``E[(x0 - u2)^2] >= sigma^2 exp(-2 I) = kappa(P)``. Since ``x1 - u2 = (x0 - u2) + u1``,
    the triangle inequality in L2 gives ``E[(x1 - u2)^2] >= ((sqrt(kappa) - sqrt(P))^+)^2``.
    It is the ``sigma_G = 1``, ``L -> inf`` member of :func:`grover_park_sahai_bound`.

    Numerics: the infimum over ``P`` is bracketed (see ``_inf_over_power``), never
    overestimated, to 1e-6 relative.
    """
    k, sigma = _check(k, sigma)
    if k == 0:
        return 0.0
    return _inf_over_power(k, sigma, lambda p: _gs_eta(p, sigma))


_LOG_SG = np.linspace(0.0, np.log(40.0), 40)  # coarse grid: sigma_G in 1..40, L in 0.05..12
_LOG_L = np.linspace(np.log(0.05), np.log(12.0), 40)


def _gps_sup(p: np.ndarray, sigma: float, zooms: int = 8) -> tuple[np.ndarray, ...]:
    """``max over (sigma_G, L)`` of ``eta`` for each ``P``: the coarse 40 x 40 grid in
    ``(log sigma_G, log L)``, then ``zooms`` rounds of a 7 x 7 grid around the best point,
    each 3x narrower; every value is attained, so the result never exceeds the true sup.
    Also the ``sigma_G = 1, L -> inf`` member (Grover & Sahai). Returns (sup, sigma_G, L)."""
    p = np.asarray(p, np.float64).ravel()
    parts = [_gps_sup_chunk(p[i:i + 128], sigma, zooms) for i in range(0, len(p), 128)]
    return tuple(np.concatenate(x) for x in zip(*parts, strict=True)) if parts else (p, p, p)


def _gps_sup_chunk(p: np.ndarray, sigma: float, zooms: int) -> tuple[np.ndarray, ...]:
    p = np.asarray(p, np.float64)[:, None, None]
    u, v = _LOG_SG[None, :, None], _LOG_L[None, None, :]
    e = _gps_eta(p, sigma, np.exp(u), np.exp(v)).reshape(len(p), -1)
    j = np.argmax(e, 1)
    best = e[np.arange(len(p)), j]
    bu, bv = _LOG_SG[j // len(_LOG_L)], _LOG_L[j % len(_LOG_L)]
    du, dv = _LOG_SG[1] - _LOG_SG[0], _LOG_L[1] - _LOG_L[0]
    offsets = np.linspace(-1.0, 1.0, 7)
    for _ in range(zooms):
        uu = np.maximum(bu[:, None, None] + du * offsets[None, :, None], 0.0)
        vv = bv[:, None, None] + dv * offsets[None, None, :]
        e = _gps_eta(p, sigma, np.exp(uu), np.exp(vv)).reshape(len(p), -1)
        j = np.argmax(e, 1)
        better = e[np.arange(len(p)), j] > best
        uu = np.broadcast_to(uu, (len(p), 7, 7)).reshape(len(p), -1)
        vv = np.broadcast_to(vv, (len(p), 7, 7)).reshape(len(p), -1)
        best = np.where(better, e[np.arange(len(p)), j], best)
        bu = np.where(better, uu[np.arange(len(p)), j], bu)
        bv = np.where(better, vv[np.arange(len(p)), j], bv)
        du, dv = du / 3, dv / 3
    gs = _gs_eta(p[:, 0, 0], sigma)
    use_gs = gs >= best
    return (np.where(use_gs, gs, best), np.where(use_gs, 1.0, np.exp(bu)),
            np.where(use_gs, np.inf, np.exp(bv)))


def grover_park_sahai_bound(k: float, sigma: float, return_argmax: bool = False):
    """Grover, Park & Sahai's lower bound (2013, IEEE Trans. Automatic Control; arXiv
    1003.0514), for vector length ``m = 1`` (the scalar counterexample).

    ``J* >= inf_{P >= 0} sup_{sigma_G >= 1, L > 0} k^2 P + eta(P, sigma_G, L)``, where
    ``eta = (sigma_G / c(L)) exp(-L^2 (sigma_G^2 - 1) / 2) ((sqrt(kappa_2) - sqrt(P))^+)^2``,
    ``kappa_2 = sigma^2 sigma_G^2 / (c(L)^2 e^{1 - d(L)} ((sigma + sqrt(P))^2 + d(L)
    sigma_G^2))``, ``c(L) = 1 / Pr(|Z| <= L)`` and ``d(L) = Pr(chi2_3 <= L^2) / Pr(chi2_1 <=
    L^2)`` (for general ``m``: ``c_m^{2/m}``, ``sigma_G^m``, ``m L^2``, ``chi2_{m+2}`` and
    ``chi2_m``).

    Derivation ("sphere packing", as in the paper): replace the noise by ``N(0, sigma_G^2)``
    and keep only noise in the ball ``|w| <= L sigma_G``. On that event the noise has
    second moment ``d sigma_G^2`` and entropy power ``sigma_G^2 e^{d - 1} / c^2``, so the
    rate-distortion argument of :func:`grover_sahai_bound` gives ``kappa_2``; the true unit
    noise's density is at least ``sigma_G exp(-L^2 (sigma_G^2 - 1) / 2)`` times the test
    density on the ball, whose test probability is ``1 / c``: hence ``eta``. ``sigma_G = 1``,
    ``L -> inf`` recovers Grover & Sahai's bound; large ``sigma_G`` gains where the
    communication is reliable in unit noise (large ``sigma``, small ``k``).

    Numerics: the supremum over ``(sigma_G, L)`` is searched on a grid refined around its
    best point (``_gps_sup``; only attained values, so it never exceeds the true sup; a
    64 x 64 start with 12 zooms raised it by at most 5e-5 relative at the six points tried,
    k 0.05-0.5, sigma 1-10); the infimum over ``P`` is bracketed by branch and bound, never
    overestimated, to 1e-6 relative. With ``return_argmax`` returns
    ``(bound, P, sigma_G, L)`` at the minimising ``P`` of a 2000-point grid
    (``L = inf`` where the Grover-Sahai member wins).
    """
    k, sigma = _check(k, sigma)
    if k == 0:
        return (0.0, 0.0, 1.0, np.inf) if return_argmax else 0.0
    value = _grover_park_sahai(k, sigma)
    if not return_argmax:
        return value
    p = np.linspace(0, np.sqrt(trivial_upper_bound(k, sigma)) / k, 2000) ** 2
    sup, sg, L = _gps_sup(p, sigma)
    j = int(np.argmin(k**2 * p + sup))
    return value, float(p[j]), float(sg[j]), float(L[j])


@functools.lru_cache(maxsize=512)
def _grover_park_sahai(k: float, sigma: float) -> float:
    return _inf_over_power(k, sigma, lambda p: _gps_sup(p, sigma)[0])


def best_lower_bound(k: float, sigma: float) -> float:
    """The largest of :func:`witsenhausen_1968_bound`, :func:`grover_sahai_bound` and
    :func:`grover_park_sahai_bound` at ``(k, sigma)`` (unit observation noise)."""
    k, sigma = _check(k, sigma)
    return max(witsenhausen_1968_bound(k, sigma), grover_sahai_bound(k, sigma),
               grover_park_sahai_bound(k, sigma))
