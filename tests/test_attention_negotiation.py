"""The one-round negotiation of the attention ablation (baselines/attention_negotiation.py):
its joint reward is Negotiation-v0's, its best allocation reaches 1, and the smoke budget runs
end to end through baselines.attention_referential."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from baselines import attention_negotiation as an
from baselines import attention_referential as ar
from baselines import reproduce


def _env_joint(key, allocation):
    """Play Negotiation-v0: A claims everything, B claims the item types ``allocation`` leaves
    it, A accepts: the env's ``info["joint_reward"]`` (and whether the game ended agreed)."""
    env, params = dcgenv.make("Negotiation-v0", prosocial=True)
    _, state = env.reset(key, params)
    words = jnp.zeros((2, *env.sent_shape))

    def act(accept, claim):
        return {"accept": jnp.array([accept, accept]), "utterance": words,
                "proposal": jnp.stack([claim, claim])}

    pool = state.pool
    _, state, *_ = env.step(key, state, act(0, pool), params)
    b_claim = jnp.where(allocation == 1, 0, pool)
    _, state, *_ = env.step(key, state, act(0, b_claim), params)
    _, _, _, terminated, _, info = env.step(key, state, act(1, pool), params)
    return info["joint_reward"], terminated & info["success"], state.pool, state.utilities


def test_joint_rewards_are_the_environment_s():
    keys = jax.random.split(jax.random.PRNGKey(0), 16)
    allocations = jnp.asarray(an.ALLOCATIONS, jnp.int32)
    theirs, agreed, pool, u = jax.jit(jax.vmap(jax.vmap(_env_joint, (None, 0)), (0, None)))(
        keys, allocations)  # [16 games, 8 allocations]
    assert bool(jnp.all(agreed))
    ours = jax.vmap(an.joint_rewards)(pool[:, 0], u[:, 0])
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert float(jnp.std(theirs)) > 0.1  # the allocations differ in value


def test_the_best_allocation_reaches_one_and_others_fall_short():
    pool, u = jnp.array([2, 0, 3]), jnp.array([[5, 9, 1], [2, 0, 4]])
    joint = np.asarray(an.joint_rewards(pool, u))
    best = np.flatnonzero(joint == joint.max())
    # type 0 to A (5 > 2), type 2 to B (4 > 1), type 1 empty: either owner is best
    assert {tuple(an.ALLOCATIONS[i]) for i in best} == {(1, 0, 0), (1, 1, 0)}
    assert joint.max() == pytest.approx(1.0) and np.sort(joint)[-3] < 1.0
    assert np.all(np.asarray(an.joint_rewards(jnp.zeros(3, int), u)) == 0.0)


def test_sample_shapes_and_what_each_side_sees():
    speaker, candidates, payoff = an.sample(jax.random.PRNGKey(0), 64)
    assert speaker.shape == (64, 6) and candidates.shape == (64, 8, 9)
    assert payoff.shape == (64, 8)
    assert float(speaker.min()) >= 0 and float(speaker.max()) <= 1
    assert np.all(np.asarray(candidates[:, :, :3]) == an.ALLOCATIONS)  # the allocation
    np.testing.assert_array_equal(candidates[:, 0, 3:6], speaker[:, 3:])  # both see the pool
    worth = np.asarray(payoff.max(-1))
    assert np.all(np.isclose(worth, 1.0, atol=1e-6) | (worth == 0.0))


def test_config_refuses_the_referential_keys_and_unknown_games():
    with pytest.raises(ValueError, match="8 candidates"):
        ar.Config(game="negotiation", n_candidates=10)
    with pytest.raises(ValueError, match="referential"):
        ar.Config(game="bargain")
    assert ar.Config().n_candidates is None  # the referential game's registered K = 2


def test_smoke_end_to_end(tmp_path):
    record = reproduce.reproduce("attention_negotiation", "smoke", tmp_path)
    saved = json.loads((tmp_path / "attention_negotiation_smoke.json").read_text())
    assert saved["row"] == "attention_negotiation" and saved["result"]["game"] == "negotiation"
    cfg = reproduce.load_config("attention_negotiation", "smoke", ar.Config)
    rows = saved["result"]["rows"]
    assert [r["cell"] for r in rows] == list(cfg.cells)
    assert saved["env_steps"] == cfg.iters * cfg.batch * cfg.num_seeds * len(cfg.cells)
    for r in rows:
        assert all(0 <= a <= 1 for a in r["final_accuracy"])
        # the greedy joint reward is at least the success rate (a best allocation gives 1)
        assert all(p >= a - 1e-6 and math.isfinite(p)
                   for p, a in zip(r["final_payoff"], r["final_accuracy"], strict=True))
        assert list(r["vq_payoff"]) == [str(b) for b in cfg.codebook_bits]
    assert "| joint reward |" in record["result"]["table"]
    for suffix in ("curves", "vq"):
        assert (tmp_path / f"attention_negotiation_smoke_{suffix}.png").stat().st_size > 0
