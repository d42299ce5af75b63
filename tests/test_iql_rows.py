"""The RESULTS.md rows of arXiv 2401.15059's IQL grid (``baselines/iql_grid.py``):
``python -m baselines.reproduce iql_magym|iql_smax``. Their smoke budgets train end to end
(about 35 s and 20 s on 2 cores, nearly all compiling); their cpu and full budgets are the
``iql_grid`` commands whose results are committed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from baselines import iql_grid as I
from baselines import reproduce as rep


def row_config(row, budget):
    return rep.load_config(row, budget, I.RowConfig)


@pytest.mark.parametrize("row", list(I.ROWS))
def test_smoke_budget_trains_every_config_end_to_end(row, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = row_config(row, "smoke")
    record = rep.reproduce(row, "smoke", tmp_path / "out")
    result = record["result"]
    assert result["runs_dir"] == str(tmp_path / "home" / "dcgenv_runs" / row / "smoke")
    assert result["env"] == I.ROWS[row] and result["setup"] == cfg.setup == "authors"
    assert [r["config"] for r in result["rows"]] == list(cfg.configs)
    for r in result["rows"]:
        assert len(r["success"]) == len(r["return"]) == 2  # num_seeds=2 in the smoke budget
        assert all(0.0 <= s <= 1.0 for s in r["success"]) and np.isfinite(r["return"]).all()
        assert r["env_steps"] > 0 and len(r["curve"]) == 2  # one row per iteration
    assert record["env_steps"] == sum(r["env_steps"] for r in result["rows"])
    assert all(f"| {name} |" in result["table"] for name in cfg.configs)
    saved = json.loads((tmp_path / "out" / f"{row}_smoke.json").read_text())
    assert saved["result"]["overrides"] == I.row_overrides(row, "smoke", cfg)
    assert (tmp_path / "out" / f"{row}_smoke.png").stat().st_size > 0
    # again: every config is finished, so nothing trains and the rows are the same
    monkeypatch.setattr(I, "train", lambda *a, **k: pytest.fail("retrained"))
    again = rep.reproduce(row, "smoke", tmp_path / "out")["result"]
    assert json.dumps(again["rows"]) == json.dumps(result["rows"])


@pytest.mark.parametrize("row, budget, committed", [
    ("iql_magym", "cpu", "iql_grid_authors.json"),
    ("iql_magym", "full", "iql_grid_authors_paper.json"),
    ("iql_smax", "cpu", "iql_grid_authors_smax.json")])
def test_row_budgets_train_what_the_committed_results_trained(row, budget, committed):
    """RESULTS.md's IQL tables came from ``python -m baselines.iql_grid``; the row's budget
    applies the same overrides to the same configs, so rerunning the row retrains them."""
    cfg = row_config(row, budget)
    saved = json.loads((rep.RESULTS / committed).read_text())
    assert I.row_overrides(row, budget, cfg) == saved["overrides"]
    assert cfg.setup == saved["setup"] and list(cfg.configs) == [r["config"]
                                                                 for r in saved["rows"]]


def test_bad_rows_and_row_configs_name_the_allowed_values(tmp_path):
    with pytest.raises(ValueError, match="'iql_pp'.*iql_magym, iql_smax"):
        I.reproduce("iql_pp", "smoke", tmp_path)
    with pytest.raises(ValueError, match="setup 'theirs'.*grid, authors"):
        I.row_overrides("iql_magym", "cpu", I.RowConfig(setup="theirs"))
    with pytest.raises(ValueError, match=r"\['iql_ps_talk'\].*some of"):
        I.row_overrides("iql_magym", "cpu", I.RowConfig(configs=("iql_ps_talk",)))
