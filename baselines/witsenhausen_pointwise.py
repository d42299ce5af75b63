"""Person-by-person (pointwise) solver for Witsenhausen's counterexample, on a float64 grid.

    python -m baselines.witsenhausen --solver pointwise [--start staircase] [--iters 200]
    python -m baselines.witsenhausen --solver annealing

Controller 2's optimal reply to any controller 1 is ``gamma2(y) = E[x1 | y]``; controller 1's
optimal reply to a fixed ``gamma2`` is *pointwise*: for every ``x0`` separately,

    gamma1(x0) = argmin_c  k^2 (c - x0)^2 + D(c),    D(c) = E_w[(c - gamma2(c + w))^2],

because the cost is an integral over ``x0`` of this marginal cost (Tseng & Tang 2017, CDC, and
Tseng 2020, "A generic solver for unconstrained control problems with integral functional
objectives", ACC, arXiv 1908.04489, minimise it pointwise; their code:
github.com/shih-hao-tseng/UCP-Solver, ``single_threaded/sources/witsenhausen.cpp``). Alternating
the two replies is the person-by-person iteration; each exact reply lowers the cost (on the
grid, up to the parabola's refinement: changes of ~1e-9 either way near convergence).

Everything lives on grids: ``x0 >= 0`` on a grid of spacing ``dx0`` (the policy is odd, the
negative half is mirrored), candidates ``c`` and ``y`` on one grid of spacing ``h``.
``gamma2`` comes from the mass of ``x1`` binned linearly onto that grid (bin mass and mean are
kept) and convolved with the noise density; ``D`` is two more convolutions of ``gamma2`` and
``gamma2^2`` with it; the argmin is a vectorised minimum over the candidate grid, polished by a
parabola through the three nearest candidates.

Annealing (``temperature > 0``): controller 1's reply is soft, ``p(c | x0) ~ exp(-(k^2 (c -
x0)^2 + D(c)) / T)`` (the Gibbs distribution, which minimises cost minus ``T`` times the
mapping's entropy at fixed ``gamma2``), and ``T`` falls geometrically to 0: the deterministic
annealing of Mehmetoglu, Akyol & Rose (2014, "A deterministic annealing approach to
Witsenhausen's counterexample", ISIT, arXiv 1402.0525), here on our grids. From the affine
policy ``x1 = x0`` the hard iteration stays (nearly) affine, its reply is ``x1 ~ 0.96 x0``;
annealing breaks the symmetry and grows a staircase by itself.

The result is a tabulated ``gamma1``: linear interpolation on the ``x0`` grid inside each
step, and each jump placed by bisection on the pointwise argmin (40 halvings of the grid
step). ``polish`` final rounds then reply to the *exact* ``gamma2`` of this table (from the
evaluator's quadrature nodes, no binning), which removes the binning's bias.
:func:`table_policy` wraps it as an elementwise ``jax.numpy`` function, and its cost is
:func:`dcgenv.envs.witsenhausen_reference.expected_cost` of that function, with the error
estimate of :func:`~dcgenv.envs.witsenhausen_reference.expected_cost_with_error`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.signal import fftconvolve

from dcgenv.envs import witsenhausen_reference as R

STARTS = ("staircase", "affine", "two_point")


@dataclasses.dataclass(frozen=True)
class Config:
    k: float = 0.2
    sigma: float = 5.0
    start: str = "staircase"  # staircase (baselines/results/witsenhausen.json), affine, two_point
    iters: int = 200  # person-by-person rounds (each: gamma2, then gamma1)
    dx0: float = 0.01  # x0 grid spacing
    h: float = 0.01  # candidate / y grid spacing
    z_max: float = 8.0  # x0 in [0, z_max * sigma]
    temperature: float = 0.0  # initial annealing temperature (0: hard replies throughout)
    anneal_iters: int = 150  # iterations over which T falls geometrically to t_end, then T = 0
    t_end: float = 1e-6
    tol: float = 1e-12  # stop when the discretised cost falls by less than this in a round
    polish: int = 3  # final rounds replying to the exact gamma2 (no binning) of the table
    error_estimate: int = 1  # 0: skip the error estimate and the polish rounds' exact costs
    staircase_json: str = "baselines/results/witsenhausen.json"

    def __post_init__(self):
        checks = {"k >= 0": self.k >= 0, "sigma > 0": self.sigma > 0,
                  f"start in {STARTS}": self.start in STARTS, "iters >= 1": self.iters >= 1,
                  "dx0 > 0": self.dx0 > 0, "h > 0": self.h > 0, "z_max > 0": self.z_max > 0,
                  "temperature >= 0": self.temperature >= 0, "anneal_iters >= 1":
                  self.anneal_iters >= 1, "0 < t_end": self.t_end > 0, "tol >= 0": self.tol >= 0,
                  "polish >= 0": self.polish >= 0}
        failed = [rule for rule, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"bad pointwise Config: needs {', '.join(failed)}; got {self}")


def _noise_kernel(h: float) -> np.ndarray:
    w = np.arange(-9.0, 9.0 + h / 2, h)
    kernel = np.exp(-0.5 * w**2)
    return kernel / kernel.sum()


def _smooth(f: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``E_w[f(c + w)]`` on the grid, ``f`` held at its end values beyond the grid."""
    half = len(kernel) // 2
    return fftconvolve(np.pad(f, half, mode="edge"), kernel[::-1], mode="valid")


