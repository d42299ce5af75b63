"""Train a reference baseline: ``python -m baselines.train [--config PATH] [key=value ...]``.

No argument trains the default baseline (MAPPO + CommNet + DDCL on ``TrafficJunction-easy-v0``,
``configs/mappo_commnet_traffic_junction_easy.yaml``). Writes, under ``--out`` (default
``runs/<config name>-<time>``): orbax checkpoints every ``checkpoint_every`` updates and at the
end (``checkpoints/``, with config and metrics), ``metrics.jsonl`` (one row per update),
``curve.png`` and ``results.json`` (greedy evaluation, timings, env-steps per second).

    python -m baselines.train --config configs/ippo_predator_prey_easy.yaml lr=1e-3
    python -m baselines.train --resume runs/RUN          # continue an interrupted run

``--resume DIR`` continues from DIR's latest checkpoint with its saved config (a ``--config``
or overrides given as well must agree with it); the result equals an uninterrupted run's, bit
for bit. A bad config key or value stops with an error before anything compiles.

The run directory is printed first. Training runs in compiled chunks of ``log_every`` updates:
Ctrl-C stops at the end of the chunk under way, checkpoints there and prints the resume
command (exit 130); a second Ctrl-C aborts without saving. Parameters that stop being finite
end training with an error naming the update (exit 1), keeping the last good checkpoint.
``docs/metrics.md`` defines every file and metric a run writes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

if __name__ == "__main__" and "--distributed" in sys.argv[1:]:  # multi-host (docs/scaling.md):
    jax.distributed.initialize()  # before the imports below, which touch the XLA backend

from agents import make_trainer, sharding  # noqa: E402
from agents.config import Config  # noqa: E402
from agents.loop import TrainState  # noqa: E402
from baselines import checkpoint, progress, records  # noqa: E402
from baselines.config import DEFAULT, ROOT, apply_overrides, load, read_yaml  # noqa: E402
from baselines.evaluate import evaluate_params  # noqa: E402


class Diverged(RuntimeError):
    """Training produced non-finite parameters; the message names the update and quantities."""


class Interrupt:
    """While active (main thread only), the first Ctrl-C asks training to stop at the next
    chunk boundary (``requested``); a second one aborts at once (``KeyboardInterrupt``)."""

    def __init__(self):
        self.requested, self.old = False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self.handle)
        return self

    def handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupted: stopping with a checkpoint after the updates under way "
              "(Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)


LOSSES = ("loss", "grad_norm", "pg_loss", "vf_loss", "entropy", "comm_cost", "q_taken")


def divergence(metrics: dict, rows: list[dict], out: Path, last_good: int | None,
               lr: float) -> Diverged | None:
    """A :class:`Diverged` naming the first update of this chunk after which the parameters
    were not finite (and its non-finite losses or gradient norm), or None."""
    finite = np.asarray(metrics["finite"])
    bad = [j for j, f in enumerate(finite[: len(rows)]) if f < 1]
    if not bad:
        return None
    row = rows[bad[0]]
    named = [f"{k} {row[k]}" for k in LOSSES if k in row and not math.isfinite(row[k])]
    named = named or ["losses finite"] + [f"grad_norm {row['grad_norm']}"] * ("grad_norm" in row)
    kept = (f"the last good checkpoint is update {last_good} in {str(out)!r}"
            if last_good is not None else "no checkpoint was written")
    error = Diverged(f"training diverged at update {row['update']}: the parameters are not "
                    f"finite after it ({', '.join(named)}). Stopped without saving that state; "
                    f"{kept}; metrics.jsonl holds the rows up to update {row['update']}. Try "
                    f"a lower lr (now {lr}) or max_grad_norm.")
    error.update = row["update"]
    return error


def train(config: Config, out: str | Path, *, resume: bool = False,
          stop_after: int | None = None, show_progress: bool = True) -> tuple[dict, TrainState]:
    """Train (or resume) into ``out``; stop after ``stop_after`` updates in all if given
    (checkpointed there, as an interruption would be: no evaluation, plot or results file).
    Returns ``(results, final state)``; ``results`` is what ``results.json`` holds, or
    ``{"updates": N, "stopped": True}`` (``stop_after``) / ``{..., "interrupted": True}``
    (Ctrl-C). Raises :class:`Diverged` if the parameters stop being finite."""
    out = Path(out)
    if not resume and checkpoint.latest_step(out) is not None:
        raise ValueError(f"{str(out)!r} already holds a run; continue it with --resume {out} or "
                         "pass another --out")
    if resume:  # a missing or mismatched checkpoint stops here, before anything compiles
        checkpoint.check_config(out, config)
    out.mkdir(parents=True, exist_ok=True)
    lead = jax.process_index() == 0
    bar = progress.ProgressBar(config.num_updates, disable=not show_progress)
    trainer = make_trainer(config, bar.callback if show_progress else None)
    with Interrupt() as interrupt, contextlib.closing(checkpoint.manager(out)) as mgr:
        t0 = time.perf_counter()
        mesh = sharding.mesh_for(config.num_devices, config.num_envs)  # None: one device
        state = sharding.jit_init(trainer.init, mesh)(jax.random.key(config.seed))
        history: list[dict] = []
        if resume:
            state, history = checkpoint.restore(out, config, state)
            state = sharding.shard(state, mesh)
        start = int(state.update)
        end = config.num_updates if stop_after is None else min(stop_after, config.num_updates)
        # chunks of log_every updates: Ctrl-C waits for one chunk at most
        length = min(config.log_every, config.checkpoint_every, config.num_updates)
        run = sharding.jit_run(trainer.run, mesh, state).lower(
            state, length, jnp.int32(end)).compile()
        compile_s, train_s, last_good = time.perf_counter() - t0, 0.0, start or None
        sessions = progress.read_sessions(out / "metrics.jsonl", start) if resume else []
        sessions.append({"from_update": start, **records.run_record()})
        bar.start(start)
        while int(state.update) < end and not interrupt.requested:
            first, t = int(state.update), time.perf_counter()
            every = config.checkpoint_every
            stop = min((first // every + 1) * every, end)
            state, metrics = jax.block_until_ready(run(state, jnp.int32(stop)))
            train_s += time.perf_counter() - t
            metrics = jax.device_get(metrics)
            rows = progress.rows(metrics, first, config.steps_per_update)
            error = divergence(metrics, rows, out, last_good, config.lr)
            history += rows if error is None else rows[: error.update - first]
            sessions[-1].update(updates=history[-1]["update"] - start, train_s=round(train_s, 2))
            if lead:  # multi-host: one process writes the files (orbax coordinates checkpoints)
                progress.write_jsonl(out / "metrics.jsonl", history, sessions)
            if error is not None:
                raise error
            if int(state.update) % every == 0 or int(state.update) == end or interrupt.requested:
                checkpoint.save(mgr, state, config, history)
                last_good = int(state.update)
        mgr.wait_until_finished()
    bar.close()
    if interrupt.requested:
        return {"updates": int(state.update), "interrupted": True}, state
    if end < config.num_updates:
        return {"updates": int(state.update), "stopped": True}, state
    # env steps (all seeds): IQL reports its own, as its episodes end at different times
    steps_done = history[-1]["env_steps"] if history else 0
    steps_before = history[start - 1]["env_steps"] if start else 0
    evaluation = evaluate_params(trainer, state.runners.params, config.eval_episodes, config.seed)
    results = {"config": config.to_dict(), "updates": int(state.update),
               "env_steps": steps_done, "resumed_from": start,
               # compile, train time and rate: this session (from update resumed_from)
               "compile_s": round(compile_s, 2), "train_s": round(train_s, 2),
               "env_steps_per_s": round((steps_done - steps_before) / max(train_s, 1e-9), 1),
               "final_train": history[-1] if history else None,
               "eval": evaluation, "sessions": sessions}
    if lead:
        (out / "results.json").write_text(json.dumps(results, indent=1))
    if history and lead:
        third = ("bits_per_message" if config.comm != "none" else
                 "length" if config.algorithm == "iql" else "env_bits_per_step")
        progress.plot(out / "curve.png", history, config.describe(), bits=third)
    return results, state


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m baselines.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides (values read as YAML)")
    parser.add_argument("--config", help=f"YAML config (default: {DEFAULT.relative_to(ROOT)})")
    parser.add_argument("--out", help="run directory (default: runs/<config name>-<time>)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    parser.add_argument("--stop-after", type=int, metavar="N",
                        help="stop (checkpointed) once N updates are done in all")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--distributed", action="store_true",
                        help="multi-host: jax.distributed.initialize() first (docs/scaling.md)")
    args = parser.parse_args(argv)
    if args.distributed and not jax.distributed.is_initialized():  # done at import as __main__
        jax.distributed.initialize()  # works only if nothing has touched the XLA backend yet
    try:
        if args.resume:
            if args.out:
                raise ValueError("--resume DIR writes into DIR; do not pass --out as well")
            _, saved = checkpoint.saved_config(args.resume)
            base = read_yaml(args.config) if args.config else saved.to_dict()
            config = Config.from_dict(apply_overrides(base, args.overrides))
            out = Path(args.resume)
        else:
            config = load(args.config, args.overrides)
            name = Path(args.config or DEFAULT).stem
            out = Path(args.out or ROOT / "runs" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
        if args.stop_after is not None and args.stop_after < 1:
            raise ValueError(f"--stop-after must be >= 1, got {args.stop_after}")
    except ValueError as err:  # bad config, checkpoint or flag: a clear message, exit 2
        parser.error(str(err))
    print(f"run directory: {out}", flush=True)
    resume_hint = f"python -m baselines.train --resume {out}"
    try:
        results, _ = train(config, out, resume=bool(args.resume), stop_after=args.stop_after,
                           show_progress=not args.no_progress)
    except ValueError as err:  # a checkpoint found unusable while restoring
        parser.error(str(err))
    except Diverged as err:
        sys.exit(f"python -m baselines.train: error: {err}")
    except KeyboardInterrupt:  # a second Ctrl-C, or one during the final evaluation
        done = checkpoint.latest_step(out)
        print(f"\naborted; the last checkpoint is update {done}" + (
            f": resume with: {resume_hint}" if done is not None else ""), file=sys.stderr)
        sys.exit(130)
    if results.get("interrupted"):
        n = results["updates"]
        if checkpoint.latest_step(out) is None:
            print("interrupted before the first update; nothing was saved", file=sys.stderr)
        else:
            print(f"interrupted at update {n}; resume with: {resume_hint}", file=sys.stderr)
        sys.exit(130)
    if results.get("stopped"):
        print(f"stopped after {results['updates']} updates; continue with: {resume_hint}")
        return results
    ev, start = results["eval"]["mean"], results["resumed_from"]
    part = ("" if not start else f"resumed at update {start}, the end: nothing left to "
            "train; " if start == results["updates"] else f"resumed at update {start}; this "
            f"session trained updates {start + 1}-{results['updates']}: ")
    print(f"{results['updates']} updates, {results['env_steps']} env steps; {part}compile "
          f"{results['compile_s']:.1f} s, train {results['train_s']:.1f} s "
          f"({results['env_steps_per_s']:.0f} env-steps/s)")
    print(f"greedy evaluation ({int(ev['episodes'])} episodes per seed): success "
          f"{ev['success']:.3f}, return {ev['return']:.3f}, bits/message "
          f"{ev['bits_per_message']:.2f}")
    return results


if __name__ == "__main__":
    main()
