"""benchmarks/vs_original.py without the originals: its ``ours`` path at tiny sizes, the
original-side timing loop on a fake env, and ``compare`` on synthetic results."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "vs_original.py"


@pytest.fixture(scope="module")
def vs():
    spec = importlib.util.spec_from_file_location("vs_original_benchmark", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table_rows(markdown: str) -> dict[str, list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")][1:]  # no header
    return {cells[0]: cells[1:] for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in lines)}


def test_goal_table_matches_dcgenv(vs):
    from dcgenv.envs.gridworld import DDCL_GOAL_WEIGHTS

    assert vs.DDCL_GOAL_WEIGHTS == DDCL_GOAL_WEIGHTS
    assert set(vs.SOURCES) == set(vs.ENV_IDS)


def test_time_original_counts_resets(vs):
    calls = {"reset": 0, "step": 0}

    def make(seed):
        def reset():
            calls["reset"] += 1

        def step():  # every third step ends an episode
            calls["step"] += 1
            return calls["step"] % 3 == 0

        return reset, step

    r = vs.time_original(make, steps=10, repeats=2)
    assert calls["step"] == 20 and r["resets"] == 3  # 3 per repeat (steps 3, 6, 9 / 12, 15, 18)
    assert calls["reset"] == 2 + 3 + 3  # one untimed start per repeat, plus the episode ends
    assert len(r["seconds"]) == 2 and r["env_steps_per_s"] == 10 / min(r["seconds"])


def _ours_row(env, n, rate, mem):
    return {"env": env, "num_envs": n, "env_steps_per_s": rate, "measured_over_mem_floor": mem}


def test_compare_on_synthetic_results(vs, tmp_path):
    original = {"meta": {"numpy": "1.26"}, "envs": {
        "A-v0": {"env_steps_per_s": 1000.0, "file": "a.py", "commit": "x", "steps": 5,
                 "resets": 1},
        "B-v0": {"env_steps_per_s": 2000.0, "file": "b.py", "commit": "y", "steps": 5,
                 "resets": 0},
        "C-v0": {"env_steps_per_s": 10.0, "file": "c.py", "commit": "z", "steps": 5,
                 "resets": 0},
        "D-v0": {"env_steps_per_s": 10.0, "file": "d.py", "commit": "w", "steps": 5,
                 "resets": 0}}}
    ours = {"meta": {"platform": "cpu"}, "rows": [
        _ours_row("A-v0", 1, 3000.0, 0.001), _ours_row("A-v0", 8192, 250_000.0, 0.01),
        _ours_row("B-v0", 1, 1000.0, 0.01), _ours_row("B-v0", 8192, 100_000.0, 0.6),
        _ours_row("C-v0", 8192, 999.0, 0.1),  # no N = 1 row; 99.9x: not met
        _ours_row("D-v0", 1, 5.0, 0.1)]}  # no N = 8192 row: left out
    (tmp_path / "original.json").write_text(json.dumps(original))
    (tmp_path / "ours.json").write_text(json.dumps(ours))
    result = vs.main(["compare", "--out", str(tmp_path), "--result",
                      str(tmp_path / "result.json")])
    rows = {r["env"]: r for r in result["rows"]}
    assert set(rows) == {"A-v0", "B-v0", "C-v0"}
    assert math.isclose(rows["A-v0"]["ratio_big"], 250.0)
    assert math.isclose(rows["A-v0"]["ratio_n1"], 3.0)
    assert rows["A-v0"]["meets_100x"] and rows["A-v0"]["target_met"]
    assert math.isclose(rows["B-v0"]["ratio_big"], 50.0)
    assert math.isclose(rows["B-v0"]["ratio_n1"], 0.5)
    assert not rows["B-v0"]["meets_100x"] and rows["B-v0"]["within_2x_of_mem_floor"]
    assert rows["B-v0"]["target_met"]  # within 2x of the memory floor is enough
    assert math.isclose(rows["C-v0"]["ratio_big"], 99.9)
    assert rows["C-v0"]["ratio_n1"] is None
    assert not rows["C-v0"]["meets_100x"] and not rows["C-v0"]["target_met"]

    table = _table_rows(result["markdown"])
    assert table["A-v0"] == ["1,000", "3,000", "250,000", "250.0x", "3.0x", "yes", "0.01", "yes"]
    assert table["B-v0"] == ["2,000", "1,000", "100,000", "50.0x", "0.5x", "no", "0.6", "yes"]
    assert table["C-v0"] == ["10", "-", "999", "99.9x", "-", "no", "0.1", "no"]
    written = json.loads((tmp_path / "result.json").read_text())
    assert written["rows"] == result["rows"] and written["originals"]["A-v0"]["commit"] == "x"


def test_ours_tiny_then_compare(vs, tmp_path):
    ours = vs.main(["ours", "--env", "GridWorldGoal-v0", "--num-envs", "1", "4",
                    "--num-steps", "2", "--repeats", "1", "--bandwidth-mib", "4",
                    "--out", str(tmp_path)])
    assert [(r["env"], r["num_envs"], r["num_steps"]) for r in ours["rows"]] == [
        ("GridWorldGoal-v0", 1, 2), ("GridWorldGoal-v0", 4, 2)]
    for r in ours["rows"]:
        assert math.isfinite(r["env_steps_per_s"]) and r["env_steps_per_s"] > 0
        assert r["measured_over_mem_floor"] > 0
    assert json.loads((tmp_path / "ours.json").read_text())["rows"] == ours["rows"]

    original = {"meta": {}, "envs": {"GridWorldGoal-v0": {
        "env_steps_per_s": 7.0, "file": "f", "commit": "c", "steps": 1, "resets": 0}}}
    (tmp_path / "original.json").write_text(json.dumps(original))
    result = vs.main(["compare", "--big-n", "4", "--out", str(tmp_path), "--result",
                      str(tmp_path / "result.json")])
    (row,) = result["rows"]
    rate1, rate4 = (r["env_steps_per_s"] for r in ours["rows"])
    assert math.isclose(row["ratio_big"], rate4 / 7.0)
    assert math.isclose(row["ratio_n1"], rate1 / 7.0)
    assert row["meets_100x"] == (rate4 / 7.0 >= 100)
    assert "| ratio N=4 / original |" in result["markdown"]
