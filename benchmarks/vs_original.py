"""Default-mode throughput of the reproduced environments as a multiple of their originals.

Four of dcgenv's environment families reproduce published Python/NumPy code:

=============================== ===================================================================
ours                            original (read from a checkout *outside* this repository)
=============================== ===================================================================
TrafficJunction-{easy,medium,   IC3Net/IC3Net ``ic3net-envs/ic3net_envs/traffic_junction_env.py``
hard}-v0                        (IC3Net's README levels, fixed add_rate, as MAGIC / DDCL run it)
PredatorPrey-{easy,medium,      IC3Net/IC3Net ``ic3net-envs/ic3net_envs/predator_prey_env.py``
hard}-v0                        (mixed mode, static prey: IC3Net's README levels)
PredatorPrey-magym-v0           koulanurag/ma-gym ``ma_gym/envs/predator_prey/predator_prey.py``
                                (as marl-indep-comm builds it: 7x7, 4 predators, 2 prey, -0.75)
GridWorldGoal-v0                AdityaKapoor74/Multi-Agent-Limited-Comms
                                ``ToyProblem/CommunicatingGoalEnv.py`` (8x8, 50 steps, z_dim 4,
                                the authors' non-uniform goal table)
=============================== ===================================================================

Three sub-commands:

``original`` (numpy < 2 and gymnasium only, never jax or dcgenv) steps *one* original env with
uniformly random actions for ``--steps`` steps, resetting whenever an episode ends (at the
original's own done flag, or, for IC3Net, at the step limit its trainer cuts episodes at);
the resets are inside the timed loop, as in our auto-resetting ``step``; the first reset is
not, as our initial batch is not. Best of ``--repeats``. The originals are loaded with the
parity scripts' own stand-ins for ``gym`` and ``PIL`` (``parity_traffic_junction.py``,
``parity_predator_prey.py``); the GridWorld original imports the real ``gymnasium``::

    git clone https://github.com/IC3Net/IC3Net /tmp/IC3Net
    git clone https://github.com/koulanurag/ma-gym /tmp/ma-gym
    git clone https://github.com/AdityaKapoor74/Multi-Agent-Limited-Comms /tmp/MALC
    python3 -m venv /tmp/origvenv && /tmp/origvenv/bin/pip install "numpy<2" gymnasium
    /tmp/origvenv/bin/python benchmarks/vs_original.py original --ic3net /tmp/IC3Net \\
        --ma-gym /tmp/ma-gym --ddcl /tmp/MALC --out /tmp/vs_original

It writes ``original.json``: env-steps/s per our env id, each original's file and git commit,
python / numpy / gymnasium versions and the machine.

``ours`` times our environments in their *default* observation mode at N = 1 and N = 8192 with
``benchmarks/throughput.py``'s own harness (``measure_env``: ``jit(scan(vmap(step)))``,
auto-reset, random actions sampled inside the scan, best of ``--repeats``, plus that run's
memory floor and null env) and writes ``ours.json``; ``compare`` prints the Markdown table
(original env-steps/s, ours at N = 1 and N = 8192, the two ratios, and whether the issue's
target is met: >= 100x at N = 8192, or within 2x of the memory floor) and writes
``benchmarks/results/vs-original-cpu.json``::

    python benchmarks/vs_original.py ours --out /tmp/vs_original
    python benchmarks/vs_original.py compare --out /tmp/vs_original

What a "step" is: one env-step = one joint step of all agents of one environment, on both
sides (an agent-step count would multiply both sides by the same number of agents).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import platform
import subprocess
import sys
import time
import types

HERE = pathlib.Path(__file__).resolve().parent

TJ_LEVELS = ("easy", "medium", "hard")
ENV_IDS = (*(f"TrafficJunction-{lv}-v0" for lv in TJ_LEVELS),
           *(f"PredatorPrey-{lv}-v0" for lv in TJ_LEVELS), "PredatorPrey-magym-v0",
           "GridWorldGoal-v0")
REPOS = {"ic3net": "IC3Net/IC3Net", "ma_gym": "koulanurag/ma-gym",
         "ddcl": "AdityaKapoor74/Multi-Agent-Limited-Comms"}
SOURCES = {  # env id -> (checkout argument, file inside it)
    **{f"TrafficJunction-{lv}-v0": ("ic3net", "ic3net-envs/ic3net_envs/traffic_junction_env.py")
       for lv in TJ_LEVELS},
    **{f"PredatorPrey-{lv}-v0": ("ic3net", "ic3net-envs/ic3net_envs/predator_prey_env.py")
       for lv in TJ_LEVELS},
    "PredatorPrey-magym-v0": ("ma_gym", "ma_gym/envs/predator_prey/predator_prey.py"),
    "GridWorldGoal-v0": ("ddcl", "ToyProblem/CommunicatingGoalEnv.py"),
}
# the DDCL authors' goal table (dcgenv.envs.gridworld.DDCL_GOAL_WEIGHTS; a test checks they agree)
DDCL_GOAL_WEIGHTS = {(0, 0): 50, (3, 4): 25, (4, 3): 2, (7, 7): 1, (1, 6): 1, (6, 1): 1}
BIG_N = 8192
TARGET = 100.0


def sibling(name: str):
    """``benchmarks/<name>.py`` (the parity scripts, throughput.py) as a module, without putting
    ``benchmarks/`` on ``sys.path``."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in
                   pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu_model": cpu, "cpu_cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def git_commit(path: pathlib.Path) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# ---------------------------------------------------------------- the originals (numpy only)
