"""The training benchmarks at tiny sizes: benchmarks/accelerator.py (which runs
throughput.py, train_throughput.py and profile_learners.py) end to end, and the JaxMARL peer
harness of train_throughput.py on a stand-in script."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"test_bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_accelerator_script_runs_at_tiny_sizes(tmp_path):
    times = _load("accelerator").main(["--tiny", "--out-dir", str(tmp_path),
                                       "--env", "Rubinstein-v0"])
    assert set(times) == {"throughput_s", "train_throughput_s", "profile_s"}
    train = json.loads((tmp_path / "train-throughput.json").read_text())["rows"]
    assert [(r["algorithm"], r["num_envs"]) for r in train] == [("mappo", 4)]
    assert train[0]["finite"] and train[0]["env_steps_per_s"] > 0
    profile = json.loads((tmp_path / "profile.json").read_text())["rows"][0]
    shares = [g["share"] for g in profile["groups"]]
    assert math.isclose(sum(shares), 1.0, rel_tol=1e-6)
    groups = {g["group"] for g in profile["groups"]}
    assert "backward pass: Actor" in groups and "environment step (and auto-reset)" in groups
    envs = json.loads((tmp_path / "throughput.json").read_text())
    assert "Rubinstein-v0" in json.dumps(envs)
    summary = (tmp_path / "summary.md").read_text()
    assert "| mappo | TrafficJunction-easy-v0 | 4 | 1 |" in summary


def test_profile_groups_read_the_name_stack():
    group_of = _load("profile_learners").group_of
    stack = "jit(run)/vmap(learn)/while/body/transpose(jvp(vmap(vmap(Critic))))/MLP_0/Dense_1"
    assert group_of(stack) == "backward pass: Critic"
    assert group_of("jit(run)/vmap(learn)/jvp(vmap(Actor))/Dense_0") == \
        "forward pass, differentiated: Actor"
    assert group_of("jit(run)/vmap(rollout)/act/vmap(Actor)/Dense_2") == \
        "acting: Actor (rollout, no gradient)"
    assert group_of("jit(run)/vmap(rollout)/act/vmap(jit(_uniform))/add").startswith("random")
    assert group_of("jit(run)/vmap(learn)/optimizer/add").startswith("optimiser")
    assert group_of("jit(run)/vmap(rollout)/env/vmap(step)/add").startswith("environment")
    assert group_of("").startswith("other")


STAND_IN = '''
import hydra, wandb
import jax, jax.numpy as jnp
from omegaconf import OmegaConf

def make_train(config):
    def train(rng):
        steps = config["TOTAL_TIMESTEPS"] // config["NUM_STEPS"] // config["NUM_ENVS"]
        jax.experimental.io_callback(wandb.log, None, {"x": jnp.ones(())})
        return jnp.full((config["NUM_ENVS"],), steps)
    return train
'''


def test_jaxmarl_peer_harness_runs_the_script_with_its_config(tmp_path):
    """The script's own config is read, NUM_ENVS and TOTAL_TIMESTEPS set for the requested
    updates, and its logging imports stand in when they are not installed (and are removed
    afterwards)."""
    script = tmp_path / "baselines" / "IPPO" / "ippo_ff_mpe.py"
    (script.parent / "config").mkdir(parents=True)
    script.write_text(STAND_IN)
    (script.parent / "config" / "ippo_ff_mpe.yaml").write_text(
        '"NUM_ENVS": 16\n"NUM_STEPS": 128\n"TOTAL_TIMESTEPS": 1e7\n'
        '"ENV_NAME": "MPE_simple_spread_v3"\n')
    before = set(sys.modules)
    row = _load("train_throughput").measure_jaxmarl_ippo(script, num_envs=3, updates=2,
                                                          repeats=1)
    assert {"hydra", "wandb", "omegaconf"} & (set(sys.modules) - before) == set()
    assert row["env"] == "jaxmarl:MPE_simple_spread_v3" and row["num_envs"] == 3
    assert row["updates"] == 2 and row["env_steps_per_s"] > 0


def test_jaxmarl_env_ids_through_make():
    pytest.importorskip("jaxmarl")
    import dcgenv

    env, params = dcgenv.make("jaxmarl:MPE_simple_spread_v3", num_agents=2, num_landmarks=2)
    assert env.num_agents == 2 and params.max_steps_in_episode == 26
