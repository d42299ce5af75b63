"""Training throughput: env-steps/s *including* the learning updates, at several batch sizes.

    python benchmarks/train_throughput.py                     # MAPPO default config and IQL
    python benchmarks/train_throughput.py --mappo-envs 256 1024 --iql-envs 8 32 --updates 5

For each learner and number of parallel environments N: the learner's config with ``num_envs``
= N (MAPPO: the default baseline, ``configs/mappo_commnet_traffic_junction_easy.yaml``,
``num_minibatches`` kept; IQL: ``configs/iql_nps_comm_predator_prey_magym.yaml``, one seed,
``gradient_steps`` = N/2 so the updates per episode stay the CPU grid's), one compiled chunk of
``--updates`` updates is run once to warm up and then timed (best of ``--repeats``). Reports
env-steps/s (IQL: env steps actually played; its episodes end early), updates/s and compile
time; prints a table and writes JSON (``benchmarks/results/train-throughput-<platform>.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents import make_trainer  # noqa: E402
from baselines.config import ROOT, load  # noqa: E402

MAPPO = ROOT / "configs" / "mappo_commnet_traffic_junction_easy.yaml"
IQL = ROOT / "configs" / "iql_nps_comm_predator_prey_magym.yaml"


def measure(config, updates: int, repeats: int) -> dict:
    trainer = make_trainer(config)
    start = time.perf_counter()
    state = jax.jit(trainer.init)(jax.random.key(0))
    run = jax.jit(trainer.run, static_argnums=1).lower(state, updates).compile()
    compile_s = time.perf_counter() - start
    state, metrics = jax.block_until_ready(run(state))  # warm-up (IQL: fills its buffer)
    best, steps = float("inf"), 0.0
    for _ in range(repeats):
        before = metrics
        t = time.perf_counter()
        state, metrics = jax.block_until_ready(run(state))
        elapsed = time.perf_counter() - t
        if "env_steps" in metrics:  # IQL reports the steps it played (all seeds)
            played = float(metrics["env_steps"][-1] - before["env_steps"][-1])
        else:
            played = updates * config.steps_per_update
        if elapsed < best:
            best, steps = elapsed, played
    return {"algorithm": config.algorithm, "env": config.env, "num_envs": config.num_envs,
            "updates": updates, "env_steps_per_s": steps / best, "updates_per_s": updates / best,
            "compile_s": compile_s, "finite": bool(np.isfinite(np.asarray(
                metrics["loss"])).all())}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mappo-envs", nargs="*", type=int, default=[64, 256, 1024])
    parser.add_argument("--iql-envs", nargs="*", type=int, default=[8, 32])
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    device = jax.devices()[0]
    meta = {"jax": jax.__version__, "platform": device.platform, "device": device.device_kind,
            "machine": platform.processor() or platform.machine(), "argv": sys.argv[1:],
            "date": time.strftime("%Y-%m-%d %H:%M")}
    configs = [load(MAPPO, [f"num_envs={n}"]) for n in args.mappo_envs]
    configs += [load(IQL, [f"num_envs={n}", f"gradient_steps={max(1, n // 2)}", "num_seeds=1",
                           "buffer_episodes=1000"]) for n in args.iql_envs]
    print(f"jax {meta['jax']} on {meta['platform']}; {args.updates} updates per timed call")
    header = (f"{'learner':<8}{'env':<26}{'N':>6}{'env-steps/s':>14}{'updates/s':>11}"
              f"{'compile s':>11}")
    print(header + "\n" + "-" * len(header))
    rows = []
    for config in configs:
        r = measure(config, args.updates, args.repeats)
        rows.append(r)
        print(f"{r['algorithm']:<8}{r['env']:<26}{r['num_envs']:>6}"
              f"{r['env_steps_per_s']:>14,.0f}{r['updates_per_s']:>11.2f}{r['compile_s']:>11.1f}",
              flush=True)
    out = args.out or ROOT / "benchmarks" / "results" / (
        f"train-throughput-{meta['platform']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
