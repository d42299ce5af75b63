"""The gradient-aware-attention ablation on the referential game
(baselines/attention_referential.py): the smoke budget end to end, and the token-level
listener's gradient budget and scores."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines import attention_referential as ar
from baselines import reproduce

ROW_KEYS = {"cell", "aggregate", "bottleneck", "budget_k", "fisher", "curve", "curve_games",
            "games_to_target", "games_to_target_mean_curve", "final_accuracy",
            "kl_per_message", "fisher_rank", "token_weights", "grad_stat", "vq_accuracy",
            "backward_s", "wall_s"}


def _finite(x) -> bool:
    return all(math.isfinite(v) for v in np.ravel(np.asarray(x, float)))


def test_smoke_end_to_end(tmp_path):
    record = reproduce.reproduce("attention_referential", "smoke", tmp_path)
    saved = json.loads((tmp_path / "attention_referential_smoke.json").read_text())
    assert saved["row"] == "attention_referential" and saved["budget"] == "smoke"
    assert saved["env_steps"] > 0 and saved["wall_s"] > 0
    cfg = reproduce.load_config("attention_referential", "smoke", ar.Config)
    rows = saved["result"]["rows"]
    assert [r["cell"] for r in rows] == list(cfg.cells)
    for r in rows:
        assert ROW_KEYS <= set(r)
        assert np.shape(r["curve"]) == (cfg.iters // cfg.eval_every, cfg.num_seeds)
        assert _finite(r["curve"]) and _finite(r["final_accuracy"]) and _finite(r["fisher_rank"])
        assert all(0 <= a <= 1 for a in r["final_accuracy"])
        # the effective rank of a [K, L * d] Jacobian lies in [1, min(K, L * d)]
        assert all(1 - 1e-4 <= x <= (cfg.n_candidates or 2) + 1e-4 for x in r["fisher_rank"])
        assert list(r["vq_accuracy"]) == [str(b) for b in cfg.codebook_bits]
        assert _finite(list(r["vq_accuracy"].values())) and r["backward_s"] > 0
        assert np.sum(r["token_weights"]) == pytest.approx(1.0, abs=1e-4)
    plain, full = rows
    assert plain["kl_per_message"] is None and plain["budget_k"] == 0
    assert full["bottleneck"] and full["fisher"] and full["budget_k"] == 2
    assert _finite(full["kl_per_message"]) and min(full["kl_per_message"]) > 0
    assert "| mean |" in record["result"]["table"]
    for suffix in ("curves", "vq"):
        assert (tmp_path / f"attention_referential_smoke_{suffix}.png").stat().st_size > 0


def _listener(aggregate, budget_k=0):
    return ar.TokenListener(8, aggregate, tau=1.0, budget_k=budget_k)


MESSAGE = jnp.linspace(-1.0, 1.0, 6).reshape(3, 2)  # L = 3 tokens of d = 2
CANDIDATES = jnp.linspace(0.5, -0.5, 8).reshape(2, 4)  # K = 2 candidates of 4 features


@jax.jit
def _budget_case(stat):
    """Per-token gradient norms of ``logit_0 - 2 logit_1`` with and without a budget of 2
    tokens (gradient-aware listener, one set of parameters), and both forward values."""
    budget, plain = _listener("gradient_aware", budget_k=2), _listener("gradient_aware")
    params = budget.init(jax.random.key(0), MESSAGE, CANDIDATES, stat)

    def norms(listener):
        out = lambda m: listener.apply(params, m, CANDIDATES, stat)[0]
        grad = jax.grad(lambda m: jnp.sum(out(m) * jnp.array([1.0, -2.0])))(MESSAGE)
        return jnp.linalg.norm(grad, axis=1), out(MESSAGE)
    return norms(budget), norms(plain)


def test_token_gradient_budget_zeroes_the_gradients_of_non_selected_tokens():
    stat = jnp.array([0.2, 0.9, 0.5])  # top-2 tokens by g: 1 and 2
    (norms, logits), (plain_norms, plain_logits) = _budget_case(stat)
    assert norms[0] == 0.0 and norms[1] > 0 and norms[2] > 0, norms
    np.testing.assert_allclose(logits, plain_logits, rtol=1e-6)  # the forward is unchanged
    assert np.all(plain_norms > 0)  # without the budget every token passes gradients
    norms = _budget_case(jnp.array([0.9, 0.2, 0.5]))[0][0]  # top-2: tokens 0 and 2
    assert norms[1] == 0.0 and norms[0] > 0 and norms[2] > 0, norms


@jax.jit
def _scores_case():
    """Logits and weights of TarMAC (g ignored) and of the gradient-aware listener for three
    statistics, with one set of parameters."""
    tarmac, aware = _listener("attention"), _listener("gradient_aware")
    params = aware.init(jax.random.key(1), MESSAGE, CANDIDATES, jnp.ones(3))
    same_tree = jax.tree.structure(params) == jax.tree.structure(
        tarmac.init(jax.random.key(1), MESSAGE, CANDIDATES, jnp.ones(3)))
    reference = tarmac.apply(params, MESSAGE, CANDIDATES, jnp.array([0.3, 0.1, 0.7]))
    stats = (jnp.ones(3), jnp.full(3, 0.04), jnp.array([0.1, 0.1, 2.0]))
    return same_tree, reference, [aware.apply(params, MESSAGE, CANDIDATES, g) for g in stats]


def test_gradient_aware_scores_equal_tarmac_when_all_g_are_equal():
    same_tree, (reference, w_ref), outs = _scores_case()
    assert same_tree  # the same parameters: the cells differ only by the score shift
    for logits, w in outs[:2]:  # all g equal (at any scale): TarMAC's logits and weights
        np.testing.assert_allclose(logits, reference, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(w, w_ref, rtol=1e-5, atol=1e-7)
    # unequal g: more weight on the token with the larger g than TarMAC gives it
    assert np.all(np.asarray(outs[2][1][:, 2]) > np.asarray(w_ref[:, 2]))


def test_config_and_cell_names_are_checked():
    assert len(ar.grid(2)) == 17 and ar.grid(2)[-1] == "attention+fisher"
    assert ar.parse_cell("gated+IB+k3") == {"aggregate": "gated", "bottleneck": True,
                                            "budget_k": 3, "fisher": False}
    with pytest.raises(ValueError, match="unknown option 'k0'"):
        ar.parse_cell("mean+k0")
    with pytest.raises(ValueError, match="unknown cell aggregate 'tarmac'"):
        ar.parse_cell("tarmac")
    with pytest.raises(ValueError, match="budget_k = 5 is out of range; allowed: 1 to "
                                         "message_length = 4"):
        ar.Config(budget_k=5)
    with pytest.raises(ValueError, match="iters = 10 must be a multiple of eval_every = 3"):
        ar.Config(iters=10, eval_every=3)
