"""Fault injection: training runs SIGKILLed at random points and during checkpoint writes, then
resumed until they finish, against an uninterrupted run; checkpoints damaged on purpose.

    python benchmarks/fault_injection.py                  # 24 kills, seed 0
    python benchmarks/fault_injection.py --kills 40 --seed 1 --keep /tmp/fault-runs

Tiny MAPPO runs of the train command (8 updates, a checkpoint every 2), as subprocesses. Each
trial starts a run and kills it (SIGKILL) 1-3 times (fewer once every step is written), each
time in one of three ways: at a random time over the whole run ("random"), at a random time
from the start of its first checkpoint write to a second past the time the writes took in the
uninterrupted run ("late": training, writes, evaluation), or as soon as orbax's temporary
directory of a step this attempt writes appears ("write"). The uninterrupted run is timed on
its second run (the first fills the compilation cache). After each kill: no write cut short
(``<step>.orbax-checkpoint-tmp`` left on disk) may be listed as a finished step, and every
listed step must verify intact. The run then goes on (``--resume DIR``, or ``--out DIR``
afresh if no step was finished) and finally runs to the end; it must equal the uninterrupted
run bit for bit: the per-update rows of metrics.jsonl, results.json's eval and final_train,
and every array of the last checkpoint.

Then each kind of damage in ``DAMAGE`` is done to the last step (8) of a copy of the reference
run: ``evaluate`` and ``train --resume`` must exit 2 with one short line naming the run, the
step and the fault (no traceback, no "Event loop is closed"), and ``evaluate --fallback`` must
evaluate step 6. Prints tables; writes ``benchmarks/results/fault-injection-<platform>.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents import make_trainer  # noqa: E402
from baselines import checkpoint  # noqa: E402
from baselines.config import ROOT  # noqa: E402
from benchmarks.train_throughput import run_meta  # noqa: E402

TINY = ["num_envs=4", "num_steps=4", "num_minibatches=2", "update_epochs=1", "hidden=8",
        "num_updates=8", "checkpoint_every=2", "eval_episodes=6"]
STEPS = [2, 4, 6, 8]
TMP = ".orbax-checkpoint-tmp"


def _truncate(path: Path, keep: float = 0.5) -> None:
    for f in [path] if path.is_file() else sorted(path.iterdir()):
        f.write_bytes(f.read_bytes()[: int(f.stat().st_size * keep)])


def _truncate_data(step: Path, keep: float = 0.5) -> None:
    """Every OCDBT data file of the state: its own ``d/`` and the per-process ones (which of
    them the merged manifest points into varies from save to save)."""
    for d in [step / "state" / "d", *(step / "state").glob("ocdbt.process_*/d")]:
        _truncate(d, keep)


# kind of damage -> (what it does to a step directory, words the error must contain)
DAMAGE = {
    "data files truncated": (_truncate_data, "state data truncated or missing"),
    "data files emptied": (lambda s: _truncate_data(s, 0), "state data truncated or missing"),
    "state manifest deleted": (lambda s: (s / "state/manifest.ocdbt").unlink(),
                               "state/manifest.ocdbt) is missing"),
    "state index deleted": (lambda s: shutil.rmtree(s / "state/d"),
                            "state data truncated or missing"),
    "state item deleted": (lambda s: shutil.rmtree(s / "state"), "state/_METADATA is missing"),
    "_METADATA garbage": (lambda s: (s / "state/_METADATA").write_text("garbage"),
                          "state/_METADATA is not valid JSON"),
    "array metadata truncated": (lambda s: _truncate(s / "state/array_metadatas"),
                                 "array_metadatas/process_0 is not valid JSON"),
    "config garbage": (lambda s: (s / "config/metadata").write_text('{"format": 2, "co'),
                       "config/metadata is not valid JSON"),
    "metrics garbage": (lambda s: (s / "metrics/metrics").write_bytes(b"\x00" * 64),
                        "metrics/metrics is not valid JSON"),
    "step metadata garbage": (lambda s: (s / "_CHECKPOINT_METADATA").write_text("{{"),
                              "_CHECKPOINT_METADATA is not valid JSON"),
}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def launch(run: Path, log) -> subprocess.Popen:
    """The train command on ``run``: ``--resume`` if it has a finished step, else afresh."""
    args = (["--resume", str(run)] if checkpoint.latest_step(run) is not None
            else ["--out", str(run), *TINY])
    return subprocess.Popen(command("baselines.train", "--no-progress", *args), cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)


def partial_steps(run: Path) -> list[int]:
    """Steps whose write was cut short: orbax's temporary directories left on disk."""
    found = (run / "checkpoints").glob(f"*{TMP}*") if (run / "checkpoints").is_dir() else []
    return sorted(int(p.name.split(".")[0]) for p in found)