def original_factories(ns) -> dict:
    """env id -> ``make(seed) -> (reset, step)``; ``step()`` takes one random joint action and
    returns whether the episode ended (then the harness calls ``reset()``)."""
    import numpy as np

    ppp, ptj = sibling("parity_predator_prey"), sibling("parity_traffic_junction")

    factories = {}
    if ns.ic3net:
        ptj._gym_shim()  # IC3Net's package __init__ imports gym.envs.registration
        sys.path.insert(0, str(pathlib.Path(ns.ic3net, "ic3net-envs").resolve()))
        from ic3net_envs.traffic_junction_env import TrafficJunctionEnv

        def make_tj(seed, level):
            np.random.seed(seed)  # the env draws from numpy's global generator
            env, rng = ptj._make_original(level, TrafficJunctionEnv), np.random.RandomState(seed)
            limit, t = ptj.LEVEL_ARGS[level]["max_steps"], [0]

            def reset():
                env.reset()
                t[0] = 0

            def step():  # IC3Net's trainer cuts every episode at max_steps; env never ends it
                _, _, done, _ = env.step(rng.randint(0, 2, size=env.ncar))
                t[0] += 1
                return done or t[0] >= limit

            return reset, step

        for lv in TJ_LEVELS:
            factories[f"TrafficJunction-{lv}-v0"] = lambda seed, lv=lv: make_tj(seed, lv)

    ppp._shims()  # what IC3Net's predator_prey_env.py and ma-gym import from gym and PIL
    if ns.ic3net:
        ic3 = ppp._load("ic3net_pp", pathlib.Path(ns.ic3net, SOURCES["PredatorPrey-easy-v0"][1]))

        def make_pp(seed, level):
            n, dim, vision, limit = ppp.LEVELS[level]
            np.random.seed(seed)
            env, rng, t = ic3.PredatorPreyEnv(), np.random.RandomState(seed), [0]
            env.multi_agent_init(types.SimpleNamespace(  # as parity_predator_prey.py
                dim=dim, vision=vision, moving_prey=False, mode="mixed", enemy_comm=False,
                nenemies=1, nfriendly=n, no_stay=False))

            def reset():
                env.reset()
                t[0] = 0

            def step():  # done: every predator on the prey (mixed); the trainer's max_steps
                _, _, done, _ = env.step(rng.randint(0, 5, size=n))
                t[0] += 1
                return done or t[0] >= limit

            return reset, step

        for lv in TJ_LEVELS:
            factories[f"PredatorPrey-{lv}-v0"] = lambda seed, lv=lv: make_pp(seed, lv)

    if ns.ma_gym:
        envs = pathlib.Path(ns.ma_gym, "ma_gym/envs")
        mag = ppp._load("magym_envs.predator_prey.predator_prey",
                        envs / "predator_prey/predator_prey.py",
                        {"magym_envs": envs, "magym_envs.predator_prey": envs / "predator_prey"})
        mag.draw_grid = lambda *args, **kwargs: None  # rendering only (PIL)

        def make_magym(seed):
            env = mag.PredatorPrey(grid_shape=(7, 7), n_agents=4, n_preys=2, penalty=-0.75)
            env.seed(seed)
            rng = np.random.RandomState(seed + 1)

            def step():  # done: both prey caught or the env's 100 steps
                _, _, dones, _ = env.step(list(rng.randint(0, 5, size=4)))
                return all(dones)

            return env.reset, step

        factories["PredatorPrey-magym-v0"] = make_magym

    if ns.ddcl:
        ddcl = ppp._load("ddcl_goal_env", pathlib.Path(ns.ddcl, SOURCES["GridWorldGoal-v0"][1]))

        def make_grid(seed):
            env = ddcl.CommunicatingGoalEnv(grid_size=8, max_steps=50, z_dim=4,
                                            goal_sampling_mode="non_uniform",
                                            goal_frequencies=DDCL_GOAL_WEIGHTS)
            env.reset(seed=seed)
            rng = np.random.RandomState(seed + 1)

            def step():  # speaker: z in [-1, 1]^4 (its Box); listener: one of 5 moves
                z = rng.uniform(-1.0, 1.0, 4).astype(np.float32)
                _, _, terminated, truncated, _ = env.step((z, rng.randint(0, 5)))
                return terminated or truncated

            return env.reset, step

        factories["GridWorldGoal-v0"] = make_grid
    return factories


