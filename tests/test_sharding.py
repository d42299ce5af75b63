"""Sharded training (agents/sharding.py): the env batch split over a "data" mesh axis gives the
same training as one device, up to float reduction order.

The 8-device check runs in a subprocess with 8 forced CPU host devices (the device count must
be set before JAX initialises; pytest workers have already initialised it). Multi-host launches
are documented in docs/scaling.md but not tested here.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from agents import sharding
from agents.loop import TrainState
from agents.mappo import make_trainer
from baselines import checkpoint, progress
from baselines.config import load
from baselines.train import train
from tests.test_baselines_train import TINY  # its run A is the one-device run here

ROOT = Path(__file__).resolve().parent.parent
RTOL, ATOL = 1e-4, 1e-5  # SPMD reduces over envs in another order than one device does

CHILD = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from jax.sharding import PartitionSpec as P
    from agents import sharding
    from agents.mappo import Runner
    from baselines import checkpoint, progress
    from baselines.config import load
    from baselines.train import train

    tiny, keep = json.loads(sys.argv[1]), sys.argv[2]
    out = {"devices": jax.device_count(), "mesh0": int(sharding.make_mesh(0).devices.size)}
    try:
        sharding.make_mesh(8, num_envs=12)
    except ValueError as err:
        out["indivisible_error"] = str(err)
    config = load(None, tiny + ["num_devices=8"])
    res8, state8 = train(config, keep, show_progress=False)
    restored, _ = checkpoint.restore(keep, config, state8)
    restored = sharding.shard(restored, sharding.make_mesh(8))
    raw = lambda r: jax.device_get(r._replace(key=jax.random.key_data(r.key)))
    out["restored_equal"] = all(
        np.array_equal(a, b) for a, b in zip(jax.tree.leaves(raw(restored.runners)),
                                             jax.tree.leaves(raw(state8.runners)), strict=True))
    out["restored_shardings_equal"] = all(
        a.sharding == b.sharding
        for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state8), strict=True))
    runners = state8.runners
    out["per_env"] = [
        {"field": f, "spec": str(leaf.sharding.spec), "shards": len(leaf.addressable_shards),
         "shard_envs": sorted({s.data.shape[1] for s in leaf.addressable_shards}),
         "devices": len({s.device for s in leaf.addressable_shards})}
        for f in Runner.per_env_fields for leaf in jax.tree.leaves(getattr(runners, f))]
    out["expected_spec"] = str(P(None, "data"))
    out["replicated"] = all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(
        (runners.params, runners.opt_state, runners.key, state8.update)))
    out["rows"] = progress.read_rows(f"{keep}/metrics.jsonl")
    out["params"] = jax.tree.map(lambda a: np.asarray(a).tolist(), runners.params)
    out["eval"] = res8["eval"]["mean"]
    print("JSON" + json.dumps(out))
""")


@pytest.fixture(scope="module")
def child(tmp_path_factory):
    """The tiny config trained on 8 CPU devices in a subprocess (the device count must be set
    before JAX starts; its run directory is kept for the parent, which has one device), and
    meanwhile here on one device."""
    keep = tmp_path_factory.mktemp("sharded")
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8"
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(TINY), str(keep)], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    one = tmp_path_factory.mktemp("one-device")
    _, state1 = train(load(None, TINY), one, show_progress=False)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-4000:]
    out = json.loads(next(x for x in stdout.splitlines() if x.startswith("JSON"))[4:])
    out["single_device"] = all(len(x.sharding.device_set) == 1 for x in jax.tree.leaves(state1))
    out["rows"] = {"1": progress.read_rows(one / "metrics.jsonl"), "8": out["rows"]}
    out["params"] = [jax.device_get(state1.runners.params), out["params"]]
    return {**out, "run_dir": keep}