def writing(run: Path, since: float, step: int | None = None) -> bool:
    """Whether a write (of ``step``, or any) begun after ``since`` (``time.time()``) is under way:
    a temporary directory that a killed attempt left behind does not count."""
    found = (run / "checkpoints").glob(f"{'*' if step is None else step}{TMP}*")
    try:
        return any(p.stat().st_mtime >= since for p in found)
    except FileNotFoundError:  # renamed or removed in between
        return False


def wait_for(proc: subprocess.Popen, ready, timeout: float = 600) -> bool:
    """Poll ``ready()`` every millisecond while ``proc`` runs: True once it holds, False if
    ``proc`` exited first (or ``timeout`` passed)."""
    end = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < end:
        if ready():
            return True
        time.sleep(0.001)
    return False


def kill_when(proc: subprocess.Popen, ready, timeout: float = 600) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()``; False if it exited before that (or ran past
    ``timeout``: killed then as well)."""
    hit = wait_for(proc, ready, timeout)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return hit and proc.returncode == -signal.SIGKILL


def kill_after(proc: subprocess.Popen, seconds: float) -> bool:
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode == -signal.SIGKILL


def inspect_after_kill(run: Path) -> dict:
    """Finished and cut-short steps, partial ones wrongly listed, finished ones damaged."""
    done, partial = checkpoint.steps(run), partial_steps(run)
    damaged = []
    for step in done:
        try:
            checkpoint.verify(run, step)
        except checkpoint.DamagedCheckpoint as err:
            damaged.append(str(err))
    phase = ("during a write" if partial else "before the first checkpoint" if not done
             else "after the last update" if done[-1] == STEPS[-1] else "between writes")
    return {"finished": done, "partial": partial, "phase": phase,
            "partial_listed": [s for s in partial if s in done], "damaged": damaged}


def outcome(run: Path) -> dict:
    """What must equal bit for bit: per-update rows (JSON text) and results' eval and
    final_train (JSON text: NaN-safe)."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    results = json.loads((run / "results.json").read_text())
    return {"rows": [line for line in lines if "update" in json.loads(line)],
            "eval": json.dumps(results["eval"]), "final_train": json.dumps(results["final_train"])}


def final_arrays(run: Path) -> list[np.ndarray]:
    """Every array of the latest checkpoint (typed keys as their raw data)."""
    _, config = checkpoint.saved_config(run)
    like = jax.eval_shape(make_trainer(config).init, jax.random.key(config.seed))
    state, _ = checkpoint.restore(run, config, like)
    raw = lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key) else x
    return [np.asarray(raw(x)) for x in jax.tree.leaves(state)]


