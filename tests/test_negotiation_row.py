"""The RESULTS.md row ``negotiation`` (``baselines/negotiation.py``): its smoke budget end to end
(one cell, tiny sizes) and its cell names."""

from __future__ import annotations

import json
import math

import pytest

from baselines import negotiation as neg
from baselines import reproduce


def test_smoke_negotiation_row(tmp_path):
    record = reproduce.reproduce("negotiation", "smoke", tmp_path)
    saved = json.loads((tmp_path / "negotiation_smoke.json").read_text())
    assert saved["row"] == "negotiation" and saved["budget"] == "smoke"
    for key in ("command", "config", "wall_s", "env_steps", "machine", "figure", "result"):
        assert key in saved, key
    assert (tmp_path / "negotiation_smoke.png").stat().st_size > 0
    config = saved["config"]
    cells = saved["result"]["cells"]
    assert [c["cell"] for c in cells] == list(config["cells"])
    agent = config["agent"]
    assert saved["env_steps"] == record["env_steps"] == len(cells) * (
        agent["num_envs"] * agent["num_steps"] * agent["num_updates"] * agent["num_seeds"])
    for cell in cells:
        assert len(cell["seeds"]) == agent["num_seeds"]
        for seed in cell["seeds"]:
            assert seed["episodes"] == agent["eval_episodes"]  # every env finished a game
            for name in ("joint_reward", "agreement", "first_accepted", "joint_no_utterance",
                         "joint_no_proposal"):
                assert math.isfinite(seed[name]) and 0.0 <= seed[name] <= 1.0, (name, seed)
            # agreements are the only source of joint reward
            assert seed["joint_reward"] <= seed["agreement"] + 1e-6
            assert seed["first_accepted"] <= seed["agreement"] + 1e-6
            assert 2.0 <= seed["turns"] <= 10.0  # turn 0 cannot accept; 10 turns at most
        for name, stat in cell["summary"].items():
            top = 10.0 if name == "turns" else 1.0
            assert math.isfinite(stat["mean"]) and 0.0 <= stat["mean"] <= top, name
            assert math.isfinite(stat["std"]) and stat["std"] >= 0.0, name
        assert len(cell["curve"]["return"]) == agent["num_updates"]
    assert f"| {cells[0]['reward']} | {cells[0]['channels']} |" in saved["result"]["table"]
    assert "| turns | first proposal accepted |" in saved["result"]["table"]


def test_game_length_is_measured():
    """An actor whose accept logits favour accepting ends every game on turn 1 (2 turns, the
    first proposal accepted); one that never accepts plays the hidden horizon (4-10 turns,
    Poisson(7) clipped to [4, 10] has mean 6.92) without agreement."""
    import jax
    import jax.numpy as jnp

    from agents import make_trainer
    from agents.config import Config

    config = Config.from_dict({"algorithm": "mappo", "env": "Negotiation-v0", "comm": "none",
                               "hidden": 16, "num_envs": 8, "num_minibatches": 1,
                               "num_seeds": 2})
    trainer = make_trainer(config)
    params = jax.jit(trainer.init)(jax.random.key(0)).runners.params
    accept = params["actor"]["params"]["Dense_0"]  # the first head: accept, 2 logits
    assert accept["bias"].shape == (2, 2)

    def with_bias(bias):
        head = {"kernel": jnp.zeros_like(accept["kernel"]),
                "bias": jnp.broadcast_to(jnp.asarray(bias, jnp.float32), (2, 2))}
        actor = {**params["actor"]["params"], "Dense_0": head}
        return {**params, "actor": {"params": actor}}

    always, never = (neg.evaluate(trainer, with_bias(b), 64) for b in ([-9, 9], [9, -9]))
    for seed in always:
        assert seed["turns"] == 2.0 and seed["first_accepted"] == 1.0
        assert seed["agreement"] == 1.0
    for seed in never:
        assert seed["agreement"] == 0.0 and seed["first_accepted"] == 0.0
        assert seed["joint_reward"] == 0.0 and 6.0 <= seed["turns"] <= 8.0  # mean 6.92


def test_bad_cell_names_the_allowed_values():
    with pytest.raises(ValueError, match="selfish/both.*self-interested.*linguistic"):
        neg.parse_cell("selfish/both")
    with pytest.raises(ValueError, match="prosocial/talk"):
        neg.run(neg.Config(agent={}, cells=("prosocial/talk",)))
    assert neg.parse_cell("prosocial/none") == ("prosocial", "none")
