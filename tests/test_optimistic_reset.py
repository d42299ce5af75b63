"""OptimisticResetVecEnv: Craftax-style optimistic reset over a batch of environments.

- ``reset_ratio=1`` is *exactly* ``jax.vmap(env.step)`` over ``jax.random.split(key, N)``.
- With ``reset_ratio < 1`` the episode statistics of a random policy (mean episode length and
  team return) match the standard vmapped auto-reset within sampling error, on
  PredatorPrey-magym-v0 (episodes end at different times) and TrafficJunction-easy-v0 (fixed
  length 20: the whole batch ends on the same step, the worst case for sharing).
  Tolerance: ``|mean_opt - mean_std| <= 4 * sqrt(se_std**2 + se_opt**2)`` where ``se`` is the
  standard error of the mean over finished episodes; for the optimistic run the variance is
  inflated by the largest number of environments that shared one reset state (episodes that
  start from the same state are counted as if perfectly correlated, which bounds the variance
  of their mean from above). Both runs use independent keys, so the two means are independent.
- The share of environments that got a shared reset state is reported (printed, and as a
  pytest ``record_property``), and matches its closed form.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv import OptimisticResetVecEnv


def _actions(env, params, key, n):
    return jax.vmap(env.sample_actions, in_axes=(0, None))(jax.random.split(key, n), params)


def _leaves_equal(a, b) -> bool:
    return all(bool(jnp.array_equal(x, y)) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_ratio_one_equals_vmapped_autoreset_exactly():
    env, params = dcgenv.make("TrafficJunction-easy-v0")  # 20-step episodes: two resets below
    n, steps = 8, 42
    venv = OptimisticResetVecEnv(env, n, reset_ratio=1.0)
    assert venv.num_resets == n
    vstep = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))

    obs, state = venv.reset(jax.random.key(0), params)
    obs_ref, state_ref = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(0), n), params)
    assert _leaves_equal((obs, state), (obs_ref, state_ref))
    ended = 0
    for t in range(steps):
        key = jax.random.key(t + 1)
        actions = _actions(env, params, jax.random.fold_in(key, 1), n)
        out = venv.step(key, state, actions, params)
        ref = vstep(jax.random.split(key, n), state_ref, actions, params)
        obs, state, reward, terminated, truncated, info = out
        assert _leaves_equal(out[:5], ref[:5])
        assert _leaves_equal(info["final_observation"], ref[5]["final_observation"])
        assert not bool(info["reset_shared"].any())
        state_ref = ref[1]
        ended += int((terminated | truncated).sum())
    assert ended == 2 * n


@pytest.mark.parametrize("ratio", [0.25, 0.75])
def test_shared_reset_count_matches_closed_form(ratio, record_property):
    """All N TrafficJunction-easy episodes end on step 20: D = N ends, M resets; slot s is taken
    by ends s, s+M, ..., so N - max(0, 2M - N) environments get a shared state."""
    env, params = dcgenv.make("TrafficJunction-easy-v0")
    n = 64
    venv = OptimisticResetVecEnv(env, n, reset_ratio=ratio)
    m = venv.num_resets
    obs, state = venv.reset(jax.random.key(0), params)
    for t in range(20):
        key = jax.random.key(t + 1)
        obs, state, reward, terminated, truncated, info = venv.step(
            key, state, _actions(env, params, jax.random.fold_in(key, 1), n), params)
    done = terminated | truncated
    assert int(done.sum()) == n
    shared = int(info["reset_shared"].sum())
    assert shared == n - max(0, 2 * m - n)
    assert not bool((info["reset_shared"] & ~done).any())
    assert int(state.time.max()) == 0  # everyone restarted
    for x in jax.tree.leaves((obs, state, reward, info)):
        if jnp.issubdtype(x.dtype, jnp.floating):
            assert bool(jnp.isfinite(x).all())
    record_property("shared_reset_share", shared / n)
    print(f"\nTJ-easy N={n} M={m}: {shared / n:.0%} of the resets on a synchronised end shared")


def _episode_stats(env, params, step_batch, init, key, n, steps, num_resets):
    """Mean and standard error of (length, team return) over the episodes that end within
    ``steps`` steps, the largest reset sharing seen, and the shared-reset share."""

    def body(carry, key):
        obs, state, ret, length = carry
        key_act, key_step = jax.random.split(key)
        actions = _actions(env, params, key_act, n)
        obs, state, reward, terminated, truncated, info = step_batch(key_step, state, actions)
        done = terminated | truncated
        ret = ret + reward.mean(axis=1)
        length = length + 1
        shared = info.get("reset_shared", jnp.zeros(n, bool))
        finite = jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(
            (obs, reward)) if jnp.issubdtype(x.dtype, jnp.floating)]))
        out = (done, ret, length, shared, finite)
        return (obs, state, jnp.where(done, 0.0, ret), jnp.where(done, 0, length)), out

    @jax.jit
    def run(key):
        key_init, key_run = jax.random.split(key)
        obs, state = init(key_init)
        carry = (obs, state, jnp.zeros(n), jnp.zeros(n, jnp.int32))
        return jax.lax.scan(body, carry, jax.random.split(key_run, steps))[1]

    done, ret, length, shared, finite = map(np.asarray, run(key))
    assert finite.all(), "NaN or inf in obs/reward"
    ends = done.sum(axis=1)
    stats = {"episodes": int(done.sum()),
             "shared_share": float(shared.sum() / max(done.sum(), 1)),
             "max_cluster": int(max(1, np.ceil(ends.max() / num_resets)))}
    for name, x in (("length", length), ("return", ret)):
        v = x[done].astype(np.float64)
        stats[name] = (v.mean(), v.std(ddof=1) / np.sqrt(v.size))
    return stats


@pytest.mark.parametrize("env_id, n, steps, ratio", [
    ("PredatorPrey-magym-v0", 256, 400, 0.1),
    ("TrafficJunction-easy-v0", 256, 200, 0.25),
])
def test_episode_statistics_unchanged(env_id, n, steps, ratio, record_property):
    env, params = dcgenv.make(env_id)
    venv = OptimisticResetVecEnv(env, n, reset_ratio=ratio)

    def standard(key, state, actions):
        return jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(key, n), state, actions, params)

    def optimistic(key, state, actions):
        return venv.step(key, state, actions, params)

    init = lambda key: venv.reset(key, params)
    std = _episode_stats(env, params, standard, init, jax.random.key(1), n, steps, n)
    opt = _episode_stats(env, params, optimistic, init, jax.random.key(2), n, steps,
                         venv.num_resets)
    assert std["shared_share"] == 0.0
    assert min(std["episodes"], opt["episodes"]) >= n  # at least one episode per env
    for name in ("length", "return"):
        (m_std, se_std), (m_opt, se_opt) = std[name], opt[name]
        se_opt *= np.sqrt(opt["max_cluster"])  # conservative: shared starts fully correlated
        tol = 4 * np.sqrt(se_std**2 + se_opt**2) + 1e-9
        assert abs(m_opt - m_std) <= tol, (name, m_std, m_opt, tol)
    record_property("shared_reset_share", opt["shared_share"])
    print(f"\n{env_id} N={n} M={venv.num_resets}: episodes {std['episodes']} / {opt['episodes']}, "
          f"length {std['length'][0]:.2f} / {opt['length'][0]:.2f}, return "
          f"{std['return'][0]:.3f} / {opt['return'][0]:.3f} (standard / optimistic); "
          f"shared resets {opt['shared_share']:.1%}")


def test_jit_traces_once_and_validates_arguments():
    env, params = dcgenv.make("PredatorPrey-magym-v0")
    n = 16
    venv = OptimisticResetVecEnv(env, n, reset_ratio=0.2)
    assert venv.num_resets == 4
    step = type(venv).step
    obs, state = venv.reset(jax.random.key(0), params)
    before = step._cache_size()
    for t in range(3):
        key = jax.random.key(t)
        obs, state, *_ = venv.step(key, state, _actions(env, params, key, n), params)
    assert step._cache_size() == before + 1
    assert jax.tree.leaves(obs)[0].shape[0] == n
    for bad in (dict(num_envs=0), dict(reset_ratio=0.0), dict(reset_ratio=1.5)):
        with pytest.raises(ValueError):
            OptimisticResetVecEnv(env, **{"num_envs": 4, "reset_ratio": 0.5, **bad})
