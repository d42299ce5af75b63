"""Every throughput table on an accelerator, in one call: environments, then training.

    python benchmarks/accelerator.py --out-dir gpu-results         # on the GPU machine
    python benchmarks/accelerator.py --tiny --out-dir /tmp/check   # the same path, CPU-sized

Runs, in one process (one compile cache, one device):

1. ``benchmarks/throughput.py``: every environment, random policy, N up to ``2**16``
   (``--num-envs``), one-hot and index observations, with the peers and the auto-reset table;
2. ``benchmarks/train_throughput.py``: the default MAPPO config at N up to ``2**16``, IQL, and
   IPPO on JaxMARL's MPE (``--jaxmarl-script`` adds JaxMARL's own IPPO beside it), training
   state donated to the compiled chunk, ``--num-seeds`` seeds vmapped;
3. ``benchmarks/profile_learners.py``: where an update's time goes, MAPPO and IQL.

Each writes its JSON under ``--out-dir`` (``throughput.json``, ``train-throughput.json``,
``profile.json``); ``summary.md`` gathers the tables in BENCHMARKS.md's form. ``--tiny`` uses
sizes that compile and run in a few minutes on a laptop CPU (the test suite runs it), so the
script is known to work before accelerator time is spent on it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import jax

HERE = Path(__file__).resolve().parent
FULL = {"envs": [1, 1024, 8192, 65536], "reset_envs": [8192, 65536],
        "mappo": [256, 4096, 16384, 65536], "iql": [8, 32], "ippo": [16, 1024, 16384],
        "tj_hard": [1024, 8192],
        "updates": 5, "repeats": 3, "profile_updates": 2}
TINY = {"envs": [2], "reset_envs": [4], "mappo": [4], "iql": [], "ippo": [], "tj_hard": [],
        "updates": 1, "repeats": 1, "profile_updates": 1}


def load(name: str):
    """A sibling benchmark script as a module."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(out_dir: Path, sizes: dict, num_seeds: int, jaxmarl_script: Path | None,
        envs: list[str] | None) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    times = {}
    start = time.perf_counter()
    env_args = ["--num-envs", *map(str, sizes["envs"]), "--reset-num-envs",
                *map(str, sizes["reset_envs"]), "--repeats", str(sizes["repeats"]),
                "--obs-mode", "onehot", "index", "--out", str(out_dir / "throughput.json")]
    if envs:
        env_args += ["--env", *envs, "--no-peers"]
    load("throughput").main(env_args)
    times["throughput_s"] = time.perf_counter() - start
    start = time.perf_counter()
    train_args = ["--mappo-envs", *map(str, sizes["mappo"]), "--iql-envs",
                  *map(str, sizes["iql"]), "--ippo-mpe-envs", *map(str, sizes["ippo"]),
                  "--tj-hard-envs", *map(str, sizes["tj_hard"]),
                  "--num-seeds", str(num_seeds), "--updates", str(sizes["updates"]),
                  "--repeats", str(sizes["repeats"]), "--out",
                  str(out_dir / "train-throughput.json")]
    if jaxmarl_script is not None:
        train_args += ["--jaxmarl-script", str(jaxmarl_script)]
    rows = load("train_throughput").main(train_args)
    times["train_throughput_s"] = time.perf_counter() - start
    start = time.perf_counter()
    profile_args = ["--updates", str(sizes["profile_updates"]), "--repeats", "1",
                    "--out", str(out_dir / "profile.json")]
    if sizes is TINY:
        profile_args += ["--config", str(HERE.parent / "configs" /
                                         "mappo_commnet_traffic_junction_easy.yaml"),
                         "--set", "num_envs=4"]
    profiles = load("profile_learners").main(profile_args)
    times["profile_s"] = time.perf_counter() - start
    summary = summarize(out_dir, rows, profiles, times)
    (out_dir / "summary.md").write_text(summary)
    print(summary)
    return times


def summarize(out_dir: Path, rows: list[dict], profiles: list[dict], times: dict) -> str:
    device = jax.devices()[0]
    lines = [f"# Accelerator run: {device.platform} ({device.device_kind}), jax "
             f"{jax.__version__}, {time.strftime('%Y-%m-%d %H:%M')}", "",
             "Environment tables: `python benchmarks/throughput.py --markdown "
             f"{out_dir / 'throughput.json'}`", "",
             "| learner | env | N | seeds | env-steps/s | updates/s | compile s |",
             "|---|---|--:|--:|--:|--:|--:|"]
    for r in rows:
        env = r["env"] + (f" ({r['obs_mode']})" if "obs_mode" in r else "")
        lines.append(f"| {r['algorithm']} | {env} | {r['num_envs']} | "
                     f"{r.get('num_seeds', 1)} | {r['env_steps_per_s']:,.0f} | "
                     f"{r['updates_per_s']:.2f} | {r['compile_s']:.1f} |")
    for p in profiles:
        lines += ["", f"Profile, {p['algorithm']} on {p['env']} (N = {p['num_envs']}): "
                  f"{p['wall_ms_per_update']:.1f} ms per update", "",
                  "| where the time goes | ms | share |", "|---|--:|--:|"]
        lines += [f"| {g['group']} | {g['ms']:.2f} | {g['share']:.1%} |" for g in p["groups"]]
    lines += ["", "Wall time of each part (s): " + json.dumps(
        {k: round(v, 1) for k, v in times.items()})]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="CPU-sized check of the script")
    parser.add_argument("--num-seeds", type=int, default=4)
    parser.add_argument("--jaxmarl-script", type=Path, default=None)
    parser.add_argument("--env", nargs="*", default=None, help="only these environments")
    args = parser.parse_args(argv)
    sizes = TINY if args.tiny else FULL
    return run(args.out_dir, sizes, 1 if args.tiny else args.num_seeds, args.jaxmarl_script,
               args.env)


if __name__ == "__main__":
    sys.exit(main() and 0)
