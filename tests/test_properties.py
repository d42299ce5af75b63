"""Property tests: each environment family's invariants under random and adversarial actions
and any in-range params.

Params are drawn by hypothesis from the ranges the envs declare (``core.param`` metadata, read
generically; a side a range leaves open is capped at ``CAP``, integers span ``INT_SPAN`` above
their low end), plus the cross-field constraints a per-field range cannot say (``REPAIRS``).
Actions mix uniform samples with out-of-range integers, NaN, +-inf and huge floats. Each
family's rollout is compiled once (params and keys are traced arguments; XLA's backend
optimisations are off, which only makes compiling faster) and reused by every example.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dcgenv
from dcgenv import spaces
from tests.test_conformance import random_run

CAP, INT_SPAN = 1e6, 40
ENVS, STEPS = 4, 30
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


# ---- params drawn from the declared ranges ---------------------------------------------------
def field_strategy(default, low=None, high=None, low_open=False, high_open=False):
    value = np.asarray(default)
    if value.dtype == bool:
        return st.booleans()
    if np.issubdtype(value.dtype, np.integer):
        lo = -INT_SPAN if low is None else int(low) + low_open
        return st.integers(lo, lo + INT_SPAN if high is None else int(high) - high_open)
    floats = st.floats(-CAP if low is None else low, CAP if high is None else high,
                       exclude_min=low_open and low is not None,
                       exclude_max=high_open and high is not None, width=32)
    return floats if value.ndim == 0 else hnp.arrays(np.float32, value.shape, elements=floats)


def _valid(params) -> bool:
    try:
        params.validate()
    except ValueError:
        return False
    return True


def params_strategy(default, repair=lambda p: p):
    """In-range params: every field with a declared range drawn from it, then ``repair``."""
    fields = {f.name: field_strategy(getattr(default, f.name), **f.metadata["range"])
              for f in dataclasses.fields(default) if "range" in f.metadata}
    return st.fixed_dictionaries(fields).map(lambda d: repair(default.replace(**d))) \
        .filter(_valid)


def as_arrays(params):
    """Every field as an array of JAX's dtype for it, so all draws share one compiled rollout."""
    canonical = lambda x: jax.dtypes.canonicalize_dtype(np.asarray(x).dtype)
    return jax.tree.map(lambda x: jnp.asarray(x, canonical(x)), params)


def _normalised(p):
    probs = np.asarray(p.prey_move_probs, np.float64)
    return p.replace(prey_move_probs=probs / probs.sum() if probs.sum() > 0 else np.eye(5)[4])


def _ordered_turns(p):
    lo, hi, limit = sorted((p.min_turns, p.max_turns, p.max_steps_in_episode))
    return p.replace(min_turns=lo, max_turns=hi, max_steps_in_episode=limit)


REPAIRS = {"PredatorPrey-magym-v0": _normalised, "Negotiation-v0": _ordered_turns}


# ---- adversarial actions ---------------------------------------------------------------------
class Adversarial:
    """``env`` whose ``sample_actions`` replaces each entry of a uniform sample, with
    probability 1/2, by an extreme: int32 min/max, -1, 1000; NaN, +-inf, +-3e38, 1e6."""

    def __init__(self, env):
        self.env = env

    def __getattr__(self, name):
        return getattr(self.env, name)

    def sample_actions(self, key, params=None):
        leaves, tree = jax.tree.flatten(self.env.sample_actions(key, params))
        out = []
        for leaf, k in zip(leaves, jax.random.split(jax.random.fold_in(key, 1), len(leaves)),
                           strict=True):
            if jnp.issubdtype(leaf.dtype, jnp.integer):
                info = jnp.iinfo(leaf.dtype)
                extremes = jnp.array([info.min, info.max, -1, 1000], leaf.dtype)
            else:
                extremes = jnp.array([jnp.nan, jnp.inf, -jnp.inf, 3e38, -3e38, 1e6], leaf.dtype)
            k_pick, k_which = jax.random.split(k)
            wild = extremes[jax.random.randint(k_pick, leaf.shape, 0, len(extremes))]
            out.append(jnp.where(jax.random.bernoulli(k_which, 0.5, leaf.shape), wild, leaf))
        return jax.tree.unflatten(tree, out)


