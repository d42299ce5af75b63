"""``python -m baselines.reproduce``: rows, budgets, the smoke runs and their JSON; the REINFORCE
estimator's unbiasedness; the Rubinstein SPE helper."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines import referential_estimators as rex
from baselines import reproduce
from baselines import rubinstein as rub
from dcgenv import comms

RECORD_KEYS = {"row", "budget", "command", "config", "wall_s", "env_steps", "machine", "figure",
               "result", "date"}


def test_list_and_rows(capsys):
    assert reproduce.main(["--list"]) is None
    listed = capsys.readouterr().out
    for row in reproduce.ROWS:
        assert row in listed
        for budget in reproduce.BUDGETS:  # every row has a config for every budget
            assert (reproduce.CONFIGS / f"{row}_{budget}.yaml").is_file()


@pytest.mark.parametrize("argv, needle", [
    (["no_such_row", "--budget", "smoke"], "attention_ablation, gridworld_ddcl, referential"),
    (["rubinstein", "--budget", "huge"], "smoke, cpu, full"),
    ([], "allowed"),
])
def test_bad_arguments(argv, needle, capsys):
    with pytest.raises(SystemExit):
        reproduce.main(argv)
    assert needle in capsys.readouterr().err


def test_bad_arguments_python(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown row 'x'.*rubinstein"):
        reproduce.reproduce("x", "smoke")
    with pytest.raises(ValueError, match="unknown budget 'gpu'.*smoke, cpu, full"):
        reproduce.check_budget("gpu")
    text = (reproduce.CONFIGS / "rubinstein_smoke.yaml").read_text()
    monkeypatch.setattr(reproduce, "CONFIGS", tmp_path)
    (tmp_path / "rubinstein_smoke.yaml").write_text(text + "bogus: 1\n")
    with pytest.raises(ValueError, match="unknown key.*'bogus'.*allowed: pairs"):
        reproduce.load_config("rubinstein", "smoke", rub.Config)


def test_smoke_rubinstein(tmp_path):
    record = reproduce.reproduce("rubinstein", "smoke", tmp_path)
    saved = json.loads((tmp_path / "rubinstein_smoke.json").read_text())
    assert RECORD_KEYS <= set(saved) and saved["row"] == "rubinstein"
    assert saved["machine"]["jax_backend"] == jax.default_backend()
    assert saved["env_steps"] > 0 and saved["wall_s"] > 0
    assert (tmp_path / "rubinstein_smoke.png").stat().st_size > 0
    rows = record["result"]["rows"]
    assert [(r["d1"], r["d2"]) for r in rows] == [(0.9, 0.9), (0.5, 0.8)]
    for r in rows:  # the 2-round SPE: the responder (last proposer) is offered d2 * 1
        assert r["spe_finite"] == pytest.approx(1 - r["d2"], abs=1e-6)
        assert len(r["pathwise_share"]) == 2 and "ppo_share" not in r  # PPO off in smoke
        assert all(0 <= s <= 1 for s in r["pathwise_share"])


def test_smoke_referential_estimators(tmp_path):
    record = reproduce.reproduce("referential_estimators", "smoke", tmp_path)
    saved = json.loads((tmp_path / "referential_estimators_smoke.json").read_text())
    assert RECORD_KEYS <= set(saved)
    est = record["result"]["estimators"]
    assert set(est) == {"reinforce"}
    e = est["reinforce"]  # 2 seeds x (init + 2 evaluations)
    assert np.asarray(e["accuracy"]).shape == (2, 3)
    for k in ("gsnr_mean", "gsnr_median", "gsnr_fixed_mean", "gsnr_fixed_median"):
        assert np.isfinite(e[k]).all() and np.min(e[k]) >= 0
    assert record["env_steps"] == 2 * 4 * 8 * 2  # steps per game x iters x batch x seeds


def test_referential_summary():
    """Ratios against REINFORCE: a pathwise estimator with 20x the GSNR that reaches the target
    in a quarter of the games; and a lower bound when REINFORCE never reaches it."""
    def entry(gsnr, reach):
        return {"gsnr_mean": [gsnr] * 2, "gsnr_fixed_median": [gsnr] * 2,
                "games_to_target_mean": reach}
    out = {"games": [0, 100, 200], "estimators": {
        "ddcl": entry([1.0, 2.0, 2.0], 50.0), "reinforce": entry([1.0, 0.1, 0.1], 200.0)}}
    s = rex.summarize(rex.Config(), out)["ddcl"]
    assert s["gsnr_ratio"] == pytest.approx([1, 20, 20]) and s["gsnr_target_met"]
    assert s["games_speedup"] == pytest.approx(4) and not s["games_target_met"]
    out["estimators"]["reinforce"]["games_to_target_mean"] = None
    s = rex.summarize(rex.Config(), out)["ddcl"]
    assert s["games_speedup"] is None and s["games_speedup_lower_bound"] == pytest.approx(4)


def test_reinforce_gradient_unbiased():
    """A 2-symbol speaker, p = softmax(w), loss 1 if it says symbol 0 else 3: the mean over
    many samples of score_function_loss's gradient (with a baseline) is the exact gradient of
    E[loss] = p0 + 3 p1, and without the score term it would be 0."""
    w = jnp.array([0.3, -0.2])
    losses = jnp.array([1.0, 3.0])

    def surrogate(w, key):
        symbol = jax.random.categorical(key, w)
        log_prob = jax.nn.log_softmax(w)[symbol]
        return comms.score_function_loss(losses[symbol], log_prob, baseline=1.7)

    keys = jax.random.split(jax.random.key(0), 100_000)
    estimate = jnp.mean(jax.vmap(jax.grad(surrogate), in_axes=(None, 0))(w, keys), 0)
    exact = jax.grad(lambda w: jnp.dot(jax.nn.softmax(w), losses))(w)
    np.testing.assert_allclose(estimate, exact, atol=0.02)  # ~5 standard errors
    assert float(jnp.abs(exact).min()) > 0.4  # the check has teeth: the gradient is not ~0


def test_spe_helper():
    # no cap: (1 - d2) / (1 - d1 d2); d1 = 0.9, d2 = 0.5: 0.5 / 0.55
    assert rub.spe_first_share(0.9, 0.5) == pytest.approx(0.5 / 0.55, rel=1e-6)
    # 3 rounds, by hand: round 2 P1 takes 1; round 1 P2 offers P1 d1 = 0.9, keeps 0.1;
    # round 0 P1 offers P2 d2 * 0.1 = 0.05, keeps 0.95
    assert rub.spe_first_share(0.9, 0.5, 3) == pytest.approx(0.95, rel=1e-6)
    with pytest.raises(ValueError, match="d1"):
        rub.spe_first_share(1.5, 0.5)
    with pytest.raises(ValueError, match="d1 \\* d2 < 1"):
        rub.spe_first_share(1.0, 1.0)


def test_smoke_gridworld_ddcl_and_the_message_length_measure(tmp_path):
    """The row's plumbing at its smoke budget, and its per-goal measure: the speaker's bits
    depend on the goal alone (a fixed actor, so two measurements with the same dithers agree),
    and ``pearson`` is the correlation (-1 for an exactly decreasing line, NaN if constant)."""
    from baselines import gridworld_ddcl as gw

    record = reproduce.reproduce("gridworld_ddcl", "smoke", tmp_path)
    saved = json.loads((tmp_path / "gridworld_ddcl_smoke.json").read_text())
    assert RECORD_KEYS <= set(saved) and saved["env_steps"] == 4 * 5 * 1 * 2
    (row,) = record["result"]["lambdas"]
    assert row["lambda"] == 1e-3 and len(row["seeds"]) == 2
    for seed in row["seeds"]:
        assert len(seed["bits_per_goal"]) == len(seed["goal_probability"]) == 6
        assert min(seed["bits_per_goal"]) >= 4  # Elias gamma: >= 1 bit per element, 4 elements
        assert 0 <= seed["success"] <= 1
    assert (tmp_path / "gridworld_ddcl_smoke.png").stat().st_size > 0
    assert gw.pearson([1, 2, 3], [6, 4, 2]) == pytest.approx(-1.0)
    assert np.isnan(gw.pearson([1, 2, 3], [5, 5, 5]))
