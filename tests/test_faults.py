"""Faults: a training run SIGKILLed during a checkpoint write resumes to the uninterrupted run's
result bit for bit; a write cut short is never taken for a finished step; a damaged checkpoint
is one short error naming the run, the step and the fault, and ``evaluate`` falls back to the
newest intact step only when asked. (benchmarks/fault_injection.py: many kills at random.)"""

import json
import shutil
import subprocess

import jax
import pytest

from agents import make_trainer
from baselines import checkpoint
from baselines import evaluate as bevaluate
from baselines import train as btrain
from baselines.config import ROOT, load
from benchmarks import fault_injection as fi


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The train command (8 updates, checkpoints at 2, 4, 6, 8; 4, 6, 8 kept), as subprocesses
    side by side: the uninterrupted reference run, and a run SIGKILLed as soon as the write of
    step 4 has begun (what is on disk then is returned), then resumed with ``--resume``."""
    root = tmp_path_factory.mktemp("faults")
    ref, run = root / "reference", root / "killed"
    partial = run / "checkpoints" / f"4{fi.TMP}"
    with open(root / "reference.log", "w") as ref_log, open(root / "killed.log", "w") as log:
        reference = fi.launch(ref, ref_log)
        try:
            hit = fi.kill_when(fi.launch(run, log), partial.exists, timeout=400)
            killed = {"hit": hit, "partial_dir": partial.is_dir(), **fi.inspect_after_kill(run)}
            resumed = fi.launch(run, log)  # --resume: step 2 is finished
            assert resumed.wait(timeout=400) == 0, (root / "killed.log").read_text()
        finally:
            reference.wait(timeout=400)
    assert reference.returncode == 0, (root / "reference.log").read_text()
    config = load(None, fi.TINY)
    like = jax.eval_shape(make_trainer(config).init, jax.random.key(config.seed))
    return config, ref, like, run, killed


@pytest.fixture
def reference(runs):
    return runs[:3]


def test_kill_during_a_checkpoint_write_then_resume_equals_uninterrupted_run(runs):
    _, ref, _, run, killed = runs
    # the write of step 4 was cut short: on disk, yet never listed; step 2 intact
    assert killed["hit"] and killed["partial_dir"] and killed["partial"] == [4]
    assert killed["finished"] == [2] and killed["phase"] == "during a write"
    assert killed["partial_listed"] == [] and killed["damaged"] == []
    # resumed from step 2 to the end: the uninterrupted run's result, bit for bit
    assert fi.outcome(run) == fi.outcome(ref)
    assert fi.same_arrays(fi.final_arrays(run), fi.final_arrays(ref))
    assert checkpoint.steps(run) == [4, 6, 8] and fi.partial_steps(run) == []


def test_partial_writes_are_never_listed_or_restored(reference, tmp_path):
    config, ref, like = reference
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    ckpts = run / "checkpoints"
    (ckpts / "8").rename(ckpts / f"8{fi.TMP}")  # complete files, but never renamed into place
    shutil.copytree(ckpts / "6", ckpts / f"10{fi.TMP}")
    assert checkpoint.steps(run) == [4, 6] and checkpoint.latest_step(run) == 6
    state, rows = checkpoint.restore(run, config, like)
    assert int(state.update) == 6 and len(rows) == 6
    only_partial = tmp_path / "only-partial" / "checkpoints"
    shutil.copytree(ckpts / f"8{fi.TMP}", only_partial / f"2{fi.TMP}")
    assert checkpoint.latest_step(only_partial.parent) is None
    assert checkpoint.latest_step(tmp_path / "nowhere") is None
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    assert checkpoint.latest_step(tmp_path / "empty") is None
    with pytest.raises(checkpoint.CheckpointError, match="no finished checkpoint"):
        checkpoint.restore(only_partial.parent, config, like)


@pytest.mark.parametrize("kind", list(fi.DAMAGE))
def test_damaged_checkpoint_is_one_short_error_naming_run_step_and_fault(reference, tmp_path,
                                                                         kind):
    config, ref, like = reference
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    damage, words = fi.DAMAGE[kind]
    damage(run / "checkpoints" / "8")
    assert checkpoint.steps(run) == [4, 6, 8]  # still listed: damaged after it was finished
    for call in (lambda: checkpoint.restore(run, config, like),
                 lambda: checkpoint.saved_config(run), lambda: checkpoint.verify(run, 8)):
        with pytest.raises(checkpoint.DamagedCheckpoint) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and len(message.replace(str(run), "RUN")) < 300, message
        assert f"step 8 of run {str(run)!r} is damaged: " in message and words in message
    checkpoint.verify(run, 6)


def test_cli_damaged_checkpoint_errors_and_evaluate_falls_back_only_when_asked(reference,
                                                                               tmp_path, capsys):
    _, ref, _ = reference
    runs = {}
    for kind in ("data files truncated", "state manifest deleted"):
        runs[kind] = tmp_path / kind.replace(" ", "-")
        shutil.copytree(ref, runs[kind])
        fi.DAMAGE[kind][0](runs[kind] / "checkpoints" / "8")
        done = subprocess.run(fi.command("baselines.evaluate", "--checkpoint", str(runs[kind])),
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        last = done.stderr.splitlines()[-1]
        assert done.returncode == 2 and len(done.stderr.splitlines()) <= 4, done.stderr
        assert "Traceback" not in done.stderr and "Event loop is closed" not in done.stderr
        assert last.startswith("python -m baselines.evaluate: error: checkpoint step 8 of run ")
        assert fi.DAMAGE[kind][1] in last and "--fallback" in last
        assert len(last.replace(str(runs[kind]), "RUN")) < 400, last
    run = runs["data files truncated"]
    with pytest.raises(SystemExit) as exc:
        btrain.main(["--resume", str(run), "--no-progress"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "step 8 of run" in err and "state data truncated" in err
    bevaluate.main(["--checkpoint", str(run), "--fallback"])
    out, err = capsys.readouterr()
    result = json.loads(out[out.index("{"):])
    assert result["update"] == 6 and [s["step"] for s in result["skipped"]] == [8]
    assert "skipped step 8: checkpoint step 8 of run" in err and "newest intact" in err
    fi.DAMAGE["state manifest deleted"][0](run / "checkpoints" / "6")
    with pytest.raises(checkpoint.DamagedCheckpoint, match="step 6 of run .* evaluates the "
                       r"newest intact step of \[4\]"):
        bevaluate.evaluate_checkpoint(run, step=6)
    fi.DAMAGE["state manifest deleted"][0](run / "checkpoints" / "4")
    with pytest.raises(checkpoint.DamagedCheckpoint, match=r"steps \[8, 6, 4\] are all damaged"):
        bevaluate.evaluate_checkpoint(run, fallback=True)

