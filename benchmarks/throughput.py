"""Random-policy throughput of registered environments under jit(scan(vmap(step))).

    python benchmarks/throughput.py                              # every env, N = 1, 1024, 8192
    python benchmarks/throughput.py --env TrafficJunction-hard-v0 --num-envs 1 64 1024

For each environment and batch size N it reports env-steps/s, agent-steps/s, compile time
and the bytes one env-step writes (new state + observation), prints a table and writes JSON
(default ``benchmarks/results/throughput-<platform>.json``). Timing: one compiled call of
``--num-steps`` steps (the trajectory is not stored, only the final carry) is run once to warm
up, then ``--repeats`` times; the best is kept.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import numpy as np

import dcgenv


def tree_bytes(tree) -> int:
    return sum(np.dtype(x.dtype).itemsize * int(np.prod(x.shape))
               for x in jax.tree.leaves(tree) if hasattr(x, "dtype"))


def make_run(env, params, num_envs: int, num_steps: int):
    """jit(scan(vmap(step))) with random actions, keeping only the carry (no trajectory)."""

    def run(key):
        key_reset, key_run = jax.random.split(key)
        carry = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key_reset, num_envs),
                                                       params)

        def body(carry, key):
            obs, state = carry
            key_act, key_step = jax.random.split(key)
            actions = jax.vmap(env.sample_actions, in_axes=(0, None))(
                jax.random.split(key_act, num_envs), params)
            obs, state, *_ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(key_step, num_envs), state, actions, params)
            return (obs, state), None

        return jax.lax.scan(body, carry, jax.random.split(key_run, num_steps))[0]

    return jax.jit(run)


def measure(env_id: str, num_envs: int, num_steps: int, repeats: int) -> dict:
    env, params = dcgenv.make(env_id)
    run = make_run(env, params, num_envs, num_steps)
    start = time.perf_counter()
    jax.block_until_ready(run(jax.random.key(0)))
    first = time.perf_counter() - start
    best = float("inf")
    for i in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run(jax.random.key(i + 1)))
        best = min(best, time.perf_counter() - start)
    obs, state = jax.eval_shape(env.reset, jax.random.key(0), params)
    steps = num_envs * num_steps / best
    return {"env": env_id, "num_envs": num_envs, "agents": env.num_agents,
            "env_steps_per_s": steps, "agent_steps_per_s": steps * env.num_agents,
            "compile_s": max(first - best, 0.0),
            "bytes_per_env_step": tree_bytes(state) + tree_bytes(obs)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", nargs="+", choices=dcgenv.registered(),
                        default=dcgenv.registered())
    parser.add_argument("--num-envs", nargs="+", type=int, default=[1, 1024, 8192])
    parser.add_argument("--num-steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    device = jax.devices()[0]
    meta = {"jax": jax.__version__, "platform": device.platform, "device": device.device_kind,
            "machine": platform.processor() or platform.machine(), "num_steps": args.num_steps}
    print(f"jax {meta['jax']} on {meta['platform']} ({meta['device']}); "
          f"{args.num_steps} steps per call, best of {args.repeats}")
    header = f"{'environment':<28}{'N':>7}{'env-steps/s':>14}{'agent-steps/s':>15}" \
             f"{'compile s':>10}{'bytes/step':>11}"
    print(header + "\n" + "-" * len(header))
    rows = []
    for env_id in args.env:
        for n in args.num_envs:
            r = measure(env_id, n, args.num_steps, args.repeats)
            rows.append(r)
            print(f"{env_id:<28}{n:>7}{r['env_steps_per_s']:>14,.0f}"
                  f"{r['agent_steps_per_s']:>15,.0f}{r['compile_s']:>10.1f}"
                  f"{r['bytes_per_env_step']:>11,}", flush=True)
    out = args.out or Path(__file__).parent / "results" / f"throughput-{meta['platform']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
