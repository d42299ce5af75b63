"""Lower bounds against achievable costs for Witsenhausen's counterexample over a (k, sigma) grid.

    python -m baselines.witsenhausen_bounds --out baselines/results

At each grid point: the lower bounds of :mod:`dcgenv.envs.witsenhausen_bounds` (Witsenhausen
1968; Grover & Sahai 2010; Grover, Park & Sahai 2013) and the exact cost
(:func:`dcgenv.envs.witsenhausen_reference.expected_cost`) of cheap policies: the best affine
one (closed form), Witsenhausen's two-point policy and the scalar lattice quantiser
``x1 = d round(x0 / d)`` (the "regular lattice-based strategy" of Grover, Park & Sahai, zero
slope, its spacing ``d`` searched on a grid then refined by bounded Brent); at the benchmark
point ``k = 0.2, sigma = 5`` also the learned staircase of ``baselines/results/witsenhausen.json``.
Prints a table and writes ``witsenhausen_bounds.json`` under ``--out`` and the figure
``docs/images/witsenhausen_bounds.png`` (``--figure``): the ratio of the best cost found to the
best lower bound over the grid, and the bounds along ``sigma = 5``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import optimize

from dcgenv.envs import witsenhausen_bounds as B
from dcgenv.envs import witsenhausen_reference as R

KS = (0.05, 0.1, 0.2, 0.4, 1.0)
SIGMAS = (1.0, 2.0, 3.0, 5.0, 10.0)
BENCHMARK = (0.2, 5.0)


def lattice(d: float, sigma: float):
    """``x1 = d round(x0 / d)`` as an odd staircase reaching past ``10 sigma``."""
    n = int(np.ceil(10 * sigma / d)) + 1
    return R.staircase(d * (np.arange(1, n) - 0.5), d * np.arange(n))


def lattice_cost(d: float, k: float, sigma: float) -> float:
    """Exact cost of :func:`lattice`. (``expected_cost`` can fail with "zero-size array" when
    the last chunk of its ``y`` grid lies wholly beyond the mass points' window; nudging ``d``
    by up to 1e-4 relative changes the grid and avoids it; ``inf`` if all fail.)"""
    for nudge in (0.0, 1e-9, 1e-6, 1e-4):
        try:
            return R.expected_cost(lattice(d * (1 + nudge), sigma), k, sigma)
        except ValueError:
            continue
    return float("inf")


def best_affine(k: float, sigma: float) -> tuple[float, float]:
    """(cost, slope) of the best affine policy: closed form on a 20001-point grid of slopes
    in [0, 1], polished by bounded Brent."""
    lam = np.linspace(0.0, 1.0, 20001)
    i = int(np.argmin(R.affine_cost(lam, k, sigma)))
    res = optimize.minimize_scalar(lambda x: R.affine_cost(x, k, sigma), method="bounded",
                                   bounds=(lam[max(i - 1, 0)], lam[min(i + 1, 20000)]))
    best = min((float(res.fun), float(res.x)), (float(R.affine_cost(lam[i], k, sigma)), lam[i]))
    return best[0], float(best[1])


def best_lattice(k: float, sigma: float, grid: int = 7) -> tuple[float, float]:
    """(cost, d) of the best lattice quantiser: ``d`` on a geometric grid over
    ``[1, 3 sigma + 3]``, then bounded Brent in the bracket around the best grid point."""
    ds = np.geomspace(1.0, 3 * sigma + 3, grid)
    cost = {float(d): lattice_cost(d, k, sigma) for d in ds}
    i = int(np.argmin([cost[float(d)] for d in ds]))
    lo, hi = ds[max(i - 1, 0)], ds[min(i + 1, grid - 1)]
    res = optimize.minimize_scalar(lambda d: lattice_cost(d, k, sigma),
                                   bounds=(lo, hi), method="bounded",
                                   options={"xatol": 1e-3 * sigma, "maxiter": 8})
    cost[float(res.x)] = float(res.fun)
    d = min(cost, key=cost.get)
    return cost[d], d


def point(k: float, sigma: float, staircase_cost: float | None = None) -> dict:
    t0 = time.perf_counter()
    bounds = {"witsenhausen_1968": B.witsenhausen_1968_bound(k, sigma),
              "grover_sahai_2010": B.grover_sahai_bound(k, sigma)}
    gps, p, sg, L = B.grover_park_sahai_bound(k, sigma, return_argmax=True)
    bounds["grover_park_sahai_2013"] = gps
    t1 = time.perf_counter()
    affine_cost, lam = best_affine(k, sigma)
    lat_cost, lat_d = best_lattice(k, sigma)
    costs = {"affine": affine_cost,
             "two_point": R.expected_cost(R.two_point(sigma), k, sigma),
             "lattice": lat_cost}
    if staircase_cost is not None:
        costs["learned_staircase"] = staircase_cost
    lower, best = max(bounds.values()), min(costs.values())
    return {"k": k, "sigma": sigma, "bounds": bounds, "best_lower_bound": lower,
            "gps_argmax": {"P": p, "sigma_G": sg, "L": L if np.isfinite(L) else None},
            "costs": costs, "lattice_spacing": lat_d, "affine_lambda": lam,
            "best_cost": best, "best_policy": min(costs, key=costs.get),
            "gap": best - lower, "ratio": best / lower,
            "seconds": {"bounds": t1 - t0, "policies": time.perf_counter() - t1}}


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratio = np.array([[next(r["ratio"] for r in rows if r["k"] == k and r["sigma"] == s)
                       for k in KS] for s in SIGMAS])
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.3))
    im = ax0.imshow(ratio, origin="lower", cmap="viridis")
    for i in range(len(SIGMAS)):
        for j in range(len(KS)):
            ax0.text(j, i, f"{ratio[i, j]:.2f}", ha="center", va="center",
                     color="w" if ratio[i, j] < ratio.max() * 0.7 else "k", fontsize=9)
    ax0.set_xticks(range(len(KS)), [str(k) for k in KS])
    ax0.set_yticks(range(len(SIGMAS)), [str(s) for s in SIGMAS])
    ax0.set_xlabel("k")
    ax0.set_ylabel("sigma (std of x0; unit observation noise)")
    ax0.set_title("best cost found / best lower bound")
    fig.colorbar(im, ax=ax0)
    ks = np.geomspace(0.05, 1.0, 12)
    curves = {name: [f(k, 5.0) for k in ks] for name, f in
              (("Witsenhausen 1968", B.witsenhausen_1968_bound),
               ("Grover-Sahai 2010", B.grover_sahai_bound),
               ("Grover-Park-Sahai 2013", B.grover_park_sahai_bound))}
    for name, vals in curves.items():
        ax1.loglog(ks, vals, marker=".", label=name)
    sig5 = sorted((r for r in rows if r["sigma"] == 5.0), key=lambda r: r["k"])
    ax1.loglog([r["k"] for r in sig5], [r["best_cost"] for r in sig5], "k--o",
               label="best cost found (affine/two-point/lattice)")
    bench = next(r for r in rows if (r["k"], r["sigma"]) == BENCHMARK)
    ax1.plot([0.2], [bench["costs"].get("learned_staircase", bench["best_cost"])], "r*",
             ms=12, label="learned staircase 0.16693")
    ax1.set_xlabel("k")
    ax1.set_ylabel("cost")
    ax1.set_title("sigma = 5: lower bounds and costs")
    ax1.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="baselines/results")
    parser.add_argument("--figure", default="docs/images/witsenhausen_bounds.png")
    parser.add_argument("--staircase", default="baselines/results/witsenhausen.json",
                        help="learned policy whose exact cost is added at the benchmark point")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    learned = json.loads(Path(args.staircase).read_text())["best"]
    stair = R.staircase(learned["thresholds"], learned["levels"], learned["slopes"])
    stair_cost = R.expected_cost(stair, *BENCHMARK)
    rows = []
    print(f"{'k':>5} {'sigma':>5} {'W1968':>10} {'GS2010':>10} {'GPS2013':>10} "
          f"{'best cost':>10} {'policy':>17} {'ratio':>6}")
    for sigma in SIGMAS:
        for k in KS:
            r = point(k, sigma, stair_cost if (k, sigma) == BENCHMARK else None)
            rows.append(r)
            b = r["bounds"]
            print(f"{k:>5} {sigma:>5} {b['witsenhausen_1968']:>10.6f} "
                  f"{b['grover_sahai_2010']:>10.6f} {b['grover_park_sahai_2013']:>10.6f} "
                  f"{r['best_cost']:>10.6f} {r['best_policy']:>17} {r['ratio']:>6.2f}",
                  flush=True)
    bench = next(r for r in rows if (r["k"], r["sigma"]) == BENCHMARK)
    summary = {"k": BENCHMARK[0], "sigma": BENCHMARK[1], "bounds": bench["bounds"],
               "best_lower_bound": bench["best_lower_bound"], "learned_staircase": stair_cost,
               "gap": stair_cost - bench["best_lower_bound"],
               "ratio": stair_cost / bench["best_lower_bound"]}
    print(f"benchmark k=0.2 sigma=5: best lower bound {summary['best_lower_bound']:.8f}, "
          f"learned staircase {stair_cost:.8f}, gap {summary['gap']:.8f}, "
          f"ratio {summary['ratio']:.4f}")
    worst = max(rows, key=lambda r: r["ratio"])
    print(f"largest ratio on the grid: {worst['ratio']:.3f} at k={worst['k']}, "
          f"sigma={worst['sigma']} ({worst['best_policy']})")
    result = {"grid": {"k": KS, "sigma": SIGMAS}, "benchmark": summary, "points": rows,
              "max_ratio": {"ratio": worst["ratio"], "k": worst["k"], "sigma": worst["sigma"]},
              "total_seconds": time.perf_counter() - start}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "witsenhausen_bounds.json").write_text(json.dumps(result, indent=2))
    figure(rows, Path(args.figure))
    print(f"total {result['total_seconds']:.0f} s")
    return result


if __name__ == "__main__":
    main()
