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
            for name in ("joint_reward", "agreement", "joint_no_utterance",
                         "joint_no_proposal"):
                assert math.isfinite(seed[name]) and 0.0 <= seed[name] <= 1.0, (name, seed)
            # agreements are the only source of joint reward
            assert seed["joint_reward"] <= seed["agreement"] + 1e-6
        for name, stat in cell["summary"].items():
            assert math.isfinite(stat["mean"]) and 0.0 <= stat["mean"] <= 1.0, name
            assert math.isfinite(stat["std"]) and stat["std"] >= 0.0, name
        assert len(cell["curve"]["return"]) == agent["num_updates"]
    assert f"| {cells[0]['reward']} | {cells[0]['channels']} |" in saved["result"]["table"]


def test_bad_cell_names_the_allowed_values():
    with pytest.raises(ValueError, match="selfish/both.*self-interested.*linguistic"):
        neg.parse_cell("selfish/both")
    with pytest.raises(ValueError, match="prosocial/talk"):
        neg.run(neg.Config(agent={}, cells=("prosocial/talk",)))
    assert neg.parse_cell("prosocial/none") == ("prosocial", "none")
