"""Restore a training run's checkpoint and evaluate its greedy policy.

    python -m baselines.evaluate --checkpoint runs/RUN [--episodes 1000] [--seed 0]
    python -m baselines.evaluate --checkpoint runs/RUN --fallback   # newest intact step

Greedy = argmax / mean actions and the channel in evaluation mode (what really goes on the
wire). Reports, per trained seed and averaged: success rate, team return, bits per message (the
CommNet channel's, over alive senders and hops) and, where the environment sends its own
messages (GridWorldGoal), its bits per episode.

The latest finished step is evaluated (``--step N``: that one). A damaged step (files
truncated, missing or overwritten) is an error, unless ``--fallback`` is given: then the newest
intact step at or before it is used, and the skipped ones are named with what is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys

import jax
import numpy as np

from agents import make_trainer
from baselines import checkpoint


def evaluate_params(trainer, params, episodes: int, seed: int = 0) -> dict:
    """Greedy metrics of seed-batched ``params``: ``{"mean": {...}, "per_seed": [{...}]}``."""
    key = jax.random.fold_in(jax.random.key(seed), 1)
    fn = jax.jit(jax.vmap(trainer.evaluate, in_axes=(0, None, None)), static_argnums=2)
    out = jax.device_get(fn(params, key, episodes))
    per_seed = [{k: float(np.asarray(v)[i]) for k, v in out.items()}
                for i in range(trainer.config.num_seeds)]
    return {"mean": {k: float(np.mean(v)) for k, v in out.items()}, "per_seed": per_seed}


def evaluate_checkpoint(run_dir, episodes: int | None = None, seed: int = 0, *,
                        step: int | None = None, fallback: bool = False) -> dict:
    """Restore step ``step`` (default: the latest) of ``run_dir`` (config included) and
    evaluate it. ``fallback``: if that step is damaged, use the newest intact one before it;
    ``result["skipped"]`` lists the steps passed over, ``{"step": N, "error": why}``."""
    done = checkpoint.steps(run_dir)
    start = done[-1] if step is None and done else step
    tries = [s for s in done[::-1] if s <= start] if fallback and start in done else [step]
    skipped = []
    for at in tries:
        try:
            _, config = checkpoint.saved_config(run_dir, at)
            trainer = make_trainer(config)
            like = jax.eval_shape(trainer.init, jax.random.key(config.seed))
            state, _ = checkpoint.restore(run_dir, config, like, at)
            break
        except checkpoint.DamagedCheckpoint as err:
            if not fallback:
                older = [s for s in done if s < start]
                hint = (f"; --fallback (fallback=True) evaluates the newest intact step of "
                        f"{older}" if older else "; the run has no older step to fall back to")
                raise checkpoint.DamagedCheckpoint(f"{err}{hint}") from None
            skipped.append({"step": at, "error": str(err)})
    else:
        raise checkpoint.DamagedCheckpoint(
            f"no intact checkpoint in run {str(run_dir)!r}: steps {[s['step'] for s in skipped]}"
            f" are all damaged; the newest: {skipped[0]['error']}")
    result = evaluate_params(trainer, state.runners.params, episodes or config.eval_episodes,
                             seed)
    return {"update": int(state.update), **result, "skipped": skipped}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m baselines.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="run directory written by training")
    parser.add_argument("--episodes", type=int, default=None,
                        help="greedy episodes per seed (default: the config's eval_episodes)")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed")
    parser.add_argument("--step", type=int, default=None,
                        help="evaluate this finished step (default: the latest)")
    parser.add_argument("--fallback", action="store_true",
                        help="if the step is damaged, use the newest intact one before it")
    args = parser.parse_args(argv)
    if args.episodes is not None and args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    try:
        result = evaluate_checkpoint(args.checkpoint, args.episodes, args.seed,
                                     step=args.step, fallback=args.fallback)
    except ValueError as err:
        parser.error(str(err))
    for skip in result["skipped"]:
        print(f"skipped step {skip['step']}: {skip['error']}", file=sys.stderr)
    if result["skipped"]:
        print(f"evaluating step {result['update']}, the newest intact one", file=sys.stderr)
    m = result["mean"]
    print(f"update {result['update']}: success {m['success']:.3f}  return {m['return']:.3f}  "
          f"bits/message {m['bits_per_message']:.2f}  env bits/episode "
          f"{m['env_bits_per_episode']:.2f}  ({int(m['episodes'])} episodes x "
          f"{len(result['per_seed'])} seeds)")
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