# ---- invariants per family (numpy arrays [ENVS, STEPS, ...]; ``prev``: the state before) ------
def traffic_junction(env, p, obs, state, prev, reward, info):
    alive, after = state.alive, info["final_observation"]["alive"]  # after: before any reset
    assert np.all(state.pos >= 0)
    assert np.all((state.pos < env._route_len[state.route]) | ~alive)  # cars on their routes
    # cars are conserved: after = before + entered - completed, never more than the cap
    before = prev.alive.sum(-1)
    np.testing.assert_array_equal(after.sum(-1), before + info["entered"] - info["completed"])
    assert np.all(info["collisions"] <= after.sum(-1))
    assert np.all(reward[~after] == 0) and np.all(reward <= 0)
    assert np.all(reward >= p.time_penalty * (STEPS + 1) + p.crash_penalty - 1e-3)


def predator_prey(env, p, obs, state, prev, reward, info):
    for xy in (state.predators, state.prey):
        assert np.all((xy >= 0) & (xy < env.dim))
    on = np.all(state.predators == state.prey[..., None, :], -1)
    assert np.all(on | ~state.frozen)  # a frozen predator stays on the prey
    assert np.all((info["on_prey"] >= 0) & (info["on_prey"] <= env.num_agents))
    assert np.all((reward >= -0.05) & (reward <= 0.05 * env.num_agents + 1e-6))


def predator_prey_magym(env, p, obs, state, prev, reward, info):
    for xy in (state.predators, state.prey):
        assert np.all((xy >= 0) & (xy < env.size))
    cells = lambda xy: xy[..., 0] * env.size + xy[..., 1]
    live = np.where(state.prey_alive, cells(state.prey), -1 - np.arange(env.num_prey))
    everyone = np.concatenate([cells(state.predators), live], -1)
    assert all(len(set(row)) == row.size for row in everyone.reshape(-1, everyone.shape[-1]))
    np.testing.assert_array_equal(info["captured"], env.num_prey - info["prey_alive"].sum(-1))
    assert np.all(reward == reward[..., :1])  # shared
    lo = p.step_cost + env.num_prey * p.penalty
    hi = p.step_cost + env.num_prey * p.capture_reward
    assert np.all((reward >= lo - 1e-3 * abs(lo)) & (reward <= hi + 1e-3 * abs(hi)))


def gridworld(env, p, obs, state, prev, reward, info):
    for xy in (state.pos, state.goal):
        assert np.all((xy >= 0) & (xy < env.grid_size))
    paid = np.float32([p.goal_reward, p.step_reward] + [0.0] * env.talk_first)  # talk step: 0
    assert np.all(np.isin(reward, paid)) and np.all(reward == reward[..., :1])
    assert np.all(reward[info["success"]] == paid[0])
    assert np.all(info["bits"] >= 0) and np.all(info["episode_bits"] >= info["bits"])


def referential(env, p, obs, state, prev, reward, info):
    assert np.all((state.target_index >= 0) & (state.target_index < env.n_candidates))
    assert np.all((reward >= 0) & (reward <= 1)) and np.all(reward == reward[..., :1])
    if not env.differentiable:
        assert np.all(reward[..., 0] == info["success"])
    assert np.all(info["bits"] >= 0)


def negotiation(env, p, obs, state, prev, reward, info):
    assert np.all((reward >= 0) & (reward <= 1))
    assert np.all((state.claim >= 0) & (state.claim <= state.pool))
    assert np.all((state.horizon >= p.min_turns) & (state.horizon <= p.max_turns))
    alloc = info["allocation"]
    assert np.all(alloc >= 0) and np.all(alloc.sum(-2) <= prev.pool)  # within the pool
    assert np.all(alloc.sum(-2)[info["success"]] == prev.pool[info["success"]])