class Grid:
    """The ``x0 >= 0`` grid with N(0, sigma^2) weights, and the candidate / ``y`` grid."""

    def __init__(self, cfg: Config):
        self.x0 = np.arange(0.0, cfg.z_max * cfg.sigma + cfg.dx0 / 2, cfg.dx0)
        p = np.exp(-0.5 * (self.x0 / cfg.sigma) ** 2) * cfg.dx0 / (cfg.sigma * np.sqrt(2 * np.pi))
        p[0] /= 2  # trapezoid weight; the mirrored half doubles every other point
        self.p = p / p.sum() / 2  # mass of x0 (and of -x0): the two halves sum to 1
        reach = cfg.z_max * cfg.sigma + 10.0
        self.c = np.arange(-reach, reach + cfg.h / 2, cfg.h)
        self.h = cfg.h
        self.kernel = _noise_kernel(cfg.h)
        self.k2 = cfg.k**2

    def bin_mass(self, x1: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Linear binning of point masses ``p`` at ``x1`` (both halves) onto the ``c`` grid."""
        mass = np.zeros_like(self.c)
        for x, q in ((x1, p), (-x1, p)):
            pos = np.clip((x - self.c[0]) / self.h, 0, len(self.c) - 1.000001)
            i = np.floor(pos).astype(int)
            frac = pos - i
            np.add.at(mass, i, q * (1 - frac))
            np.add.at(mass, i + 1, q * frac)
        return mass

    def marginal(self, mass: np.ndarray):
        """``(gamma2, D, cost of controller 2)`` on the ``c`` grid for the ``x1`` mass."""
        dens = _smooth(mass, self.kernel)
        mean = _smooth(mass * self.c, self.kernel)
        ok = dens > 1e-300
        g2 = np.where(ok, mean / np.where(ok, dens, 1.0), self.c)
        second = _smooth(mass * self.c**2, self.kernel)
        stage2 = float(np.sum(np.where(ok, second - mean * g2, 0.0)))  # E[Var(x1 | y)]
        d = self.c**2 - 2 * self.c * _smooth(g2, self.kernel) + _smooth(g2**2, self.kernel)
        return g2, d, stage2

    def reply(self, d: np.ndarray, temperature: float = 0.0, x0: np.ndarray | None = None,
              chunk: int = 256):
        """Controller 1's reply to ``D``: the pointwise argmin (``T = 0``, polished by a parabola)
        for every ``x0``, or (``T > 0``) the Gibbs mass on the ``c`` grid."""
        x0 = self.x0 if x0 is None else x0
        # Candidates for a chunk: c = x0 costs D(x0), so the argmin lies within
        # sqrt((D(x0) - min D) / k^2) of x0 (plus a margin for the Gibbs tails when T > 0).
        reach = np.sqrt((np.interp(x0, self.c, d) - d.min() + 30 * temperature)
                        / max(self.k2, 1e-12)) + 2 * self.h
        mass = np.zeros_like(self.c)
        out = np.empty_like(x0)
        for s in range(0, len(x0), chunk):
            xs = x0[s:s + chunk]
            lo = max(np.searchsorted(self.c, np.min(xs - reach[s:s + chunk])) - 1, 0)
            hi = np.searchsorted(self.c, np.max(xs + reach[s:s + chunk])) + 2
            c, dc = self.c[lo:hi], d[lo:hi]
            f = self.k2 * (c - xs[:, None]) ** 2 + dc
            if temperature > 0:
                e = np.exp(-(f - f.min(1, keepdims=True)) / temperature)
                e *= (self.p[s:s + chunk] / e.sum(1))[:, None]
                mass[lo:hi] += e.sum(0)
                continue
            j = np.clip(np.argmin(f, 1), 1, len(c) - 2)
            rows = np.arange(len(j))
            fm, f0, fp = f[rows, j - 1], f[rows, j], f[rows, j + 1]
            curv = fm - 2 * f0 + fp
            step = np.where(curv > 0, 0.5 * (fm - fp) / np.where(curv > 0, curv, 1), 0.0)
            out[s:s + chunk] = c[j] + np.clip(step, -1, 1) * self.h
        return mass + mass[::-1] if temperature > 0 else out  # mirrored half: c is symmetric


def initial_policy(cfg: Config):
    """The starting controller 1 (an elementwise jnp function): the staircase learned by
    ``python -m baselines.witsenhausen`` (read from ``cfg.staircase_json``), ``x1 = x0``, or
    Witsenhausen's two-point policy."""
    if cfg.start == "affine":
        return R.affine(1.0)
    if cfg.start == "two_point":
        return R.two_point(cfg.sigma)
    best = json.loads(Path(cfg.staircase_json).read_text())["best"]
    return R.staircase(best["thresholds"], best["levels"], best["slopes"])


def table_policy(xp, fp):
    """The odd policy ``x1 = sgn(x0) interp(|x0|, xp, fp)`` as an elementwise jnp function."""
    xp, fp = np.asarray(xp, np.float64), np.asarray(fp, np.float64)

    def gamma1(x0):
        x = jnp.abs(x0)
        return jnp.sign(x0) * jnp.interp(x, jnp.asarray(xp, x.dtype), jnp.asarray(fp, x.dtype))

    return gamma1


def final_table(grid: Grid, x1: np.ndarray, d: np.ndarray, jump: float = 0.5,
                bisections: int = 40):
    """``(xp, fp)`` for :func:`table_policy`: the grid policy, with each jump (a change of more
    than ``jump`` between neighbours) located by bisection on the pointwise argmin and both
    sides' values kept at the bracketing points."""
    x0 = grid.x0
    jumps = np.flatnonzero(np.abs(np.diff(x1)) > jump)
    a, b = x0[jumps].copy(), x0[jumps + 1].copy()
    fa, fb = x1[jumps].copy(), x1[jumps + 1].copy()
    for _ in range(bisections):
        if len(jumps) == 0:
            break
        mid = (a + b) / 2
        fm = grid.reply(d, x0=mid)
        left = np.abs(fm - fa) < np.abs(fm - fb)
        a, fa = np.where(left, mid, a), np.where(left, fm, fa)
        b, fb = np.where(left, b, mid), np.where(left, fb, fm)
    xp = np.concatenate([x0, a, b])
    fp = np.concatenate([x1, fa, fb])
    order = np.argsort(xp, kind="stable")
    return xp[order], fp[order], b.tolist()


def independent_cost(xp, fp, k: float, sigma: float, nodes: int = 4, y_step: float = 0.02):
    """The cost of :func:`table_policy` ``(xp, fp)`` computed independently of
    ``expected_cost``: Gauss-Legendre on every linear piece between table points (the policy is
    linear there), and the stage-2 cost ``E[Var(x1 | y)]`` summed over every node's mass on a
    trapezoid ``y`` grid (no adaptive refinement, no merging of mass points). A cross-check."""
    t, wt = np.polynomial.legendre.leggauss(nodes)
    xp, fp = np.asarray(xp), np.asarray(fp)
    tail = np.linspace(xp[-1], 12 * sigma, 401)[1:]  # beyond the table the last value holds
    xp, fp = np.append(xp, tail), np.append(fp, np.full_like(tail, fp[-1]))  # (as jnp.interp)
    lo, hi = xp[:-1], xp[1:]
    keep = hi > lo
    lo, hi, flo, fhi = lo[keep], hi[keep], fp[:-1][keep], fp[1:][keep]
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    x0 = (mid[:, None] + half[:, None] * t).ravel()
    frac = ((x0.reshape(-1, nodes) - lo[:, None]) / (hi - lo)[:, None]).ravel()
    x1 = (flo[:, None] + (fhi - flo)[:, None] * frac.reshape(-1, nodes)).ravel()
    w = (half[:, None] * wt).ravel() * np.exp(-0.5 * (x0 / sigma) ** 2) / (sigma * np.sqrt(
        2 * np.pi))
    stage1 = 2 * k**2 * float(np.sum(w * (x1 - x0) ** 2))
    x1, w = np.concatenate([x1, -x1]), np.concatenate([w, w])
    order = np.argsort(x1)
    x1, w = x1[order], w[order]
    y = np.arange(x1[0] - 12, x1[-1] + 12, y_step)
    stage2 = 0.0
    for s in range(0, len(y), 64):
        yc = y[s:s + 64, None]
        a, b = np.searchsorted(x1, [yc[0, 0] - 12, yc[-1, 0] + 12])
        v, q = x1[a:b], w[a:b]
        e = q * np.exp(-0.5 * (yc - v) ** 2) / np.sqrt(2 * np.pi)
        m0, m1, m2 = e.sum(1), e @ v, e @ v**2
        stage2 += float(np.sum(m2 - m1**2 / np.maximum(m0, 1e-300))) * y_step
    return stage1 + stage2


def exact_marginal(grid: Grid, policy, sigma: float, chunk: int = 128):
    """``D`` on the ``c`` grid for the *exact* ``gamma2`` of ``policy``: ``E[x1 | y]`` from the
    evaluator's quadrature nodes (no binning), then the same smoothing as :meth:`Grid.marginal`."""
    _, x1, w = R.quadrature_nodes(policy, sigma)
    keep = w > 1e-30
    order = np.argsort(x1[keep])
    v, q = x1[keep][order], w[keep][order]
    g2 = grid.c.copy()
    for s in range(0, len(grid.c), chunk):
        yc = grid.c[s:s + chunk, None]
        a, b = np.searchsorted(v, [yc[0, 0] - 15, yc[-1, 0] + 15])
        if b <= a:
            continue
        logits = np.log(q[a:b]) - 0.5 * (yc - v[a:b]) ** 2
        e = np.exp(logits - logits.max(1, keepdims=True))
        g2[s:s + chunk] = (e @ v[a:b]) / e.sum(1)
    return grid.c**2 - 2 * grid.c * _smooth(g2, grid.kernel) + _smooth(g2**2, grid.kernel)


def solve(cfg: Config, log=print) -> dict:
    """Run the person-by-person iteration; returns the tabulated policy and its exact cost."""
    start = time.perf_counter()
    grid = Grid(cfg)
    start_policy = initial_policy(cfg)
    with jax.enable_x64(True):
        x1 = np.asarray(start_policy(jnp.asarray(grid.x0)), np.float64)
    mass = grid.bin_mass(x1, grid.p)
    history, hard_rounds = [], 0
    temperature = cfg.temperature
    decay = (cfg.t_end / cfg.temperature) ** (1 / cfg.anneal_iters) if cfg.temperature else 0
    for it in range(cfg.iters):
        _, d, stage2 = grid.marginal(mass)
        if it == 0 or temperature == 0:  # the cost of a hard policy (with its binned mass)
            stage1 = 2 * grid.k2 * float(np.sum(grid.p * (x1 - grid.x0) ** 2))
            history.append(stage1 + stage2)
        if temperature > 0:
            mass = grid.reply(d, temperature)
            temperature = temperature * decay if it + 1 < cfg.anneal_iters else 0.0
            if temperature == 0:  # annealed: from here on, hard replies
                x1 = grid.reply(d)
                mass = grid.bin_mass(x1, grid.p)
            continue
        x1 = grid.reply(d)
        mass = grid.bin_mass(x1, grid.p)
        hard_rounds += 1
        if hard_rounds > 2 and abs(history[-2] - history[-1]) < cfg.tol:
            break
        if log and it % 20 == 0:
            log(f"  round {it}: discretised cost {history[-1]:.10f}")
    _, d, _ = grid.marginal(mass)
    xp, fp, thresholds = final_table(grid, x1, d)
    polish = []
    for _ in range(cfg.polish):  # replies to the exact gamma2 of the tabulated policy
        d = exact_marginal(grid, table_policy(xp, fp), cfg.sigma)
        x1 = grid.reply(d)
        xp, fp, thresholds = final_table(grid, x1, d)
        if log and cfg.error_estimate:
            polish.append(R.expected_cost(table_policy(xp, fp), cfg.k, cfg.sigma))
            log(f"  polish round {len(polish)}: exact cost {polish[-1]:.10f}")
    solve_s = time.perf_counter() - start
    policy = table_policy(xp, fp)
    if cfg.error_estimate:
        cost, error = R.expected_cost_with_error(policy, cfg.k, cfg.sigma)
    else:
        cost, error = R.expected_cost(policy, cfg.k, cfg.sigma), None
    if cfg.start == "affine":  # closed form (the quadrature is slow on a continuous policy)
        initial = R.affine_cost(1.0, cfg.k, cfg.sigma)
    else:
        initial = R.expected_cost(start_policy, cfg.k, cfg.sigma)
    return {"config": dataclasses.asdict(cfg), "exact_cost": cost, "error_estimate": error,
            "initial_exact_cost": initial, "discretised_cost_history": history,
            "rounds": len(history), "polish_exact_costs": polish, "thresholds": thresholds,
            "solve_seconds": solve_s, "total_seconds": time.perf_counter() - start,
            "table": {"x0": xp.tolist(), "x1": fp.tolist()}, "policy": policy}
