"""The channel-grid rows' bookkeeping (tj_ddcl, pp_ddcl, pp_mappo): their cells, the skip of
finished cells, the progress table; and each row's smoke budget trained end to end (about 40-50 s
each on 2 cores, nearly all compilation). The train command's own tests cover checkpoint and
resume bit for bit."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from baselines import comm_grid as G
from baselines import reproduce as rep


def config(budget="cpu", row="tj_ddcl"):
    return rep.load_config(row, budget, G.Config)


def two_cells():
    """tj_ddcl's smoke budget cut to two cells (silent, DDCL at one lambda)."""
    return dataclasses.replace(config("smoke"), channels=("silent", "ddcl"))


def test_cells_cover_every_channel_once():
    cfg = config("full")
    names = [n for n, _ in G.cells(cfg)]
    assert len(names) == len(set(names)) == 2 * (2 + 3 + 3 + 3)
    values = dict(G.cells(cfg))
    assert values["hard-ddcl0.005"]["comm_coef"] == 0.005
    assert values["hard-ddcl0.005"]["env"] == "TrafficJunction-hard-v0"
    assert values["medium-fakequant4"]["channel_kwargs"] == {"bits": 4}
    assert values["medium-silent"]["channel"] == "silent"


def test_ddcl_coded_cells_are_the_ddcl_cells_with_a_learned_prior():
    values = dict(G.cells(config("cpu")))
    coded, plain = values["medium-ddcl_coded0.0001"], values["medium-ddcl0.0001"]
    assert coded.pop("entropy_coding") is True and "entropy_coding" not in plain
    assert coded == plain


def test_coded_lambdas_replace_the_lambdas_of_the_coded_cells_only():
    cfg = dataclasses.replace(config("smoke"), channels=("ddcl", "ddcl_coded"),
                              lambdas=(1e-3,), coded_lambdas=(3e-4, 1e-3))
    names = [n.split("-", 1)[1] for n, _ in G.cells(cfg)]
    assert names == ["ddcl0.001", "ddcl_coded0.0003", "ddcl_coded0.001"]
    # empty: the coded cells take the lambdas
    assert [n.split("-", 1)[1] for n, _ in G.cells(dataclasses.replace(cfg, coded_lambdas=()))
            ] == ["ddcl0.001", "ddcl_coded0.001"]


def test_warmup_cells_are_the_coded_cells_with_the_price_ramped_in():
    cfg = dataclasses.replace(config("smoke"), channels=("ddcl_coded", "ddcl_coded_warmup"),
                              lambdas=(1e-3,), coded_lambdas=(1e-4, 1e-3), warmup=(0.2, 0.5),
                              warmup_lambdas=(1e-3,))
    values = dict(G.cells(cfg))
    assert [n.split("-", 1)[1] for n in values] == [
        "ddcl_coded0.0001", "ddcl_coded0.001", "ddcl_coded_warmup0.001"]
    warm, coded = dict(values["medium-ddcl_coded_warmup0.001"]), values["medium-ddcl_coded0.001"]
    assert warm.pop("comm_coef_warmup") == [0.2, 0.5] and "comm_coef_warmup" not in coded
    assert warm == coded
    # the learner accepts the cell as it is
    from agents.config import Config as AgentConfig
    assert AgentConfig.from_dict(values["medium-ddcl_coded_warmup0.001"]).comm_coef_warmup == (
        0.2, 0.5)
    # empty: the coded cells' lambdas
    names = [n for n, _ in G.cells(dataclasses.replace(cfg, warmup_lambdas=()))]
    assert names[-2:] == ["medium-ddcl_coded_warmup0.0001", "medium-ddcl_coded_warmup0.001"]


def test_head_cells_are_the_coded_cells_priced_without_the_trunk():
    cfg = dataclasses.replace(config("smoke"), channels=("ddcl_coded", "ddcl_coded_head"),
                              coded_lambdas=(1e-4, 1e-3), head_lambdas=(1e-3,))
    values = dict(G.cells(cfg))
    assert [n.split("-", 1)[1] for n in values] == [
        "ddcl_coded0.0001", "ddcl_coded0.001", "ddcl_coded_head0.001"]
    head = dict(values["medium-ddcl_coded_head0.001"])
    assert head.pop("comm_cost_trunk") is False and head == values["medium-ddcl_coded0.001"]
    from agents.config import Config as AgentConfig
    assert not AgentConfig.from_dict(values["medium-ddcl_coded_head0.001"]).comm_cost_trunk
    names = [n for n, _ in G.cells(dataclasses.replace(cfg, head_lambdas=()))]
    assert names[-2:] == ["medium-ddcl_coded_head0.0001", "medium-ddcl_coded_head0.001"]
    # the figure takes the first kind a cell's channel starts with: its own before ddcl_coded
    kinds = list(G.MARKERS)
    assert kinds.index("ddcl_coded_head") < kinds.index("ddcl_coded")


