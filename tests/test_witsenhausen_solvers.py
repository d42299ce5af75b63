"""The Witsenhausen solver families beside the staircase, at small sizes (full runs: scripts).

Each exact evaluation of a sloped policy takes seconds here, so the tests evaluate few."""

from __future__ import annotations

import json

import numpy as np
import pytest

from baselines import witsenhausen as solvers
from baselines import witsenhausen_pointwise as P
from dcgenv.envs import witsenhausen_reference as R

TINY = dict(dx0=0.05, h=0.05, z_max=6.0, error_estimate=0)


def test_pointwise_via_dispatch_improves_two_point_and_reports_the_exact_cost(tmp_path):
    flags = [f"--{name}={value}" for name, value in TINY.items()]
    result = solvers.main(["--solver", "pointwise", "--start", "two_point", "--iters", "30",
                           "--polish", "1", *flags, "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "witsenhausen_pointwise.json").read_text())
    assert saved["exact_cost"] == result["exact_cost"] and "policy" not in saved
    assert result["initial_exact_cost"] == pytest.approx(R.expected_cost(R.two_point(5.0)))
    # After 30 rounds from two_point the iteration is still descending, and where it has got
    # to depends on the last bits of the FFTs (0.30-0.35 when they are perturbed by 1e-15 to
    # 1e-11 relative, on one CPU): assert what holds on every path, each round lowering the
    # discretised cost and the exact cost down by over 10% (0.404 -> at most 0.351).
    assert np.all(np.diff(result["discretised_cost_history"]) < 0)
    assert result["exact_cost"] < 0.9 * result["initial_exact_cost"]
    assert result["exact_cost"] == R.expected_cost(result["policy"])
    # the saved table is the policy; an independent integration of it agrees
    assert P.independent_cost(saved["table"]["x0"], saved["table"]["x1"], 0.2, 5.0) == (
        pytest.approx(result["exact_cost"], abs=1e-10))


def test_annealing_grows_a_staircase_from_the_affine_fixed_point():
    cfg = P.Config(start="affine", temperature=0.1, anneal_iters=20, iters=30, polish=0, **TINY)
    grid = P.Grid(cfg)
    _, d, _ = grid.marginal(grid.bin_mass(grid.x0, grid.p))
    hard = grid.reply(d)  # without annealing, x1 = x0 is (nearly) a fixed point: no jumps
    inner = grid.x0 < 20.0  # away from the grid's end, where the binned mass stops
    assert np.max(np.abs(np.diff(hard))) < 0.1
    np.testing.assert_allclose(hard[inner], 0.96 * grid.x0[inner], atol=0.2)
    result = P.solve(cfg, log=None)
    assert result["initial_exact_cost"] > 0.9
    assert result["exact_cost"] < 0.25 and len(result["thresholds"]) >= 3


def test_expected_cost_with_error_matches_expected_cost_and_sees_coarser_rules():
    stairs = R.staircase([3.3, 10.0], [0.0, 6.6, 13.3])
    cost, error = R.expected_cost_with_error(stairs)
    assert cost == R.expected_cost(stairs)
    assert 0 <= error < 1e-10
    coarse = sum(R.expected_cost_terms(stairs, tol=1e-3, y_step=0.3))
    assert 1e-12 < abs(coarse - cost) < 1e-2  # a really coarse rule does differ
    with pytest.raises(ValueError, match="tol"):
        R.expected_cost_terms(stairs, tol=0.0)


def test_bad_solver_name_and_bad_config_raise_naming_the_choices():
    with pytest.raises(ValueError, match=r"--solver must be one of .*pointwise.*'nope'"):
        solvers.main(["--solver", "nope"])
    with pytest.raises(ValueError, match="solver must be one of"):
        solvers.solver_config("nope")
    with pytest.raises(ValueError, match="start in"):
        P.Config(start="zigzag")
    assert solvers.solver_config("annealing")[1].temperature > 0


def test_neural_solver_trains_through_the_env_and_reports_the_exact_cost():
    from baselines import witsenhausen_neural as N

    result = N.solve(N.Config(width=8, depth=1, batch=128, iters=40, lr=0.03, grid=201,
                              error_estimate=0), log=None)
    assert result["exact_cost"] < result["initial_exact_cost"]
    x1 = np.asarray(result["gamma1_samples"]["x1"])
    assert np.all(np.isfinite(x1)) and abs(x1[0]) < 1e-6  # odd: gamma1(0) = 0
