"""The tj_ddcl row's bookkeeping: its cells, the skip of finished cells, the progress table.

Training is not run here (one Traffic Junction cell compiles for about a minute on the shared
CPU); the train command's own tests cover checkpoint and resume bit for bit."""

import json

import pytest

from baselines import reproduce as rep
from baselines import tj_ddcl


def config(budget="cpu"):
    return rep.load_config("tj_ddcl", budget, tj_ddcl.Config)


def test_cells_cover_every_channel_once():
    cfg = config("full")
    names = [n for n, _ in tj_ddcl.cells(cfg)]
    assert len(names) == len(set(names)) == 2 * (2 + 3 + 3)
    values = dict(tj_ddcl.cells(cfg))
    assert values["hard-ddcl0.005"]["comm_coef"] == 0.005
    assert values["hard-ddcl0.005"]["env"] == "TrafficJunction-hard-v0"
    assert values["medium-fakequant4"]["channel_kwargs"] == {"bits": 4}
    assert values["medium-silent"]["channel"] == "silent"


def test_runs_root_defaults_outside_the_work_tree(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    root = tj_ddcl.runs_root(config(), "cpu")
    assert root == tmp_path / "dcgenv_runs" / "tj_ddcl" / "cpu"
    assert tj_ddcl.runs_root(config(), "cpu", str(tmp_path / "x")) == tmp_path / "x" / "cpu"


def finished(path, channel, success):
    path.mkdir(parents=True)
    seeds = [{"success": success, "bits_per_message": 3.0}] * 2
    path.joinpath("results.json").write_text(json.dumps({
        "config": {"channel": channel, "message_dim": 8}, "env_steps": 10,
        "eval": {"per_seed": seeds}, "sessions": [{}, {}],
        "final_train": {"success": 0.5}}))
    path.joinpath("metrics.jsonl").write_text(json.dumps({"update": 2, "success": 0.5}) + "\n")


def test_finished_cells_are_skipped_and_reported(monkeypatch, tmp_path):
    cfg = config("smoke")
    for (name, values), s in zip(tj_ddcl.cells(cfg), (0.25, 0.75), strict=True):
        finished(tmp_path / "smoke" / name, values["channel"], s)
    monkeypatch.setattr(tj_ddcl, "train_cell", lambda *a: pytest.fail("retrained"))
    out = tj_ddcl.run(cfg, "smoke", str(tmp_path), tmp_path / "out")
    assert out["finished"]
    assert [c["success"]["mean"] for c in out["cells"]] == [0.25, 0.75]
    assert [c["sessions"] for c in out["cells"]] == [2, 2]


def test_unfinished_cells_train_and_report_progress(monkeypatch, tmp_path):
    cfg = config("smoke")
    (first, _), (second, _) = tj_ddcl.cells(cfg)
    finished(tmp_path / "smoke" / first, "silent", 1.0)
    calls = []
    monkeypatch.setattr(tj_ddcl, "train_cell", lambda values, path: calls.append(path.name))
    out = tj_ddcl.run(cfg, "smoke", str(tmp_path), tmp_path / "out")
    assert calls == [second]  # the finished one is skipped; this one stays unfinished
    assert not out["finished"] and "cells" not in out
    assert out["progress"][second] == {"updates": 0, "planned": 2, "train_success": None,
                                       "finished": False}
    assert "Unfinished" in tj_ddcl.table(out) and f"| {second} | 0 / 2 | - |" in tj_ddcl.table(out)
    assert tj_ddcl.plot(out, tmp_path / "fig.png") == []


def test_continuous_counted_at_32_bits_per_float(tmp_path):
    finished(tmp_path / "medium-continuous", "continuous", 0.5)
    results = json.loads((tmp_path / "medium-continuous" / "results.json").read_text())
    row = tj_ddcl.summarise("medium-continuous", results)
    assert row["bits_per_message"]["mean"] == 32 * 8
    assert row["level"] == "medium" and row["channel"] == "continuous"


def test_summaries_of_finished_cells_outlive_the_run_directories(monkeypatch, tmp_path):
    """A new $HOME (no run directories) still skips the cells whose summaries were written."""
    cfg = config("smoke")
    for (name, values), s in zip(tj_ddcl.cells(cfg), (0.25, 0.75), strict=True):
        finished(tmp_path / "old_home" / "smoke" / name, values["channel"], s)
    first = tj_ddcl.run(cfg, "smoke", str(tmp_path / "old_home"), tmp_path / "out")
    saved = sorted(p.name for p in (tmp_path / "out" / "tj_ddcl_smoke_cells").iterdir())
    assert saved == sorted(f"{n}.json" for n, _ in tj_ddcl.cells(cfg))
    monkeypatch.setattr(tj_ddcl, "train_cell", lambda *a: pytest.fail("retrained"))
    again = tj_ddcl.run(cfg, "smoke", str(tmp_path / "new_home"), tmp_path / "out")
    assert again["finished"] and again["cells"] == first["cells"]
    assert [c["train_success"] for c in again["cells"]] == [0.5, 0.5]


def test_a_summary_of_other_settings_is_refused(tmp_path):
    cfg = config("smoke")
    name, values = tj_ddcl.cells(cfg)[0]
    folder = tj_ddcl.cells_dir(tmp_path, "smoke")
    folder.mkdir(parents=True)
    (folder / f"{name}.json").write_text(json.dumps({"values": {**values, "lr": 0.5}}))
    with pytest.raises(ValueError, match="other settings"):
        tj_ddcl.run(cfg, "smoke", str(tmp_path / "runs"), tmp_path)
