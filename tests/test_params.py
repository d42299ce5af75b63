"""Parameter ranges: ``make`` and ``replace_checked`` refuse values outside a field's documented
range (``core.param``), constructors refuse impossible arguments, and inside ``jit`` (params
traced, nothing checked) out-of-range values behave as each env's docstring says, without NaN.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv import comms
from dcgenv.adapters.jaxmarl import JaxMARLEnv
from dcgenv.envs.gridworld import GridWorldGoal
from dcgenv.envs.negotiation import Negotiation
from dcgenv.envs.predator_prey import PredatorPrey
from dcgenv.envs.predator_prey_magym import PredatorPreyMagym
from dcgenv.envs.referential import Referential
from dcgenv.envs.rubinstein import Rubinstein
from dcgenv.envs.traffic_junction import TrafficJunction
from dcgenv.envs.witsenhausen import Witsenhausen

# (env id, override, what the message must say: field=value ... range)
REFUSED = [
    ("TrafficJunction-easy-v0", {"add_rate": 5}, r"add_rate=5\.0 is outside its range \[0, 1\]"),
    ("TrafficJunction-easy-v0", {"add_rate": -0.5},
     r"add_rate=-0\.5 is outside its range \[0, 1\]"),
    ("Witsenhausen-v0", {"sigma": -5.0}, r"sigma=-5\.0 is outside its range \(0, inf\)"),
    ("Witsenhausen-v0", {"k": float("nan")}, r"k=nan is outside its range \[0, inf\)"),
    ("Witsenhausen-v0", {"k": float("inf")}, r"k=inf is outside its range \[0, inf\)"),
    ("TrafficJunction-hard-v0", {"crash_penalty": 10.0}, r"crash_penalty=10\.0 .*\(-inf, 0\]"),
    ("PredatorPrey-easy-v0", {"max_steps_in_episode": 0},
     r"max_steps_in_episode=0 .*\[1, inf\)"),
    ("Rubinstein-v0", {"delta2": 1.5}, r"delta2=1\.5 .*\[0, 1\]"),
    ("Referential-v0", {"action_limit": 0.0}, r"action_limit=0\.0 .*\(0, inf\)"),
    ("PredatorPrey-magym-v0", {"prey_move_probs": [0.5, 0.5, 0.5, -0.5, 0.0]},
     r"prey_move_probs=.* outside its range \[0, 1\]"),
    ("PredatorPrey-magym-v0", {"prey_move_probs": [0.5, 0.5, 0.5, 0.0, 0.0]},
     "prey_move_probs=.*summing to 1"),
    ("GridWorldGoal-v0", {"goal_probs": -np.ones((8, 8))},
     r"goal_probs \(shape \(8, 8\)\), first at index \(0, 0\).*\[0, inf\)"),
    ("GridWorldGoal-v0", {"goal_probs": np.zeros((8, 8))}, "goal_probs needs at least one"),
    ("Negotiation-v0", {"min_turns": 8, "max_turns": 5}, "min_turns <= max_turns"),
    ("Negotiation-v0", {"max_turns": 12}, "max_turns <= max_steps_in_episode"),
]


@pytest.mark.parametrize("env_id, overrides, match", REFUSED)
def test_make_refuses_out_of_range_params(env_id, overrides, match):
    with pytest.raises(ValueError, match=match) as err:
        dcgenv.make(env_id, **overrides)
    assert str(err.value).startswith(env_id)  # names the environment too


@pytest.mark.parametrize("env_id", dcgenv.registered())
def test_registered_defaults_validate(env_id):
    _, params = dcgenv.make(env_id)
    assert params.validate(env_id) is params


def test_replace_checked_refuses_and_replace_does_not():
    _, params = dcgenv.make("TrafficJunction-easy-v0")
    with pytest.raises(ValueError, match=r"add_rate=1\.5 is outside its range \[0, 1\]"):
        params.replace_checked(add_rate=1.5)
    assert params.replace_checked(add_rate=1.0).add_rate == 1.0
    assert params.replace(add_rate=1.5).add_rate == 1.5  # flax's replace checks nothing
    _, params = dcgenv.make("Negotiation-v0")
    with pytest.raises(ValueError, match="min_turns <= max_turns"):
        params.replace_checked(min_turns=11)
    # batched (vmappable) concrete params are checked elementwise, cross-field checks too
    params.replace(min_turns=np.array([4, 5]), max_turns=np.array([10, 10])).validate()
    with pytest.raises(ValueError, match="min_turns <= max_turns"):
        params.replace(min_turns=np.array([4, 11])).validate()
    _, magym = dcgenv.make("PredatorPrey-magym-v0")
    magym.replace(prey_move_probs=np.stack([np.eye(5)[4], np.full(5, 0.2)])).validate()
    # a traced field is skipped: validate works inside jit
    jax.jit(lambda p: p.validate().add_rate)(dcgenv.make("TrafficJunction-easy-v0")[1])


@functools.cache
def _make(env_id):
    return dcgenv.make(env_id)  # one env object per id: rollout compiles once per env


def _rollout(env_id, **params):
    """A random rollout with (traced) ``params``; every float leaf must be NaN-free."""
    env, default = _make(env_id)
    traj, _ = dcgenv.rollout(env, default.replace(**params), jax.random.key(0), num_envs=4,
                             num_steps=20)
    for leaf in jax.tree.leaves(traj):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert not np.isnan(np.asarray(leaf)).any()
    return traj


def test_traced_out_of_range_params_behave_as_documented_without_nan():
    """Inside ``jit`` nothing is checked (``dcgenv.rollout`` traces params): out-of-range
    values run, as each env's docstring says, and give no NaN."""
    # Traffic Junction: add_rate > 1 acts as 1 (bit for bit); < 0 admits no car, ever
    high, one = _rollout("TrafficJunction-easy-v0", add_rate=5.0), _rollout(
        "TrafficJunction-easy-v0", add_rate=1.0)
    for a, b in zip(jax.tree.leaves(high), jax.tree.leaves(one), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    none = _rollout("TrafficJunction-easy-v0", add_rate=-0.5)
    assert not np.asarray(none.info["entered"]).any() and not np.asarray(none.reward).any()
    # Witsenhausen: a negative sigma mirrors x0; a negative k costs as |k|
    mirrored, plain = (_rollout("Witsenhausen-v0", sigma=s) for s in (-5.0, 5.0))
    np.testing.assert_array_equal(np.asarray(mirrored.obs["signal"][0, :, 0]),
                                  -np.asarray(plain.obs["signal"][0, :, 0]))
    np.testing.assert_array_equal(np.asarray(_rollout("Witsenhausen-v0", k=-0.2).reward),
                                  np.asarray(plain.reward))
    # ma-gym: a step limit of 0 ends every episode at once; the time feature reads 1, not NaN
    traj = _rollout("PredatorPrey-magym-v0", max_steps_in_episode=0)
    assert np.all(np.asarray(traj.truncated))
    final = np.asarray(traj.info["final_observation"])
    assert np.all(final[..., -1] == 1.0)
    # GridWorld: negative weights read as 0; an all-zero table puts the goal on the last cell
    traj = _rollout("GridWorldGoal-v0", goal_probs=-jnp.ones((8, 8)))
    assert np.all(np.asarray(traj.obs["goal"][:, :, 0]) == 7.0)
    # Rubinstein: deltas clip to [0, 1]; Referential/Negotiation: action_limit <= 0 pins actions
    _rollout("Rubinstein-v0", delta1=3.0, delta2=-1.0)
    _rollout("Referential-v0", action_limit=-1.0)
    _rollout("Negotiation-v0", min_turns=9, max_turns=3, action_limit=0.0)


# (constructor, bad arguments, what the message must say)
CONSTRUCTORS = [
    (TrafficJunction, {"level": "extreme"}, r"unknown level 'extreme'; allowed: \['easy'"),
    (TrafficJunction, {"vision": -1}, r"vision must be an integer in \[0, inf\), got -1"),
    (TrafficJunction, {"num_agents": 0}, r"num_agents must be an integer in \[1, inf\)"),
    (TrafficJunction, {"vision": 1.0}, "vision must be an integer"),
    (TrafficJunction, {"obs_mode": "float16"}, "unknown obs_mode"),
    (PredatorPrey, {"dim": 1}, r"dim must be an integer in \[2, inf\), got 1"),
    (PredatorPrey, {"vision": -2}, r"vision must be an integer in \[0, inf\)"),
    (PredatorPrey, {"num_agents": True}, "num_agents must be an integer"),
    (PredatorPrey, {"max_steps": 0}, r"max_steps must be an integer in \[1, inf\)"),
    (PredatorPrey, {"dim": 2, "num_agents": 4}, r"num_agents must be in \[1, dim\*dim - 1\]"),
    (PredatorPrey, {"mode": "selfish"}, "unknown mode 'selfish'"),
    (PredatorPreyMagym, {"size": 2}, r"size must be an integer in \[3, inf\)"),
    (PredatorPreyMagym, {"num_agents": 0}, r"num_agents must be an integer in \[1, inf\)"),
    (PredatorPreyMagym, {"size": 4}, r"impossible size.*\(size - 1\)\^2"),
    (PredatorPreyMagym, {"obs_mode": "index8"}, r"allowed: \['float32', 'uint8', 'index'\]"),
    (GridWorldGoal, {"grid_size": 1}, r"grid_size must be an integer in \[2, inf\)"),
    (GridWorldGoal, {"message_dim": 0}, r"message_dim must be an integer in \[1, inf\)"),
    (GridWorldGoal, {"train_channel": 1}, "train_channel must be True or False"),
    (GridWorldGoal, {"message_bound": float("inf")}, r"message_bound .* in \(0, inf\)"),
    (GridWorldGoal, {"goals": "zipfian"}, "unknown goals 'zipfian'"),
    (GridWorldGoal, {"channel": "dccl"}, "unknown channel .dccl. .did you mean .ddcl.*allowed"),
    (GridWorldGoal, {"channel": 3}, "channel must be a dcgenv.comms channel"),
    (Referential, {"n_attributes": 0}, r"n_attributes must be an integer in \[1, inf\)"),
    (Referential, {"n_values": 0}, r"n_values must be an integer in \[1, inf\)"),
    (Referential, {"n_candidates": 1}, r"n_candidates must be an integer in \[2, inf\)"),
    (Referential, {"message_dim": 0}, r"message_dim must be an integer in \[1, inf\)"),
    (Referential, {"differentiable": "yes"}, "differentiable must be True or False"),
    (Referential, {"objects": "images"}, r"allowed: \['onehot', 'continuous'\]"),
    (Negotiation, {"message_length": 0}, r"message_length must be an integer in \[1, inf\)"),
    (Negotiation, {"proposal": 0}, "proposal must be True or False"),
    (Rubinstein, {"smooth_accept": 1}, "smooth_accept must be True or False"),
]


@pytest.mark.parametrize("cls, kwargs, match", CONSTRUCTORS,
                         ids=[f"{c.__name__}-{next(iter(k))}" for c, k, _ in CONSTRUCTORS])
def test_constructors_refuse_out_of_range_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_witsenhausen_and_adapter_arguments():
    assert Witsenhausen().default_params.validate() is not None  # no constructor arguments
    env, _ = dcgenv.make("Witsenhausen-v0")
    with pytest.raises(ValueError, match="JaxMARLEnv: flatten_obs must be True or False"):
        JaxMARLEnv(env, flatten_obs=1)
    with pytest.raises(ValueError, match=r"GaussianNoise: std .* \(0, inf\), got -1"):
        comms.GaussianNoise(-1)


def test_replace_checked_refuses_fractions_in_integer_fields_and_float32_overflow():
    _, params = dcgenv.make("Witsenhausen-v0")
    with pytest.raises(ValueError, match="max_steps_in_episode=2.5 must be an integer"):
        params.replace_checked(max_steps_in_episode=2.5)
    with pytest.raises(ValueError, match="sigma=1e\\+300 overflows float32"):
        params.replace_checked(sigma=1e300)
    assert params.replace_checked(max_steps_in_episode=3, sigma=1e30).sigma == 1e30