def same_arrays(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(
        x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        for x, y in zip(a, b, strict=True))


def reference_run(run: Path, log) -> dict:
    """The uninterrupted run; its timeline in seconds: first checkpoint write begun, last one
    finished, process ended."""
    t0, first, last = time.monotonic(), None, None
    proc = launch(run, log)
    while proc.poll() is None:
        if first is None and partial_steps(run):
            first = time.monotonic() - t0
        if last is None and (run / "checkpoints" / str(STEPS[-1])).is_dir():
            last = time.monotonic() - t0
        time.sleep(0.002)
    if proc.returncode != 0 or first is None or last is None:
        sys.exit(f"the uninterrupted run failed (rc {proc.returncode}); see {log.name}")
    return {"first_write_s": round(first, 2), "last_write_s": round(last, 2),
            "total_s": round(time.monotonic() - t0, 2)}


def trial(run: Path, kills: int, rng: random.Random, timing: dict, log) -> dict:
    events, fresh_restarts, deleted = [], 0, 0
    for _ in range(kills):
        mode = rng.choice(["random", "late", "write"])
        before = checkpoint.latest_step(run) or 0
        todo = [s for s in STEPS if s > before]
        if not todo:  # every step written: only the evaluation is left, finish the run
            break
        fresh_restarts += before == 0 and (run / "checkpoints").is_dir()
        since, proc = time.time(), launch(run, log)
        if mode == "write":
            step = rng.choice(todo)
            killed = kill_when(proc, functools.partial(writing, run, since, step))
        elif mode == "late":
            delay = rng.uniform(0, timing["last_write_s"] - timing["first_write_s"] + 1)
            started = wait_for(proc, functools.partial(writing, run, since))
            killed = kill_after(proc, delay if started else 0)
        else:
            delay = rng.uniform(0, timing["total_s"])
            killed = kill_after(proc, delay)
        events.append({"mode": mode, "killed": killed, "rc": proc.returncode,
                       "seconds": round(time.time() - since, 2), **inspect_after_kill(run)})
    while True:  # to the end, uninterrupted
        fresh_restarts += checkpoint.latest_step(run) is None and (run / "checkpoints").is_dir()
        proc = launch(run, log)
        proc.wait()
        if proc.returncode == 2 and checkpoint.latest_step(run) is None and not deleted:
            shutil.rmtree(run)  # a train.py that refuses --out on a directory with no step
            deleted += 1
            continue
        break
    return {"events": events, "final_rc": proc.returncode, "fresh_restarts": fresh_restarts,
            "deleted_dirs": deleted}


def damage_cases(ref: Path, root: Path) -> list[dict]:
    out = []
    for kind, (damage, words) in DAMAGE.items():
        run = root / f"damaged-{len(out)}"
        shutil.copytree(ref, run)
        damage(run / "checkpoints" / "8")
        row = {"kind": kind}
        for name, args in [("evaluate", ["baselines.evaluate", "--checkpoint", str(run)]),
                           ("resume", ["baselines.train", "--no-progress", "--resume", str(run)]),
                           ("fallback", ["baselines.evaluate", "--checkpoint", str(run),
                                         "--fallback"])]:
            done = subprocess.run(command(*args), cwd=ROOT, capture_output=True, text=True)
            err = done.stderr.splitlines()
            row[name] = {"rc": done.returncode, "stderr_lines": len(err),
                         "longest_line": max(map(len, err), default=0),
                         "traceback": "Traceback" in done.stderr,
                         "event_loop_closed": "Event loop is closed" in done.stderr,
                         "message": err[-1] if err else ""}
            if name == "fallback":
                row[name]["update"] = (json.loads(done.stdout[done.stdout.index("{"):])["update"]
                                       if done.returncode == 0 else None)
            else:
                msg = row[name]["message"]
                row[name]["clear"] = (done.returncode == 2 and not row[name]["traceback"]
                                      and not row[name]["event_loop_closed"]
                                      and str(run) in msg and "step 8" in msg and words in msg
                                      and len(msg) < 600
                                      and (name == "resume" or "--fallback" in msg))
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=24, help="SIGKILLs in all (default 24)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill schedule")
    parser.add_argument("--keep", help="keep the run directories here (default: a temp dir)")
    parser.add_argument("--no-damage", action="store_true", help="skip the damaged checkpoints")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"
                                             / f"fault-injection-{jax.default_backend()}.json"))
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    root = Path(args.keep or tempfile.mkdtemp(prefix="fault-injection-"))
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "train.log", "a") as log:
        ref, timed = root / "reference", root / "timed"
        for path in (ref, timed):
            shutil.rmtree(path, ignore_errors=True)
        reference_run(ref, log)
        timing = reference_run(timed, log)  # compiled programs cached by now
        if outcome(timed) != outcome(ref):
            sys.exit("two uninterrupted runs differ: nothing to compare resumed runs with")
        shutil.rmtree(timed)
        expected, arrays = outcome(ref), final_arrays(ref)
        trials, left = [], args.kills
        while left > 0:
            kills = min(left, rng.randint(1, 3))
            run = root / f"trial-{len(trials)}"
            shutil.rmtree(run, ignore_errors=True)
            t = trial(run, kills, rng, timing, log)
            t["matched"] = t["final_rc"] == 0 and outcome(run) == expected
            t["arrays_matched"] = t["final_rc"] == 0 and same_arrays(final_arrays(run), arrays)
            t["no_tmp_left"] = not partial_steps(run)
            trials.append(t)
            left -= len(t["events"])
            print(f"trial {len(trials) - 1}: " + ", ".join(
                f"{e['mode']} -> {e['phase']} {e['finished']}" for e in t["events"])
                + f"; final rc {t['final_rc']}, matched {t['matched'] and t['arrays_matched']}",
                flush=True)
    events = [e for t in trials for e in t["events"]]
    killed = [e for e in events if e["killed"]]
    summary = {
        "kills": len(killed), "attempts": len(events),
        "kills_by_mode": {m: sum(e["mode"] == m for e in killed)
                          for m in ("random", "late", "write")},
        "kills_by_phase": {p: sum(e["phase"] == p for e in killed) for p in (
            "before the first checkpoint", "during a write", "between writes",
            "after the last update")},
        "runs": len(trials), "runs_matched_bit_for_bit": sum(
            t["matched"] and t["arrays_matched"] for t in trials),
        "partial_checkpoints_left": sum(len(e["partial"]) for e in killed),
        "partial_checkpoints_listed_as_finished": sum(len(e["partial_listed"]) for e in events),
        "finished_steps_verified": sum(len(e["finished"]) for e in events),
        "finished_steps_damaged": sum(len(e["damaged"]) for e in events),
        "fresh_restarts": sum(t["fresh_restarts"] for t in trials),
        "run_dirs_deleted_to_restart": sum(t["deleted_dirs"] for t in trials),
        "tmp_dirs_left_at_end": sum(not t["no_tmp_left"] for t in trials)}
    damage = [] if args.no_damage else damage_cases(ref, root)
    print(f"\n{summary['kills']} kills ({summary['kills_by_mode']}) in {summary['runs']} runs; "
          f"reference run {timing['total_s']} s, first write at {timing['first_write_s']} s")
    for key, value in summary.items():
        print(f"  {key:40s} {value}")
    if damage:
        print(f"\n{'damage to step 8':26s} {'evaluate':>9s} {'resume':>7s} {'lines':>5s} "
              f"{'longest':>7s} {'fallback':>8s}")
        for row in damage:
            ev, rs, fb = row["evaluate"], row["resume"], row["fallback"]
            print(f"{row['kind']:26s} {'clear' if ev['clear'] else 'NO':>9s} "
                  f"{'clear' if rs['clear'] else 'NO':>7s} {ev['stderr_lines']:5d} "
                  f"{ev['longest_line']:7d} {str(fb['update']):>8s}")
        print(f"\ne.g. {damage[0]['evaluate']['message']}")
    result = {"meta": run_meta(), "seed": args.seed, "timing": timing, "summary": summary,
              "trials": trials, "damage": damage}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    ok = (summary["runs_matched_bit_for_bit"] == summary["runs"]
          and not summary["partial_checkpoints_listed_as_finished"]
          and not summary["finished_steps_damaged"] and not summary["tmp_dirs_left_at_end"]
          and all(r["evaluate"]["clear"] and r["resume"]["clear"] and r["fallback"]["update"] == 6
                  for r in damage))
    if not ok:
        sys.exit(f"FAILED: a fault was mishandled; see {args.out}")
    return result


if __name__ == "__main__":
    main()
