"""``baselines.attention_ablation``'s grid options and result merging (issue 22's ablation),
and its smoke budget end to end (two cells of two updates, about 30 s at the suite's fast
compile)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from baselines import attention_ablation as ab


def _row(file, cell, success, wall=1.0):
    return {"env": file.split(".")[0], "config_file": f"configs/ablation/{file}", "cell": cell,
            "final_success": [success], "wall_s": wall}


def test_cpu_grid_has_medium_s_whole_grid_at_full_optimisation():
    medium = [(name, c) for file, name, c in ab.cells("cpu")
              if file == "traffic_junction_medium.yaml"]
    plain = list(ab.AGGREGATES)
    assert [name for name, _ in medium] == [a + s for s in ("", "+IB", "+k3", "+IB+k3")
                                            for a in plain]
    for name, c in medium:
        assert c.env == "TrafficJunction-medium-v0" and c.obs_embedding
        assert c.env_kwargs == {"obs_mode": "index"}
        assert c.bottleneck == ("variational" if "+IB" in name else "none")
        assert c.bottleneck_price == 1e-3
        assert c.gradient_budget_k == (3 if name.endswith("+k3") else 0)
    target, options = ab.file_options(ab.grid("cpu")["traffic_junction_medium.yaml"], "cpu")
    assert target == 0.9 and options["xla_backend_optimization_level"] == 3
    # easy keeps the budget's target and the script's fast compile
    assert ab.file_options(ab.grid("cpu")["traffic_junction_easy.yaml"], "cpu") == (0.5, None)


def test_bottleneck_variants_are_named_by_what_differs_from_the_default():
    """Easy's +IB cells again with the noise starting small, and with a KL budget: the names
    say so, and the cells carry the settings their base configs give."""
    easy = {name: c for file, name, c in ab.cells("cpu")
            if file.startswith("traffic_junction_easy")}
    for a in ab.AGGREGATES:
        plain, small = easy[f"{a}+IB"], easy[f"{a}+IB_std0.0067"]
        budget = easy[f"{a}+IB_std0.0067_kl2"]
        assert (plain.bottleneck_init_std, plain.bottleneck_budget) == (1.0, 0.0)
        assert (small.bottleneck_init_std, small.bottleneck_budget) == (0.0067, 0.0)
        assert (budget.bottleneck_init_std, budget.bottleneck_budget) == (0.0067, 2.0)
        assert small.gradient_budget_k == budget.gradient_budget_k == 0
        # the rest of the cell is the plain +IB cell's
        assert small == dataclasses.replace(plain, bottleneck_init_std=0.0067)
    assert ab.ib_tag({}) == "" and ab.ib_tag({"bottleneck_budget": 0.5}) == "_kl0.5"


def test_unknown_grid_keys_and_configs_are_refused(monkeypatch):
    monkeypatch.setattr(ab, "grid", lambda budget: {"traffic_junction_easy.yaml":
                                                    {"_targt": 0.9}})
    with pytest.raises(ValueError, match=r"unknown grid keys \['_targt'\].*_target"):
        list(ab.cells("cpu"))
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"base configs \['nope.yaml'\].*traffic_junction_"):
        ab.run("smoke", files=("nope.yaml",))


def test_merged_replaces_the_same_file_and_cell_and_keeps_the_rest():
    kept = [_row("easy.yaml", "mean", 0.1), _row("easy.yaml", "gated", 0.2)]
    new = [_row("medium.yaml", "mean", 0.3), _row("easy.yaml", "gated", 0.9)]
    out = ab.merged(kept, new)
    assert [(r["config_file"], r["cell"], r["final_success"][0]) for r in out] == [
        ("configs/ablation/easy.yaml", "mean", 0.1),
        ("configs/ablation/easy.yaml", "gated", 0.9),  # replaced in place
        ("configs/ablation/medium.yaml", "mean", 0.3)]  # appended


def test_merge_from_files_writes_the_budget_s_json(tmp_path):
    (tmp_path / "attention_ablation_smoke.json").write_text(
        json.dumps({"rows": [_row("easy.yaml", "mean", 0.1, wall=2.0)]}))
    side = tmp_path / "side.json"
    side.write_text(json.dumps({"rows": [_row("medium.yaml", "mean", 0.5, wall=3.0)]}))
    result = ab.main(["--budget", "smoke", "--out", str(tmp_path), "--merge-from", str(side)])
    saved = json.loads((tmp_path / "attention_ablation_smoke.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert [r["cell"] for r in saved["rows"]] == ["mean", "mean"]
    assert saved["complete"] and saved["wall_s"] == 5.0  # merged: the cells' wall time
    # the smoke grid's two cells on easy: neither has a row here
    assert saved["missing"] == ["traffic_junction_easy.yaml:mean+IB+k2",
                                "traffic_junction_easy.yaml:gradient_aware+IB+k2"]


def test_smoke_budget_end_to_end(tmp_path):
    """``python -m baselines.reproduce attention_ablation --budget smoke``: the two cells
    trained, evaluated greedily, their KL, backward time and post-hoc VQ curve measured."""
    from baselines import reproduce as rep

    record = rep.reproduce("attention_ablation", "smoke", tmp_path)
    rows = record["result"]["rows"]
    assert [r["cell"] for r in rows] == ["mean+IB+k2", "gradient_aware+IB+k2"]
    assert record["result"]["complete"] and record["result"]["missing"] == []
    for r in rows:
        assert r["env_steps_per_seed"] == 2 * 16 * 8  # updates x envs x steps
        assert len(r["final_success"]) == r["num_seeds"] == 3
        assert all(0.0 <= s <= 1.0 for s in r["final_success"])
        assert math.isfinite(r["kl_per_message"]) and r["kl_per_message"] >= 0.0  # IB cells
        assert r["backward_s"] > 0.0
        assert sorted(map(int, r["vq_success"])) == list(ab.CODEBOOKS)
        assert all(0.0 <= s <= 1.0 for v in r["vq_success"].values() for s in v)
    assert record["env_steps"] == sum(r["env_steps_per_seed"] * r["num_seeds"] for r in rows)
    saved = json.loads((tmp_path / "attention_ablation_smoke.json").read_text())
    assert [r["cell"] for r in saved["result"]["rows"]] == [r["cell"] for r in rows]