def rubinstein(env, p, obs, state, prev, reward, info):
    assert np.all((reward >= 0) & (reward <= 1)) and np.all(reward.sum(-1) <= 1 + 1e-6)
    assert np.all((state.alive >= 0) & (state.alive <= 1))
    assert np.all((state.shares >= 0) & (state.shares <= 1))
    assert np.all(np.isclose(state.shares.sum(-1), 0) | np.isclose(state.shares.sum(-1), 1))


def witsenhausen(env, p, obs, state, prev, reward, info):
    assert np.all(info["stage1_cost"] >= 0) and np.all(info["stage2_cost"] >= 0)
    np.testing.assert_array_equal(reward[..., 0], -(info["stage1_cost"] + info["stage2_cost"]))
    assert np.all(reward <= 0) and np.all(reward == reward[..., :1])


def witsenhausen_channel(env, p, obs, state, prev, reward, info):
    costs = [info[name] for name in ("stage1_cost", "stage2_cost", "message_cost")]
    assert all(np.all(c >= 0) for c in costs) and np.all(info["bits"] >= 0)
    np.testing.assert_allclose(reward[..., 0], -sum(costs), rtol=1e-6)
    assert np.all(reward <= 0) and np.all(reward == reward[..., :1])
    np.testing.assert_array_equal(info["bits"][prev.time == 1], 0.0)  # sent at step 0 only
    np.testing.assert_array_equal(obs["message"][..., 0, :], 0.0)  # controller 1 hears nothing


def witsenhausen_misaligned(env, p, obs, state, prev, reward, info):
    own = info["controller2_cost"]
    assert np.all(info["stage1_cost"] >= 0) and np.all(info["stage2_cost"] >= 0)
    np.testing.assert_array_equal(reward[..., 0], -(info["stage1_cost"] + info["stage2_cost"]))
    np.testing.assert_array_equal(reward[..., 1], -own)
    assert np.all(own >= 0) and np.all(own[prev.time == 0] == 0)  # paid on its own step only


def witsenhausen_vector(env, p, obs, state, prev, reward, info):
    witsenhausen(env, p, obs, state, prev, reward, info)
    assert obs["signal"].shape[-1] == env.dim
    np.testing.assert_array_equal(info["stage1_cost"][prev.time == 1], 0.0)  # paid at step 0
    np.testing.assert_array_equal(info["stage2_cost"][prev.time == 0], 0.0)  # and at step 1


def witsenhausen_multistage(env, p, obs, state, prev, reward, info):
    control, final = info["control_cost"], info["final_cost"]
    assert np.all(control >= 0) and np.all(final >= 0)
    np.testing.assert_array_equal(reward[..., 0], -(control + final))
    assert np.all(reward <= 0) and np.all(reward == reward[..., :1])
    last = prev.time == env.stages - 1
    np.testing.assert_array_equal(final[~last], 0.0)
    np.testing.assert_array_equal(control[last], 0.0)
    assert np.all(obs["active"].sum(-1) == 1)  # one controller's turn at a time


def kyle(env, p, obs, state, prev, reward, info):
    assert np.all(reward[..., 1] <= 0)  # the market maker's -(p - v)^2
    for name in ("order_flow", "price", "mm_profit"):
        assert np.all(np.isfinite(info[name])), name


def supply_function(env, p, obs, state, prev, reward, info):
    assert np.all(np.isfinite(info["price"])) and np.all(np.isfinite(info["quantities"]))
    # the market clears: what the firms sell is what demand takes at the price, up to float32
    # rounding at the scale of the schedules (adversarial ones reach quantity_limit)
    gamma = max(float(p.gamma), 1e-6)  # as the env reads it (its docstring)
    demand = info["demand_shock"] - gamma * info["price"]
    grid = gamma * max(abs(p.price_min), abs(p.price_max))  # demand on the price grid
    scale = np.maximum.reduce([np.full_like(demand, p.quantity_limit * env.num_firms + grid),
                               np.abs(info["demand_shock"]), np.abs(gamma * info["price"])])
    gap = np.abs(info["quantities"].sum(-1) - demand)
    assert np.all(gap <= 16 * np.spacing(scale.astype(np.float32))), gap.max()


