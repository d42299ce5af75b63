"""The Witsenhausen solver's machinery, at small sizes (the full run is a script)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from baselines import witsenhausen as solver
from dcgenv.envs import witsenhausen as W

SMALL = dict(pieces=3, spacings=(1.0,), centred=(False,), batch=1024, iters=300, lr=0.05,
             grid=1001, error_estimate=0)  # the error estimate: test_witsenhausen_solvers.py


def test_training_through_the_env_beats_best_affine_from_a_worse_start():
    result = solver.run(solver.Config(**SMALL))
    (run,) = result["runs"]
    affine = result["references"]["best_affine"]
    assert run["initial_exact_cost"] > affine  # the start is worse than the best affine law
    assert run["exact_cost"] < 0.8 * affine


def test_learned_policy_is_the_reference_sloped_staircase():
    cfg = solver.Config(**SMALL)
    theta = jax.tree.map(lambda x: x[0], solver.initial_policies(cfg))
    theta = {**theta, "slopes": jnp.array([0.1, 0.0, -0.2])}
    b = np.cumsum(jax.nn.softplus(theta["gaps"]))
    x0 = jnp.linspace(-9.0, 9.0, 1001)
    reference = W.staircase(b, theta["levels"], theta["slopes"])
    np.testing.assert_allclose(solver.gamma1(theta, x0), reference(x0), atol=1e-5)


def test_gradients_reach_every_parameter_through_the_env():
    cfg = solver.Config(**{**SMALL, "batch": 256})
    env, params = dcgenv.make("Witsenhausen-v0")
    theta = jax.tree.map(lambda x: x[0], solver.initial_policies(cfg))
    loss = lambda th: solver.episode_costs(th, 0.3, jax.random.key(0), env, params, cfg).mean()
    grads = jax.jit(jax.grad(loss))(theta)
    for name, g in grads.items():
        assert np.all(np.isfinite(g)) and np.any(np.abs(np.asarray(g)) > 1e-6), name


def test_main_writes_a_json_report(tmp_path, capsys):
    result = solver.main(["--iters", "20", "--batch", "128", "--grid", "501", "--pieces", "3",
                          "--spacings", "6.5", "7", "--centred", "false", "--error_estimate",
                          "0", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "witsenhausen.json").read_text())
    assert [r["init"] for r in saved["runs"]] == [{"spacing": 6.5, "centred": False},
                                                  {"spacing": 7.0, "centred": False}]
    assert saved["best"]["exact_cost"] == min(r["exact_cost"] for r in saved["runs"])
    assert saved["best"] == json.loads(json.dumps(result["best"]))
    assert "best learned" in capsys.readouterr().out


def test_bad_config_raises_naming_the_rule():
    with pytest.raises(ValueError, match="tau_end"):
        solver.Config(tau_start=0.01, tau_end=0.1)
    with pytest.raises(ValueError, match="pieces >= 1"):
        solver.Config(pieces=0)