def time_original(make, steps: int, repeats: int, seed: int = 0) -> dict:
    """Best-of-``repeats`` env-steps/s of ``steps`` steps of one env, resets included."""
    reset, step = make(seed)
    seconds, resets = [], 0
    for _ in range(repeats):
        reset()  # the starting state, outside the clock
        resets = 0
        start = time.perf_counter()
        for _ in range(steps):
            if step():
                reset()
                resets += 1
        seconds.append(time.perf_counter() - start)
    return {"env_steps_per_s": steps / min(seconds), "seconds": seconds, "steps": steps,
            "resets": resets}


def run_original(ns) -> dict:
    import numpy as np

    factories = original_factories(ns)
    roots = {"ic3net": ns.ic3net, "ma_gym": ns.ma_gym, "ddcl": ns.ddcl}
    results = {}
    for env_id in ns.env or ENV_IDS:
        if env_id not in factories:
            print(f"{env_id}: skipped (no checkout of its original given)")
            continue
        r = time_original(factories[env_id], ns.steps, ns.repeats, ns.seed)
        root, rel = SOURCES[env_id]
        r.update(repo=REPOS[root], file=str(pathlib.Path(roots[root], rel).resolve()),
                 commit=git_commit(pathlib.Path(roots[root])))
        results[env_id] = r
        print(f"{env_id:<28}{r['env_steps_per_s']:>12,.0f} env-steps/s  "
              f"({ns.steps} steps, {r['resets']} resets, best of {ns.repeats})", flush=True)
    try:
        from importlib.metadata import version

        gymnasium = version("gymnasium")
    except Exception:  # noqa: BLE001 - only the GridWorld original needs it
        gymnasium = None
    meta = {**machine(), "numpy": np.__version__, "gymnasium": gymnasium, "steps": ns.steps,
            "repeats": ns.repeats, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join([pathlib.Path(sys.executable).name, *sys.argv])}
    return write_json(ns.out, "original.json", {"meta": meta, "envs": results})


# ---------------------------------------------------------------- ours (jax)
def run_ours(ns) -> dict:
    throughput = sibling("throughput")  # its harness, floors and machine record

    bw = throughput.measure_bandwidth(ns.bandwidth_mib)
    print(f"memory bandwidth {bw['bytes_per_s'] / 1e9:.2f} GB/s", flush=True)
    rows = []
    for env_id in ns.env or ENV_IDS:
        for n in ns.num_envs:
            steps = throughput.auto_steps(n) if ns.num_steps == "auto" else int(ns.num_steps)
            # obs_mode "onehot" is throughput.py's name for each env's *default* encoding
            r, _ = throughput.measure_env(env_id, n, steps, ns.repeats, bw["bytes_per_s"])
            rows.append(r)
            print(throughput.format_row(r), flush=True)
    meta = throughput.machine_meta(sys.argv[1:])
    meta.update(repeats=ns.repeats, num_steps=ns.num_steps, bandwidth=bw)
    return write_json(ns.out, "ours.json", {"meta": meta, "rows": rows})


def write_json(out_dir, name: str, result: dict) -> dict:
    """``result`` as ``out_dir/name`` (the folder made if needed); returns ``result``."""
    path = pathlib.Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return result


