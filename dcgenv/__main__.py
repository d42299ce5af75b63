"""Demo: random-policy rollouts of registered environments, with episode statistics.

    python -m dcgenv                          # every registered environment
    python -m dcgenv --env Witsenhausen-v0 --num-envs 1024 --num-steps 500
"""

from __future__ import annotations

import argparse
import time

import jax

import dcgenv


def run(env_id: str, num_envs: int, num_steps: int, seed: int) -> dict:
    env, params = dcgenv.make(env_id)
    env = dcgenv.LogWrapper(env)
    key = jax.random.key(seed)
    start = time.perf_counter()
    jax.block_until_ready(dcgenv.rollout(env, params, key, num_envs=num_envs,
                                         num_steps=num_steps))  # compile + first run
    compiled = time.perf_counter()
    traj, _ = jax.block_until_ready(dcgenv.rollout(env, params, jax.random.fold_in(key, 1),
                                                   num_envs=num_envs, num_steps=num_steps))
    seconds = time.perf_counter() - compiled
    stats = dcgenv.summarize(traj.info)
    stats.update(agents=env.num_agents, compile_s=compiled - start - seconds,
                 steps_per_s=num_envs * num_steps / seconds)
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", action="append", choices=dcgenv.registered(),
                        help="environment id (repeatable); default: all registered")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--num-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_envs < 1 or args.num_steps < 1:
        parser.error("--num-envs and --num-steps must be >= 1")

    print(f"random policy, {args.num_envs} envs x {args.num_steps} steps, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}")
    header = f"{'environment':<28}{'agents':>7}{'episodes':>9}{'team return':>13}" \
             f"{'length':>8}{'success':>9}{'env-steps/s':>13}{'compile s':>10}"
    print(header)
    print("-" * len(header))
    for env_id in args.env or dcgenv.registered():
        s = run(env_id, args.num_envs, args.num_steps, args.seed)
        success = f"{s['success_rate']:.3f}" if "success_rate" in s else "-"
        print(f"{env_id:<28}{s['agents']:>7}{s['episodes']:>9}{s['team_return']:>13.3f}"
              f"{s['length']:>8.1f}{success:>9}{s['steps_per_s']:>13,.0f}{s['compile_s']:>10.1f}")


if __name__ == "__main__":
    main()
