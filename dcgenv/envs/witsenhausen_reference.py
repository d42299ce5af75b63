"""Witsenhausen's counterexample as a benchmark: exact costs and reference policies.

Convention: a first-stage policy ``gamma1`` maps ``x0`` to the *state* ``x1`` it produces
(``x1 = gamma1(x0)``, so the control is ``u1 = gamma1(x0) - x0``), as in the literature's
staircase pictures (e.g. Lee, Lau & Ho 2001, IEEE TAC 46(3)). It is an elementwise,
vectorised function of an array (numpy or ``jax.numpy`` operations); every reference policy
below is one, and works both inside ``jit`` in float32 and, in :func:`expected_cost`, in
float64.

- :func:`expected_cost` — ``J = k^2 E[(x1 - x0)^2] + E[(x1 - E[x1 | y])^2]`` for a deterministic
  ``gamma1`` and the optimal second stage, by adaptive Gauss-Legendre quadrature over ``x0``
  (cells are halved until they resolve ``gamma1``'s jumps and steep parts) and a trapezoid rule
  over ``y`` (spectrally accurate: the integrand is analytic). For piecewise-smooth policies it
  agrees with closed forms and independent computations to 1e-12 or better; float64 throughout
  (``jax.enable_x64`` is switched on only while ``gamma1`` is evaluated, never for the rest of
  the process). A few seconds for a sloped staircase; compiles ``gamma1`` once per process.
- :func:`expected_cost_with_error` — the same cost and an estimate of its numerical error
  (the change under a coarser ``x0`` tolerance and a doubled ``y`` step).
- :func:`optimal_gamma2` — the optimal controller 2, ``y -> E[x1 | y]``, tabulated in float64
  and interpolated in ``jax.numpy`` (jittable); :func:`posterior_mean` is the differentiable
  formula over any discretised ``x1`` distribution.
- Reference policies: :func:`affine` (with :func:`best_affine_lambdas`), :func:`two_point`
  (Witsenhausen's ``x1 = sigma sgn(x0)``) and :func:`staircase` (odd steps, optional slopes);
  :func:`env_policy` turns ``(gamma1, gamma2)`` into a ``policy(key, obs)`` for
  ``dcgenv.rollout`` on ``Witsenhausen-v0``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Policy1 = Callable[[jax.Array], jax.Array]

_Z_MAX = 10.0  # x0 / sigma range integrated; the Gaussian mass outside is 1.5e-23
_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)
_P8 = np.polynomial.legendre.Legendre.basis(8)  # 9-point Gauss-Lobatto (has the end points)
_GLL_X = np.concatenate([[-1.0], np.sort(_P8.deriv().roots().real), [1.0]])
_GLL_W = 2 / (72 * _P8(_GLL_X) ** 2)
_MAX_LEVELS = 56  # halvings of the 0.25-sigma base cells (down to ~1e-18 sigma)


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _eval64(gamma1: Policy1, x0: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """``gamma1`` on float64 ``x0``, in zero-padded chunks of one shape (so jax compiles once)."""
    n = len(x0)
    padded = np.zeros(-(-n // chunk) * chunk)
    padded[:n] = x0
    with jax.enable_x64(True):
        parts = [np.asarray(gamma1(c), np.float64) for c in padded.reshape(-1, chunk)]
    if any(p.shape != (chunk,) for p in parts):
        raise ValueError(f"gamma1 must map an array of x0 values elementwise to x1 values "
                         f"(same shape); got shape {parts[0].shape} for input ({chunk},)")
    x1 = np.concatenate(parts)[:n]
    if not np.all(np.isfinite(x1)):
        raise ValueError("gamma1 returned NaN or inf")
    return x1


def _cell_nodes(lo: np.ndarray, hi: np.ndarray, sigma: float, nodes=_GL_X, weights=_GL_W):
    """Quadrature nodes (x0) and N(0, sigma^2)-probability weights, shape [cells, nodes]."""
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    z = mid[:, None] + half[:, None] * nodes
    w = half[:, None] * weights * np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
    return sigma * z, w


def quadrature_nodes(gamma1: Policy1, sigma: float = 5.0, tol: float = 1e-14):
    """Nodes ``x0``, ``x1 = gamma1(x0)`` and probability weights resolving ``gamma1``.

    Each cell (in units of ``sigma``) is split in two while the 9-point Gauss-Lobatto rule on the
    whole cell and the 8-point Gauss-Legendre rule on its halves disagree by more than ``tol``
    on ``E[x1]``, ``E[x1^2]`` or ``E[(x1 - x0)^2]``; the accepted cells' half-cell nodes are
    returned. (Lobatto's end points see a jump next to a cell edge, which Gauss-Legendre
    nodes on both sides of the comparison could miss alike.)
    """
    _check_positive(sigma=sigma)
    edges = np.linspace(-_Z_MAX, _Z_MAX, int(8 * _Z_MAX) + 1)
    lo, hi = edges[:-1], edges[1:]
    done: list[tuple[np.ndarray, ...]] = []
    for level in range(_MAX_LEVELS + 1):
        mid = (lo + hi) / 2
        x0c, wc = _cell_nodes(lo, hi, sigma, _GLL_X, _GLL_W)
        x0f, wf = _cell_nodes(np.concatenate([lo, mid]), np.concatenate([mid, hi]), sigma)
        x1 = _eval64(gamma1, np.concatenate([x0c.ravel(), x0f.ravel()]))
        x1c, x1f = x1[: x0c.size].reshape(x0c.shape), x1[x0c.size:].reshape(x0f.shape)
        coarse = [np.sum(wc * f, 1) for f in (x1c, x1c**2, (x1c - x0c) ** 2)]
        fine = [np.sum(wf * f, 1) for f in (x1f, x1f**2, (x1f - x0f) ** 2)]
        fine = [f[: len(lo)] + f[len(lo):] for f in fine]
        bad = np.max(np.abs(np.stack(coarse) - np.stack(fine)), 0) > tol
        if level == _MAX_LEVELS:
            bad[:] = False
        keep = np.concatenate([~bad, ~bad])
        done.append((x0f[keep].ravel(), x1f[keep].ravel(), wf[keep].ravel()))
        if not bad.any():
            break
        lo, hi = np.concatenate([lo[bad], mid[bad]]), np.concatenate([mid[bad], hi[bad]])
    x0, x1, w = (np.concatenate(parts) for parts in zip(*done, strict=True))
    return x0, x1, w


def _compress(x1: np.ndarray, w: np.ndarray):
    """Merge nodes with equal x1 (flat steps) and drop negligible weights; sorted by x1."""
    keep = w > 1e-30
    values, inverse = np.unique(x1[keep], return_inverse=True)
    return values, np.bincount(inverse, weights=w[keep])


def _y_step(values: np.ndarray, noise_std: float) -> float:
    """Trapezoid step in y. Across a gap ``d`` between mass points the integrand behaves like
    ``tanh(d y / 2)``, analytic in a strip of half-width ``pi / d``; the rule's error decays
    like ``exp(-2 pi (pi / d) / h)``, below 1e-20 with ``h = 0.4 / d`` (in noise units)."""
    gap = np.max(np.diff(values), initial=0.0) / noise_std
    return noise_std * min(0.02, 0.4 / max(gap, 1e-9))


def _posterior_table(x1: np.ndarray, w: np.ndarray, noise_std: float, h: float | None = None,
                     chunk: int = 256):
    """y grid, p(y), E[x1 | y], Var[x1 | y] in float64 (the discrete mixture of N(x1, n^2)).
    Each chunk of y uses only the mass points within 15 noise std (the rest weigh < 1e-48)."""
    values, mass = _compress(x1, w)
    h = _y_step(values, noise_std) if h is None else h
    pad = 15.0 * noise_std
    y = np.arange(values.min() - pad, values.max() + pad + h, h)
    logw = np.log(mass)
    out = []
    for start in range(0, len(y), chunk):
        yc = y[start:start + chunk, None]
        lo, hi = np.searchsorted(values, [yc[0, 0] - pad, yc[-1, 0] + pad])
        lo = min(lo, len(values) - 1)  # a chunk past the last mass point: use that point
        v = values[lo:max(hi, lo + 1)]
        logits = logw[lo:max(hi, lo + 1)] - 0.5 * ((yc - v) / noise_std) ** 2
        top = logits.max(1, keepdims=True)
        e = np.exp(logits - top)
        norm = e.sum(1)
        mean = (e @ v) / norm
        var = np.einsum("ij,ij->i", e, (v - mean[:, None]) ** 2) / norm
        dens = np.exp(top[:, 0]) * norm / (noise_std * np.sqrt(2 * np.pi))
        out.append((dens, mean, var))
    dens, mean, var = (np.concatenate(parts) for parts in zip(*out, strict=True))
    return y, dens, mean, var


def expected_cost_terms(gamma1: Policy1, k: float = 0.2, sigma: float = 5.0,
                        noise_std: float = 1.0, *, tol: float = 1e-14,
                        y_step: float | None = None) -> tuple[float, float]:
    """``(k^2 E[u1^2], E[(x1 - E[x1|y])^2])`` for ``x1 = gamma1(x0)``; see the module docstring.

    ``tol`` is :func:`quadrature_nodes`' cell tolerance in ``x0``; ``y_step`` the trapezoid step
    in ``y`` (default: the automatic step of ``_y_step``). Both are knobs for error estimates
    (:func:`expected_cost_with_error`); the defaults are the benchmark's evaluator."""
    _check_positive(sigma=sigma, noise_std=noise_std, tol=tol)
    if y_step is not None:
        _check_positive(y_step=y_step)
    if not (np.isfinite(k) and k >= 0):
        raise ValueError(f"k must be a finite number >= 0, got {k!r}")
    return _terms(*quadrature_nodes(gamma1, sigma, tol), k, noise_std, y_step)