def test_an_unknown_channel_names_the_allowed_ones():
    cfg = dataclasses.replace(config("smoke"), channels=("silent", "gumbel"))
    with pytest.raises(ValueError, match="'gumbel'.*ddcl_coded"):
        G.cells(cfg)


def test_runs_root_defaults_outside_the_work_tree(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    root = G.runs_root("tj_ddcl", config(), "cpu")
    assert root == tmp_path / "dcgenv_runs" / "tj_ddcl" / "cpu"
    assert G.runs_root("tj_ddcl", config(), "cpu", str(tmp_path / "x")) == tmp_path / "x" / "cpu"


def finished(path, channel, success):
    path.mkdir(parents=True)
    seeds = [{"success": success, "bits_per_message": 3.0, "length": 7.0}] * 2
    path.joinpath("results.json").write_text(json.dumps({
        "config": {"channel": channel, "message_dim": 8}, "env_steps": 10,
        "eval": {"per_seed": seeds}, "sessions": [{}, {}],
        "final_train": {"success": 0.5}}))
    path.joinpath("metrics.jsonl").write_text(json.dumps({"update": 2, "success": 0.5}) + "\n")


def test_finished_cells_are_skipped_and_reported(monkeypatch, tmp_path):
    cfg = two_cells()
    for (name, values), s in zip(G.cells(cfg), (0.25, 0.75), strict=True):
        finished(tmp_path / "smoke" / name, values["channel"], s)
    monkeypatch.setattr(G, "train_cell", lambda *a: pytest.fail("retrained"))
    out = G.run("tj_ddcl", cfg, "smoke", str(tmp_path), tmp_path / "out")
    assert out["finished"]
    assert [c["success"]["mean"] for c in out["cells"]] == [0.25, 0.75]
    assert [c["sessions"] for c in out["cells"]] == [2, 2]


def test_unfinished_cells_train_and_report_progress(monkeypatch, tmp_path):
    cfg = two_cells()
    (first, _), (second, _) = G.cells(cfg)
    finished(tmp_path / "smoke" / first, "silent", 1.0)
    calls = []
    monkeypatch.setattr(G, "train_cell", lambda values, path: calls.append(path.name))
    out = G.run("tj_ddcl", cfg, "smoke", str(tmp_path), tmp_path / "out")
    assert calls == [second]  # the finished one is skipped; this one stays unfinished
    assert not out["finished"] and [c["cell"] for c in out["cells"]] == [first]
    assert out["progress"][second] == {"updates": 0, "planned": 2, "train_success": None,
                                       "finished": False}
    text = G.table("tj_ddcl", out)
    assert "Unfinished" in text and f"| {second} | 0 / 2 | - |" in text
    assert f"| {first} | 1.000 ± 0.000 | 7.0 ± 0.0 |" in text  # its result
    assert G.plot(out, tmp_path / "fig.png") == []  # medium is not finished: no figure


def test_report_trains_nothing_and_draws_the_levels_that_have_finished(monkeypatch, tmp_path):
    """``--report``: the finished cells' table and figures of the levels whose cells have all
    finished, while another level's cells still train elsewhere."""
    cfg = dataclasses.replace(two_cells(), levels=("medium", "hard"))
    names = [n for n, _ in G.cells(cfg)]
    for name, values in G.cells(cfg):
        if name != "hard-ddcl0.001":
            finished(tmp_path / "smoke" / name, values["channel"], 0.5)
    monkeypatch.setattr(G, "train_cell", lambda *a: pytest.fail("trained"))
    out = G.run("tj_ddcl", cfg, "smoke", str(tmp_path), tmp_path / "out", train=False)
    assert not out["finished"] and [c["cell"] for c in out["cells"]] == names[:3]
    assert [p.name for p in G.plot(out, tmp_path / "fig.png")] == ["fig_medium.png"]
    text = G.table("tj_ddcl", out)
    assert "| hard-silent | 0.500 ± 0.000 |" in text and "| hard-ddcl0.001 | 0 / 2 | - |" in text


def test_training_success_is_the_last_update_where_an_episode_ended(tmp_path):
    """TJ-hard's episodes end one update in four: a last update without one logs NaN, and the
    summary and progress report the latest finite value instead."""
    cfg = two_cells()
    (name, values), _ = G.cells(cfg)
    path = tmp_path / "smoke" / name
    finished(path, values["channel"], 1.0)
    results = json.loads((path / "results.json").read_text())
    results["final_train"]["success"] = float("nan")
    (path / "results.json").write_text(json.dumps(results))
    path.joinpath("metrics.jsonl").write_text("".join(
        json.dumps({"update": u, "success": s}) + "\n"
        for u, s in ((1, 0.25), (2, 0.75), (3, float("nan")))))
    assert G.cell_status(path, 3)["train_success"] == 0.75
    out = G.run("tj_ddcl", cfg, "smoke", str(tmp_path), tmp_path / "out", train=False)
    assert out["cells"][0]["train_success"] == 0.75


def test_continuous_counted_at_32_bits_per_float(tmp_path):
    finished(tmp_path / "medium-continuous", "continuous", 0.5)
    results = json.loads((tmp_path / "medium-continuous" / "results.json").read_text())
    row = G.summarise("medium-continuous", results)
    assert row["bits_per_message"]["mean"] == 32 * 8
    assert row["level"] == "medium" and row["channel"] == "continuous"


def test_summaries_of_finished_cells_outlive_the_run_directories(monkeypatch, tmp_path):
    """A new $HOME (no run directories) still skips the cells whose summaries were written."""
    cfg = two_cells()
    for (name, values), s in zip(G.cells(cfg), (0.25, 0.75), strict=True):
        finished(tmp_path / "old_home" / "smoke" / name, values["channel"], s)
    first = G.run("tj_ddcl", cfg, "smoke", str(tmp_path / "old_home"), tmp_path / "out")
    saved = sorted(p.name for p in (tmp_path / "out" / "tj_ddcl_smoke_cells").iterdir())
    assert saved == sorted(f"{n}.json" for n, _ in G.cells(cfg))
    monkeypatch.setattr(G, "train_cell", lambda *a: pytest.fail("retrained"))
    again = G.run("tj_ddcl", cfg, "smoke", str(tmp_path / "new_home"), tmp_path / "out")
    assert again["finished"] and again["cells"] == first["cells"]
    assert [c["train_success"] for c in again["cells"]] == [0.5, 0.5]


def test_a_summary_of_other_settings_is_refused(tmp_path):
    cfg = two_cells()
    name, values = G.cells(cfg)[0]
    folder = G.cells_dir("tj_ddcl", tmp_path, "smoke")
    folder.mkdir(parents=True)
    (folder / f"{name}.json").write_text(json.dumps({"values": {**values, "lr": 0.5}}))
    with pytest.raises(ValueError, match="other settings"):
        G.run("tj_ddcl", cfg, "smoke", str(tmp_path / "runs"), tmp_path)


def test_predator_prey_rows_build_their_family_s_env_ids():
    ddcl = dict(G.cells(config("smoke", "pp_ddcl")))
    assert {v["env"] for v in ddcl.values()} == {"PredatorPrey-medium-v0"}
    assert ddcl["medium-ddcl0.001"]["comm_coef"] == 0.001
    magym = dict(G.cells(config("smoke", "pp_mappo")))
    assert {v["env"] for v in magym.values()} == {"PredatorPrey-magym-v0"}
    assert sorted(v["channel"] for v in magym.values()) == ["continuous", "silent"]


def test_table_reports_episode_length_and_dashes_summaries_without_it(tmp_path):
    cfg = config("smoke", "pp_ddcl")
    for (name, values), s in zip(G.cells(cfg), (0.25, 0.75), strict=True):
        finished(tmp_path / "smoke" / name, values["channel"], s)
    out = G.run("pp_ddcl", cfg, "smoke", str(tmp_path), tmp_path / "out")
    assert "| 7.0 ± 0.0 |" in G.table("pp_ddcl", out)
    del out["cells"][0]["length"]  # a summary written before the metric existed
    assert G.table("pp_ddcl", out).splitlines()[2].split(" | ")[2] == "-"


def test_level_overrides_change_one_level_s_cells_only():
    cfg = dataclasses.replace(config("smoke"), levels=("medium", "hard"), level_overrides={
        "hard": {"channels": ["silent", "ddcl_coded"], "coded_lambdas": [1e-4],
                 "agent": {"num_updates": 7}}})
    values = dict(G.cells(cfg))
    assert [n for n in values if n.startswith("hard")] == ["hard-silent", "hard-ddcl_coded0.0001"]
    assert [n for n in values if n.startswith("medium")] == [
        n for n, _ in G.cells(dataclasses.replace(cfg, levels=("medium",), level_overrides={}))]
    assert values["hard-silent"]["num_updates"] == 7 and values["medium-silent"]["num_updates"] == 2
    assert values["hard-silent"]["hidden"] == values["medium-silent"]["hidden"]  # merged
    assert values["hard-ddcl_coded0.0001"]["env"] == "TrafficJunction-hard-v0"
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['lambda'\].*coded_lambdas"):
        G.cells(dataclasses.replace(cfg, level_overrides={"hard": {"lambda": [1e-3]}}))
    with pytest.raises(ValueError, match=r"level_overrides for \['easy'\], not in levels"):
        G.cells(dataclasses.replace(cfg, level_overrides={"easy": {}}))


def test_cells_option_trains_only_the_named_cells(monkeypatch, tmp_path):
    cfg = two_cells()
    (first, _), (second, _) = G.cells(cfg)
    calls = []
    monkeypatch.setattr(G, "train_cell", lambda values, path: calls.append(path.name))
    out = G.run("tj_ddcl", cfg, "smoke", str(tmp_path), tmp_path / "out", only=(second,))
    assert calls == [second] and not out["finished"]
    with pytest.raises(ValueError, match=r"cells \['medium-gumbel'\] not in tj_ddcl's smoke "
                                         r"grid; allowed: medium-silent, medium-ddcl0.001"):
        G.run("tj_ddcl", cfg, "smoke", str(tmp_path), tmp_path / "out", only=("medium-gumbel",))


def test_unknown_row_names_the_allowed_ones():
    with pytest.raises(ValueError, match="tj_ddcl, pp_ddcl, pp_mappo"):
        G.check_grid_row("tj")


@pytest.mark.parametrize("row", G.ROWS)
def test_smoke_budget_trains_every_cell_end_to_end(row, monkeypatch, tmp_path):
    """``python -m baselines.reproduce ROW --budget smoke``: every cell trained into its run
    directory under $HOME, summarised, tabled and plotted; a second run retrains nothing."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = config("smoke", row)
    record = rep.reproduce(row, "smoke", tmp_path / "out")
    result = record["result"]
    assert result["finished"] and result["runs_dir"] == str(tmp_path / "home" / "dcgenv_runs"
                                                            / row / "smoke")
    agent = cfg.agent
    steps = agent["num_envs"] * agent["num_steps"] * agent["num_updates"] * agent["num_seeds"]
    names = [n for n, _ in G.cells(cfg)]
    assert [c["cell"] for c in result["cells"]] == names
    for cell in result["cells"]:
        assert cell["env_steps"] == steps and len(cell["seeds"]) == agent["num_seeds"]
        assert all(0.0 <= s["success"] <= 1.0 for s in cell["seeds"])
        bits = cell["bits_per_message"]["mean"]
        if cell["channel"] == "silent":
            assert bits == 0.0
        elif cell["channel"] == "continuous":
            assert bits == 32 * agent["message_dim"]
        else:  # DDCL: Elias lengths, at least one bit per element; coded: -log2 P >= 0
            floor = 0.0 if cell["channel"].startswith("ddcl_coded") else agent["message_dim"]
            assert np.isfinite(bits) and bits >= floor
    assert record["env_steps"] == steps * len(names)
    same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # NaN
    assert same(json.loads(Path(record["path"]).read_text())["result"]["cells"], result["cells"])
    assert all(f"| {n} |" in result["table"] for n in names)
    assert len(result["figures"]) == len(cfg.levels)
    assert all(Path(f).stat().st_size > 0 for f in result["figures"])
    monkeypatch.setattr(G, "train_cell", lambda *a: pytest.fail("retrained"))
    again = rep.reproduce(row, "smoke", tmp_path / "out")["result"]
    assert same(again["cells"], result["cells"])
