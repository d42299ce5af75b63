"""The train command as a person meets it: Ctrl-C stops at a chunk boundary with a checkpoint
and a resume hint, non-finite training stops with an error, runs record where they ran, and
small input mistakes get short errors."""

import contextlib
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from agents.config import PPOConfig
from baselines import checkpoint, progress
from baselines.config import ROOT, load
from baselines.train import divergence, main, train

TINY = ["num_envs=4", "num_steps=4", "num_minibatches=2", "update_epochs=1", "hidden=8",
        "num_updates=4", "checkpoint_every=3", "log_every=2", "eval_episodes=6",
        "anneal_lr=false"]  # then the compiled chunk does not depend on num_updates: every
# run here (progress bar on, as in the CLI) compiles the same program, read from the cache


def run_main(argv):
    """``main(argv)`` -> (return value or SystemExit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            value = main(argv)
        except SystemExit as exit_:
            value = exit_.code
    return value, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run A straight through; run B sent SIGINT from inside update 2 (the progress hook, as a
    person pressing Ctrl-C mid-chunk), then resumed with ``--resume``."""
    root = tmp_path_factory.mktemp("runs")
    with contextlib.redirect_stderr(io.StringIO()):  # the progress bar
        results_a, state_a = train(load(None, TINY), root / "a")
    hook = progress.ProgressBar.callback

    def press_ctrl_c(self, update, metrics):
        hook(self, update, metrics)
        if int(update) == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(progress.ProgressBar, "callback", press_ctrl_c)
        stopped = run_main(["--out", str(root / "b"), *TINY])
    resumed = run_main(["--resume", str(root / "b")])
    return root, (results_a, state_a), stopped, resumed


def test_ctrl_c_stops_at_the_chunk_boundary_with_a_checkpoint_and_a_resume_hint(runs):
    root, _, (code, out, err), _ = runs
    assert code == 130
    assert out.splitlines()[0] == f"run directory: {root / 'b'}"  # printed before compiling
    assert f"interrupted at update 2; resume with: python -m baselines.train --resume " \
           f"{root / 'b'}" in err
    assert "Traceback" not in err
    assert 2 in checkpoint.steps(root / "b")  # not a multiple of checkpoint_every: saved
    # because of the interruption (the resume wrote 3 and 4)


def test_resumed_after_ctrl_c_equals_the_uninterrupted_run(runs):
    root, (res_a, _), _, (res_b, out, _) = runs
    rows = lambda run: [r for r in map(json.loads, (root / run / "metrics.jsonl").read_text()
                                       .splitlines()) if "update" in r]
    assert rows("a") == rows("b") and [r["update"] for r in rows("a")] == [1, 2, 3, 4]
    assert json.dumps(res_a["eval"]) == json.dumps(res_b["eval"])  # NaN-safe equality
    assert json.dumps(res_a["final_train"]) == json.dumps(res_b["final_train"])
    assert checkpoint.steps(root / "b") == [2, 3, 4]
    # the summary says which part of the run its time and rate cover
    assert "resumed at update 2; this session trained updates 3-4:" in out


def test_results_and_metrics_record_each_session(runs):
    root, (res_a, _), _, (res_b, _, _) = runs
    assert set(res_b["config"]) == {f.name for f in dataclasses.fields(PPOConfig)}
    assert res_a["resumed_from"] == 0 and res_b["resumed_from"] == 2
    assert [s["from_update"] for s in res_b["sessions"]] == [0, 2]
    assert [s["updates"] for s in res_b["sessions"]] == [2, 2]
    for key in ("dcgenv", "commit", "date", "machine", "backend", "devices", "jax"):
        assert key in res_b["sessions"][0]
    assert res_b["sessions"][1]["backend"] == "cpu"
    lines = [json.loads(line) for line in (root / "b" / "metrics.jsonl").read_text().splitlines()]
    kinds = ["session" if "session" in r else r["update"] for r in lines]
    assert kinds == ["session", 1, 2, "session", 3, 4]
    saved = json.loads((root / "b" / "results.json").read_text())
    assert saved["sessions"] == res_b["sessions"]


def test_progress_bar_reads_compiling_then_rates_only_this_sessions_updates(capsys):
    bar = progress.ProgressBar(10)
    assert "compiling…" in capsys.readouterr().err
    bar.start(4)  # a resume at update 4: the rate counts from there, not from 0
    assert bar.bar.n == 4 and bar.bar.format_dict["initial"] == 4
    assert "compiling" not in capsys.readouterr().err
    bar.close()


def test_diverging_training_exits_nonzero_naming_the_update_and_quantity(tmp_path):
    code, _, err = run_main(["--out", str(tmp_path / "run"), "--no-progress", *TINY,
                             "lr=1e30", "algorithm=ippo", "comm=none"])  # compiles faster
    assert isinstance(code, str) and code.startswith("python -m baselines.train: error: ")
    assert "training diverged at update 1: the parameters are not finite after it (" in code
    assert "no checkpoint was written" in code
    assert checkpoint.latest_step(tmp_path / "run") is None
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows if "update" in r] == [1]
    assert not (tmp_path / "run" / "results.json").exists()


def test_divergence_names_the_first_bad_update_and_the_last_good_checkpoint(tmp_path):
    rows = [{"update": 9, "loss": 0.5, "grad_norm": 1.0},
            {"update": 10, "loss": 0.5, "grad_norm": 2.0e38},
            {"update": 11, "loss": float("nan"), "grad_norm": float("nan")}]
    finite = {"finite": np.array([1.0, 0.0, 0.0])}
    error = divergence(finite, rows, tmp_path, 8, 1e-3)
    assert "diverged at update 10" in str(error) and "losses finite" in str(error)
    assert "grad_norm 2e+38" in str(error) and "last good checkpoint is update 8" in str(error)
    assert divergence({"finite": np.ones(3)}, rows, tmp_path, 8, 1e-3) is None


@pytest.mark.parametrize("argv, message", [
    (["lr=.inf"], "lr must be a finite number"),
    (["channel_kwargs.delta=.nan"], "delta must be a finite number"),
    (["env=TrafficJunction-esay-v0"], "did you mean 'TrafficJunction-easy-v0'"),
    (["channel_kwargs={delta: "], "override 'channel_kwargs={delta: ': the value is not valid "
     "YAML: line 1, column 9"),
    (["--config", "configs"], "'configs' is a directory; pass one YAML file"),
])
def test_bad_input_stops_before_compiling_with_a_short_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err


def test_malformed_yaml_names_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("algorithm: mappo\nenv: [TrafficJunction-easy-v0\nlr: 0.001\n")
    with pytest.raises(SystemExit):
        main(["--config", str(path)])
    err = capsys.readouterr().err
    assert f"config file {str(path)!r} is not valid YAML: line 3, column 3" in err


def test_ctrl_c_on_the_command_line(tmp_path):
    """A real SIGINT to a real training process: exit 130 within one chunk, a hint, no
    traceback, and a checkpoint at the update it names."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "baselines.train", "--out", str(out), *TINY,
            "num_updates=100000", "checkpoint_every=1000"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 300
    while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stdout.startswith(f"run directory: {out}\n")
    update = checkpoint.latest_step(out)
    assert update is not None and update >= 1
    assert f"interrupted at update {update}; resume with: python -m baselines.train --resume " \
           f"{out}" in stderr
    assert "Traceback" not in stderr
    assert Path(out / "metrics.jsonl").read_text().count('"update"') >= update