def _terms(x0, x1, w, k, noise_std, y_step=None) -> tuple[float, float]:
    stage1 = k**2 * float(np.sum(w * (x1 - x0) ** 2))
    y, dens, _, var = _posterior_table(x1, w, noise_std, y_step)
    stage2 = float(np.sum(dens * var) * (y[1] - y[0]))  # trapezoid: the ends are ~0
    return stage1, stage2


def expected_cost(gamma1: Policy1, k: float = 0.2, sigma: float = 5.0,
                  noise_std: float = 1.0) -> float:
    """Exact expected cost of ``x1 = gamma1(x0)`` with the optimal ``u2 = E[x1 | y]``."""
    return sum(expected_cost_terms(gamma1, k, sigma, noise_std))


def expected_cost_with_error(gamma1: Policy1, k: float = 0.2, sigma: float = 5.0,
                             noise_std: float = 1.0) -> tuple[float, float]:
    """``(expected_cost, error estimate)``: the cost exactly as :func:`expected_cost` computes
    it, and an estimate of its numerical error.

    The estimate is the larger change of the cost under two coarsenings of the evaluator: the
    ``x0`` cell tolerance raised from 1e-14 to 1e-12 (fewer halvings near ``gamma1``'s jumps
    and kinks), and the ``y`` trapezoid step doubled. Both rules converge fast, so the change
    under the coarser rule is taken as a (conservative, heuristic) bound on the error of the
    finer one; it is the error of evaluating *this* ``gamma1``, not its distance to an optimum.
    About three times the work of :func:`expected_cost`."""
    _check_positive(sigma=sigma, noise_std=noise_std)
    if not (np.isfinite(k) and k >= 0):
        raise ValueError(f"k must be a finite number >= 0, got {k!r}")
    nodes = quadrature_nodes(gamma1, sigma)
    cost = sum(_terms(*nodes, k, noise_std))
    coarse_x0 = sum(_terms(*quadrature_nodes(gamma1, sigma, 1e-12), k, noise_std))
    h = 2 * _y_step(_compress(nodes[1], nodes[2])[0], noise_std)
    coarse_y = sum(_terms(*nodes, k, noise_std, h))
    return cost, max(abs(cost - coarse_x0), abs(cost - coarse_y))