# ---------------------------------------------------------------- compare (json only)
def comparison(original: dict, ours: dict, big_n: int = BIG_N) -> list[dict]:
    """One row per env id in both results: the rates, ratios, and the issue's verdict."""
    by = {(r["env"], r["num_envs"]): r for r in ours["rows"]}
    rows = []
    for env_id, o in original["envs"].items():
        one, big = by.get((env_id, 1)), by.get((env_id, big_n))
        if big is None:
            continue
        orig = o["env_steps_per_s"]
        ratio = big["env_steps_per_s"] / orig
        mem = big["measured_over_mem_floor"]
        rows.append({"env": env_id, "original_env_steps_per_s": orig,
                     "ours_n1_env_steps_per_s": one and one["env_steps_per_s"],
                     "ours_big_env_steps_per_s": big["env_steps_per_s"], "big_n": big_n,
                     "ratio_big": ratio,
                     "ratio_n1": one and one["env_steps_per_s"] / orig,
                     "meets_100x": ratio >= TARGET, "measured_over_mem_floor": mem,
                     "within_2x_of_mem_floor": mem >= 0.5,
                     "target_met": ratio >= TARGET or mem >= 0.5})
    return rows


def markdown(rows: list[dict]) -> str:
    big = rows[0]["big_n"] if rows else BIG_N

    def rate(x):
        return "-" if x is None else f"{x:,.0f}"

    def ratio(x):
        return "-" if x is None else f"{x:,.1f}x"

    lines = [f"| env id | original env-steps/s (1 env) | ours N=1 | ours N={big} "
             f"| ratio N={big} / original | ratio N=1 / original | >= {TARGET:.0f}x at N={big} "
             f"| meas/mem floor | target met (>= {TARGET:.0f}x or within 2x of floor) |",
             "|---|--:|--:|--:|--:|--:|---|--:|---|"]
    for r in rows:
        lines.append(f"| {r['env']} | {rate(r['original_env_steps_per_s'])} "
                     f"| {rate(r['ours_n1_env_steps_per_s'])} "
                     f"| {rate(r['ours_big_env_steps_per_s'])} | {ratio(r['ratio_big'])} "
                     f"| {ratio(r['ratio_n1'])} | {'yes' if r['meets_100x'] else 'no'} "
                     f"| {r['measured_over_mem_floor']:.2g} "
                     f"| {'yes' if r['target_met'] else 'no'} |")
    return "\n".join(lines)


def run_compare(ns) -> dict:
    out = pathlib.Path(ns.out)
    original = json.loads((out / "original.json").read_text())
    ours = json.loads((out / "ours.json").read_text())
    rows = comparison(original, ours, ns.big_n)
    table = markdown(rows)
    print(table)
    missing = [e for e in original["envs"] if e not in {r["env"] for r in rows}]
    if missing:
        print(f"(no N={ns.big_n} row in ours.json for: {', '.join(missing)})")
    result = {"original_meta": original["meta"], "ours_meta": ours["meta"],
              "originals": {k: {f: v.get(f) for f in ("repo", "file", "commit", "steps", "resets")}
                            for k, v in original["envs"].items()},
              "rows": rows, "markdown": table}
    dest = pathlib.Path(ns.result) if ns.result else \
        HERE / "results" / f"vs-original-{ours['meta'].get('platform', 'cpu')}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(result, indent=1))
    print(f"wrote {dest}")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("original", help="time the originals (numpy < 2, gymnasium; no jax)")
    p.add_argument("--ic3net", help="checkout of IC3Net/IC3Net (Traffic Junction, Predator-Prey)")
    p.add_argument("--ma-gym", help="checkout of koulanurag/ma-gym")
    p.add_argument("--ddcl", help="checkout of AdityaKapoor74/Multi-Agent-Limited-Comms")
    p.add_argument("--steps", type=int, default=20000, help="env-steps per timed repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    q = sub.add_parser("ours", help="time dcgenv's envs with throughput.py's harness")
    q.add_argument("--num-envs", nargs="+", type=int, default=[1, BIG_N])
    q.add_argument("--num-steps", default="auto",
                   help="steps per timed call, or 'auto' (throughput.py's clip(2**16 // N, 8, "
                        "200))")
    q.add_argument("--repeats", type=int, default=3)
    q.add_argument("--bandwidth-mib", type=int, default=None)
    for s in (p, q):
        s.add_argument("--env", nargs="+", choices=ENV_IDS, metavar="ID")
    c = sub.add_parser("compare", help="the Markdown table and the result JSON")
    c.add_argument("--big-n", type=int, default=BIG_N)
    c.add_argument("--result", default=None,
                   help="default benchmarks/results/vs-original-<platform>.json")
    for s in (p, q, c):
        s.add_argument("--out", default="/tmp/vs_original")
    ns = parser.parse_args(argv)
    return {"original": run_original, "ours": run_ours, "compare": run_compare}[ns.command](ns)


if __name__ == "__main__":
    main()