def _flat(tree):
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def test_sharded_training_matches_one_device(child):
    assert child["devices"] == 8 and child["mesh0"] == 8
    one, eight = child["rows"]["1"], child["rows"]["8"]
    assert [r["update"] for r in one] == [r["update"] for r in eight] == [1, 2, 3, 4]
    for a, b in zip(one, eight, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if k.endswith("_s") or k.endswith("per_s") or k.startswith("time"):
                continue  # wall-clock figures
            np.testing.assert_allclose(np.float64(b[k]), np.float64(a[k]), rtol=RTOL, atol=ATOL,
                                       equal_nan=True, err_msg=f"update {a['update']}: {k}")
    np.testing.assert_allclose(_flat(child["params"][1]), _flat(child["params"][0]), rtol=RTOL,
                               atol=ATOL)


def test_sharded_state_is_split_over_envs_and_replicated_elsewhere(child):
    assert child["per_env"] and child["replicated"] and child["single_device"]
    for leaf in child["per_env"]:
        assert leaf["spec"] == child["expected_spec"], leaf
        assert leaf["shards"] == leaf["devices"] == 8 and leaf["shard_envs"] == [8 // 8], leaf


def test_sharded_checkpoint_restores_and_reshards(child):
    assert child["restored_equal"] and child["restored_shardings_equal"]


def test_checkpoint_saved_on_8_devices_restores_on_one(child):
    config = load(None, TINY + ["num_devices=8"])
    like = jax.eval_shape(make_trainer(config).init, jax.random.key(config.seed))
    state, rows = checkpoint.restore(child["run_dir"], config, like)
    assert int(state.update) == 4 and len(rows) == 4
    assert all(len(x.sharding.device_set) == 1 for x in jax.tree.leaves(state))
    np.testing.assert_array_equal(_flat(jax.device_get(state.runners.params)),
                                  _flat(child["params"][1]))


def test_make_mesh_errors():
    n = jax.device_count()
    with pytest.raises(ValueError, match=f"only {n} .*device"):
        sharding.make_mesh(n + 1)
    with pytest.raises(ValueError, match=r"num_devices \(0: all\) must be an integer in \[0"):
        sharding.make_mesh(-1)
    with pytest.raises(ValueError, match="num_devices"):
        sharding.make_mesh(True)
    assert sharding.make_mesh(0).devices.size == n and sharding.make_mesh(0).axis_names == (
        "data",)
    assert sharding.mesh_for(1, 8) is None


def test_make_mesh_indivisible_envs(child):
    assert "num_envs=12 is not divisible by the device count 8" in child["indivisible_error"]


def test_config_num_devices():
    assert load(None, ["num_devices=0"]).num_devices == 0
    assert load(None, []).num_devices == 1
    with pytest.raises(ValueError, match=r"'num_devices'.*integer in \[0, inf\)"):
        load(None, ["num_devices=-1"])
    with pytest.raises(ValueError, match="'num_devices': 8 must divide num_envs = 12"):
        load(None, ["num_envs=12", "num_minibatches=4", "num_devices=8"])


class _Buffer(NamedTuple):  # a replay buffer's own "obs" is not per-env: stays replicated
    obs: jax.Array


class _Learner(NamedTuple):  # another learner's runner: its own per-env fields, extra buffer
    params: dict
    env_state: dict
    obs: jax.Array
    buffer: _Buffer
    key: jax.Array
    per_env_fields = ("env_state", "obs")


def test_state_shardings_generic_over_runners_and_typed_keys():
    mesh = sharding.make_mesh(1)
    runner = _Learner({"w": jnp.ones((2, 3))},
                      {"k": jax.random.split(jax.random.key(0), 2 * 4).reshape(2, 4),
                       "pos": jnp.zeros((2, 4, 5))},
                      jnp.zeros((2, 4, 7)), _Buffer(jnp.zeros((2, 100, 4))), jax.random.split(
                          jax.random.key(1), 2))
    state = TrainState(runner, jnp.int32(0))
    specs = jax.tree.map(lambda s: s.spec, sharding.state_shardings(state, mesh))
    r, i = specs.runners, specs.update
    assert r.env_state == {"k": P(None, "data"), "pos": P(None, "data")} and r.obs == P(
        None, "data")
    assert r.params == {"w": P()} and r.buffer == _Buffer(P()) and r.key == P() and i == P()
    placed = sharding.shard(state, mesh).runners
    assert jax.dtypes.issubdtype(placed.env_state["k"].dtype, jax.dtypes.prng_key)
    assert placed.env_state["k"].sharding.spec == P(None, "data")
    with pytest.raises(ValueError, match="per-env leaf obs of shape .* no env axis 1"):
        sharding.state_shardings(TrainState(runner._replace(obs=jnp.zeros(3)), 0), mesh)
    no_envs = _Buffer(jnp.zeros((2, 4)))  # a runner without per_env_fields (IQL's kind)
    assert sharding.state_shardings(TrainState(no_envs, 0), mesh).runners.obs.spec == P()