def posterior_mean(y: jax.Array, x1: jax.Array, log_w: jax.Array,
                   noise_std: float = 1.0) -> jax.Array:
    """``E[x1 | y]`` when ``x1`` takes the values ``x1`` with log-probabilities ``log_w`` and
    ``y = x1 + N(0, noise_std^2)``; broadcasts over ``y``, differentiable in all arguments."""
    logits = log_w - 0.5 * ((jnp.asarray(y)[..., None] - x1) / noise_std) ** 2
    return jnp.sum(jax.nn.softmax(logits, axis=-1) * x1, axis=-1)


def optimal_gamma2(gamma1: Policy1, sigma: float = 5.0, noise_std: float = 1.0,
                   h: float = 0.002) -> Callable[[jax.Array], jax.Array]:
    """The optimal controller 2 for ``gamma1``: ``y -> E[x1 | y]``, a float64 table on a grid of
    spacing ``h`` (outside it the end values hold), linearly interpolated (jittable)."""
    _check_positive(sigma=sigma, noise_std=noise_std, h=h)
    _, x1, w = quadrature_nodes(gamma1, sigma)
    y, _, mean, _ = _posterior_table(x1, w, noise_std, h)
    y, mean = np.asarray(y, np.float32), np.asarray(mean, np.float32)
    return lambda obs_y: jnp.interp(obs_y, y, mean)


