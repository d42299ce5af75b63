"""Training throughput: env-steps/s *including* the learning updates, at several batch sizes.

    python benchmarks/train_throughput.py                     # MAPPO default config and IQL
    python benchmarks/train_throughput.py --mappo-envs 256 1024 --iql-envs 8 32 --updates 5
    python benchmarks/train_throughput.py --mappo-envs --iql-envs --ippo-mpe-envs 16 64 \
        --jaxmarl-script ~/JaxMARL/baselines/IPPO/ippo_ff_mpe.py    # against JaxMARL's IPPO

For each learner and number of parallel environments N: the learner's config with ``num_envs``
= N (MAPPO: the default baseline, ``configs/mappo_commnet_traffic_junction_easy.yaml``,
``num_minibatches`` kept; IQL: ``configs/iql_nps_comm_predator_prey_magym.yaml``, one seed,
``gradient_steps`` = N/2 so the updates per episode stay the CPU grid's), one compiled chunk of
``--updates`` updates (the training state donated to it, as on an accelerator) is run once to
warm up and then timed (best of ``--repeats``); ``--num-seeds`` seeds are trained side by side
(vmapped) in the PPO rows. Reports env-steps/s summed over seeds (IQL: env steps actually
played; its episodes end early), updates/s and compile
time; prints a table and writes JSON (``benchmarks/results/train-throughput-<platform>.json``).

The peer row: ``configs/ippo_jaxmarl_mpe_simple_spread.yaml`` is our IPPO set up as JaxMARL's
feed-forward IPPO on MPE simple_spread (its ``baselines/IPPO/config/ippo_ff_mpe.yaml``), on
JaxMARL's own environment (``env: jaxmarl:MPE_simple_spread_v3``, through
``dcgenv.adapters.from_jaxmarl``). With ``--jaxmarl-script`` (that file of a JaxMARL checkout,
``baselines/IPPO/ippo_ff_mpe.py``; needs the ``jaxmarl`` extra) the same run also times
JaxMARL's own ``make_train`` with its own config (``config/ippo_ff_mpe.yaml`` beside the
script), ``NUM_ENVS`` = N and ``TOTAL_TIMESTEPS`` set for ``--updates`` updates, unmodified;
only its logging modules (hydra, omegaconf, wandb), when not installed, are replaced by no-op
stand-ins so that the file imports. The table then gives our env-steps/s over JaxMARL's.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import platform
import sys
import time
import types
from pathlib import Path

import jax
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents import make_trainer  # noqa: E402
from baselines import records  # noqa: E402
from baselines.config import ROOT, load  # noqa: E402

MAPPO = ROOT / "configs" / "mappo_commnet_traffic_junction_easy.yaml"
IQL = ROOT / "configs" / "iql_nps_comm_predator_prey_magym.yaml"
IPPO_MPE = ROOT / "configs" / "ippo_jaxmarl_mpe_simple_spread.yaml"


def measure(config, updates: int, repeats: int) -> dict:
    trainer = make_trainer(config)
    start = time.perf_counter()
    state = jax.jit(trainer.init)(jax.random.key(0))
    run = jax.jit(trainer.run, static_argnums=1, donate_argnums=0).lower(state, updates).compile()
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
            played = updates * config.steps_per_update * config.num_seeds
        if elapsed < best:
            best, steps = elapsed, played
    return {"algorithm": config.algorithm, "env": config.env, "num_envs": config.num_envs,
            "num_seeds": config.num_seeds, "updates": updates, "env_steps_per_s": steps / best,
            "updates_per_s": updates / best,
            "compile_s": compile_s, "finite": bool(np.isfinite(np.asarray(
                metrics["loss"])).all())}


def run_meta() -> dict:
    """What a results file records about the run: JAX, device, machine, arguments, date."""
    device = jax.devices()[0]
    return {"dcgenv": records.version(), "commit": records.git_commit(),
            "jax": jax.__version__, "platform": device.platform, "device": device.device_kind,
            "machine": platform.processor() or platform.machine(), "argv": sys.argv[1:],
            "date": time.strftime("%Y-%m-%d %H:%M")}


def memory_per_env(config, updates: int) -> dict:
    """MB per environment: its observation, the rollout one update learns from (every leaf of
    the batch ``collect`` returns) and XLA's temporary buffers of a compiled chunk of updates
    (``memory_analysis``), each divided by ``num_envs``."""
    nbytes = lambda tree: sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize
                              for x in jax.tree.leaves(tree))
    trainer = make_trainer(config)
    state = jax.eval_shape(trainer.init, jax.random.key(0))
    runner = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), state.runners)
    _, batch = jax.eval_shape(trainer.collect, runner)
    compiled = jax.jit(trainer.run, static_argnums=1).lower(state, updates).compile()
    temp = getattr(compiled.memory_analysis(), "temp_size_in_bytes", float("nan"))
    mb = 1e6 * config.num_envs
    return {"obs_mb_per_env": nbytes(runner.obs) / mb, "rollout_mb_per_env": nbytes(batch) / mb,
            "xla_temp_mb_per_env": temp / mb}


@contextlib.contextmanager
def logging_stand_ins():
    """No-op ``hydra``, ``omegaconf`` and ``wandb`` modules for the ones not installed (JaxMARL's
    scripts import them at the top; ``make_train`` only calls ``wandb.log`` in a callback)."""
    stand_ins = {"hydra": {"main": lambda **_: (lambda f: f)},
                 "omegaconf": {"OmegaConf": types.SimpleNamespace(to_container=dict)},
                 "wandb": {"log": lambda *_, **__: None, "init": lambda *_, **__: None}}
    added = []
    for name, attributes in stand_ins.items():
        if importlib.util.find_spec(name) is None:
            sys.modules[name] = types.SimpleNamespace(**attributes)
            added.append(name)
    try:
        yield
    finally:
        for name in added:
            del sys.modules[name]


def measure_jaxmarl_ippo(script: Path, num_envs: int, updates: int, repeats: int) -> dict:
    """JaxMARL's ``make_train`` (``script``, with its ``config/ippo_ff_mpe.yaml``) for
    ``updates`` updates of ``num_envs`` envs: compiled once, then timed (best of ``repeats``)."""
    with logging_stand_ins():
        spec = importlib.util.spec_from_file_location("jaxmarl_ippo_ff_mpe", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    config = yaml.safe_load((script.parent / "config" / "ippo_ff_mpe.yaml").read_text())
    config.update(NUM_ENVS=num_envs, TOTAL_TIMESTEPS=updates * config["NUM_STEPS"] * num_envs)
    start = time.perf_counter()
    train = jax.jit(module.make_train(config)).lower(jax.random.key(0)).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(train(jax.random.key(0)))
    best = float("inf")
    for i in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(train(jax.random.key(i + 1)))
        best = min(best, time.perf_counter() - t)
    steps = updates * config["NUM_STEPS"] * num_envs
    return {"algorithm": "jaxmarl-ippo", "env": f"jaxmarl:{config['ENV_NAME']}",
            "num_envs": num_envs, "updates": updates, "env_steps_per_s": steps / best,
            "updates_per_s": updates / best, "compile_s": compile_s, "finite": True}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mappo-envs", nargs="*", type=int, default=[64, 256, 1024])
    parser.add_argument("--iql-envs", nargs="*", type=int, default=[8, 32])
    parser.add_argument("--ippo-mpe-envs", nargs="*", type=int, default=[16, 64],
                        help="IPPO as JaxMARL's ippo_ff_mpe on its MPE simple_spread")
    parser.add_argument("--tj-hard-envs", nargs="*", type=int, default=[64],
                        help="the default MAPPO config on TrafficJunction-hard, one-hot "
                             "observations and obs_mode=index with obs_embedding")
    parser.add_argument("--jaxmarl-script", type=Path, default=None,
                        help="JaxMARL's baselines/IPPO/ippo_ff_mpe.py, timed beside ours")
    parser.add_argument("--num-seeds", type=int, default=1,
                        help="seeds trained side by side (vmapped) in the MAPPO/IPPO rows")
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    meta = run_meta()
    seeds = f"num_seeds={args.num_seeds}"
    configs = [load(MAPPO, [f"num_envs={n}", seeds]) for n in args.mappo_envs]
    configs += [load(IQL, [f"num_envs={n}", f"gradient_steps={max(1, n // 2)}", "num_seeds=1",
                           "buffer_episodes=1000"]) for n in args.iql_envs]
    configs += [load(IPPO_MPE, [f"num_envs={n}", seeds]) for n in args.ippo_mpe_envs]
    hard = ["env=TrafficJunction-hard-v0", seeds]
    configs += [load(MAPPO, [f"num_envs={n}", *hard, *index]) for n in args.tj_hard_envs
                for index in ([], ["env_kwargs.obs_mode=index", "obs_embedding=true"])]
    print(f"jax {meta['jax']} on {meta['platform']}; {args.updates} updates per timed call")
    header = (f"{'learner':<13}{'env':<32}{'N':>6}{'env-steps/s':>14}{'updates/s':>11}"
              f"{'compile s':>11}")
    print(header + "\n" + "-" * len(header))
    rows = []
    jobs = [(measure, config) for config in configs]
    if args.jaxmarl_script is not None:
        jobs += [(None, n) for n in args.ippo_mpe_envs]
    for job, arg in jobs:
        r = (job(arg, args.updates, args.repeats) if job is not None else
             measure_jaxmarl_ippo(args.jaxmarl_script, arg, args.updates, args.repeats))
        if job is not None and arg.env == "TrafficJunction-hard-v0":
            r["obs_mode"] = arg.env_kwargs.get("obs_mode", "onehot")
            r.update(memory_per_env(arg, args.updates))
        ours = [o for o in rows if o["env"] == r["env"] and o["num_envs"] == r["num_envs"]]
        if job is None and ours:
            r["ours_over_peer"] = ours[0]["env_steps_per_s"] / r["env_steps_per_s"]
        rows.append(r)
        ratio = f"  (ours / JaxMARL: {r['ours_over_peer']:.2f}x)" if "ours_over_peer" in r else ""
        if "obs_mode" in r:
            ratio = (f"  ({r['obs_mode']}: obs {r['obs_mb_per_env']:.4f} MB, rollout "
                     f"{r['rollout_mb_per_env']:.3f} MB, XLA temp {r['xla_temp_mb_per_env']:.2f}"
                     " MB per env)")
        print(f"{r['algorithm']:<13}{r['env']:<32}{r['num_envs']:>6}"
              f"{r['env_steps_per_s']:>14,.0f}{r['updates_per_s']:>11.2f}{r['compile_s']:>11.1f}"
              f"{ratio}", flush=True)
    out = args.out or ROOT / "benchmarks" / "results" / (
        f"train-throughput-{meta['platform']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