def cournot(env, p, obs, state, prev, reward, info):
    assert np.all(np.abs(info["quantities"]) <= p.quantity_limit)
    assert np.all((state.disclosure >= 0) & (state.disclosure <= 1))
    quantity_step = prev.time == 1  # profits are paid on the quantity step only
    np.testing.assert_array_equal(reward[~quantity_step], 0.0)


def public_goods(env, p, obs, state, prev, reward, info):
    c, provided = info["contributions"], info["provided"]
    assert np.all((c >= 0) & (c <= p.endowment)) and np.all(np.isin(provided, [0.0, 1.0]))
    paid = prev.time == 1  # payoffs come on the contribution step only
    np.testing.assert_array_equal(reward[~paid], 0.0)
    scale = np.float32(env.num_players * (p.endowment + p.v_max))
    assert np.all(reward >= 0) and np.all(reward <= p.endowment + p.v_max + 1e-6 * scale)
    assert np.all(info["welfare"] <= info["optimum_welfare"] + 1e-6 * scale)  # the optimum


FAMILIES = {
    "TrafficJunction-easy-v0": ({}, traffic_junction),
    "PredatorPrey-easy-v0": ({"vision": 1}, predator_prey),
    "PredatorPrey-magym-v0": ({}, predator_prey_magym),
    "GridWorldGoal-v0": ({}, gridworld),
    "GridWorldGoal-talkfirst-v0": ({}, gridworld),
    "Referential-v0": ({}, referential),
    "Referential-differentiable-v0": ({}, referential),
    "Negotiation-v0": ({}, negotiation),
    "Rubinstein-v0": ({"smooth_accept": True}, rubinstein),
    "Witsenhausen-v0": ({}, witsenhausen),
    "Witsenhausen-vector-v0": ({}, witsenhausen_vector),
    "Witsenhausen-multistage-v0": ({}, witsenhausen_multistage),
    "Witsenhausen-channel-v0": ({}, witsenhausen_channel),
    "Witsenhausen-misaligned-v0": ({}, witsenhausen_misaligned),
    "Kyle-v0": ({}, kyle),
    "Kyle-sequential-v0": ({}, kyle),
    "SupplyFunction-v0": ({}, supply_function),
    "CournotInfoSharing-v0": ({}, cournot),
    "PublicGoods-v0": ({}, public_goods),
}


@functools.cache
def compiled(env_id):
    """``(keys, params) -> trajectories`` for one family, compiled once."""
    env, default = dcgenv.make(env_id, **FAMILIES[env_id][0])
    run = jax.jit(jax.vmap(random_run(Adversarial(env), STEPS), in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(0), ENVS)
    return env, default, run.lower(keys, as_arrays(default)).compile(FAST_COMPILE)


@pytest.mark.parametrize("env_id", FAMILIES)
@settings(max_examples=10, deadline=None, derandomize=True)
@given(data=st.data())
def test_invariants_under_adversarial_actions_and_any_in_range_params(env_id, data):
    env, default, run = compiled(env_id)
    params = data.draw(params_strategy(default, REPAIRS.get(env_id, lambda p: p)), "params")
    seed = data.draw(st.integers(0, 2**32 - 1), "seed")
    out = run(jax.random.split(jax.random.key(seed), ENVS), as_arrays(params))
    obs, state, reward, term, trunc, info = jax.tree.map(np.asarray, out[:6])  # then keys, ...
    for leaf in jax.tree.leaves((state, reward, info)):  # obs: spaces.check below
        assert not (np.issubdtype(leaf.dtype, np.floating) and np.isnan(leaf).any())
    space = env.observation_space(params)
    spaces.check(space, obs, batch_dims=3, where="obs")  # finite and inside the space
    spaces.check(space, info["final_observation"], batch_dims=3, where="final_observation")
    assert not np.any(term & trunc)
    # the state each step started from: the reset state is not returned, so t >= 1 only
    prev = jax.tree.map(lambda x: x[:, :-1], state)
    later = lambda tree: jax.tree.map(lambda x: x[:, 1:], tree)
    FAMILIES[env_id][1](env, params, later(obs), later(state), prev, reward[:, 1:],
                        later(info))