def env_policy(gamma1: Policy1, gamma2: Callable[[jax.Array], jax.Array]):
    """``policy(key, obs) -> actions`` for ``Witsenhausen-v0``: controller 1 plays
    ``u1 = gamma1(x0) - x0``, controller 2 plays ``u2 = gamma2(y)`` (deterministic)."""

    def policy(key: jax.Array, obs: dict[str, jax.Array]) -> jax.Array:
        s = obs["signal"][:, 0]
        return jnp.where(obs["role"] == 0, gamma1(s) - s, gamma2(s))

    return policy


# ---- reference policies --------------------------------------------------------------------
def affine(lam: float) -> Policy1:
    """``x1 = lam * x0``."""
    return lambda x0: lam * x0


def affine_cost(lam: float, k: float = 0.2, sigma: float = 5.0, noise_std: float = 1.0) -> float:
    """Closed form for :func:`affine`: ``k^2 s^2 (1-l)^2 + l^2 s^2 n^2 / (l^2 s^2 + n^2)``."""
    s2, n2 = sigma**2, noise_std**2
    return k**2 * s2 * (1 - lam) ** 2 + lam**2 * s2 * n2 / (lam**2 * s2 + n2)


def best_affine_lambdas(k: float = 0.2, sigma: float = 5.0,
                        noise_std: float = 1.0) -> tuple[float, ...]:
    """Every ``lam`` that attains the minimum of :func:`affine_cost` (two at the benchmark
    point: about 0.04174 and 0.95826), found on a grid and polished by Newton's method."""
    _check_positive(k=k, sigma=sigma, noise_std=noise_std)
    f = lambda lam: affine_cost(lam, k, sigma, noise_std)
    lam = np.linspace(0.0, 1.0, 200_001)
    cost = f(lam)
    local = np.flatnonzero((cost[1:-1] <= cost[:-2]) & (cost[1:-1] <= cost[2:])) + 1
    roots = []
    for x in lam[local]:
        for _ in range(50):  # Newton on f' with central differences (f is smooth, cheap)
            e = 1e-5
            curvature = f(x + e) - 2 * f(x) + f(x - e)
            if not np.isfinite(curvature) or curvature <= 0:
                break  # flat (or not convex) at float resolution: keep the grid minimum
            x -= (f(x + e) - f(x - e)) * e / 2 / curvature
        roots.append(float(x))
    best = min(f(x) for x in roots)
    roots = sorted(x for x in roots if f(x) <= best + 1e-12)
    groups = [[roots[0]]]  # a flat minimum (two minima merging) leaves a cluster: one each
    for x in roots[1:]:
        if x - groups[-1][-1] < 1e-3:
            groups[-1].append(x)
        else:
            groups.append([x])
    return tuple(float(np.median(g)) for g in groups)


def two_point(sigma: float = 5.0) -> Policy1:
    """Witsenhausen's 1968 policy ``x1 = sigma * sgn(x0)``."""
    return lambda x0: sigma * jnp.sign(x0)


def staircase(thresholds, levels, slopes=0.0) -> Policy1:
    """An odd staircase: for ``x0 >= 0`` in ``[thresholds[i-1], thresholds[i])`` (with
    ``thresholds[-1] = 0`` implied before the first and ``inf`` after the last),
    ``x1 = levels[i] + slopes[i] * (x0 - levels[i])``, i.e. step ``i`` crosses the diagonal
    ``x1 = x0`` at its level; ``x1(-x0) = -x1(x0)``. ``levels`` has one more entry than
    ``thresholds``; ``slopes`` is a scalar or one per step. ``staircase([], [sigma])`` is
    :func:`two_point`. A first level of 0 gives a step centred at the origin."""
    b = np.asarray(thresholds, np.float64)
    a = np.asarray(levels, np.float64)
    s = np.broadcast_to(np.asarray(slopes, np.float64), a.shape)
    if b.ndim != 1 or a.shape != (len(b) + 1,) or np.any(np.diff(b) <= 0) or np.any(b <= 0):
        raise ValueError(f"staircase wants increasing positive thresholds and one more level "
                         f"than thresholds; got thresholds {b.tolist()}, levels {a.tolist()}")

    def gamma1(x0):
        x = jnp.abs(x0)
        i = jnp.searchsorted(jnp.asarray(b, x.dtype), x, side="right")
        lev, slope = jnp.asarray(a, x.dtype)[i], jnp.asarray(s, x.dtype)[i]
        return jnp.sign(x0) * (lev + slope * (x - lev))

    return gamma1
