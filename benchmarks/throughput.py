"""Random-policy throughput of every registered environment under jit(scan(vmap(step))).

    python benchmarks/throughput.py                      # everything (< 10 min on 2 CPU cores)
    python benchmarks/throughput.py --env TrafficJunction-hard-v0 --num-envs 1 1024
    python benchmarks/throughput.py --obs-mode onehot uint8 index --no-peers
    python benchmarks/throughput.py --num-envs 1 1024 8192 65536 --out gpu.json   # on a GPU

What one run measures and prints (and writes as JSON, by default to
``benchmarks/results/throughput-<platform>.json``):

1. **Throughput** for each environment (and each ``--obs-mode`` it accepts) and batch size N:
   env-steps/s, agent-steps/s, compile time, and the bytes one env-step writes (the new state
   plus the observation, one environment, from ``jax.eval_shape``). The same harness runs two
   peers from PyPI as reference points: JaxMARL's ``MPE_simple_spread_v3`` (dicts keyed by
   agent, actions sampled from its per-agent spaces) and gymnax's ``CartPole-v1``; each
   auto-resets the way its library does (a full reset computed every step and selected).
2. **Two floors**, so a number can be read against what the machine allows:
   - memory: ``bandwidth / bytes_per_env_step`` env-steps/s, where ``bandwidth`` is measured
     in this run (a jitted ``x + 1`` over a large float32 array, bytes read + written) and
     ``bytes_per_env_step`` counts only the writes a step cannot avoid (new state + obs; the
     read of the old state and every intermediate are not counted). The floor is therefore an
     optimistic *upper bound* on env-steps/s: measured/floor <= 1 once the batch no longer
     fits in cache (at small N everything stays in cache, and the ratio can exceed 1).
   - compute ("null env"): the same harness with an environment that does nothing but consume
     its actions and step keys, i.e. only the per-step key splitting and action sampling. For
     an environment that writes ~100 bytes per step, this, not memory, bounds the rate.
3. **Auto-reset share** at the N in ``--reset-num-envs``: the harness with ``env.step``
   against the same with ``env.transition`` (the identical transition, no
   reset computed), interleaved; ``share = 1 - t_no_reset / t_step``. Where the share is at
   least ``--optimistic-min-share`` (or with ``--optimistic all``), the batch is also run
   through ``dcgenv.OptimisticResetVecEnv`` (``--reset-ratio``), giving its speed-up.

Timing: the initial batch is built outside the timed call; each timed call runs
``num_steps`` steps and keeps only the final carry (no trajectory). The step function is
compiled ahead of time (``lower().compile()``, reported as compile time), then run
``--repeats`` times (variants of one configuration interleaved) and the best time is kept.
``--num-steps auto`` (the default) uses ``clip(2**16 // N, 8, 200)`` steps per call.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import dcgenv
from dcgenv.core import OBS_MODES

PEERS = ("jaxmarl:MPE_simple_spread_v3", "gymnax:CartPole-v1")


# ---- helpers ------------------------------------------------------------------------------

def tree_bytes(tree) -> int:
    return sum(np.dtype(x.dtype).itemsize * int(np.prod(x.shape))
               for x in jax.tree.leaves(tree) if hasattr(x, "dtype"))


def auto_steps(num_envs: int) -> int:
    return int(np.clip(2**16 // num_envs, 8, 200))


def make_run(init: Callable, sample: Callable, step: Callable, num_envs: int, num_steps: int):
    """The harness: ``init(key) -> carry`` and ``run(carry, key) -> carry``, both jitted.

    Each scan step splits its key into an action key and a step key, samples a batch of
    random actions with ``sample(keys[N])`` and advances with ``step(key, carry, actions)``
    (which splits the step key into N itself).
    """

    def run(carry, key):
        def body(carry, key):
            key_act, key_step = jax.random.split(key)
            actions = sample(jax.random.split(key_act, num_envs))
            return step(key_step, carry, actions), None

        return jax.lax.scan(body, carry, jax.random.split(key, num_steps))[0]

    return jax.jit(init), jax.jit(run, donate_argnums=0)


def vmapped(env, params, num_envs: int, step_fn: Callable):
    """``(init, sample, step)`` for a dcgenv env, vmapping ``step_fn(key, state, actions, params)``
    over the batch; the carry is ``(obs, state)``."""
    init = lambda key: jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(key, num_envs), params)
    sample = jax.vmap(env.sample_actions, in_axes=(0, None), out_axes=0)
    sample_n = lambda keys: sample(keys, params)

    def step(key, carry, actions):
        out = jax.vmap(step_fn, in_axes=(0, 0, 0, None))(
            jax.random.split(key, num_envs), carry[1], actions, params)
        return out[0], out[1]

    return init, sample_n, step


def env_step(env):
    return lambda key, state, actions, params: env.step(key, state, actions, params)


def env_step_no_reset(env):
    return env.transition


def optimistic(env, params, num_envs: int, reset_ratio: float):
    venv = dcgenv.OptimisticResetVecEnv(env, num_envs, reset_ratio)
    init, sample, _ = vmapped(env, params, num_envs, env_step(env))

    def step(key, carry, actions):
        out = venv.step(key, carry[1], actions, params)
        return out[0], out[1]

    return init, sample, step


def null_env(env, params, num_envs: int):
    """The harness's own work only: key splitting and action sampling, consumed cheaply."""
    _, sample, _ = vmapped(env, params, num_envs, env_step(env))
    return lambda key: jnp.zeros(num_envs, jnp.uint32), sample, null_env_step(num_envs)


def null_env_step(num_envs: int):
    """A step that only folds the N step keys and the actions into a uint32 counter, so that
    neither the key splitting nor the action sampling is optimised away."""

    def as_u32(x):
        x = x.reshape(num_envs, -1)
        if jnp.issubdtype(x.dtype, jnp.floating):
            x = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
        return x.astype(jnp.uint32).sum(axis=1)

    def step(key, carry, actions):
        keys = jax.random.key_data(jax.random.split(key, num_envs)).reshape(num_envs, -1)
        return carry + keys[:, 0] + sum(as_u32(a) for a in jax.tree.leaves(actions))

    return step


class Timed:
    """One compiled configuration: builds the initial carry once, then times calls of ``run``,
    each continuing from the last one's carry (donated, so no fresh buffers are allocated and
    page-faulted on every call: at N = 8192 the carry of a large env is close to a GiB)."""

    def __init__(self, init, run, key):
        self.carry = jax.block_until_ready(init(key))
        start = time.perf_counter()
        self.compiled = run.lower(self.carry, key).compile()
        self.compile_s = time.perf_counter() - start
        self.best = math.inf

    def __call__(self, key) -> float:
        start = time.perf_counter()
        self.carry = jax.block_until_ready(self.compiled(self.carry, key))
        self.best = min(self.best, time.perf_counter() - start)
        return self.best


def time_interleaved(timed: dict[str, Timed], repeats: int, seed: int = 1) -> None:
    for i in range(repeats):
        for t in timed.values():
            t(jax.random.key(seed + i))


def compile_and_time(harnesses: dict[str, tuple], num_envs: int, num_steps: int,
                     repeats: int) -> dict[str, Timed]:
    timed = {}
    for name, (init, sample, step) in harnesses.items():
        timed[name] = Timed(*make_run(init, sample, step, num_envs, num_steps), jax.random.key(0))
    time_interleaved(timed, repeats)
    return timed


# ---- measurements -------------------------------------------------------------------------

def measure_bandwidth(size_mib: int | None = None, repeats: int = 10) -> dict:
    """Best-of-``repeats`` bytes/s of a jitted ``x + 1`` over a float32 array, counting the
    bytes read and written. The input is donated, so the output reuses its buffer: without
    that, every call page-faults a fresh buffer and measures the kernel, not the memory."""
    if size_mib is None:
        size_mib = 1024 if jax.devices()[0].platform != "cpu" else 256
    x = jnp.ones(size_mib * 2**20 // 4, jnp.float32)
    f = jax.jit(lambda x: x + 1.0, donate_argnums=0).lower(x).compile()
    x = jax.block_until_ready(f(x))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        x = jax.block_until_ready(f(x))
        seconds.append(time.perf_counter() - start)
    moved = 2 * x.nbytes
    del x
    return {"array_mib": size_mib, "bytes_moved": moved, "seconds": min(seconds),
            "bytes_per_s": moved / min(seconds),
            "median_bytes_per_s": moved / float(np.median(seconds))}


_NULL_CACHE: dict[tuple, float] = {}


def measure_null(env, params, num_envs: int, num_steps: int, repeats: int) -> float:
    """env-steps/s of the null-env harness with ``env``'s action sampling (cached)."""
    shapes = jax.eval_shape(env.sample_actions, jax.random.key(0), params)
    cache_key = (type(env).__name__, env.num_agents, str(shapes), num_envs, num_steps)
    if cache_key not in _NULL_CACHE:
        t = compile_and_time({"null": null_env(env, params, num_envs)}, num_envs, num_steps,
                             repeats)["null"]
        _NULL_CACHE[cache_key] = num_envs * num_steps / t.best
    return _NULL_CACHE[cache_key]


def row(label: str, num_agents: int, num_envs: int, num_steps: int, timed: Timed,
        bytes_state: int, bytes_obs: int, null_rate: float, bandwidth: float) -> dict:
    rate = num_envs * num_steps / timed.best
    written = bytes_state + bytes_obs
    mem_floor = bandwidth / written
    return {"env": label, "num_envs": num_envs, "num_steps": num_steps, "agents": num_agents,
            "env_steps_per_s": rate, "agent_steps_per_s": rate * num_agents,
            "compile_s": timed.compile_s, "seconds": timed.best,
            "bytes_state": bytes_state, "bytes_obs": bytes_obs, "bytes_per_env_step": written,
            "working_set_bytes": num_envs * (2 * bytes_state + bytes_obs),
            "mem_floor_env_steps_per_s": mem_floor, "measured_over_mem_floor": rate / mem_floor,
            "null_env_steps_per_s": null_rate, "measured_over_null": rate / null_rate}


def obs_mode_supported(env_id: str) -> bool:
    env, _ = dcgenv.make(env_id)
    return "obs_mode" in inspect.signature(type(env).__init__).parameters


def measure_env(env_id: str, num_envs: int, num_steps: int, repeats: int, bandwidth: float,
                obs_mode: str = "onehot", reset_variants: bool = False,
                reset_ratio: float = 0.1, optimistic_mode: str = "auto",
                optimistic_min_share: float = 0.1) -> tuple[dict, dict | None]:
    """Throughput row for one (env, obs mode, N); with ``reset_variants`` also the
    auto-reset share and (where it is large enough) the optimistic-reset speed-up."""
    # "onehot" stands for each env's default encoding (ma-gym's is "float32", not one-hot)
    kwargs = {"obs_mode": obs_mode} if obs_mode != "onehot" and obs_mode_supported(env_id) else {}
    env, params = dcgenv.make(env_id, **kwargs)
    label = env_id if obs_mode == "onehot" else f"{env_id}[{obs_mode}]"
    harnesses = {"step": vmapped(env, params, num_envs, env_step(env))}
    if reset_variants:
        harnesses["no_reset"] = vmapped(env, params, num_envs, env_step_no_reset(env))
    timed = compile_and_time(harnesses, num_envs, num_steps, repeats)
    reset = reset_row(label, num_envs, num_steps, timed) if reset_variants else None
    if reset and (optimistic_mode == "all" or (optimistic_mode == "auto"
                                                 and reset["reset_share"] >= optimistic_min_share)):
        venv_harness = optimistic(env, params, num_envs, reset_ratio)
        timed.update(compile_and_time({"optimistic": venv_harness}, num_envs, num_steps, 0))
        time_interleaved(timed, repeats, seed=100)  # all variants again, the same number of runs
        reset = reset_row(label, num_envs, num_steps, timed)
        t_opt = timed["optimistic"].best
        reset.update(reset_ratio=reset_ratio,
                     num_resets=dcgenv.OptimisticResetVecEnv(env, num_envs, reset_ratio).num_resets,
                     optimistic_env_steps_per_s=num_envs * num_steps / t_opt,
                     optimistic_speedup=timed["step"].best / t_opt,
                     optimistic_compile_s=timed["optimistic"].compile_s)
    obs, state = jax.eval_shape(env.reset, jax.random.key(0), params)
    null_rate = measure_null(env, params, num_envs, num_steps, repeats)
    r = row(label, env.num_agents, num_envs, num_steps, timed["step"], tree_bytes(state),
            tree_bytes(obs), null_rate, bandwidth)
    return r, reset


def reset_row(label: str, num_envs: int, num_steps: int, timed: dict[str, Timed]) -> dict:
    t_step, t_no = timed["step"].best, timed["no_reset"].best
    return {"env": label, "num_envs": num_envs, "num_steps": num_steps,
            "env_steps_per_s": num_envs * num_steps / t_step,
            "no_reset_env_steps_per_s": num_envs * num_steps / t_no,
            "reset_share": 1.0 - t_no / t_step}


def peer_harness(peer: str, num_envs: int, step_kind: str = "step"):
    """``(init, sample, step, num_agents, obs, state)`` for a peer; ``step_kind`` 'step' is
    the library's auto-resetting step, 'no_reset' its ``step_env``."""
    lib, name = peer.split(":")
    if lib == "gymnax":
        import gymnax

        env, params = gymnax.make(name)
        space = env.action_space(params)
        init = lambda key: jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(key, num_envs), params)
        sample = jax.vmap(space.sample)
        fn = env.step if step_kind == "step" else env.step_env

        def step(key, carry, actions):
            out = jax.vmap(fn, in_axes=(0, 0, 0, None))(
                jax.random.split(key, num_envs), carry[1], actions, params)
            return out[0], out[1]

        obs, state = jax.eval_shape(env.reset, jax.random.key(0), params)
        return init, sample, step, 1, obs, state
    if lib == "jaxmarl":
        import jaxmarl

        env = jaxmarl.make(name)
        agents = tuple(env.agents)
        init = lambda key: jax.vmap(env.reset)(jax.random.split(key, num_envs))

        def sample_one(key):
            keys = jax.random.split(key, len(agents))
            return {a: env.action_space(a).sample(k) for a, k in zip(agents, keys, strict=True)}

        fn = env.step if step_kind == "step" else env.step_env

        def step(key, carry, actions):
            out = jax.vmap(fn)(jax.random.split(key, num_envs), carry[1], actions)
            return out[0], out[1]

        obs, state = jax.eval_shape(env.reset, jax.random.key(0))
        return init, jax.vmap(sample_one), step, len(agents), obs, state
    raise ValueError(f"unknown peer {peer!r}; known: {PEERS}")


def measure_peer(peer: str, num_envs: int, num_steps: int, repeats: int, bandwidth: float,
                 reset_variants: bool = False) -> tuple[dict, dict | None]:
    init, sample, step, num_agents, obs, state = peer_harness(peer, num_envs)
    harnesses = {"step": (init, sample, step)}
    if reset_variants:
        harnesses["no_reset"] = peer_harness(peer, num_envs, "no_reset")[:3]
    harnesses["null"] = (lambda key: jnp.zeros(num_envs, jnp.uint32), sample,
                         null_env_step(num_envs))
    timed = compile_and_time(harnesses, num_envs, num_steps, repeats)
    r = row(peer, num_agents, num_envs, num_steps, timed["step"], tree_bytes(state),
            tree_bytes(obs), num_envs * num_steps / timed["null"].best, bandwidth)
    return r, (reset_row(peer, num_envs, num_steps, timed) if reset_variants else None)



# ---- reporting ----------------------------------------------------------------------------

def machine_meta(argv: list[str]) -> dict:
    device = jax.devices()[0]
    cpu, mem = platform.processor() or platform.machine(), None
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in text.splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
        mem = round(kib / 2**20, 1)
    except (OSError, StopIteration):
        pass
    versions = {"jax": jax.__version__, "dcgenv": dcgenv.__version__,
                "python": platform.python_version()}
    for lib in ("jaxlib", "jaxmarl", "gymnax", "flax"):
        try:
            from importlib.metadata import version

            versions[lib] = version(lib)
        except Exception:  # noqa: BLE001 - optional
            pass
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {"versions": versions, "jax": jax.__version__, "platform": device.platform,
            "device": device.device_kind, "cpu_model": cpu, "cpu_cores": os.cpu_count(),
            "ram_gib": mem, "date": now,
            "command": " ".join([Path(sys.executable).name, *sys.argv[:1], *argv])}


HEADER = (f"{'environment':<34}{'N':>6}{'env-steps/s':>13}{'agent-steps/s':>14}{'compile':>8}"
          f"{'B/step':>8}{'mem floor':>12}{'meas/mem':>9}{'null env':>12}{'meas/null':>10}")


def format_row(r: dict) -> str:
    return (f"{r['env']:<34}{r['num_envs']:>6}{r['env_steps_per_s']:>13,.0f}"
            f"{r['agent_steps_per_s']:>14,.0f}{r['compile_s']:>8.1f}"
            f"{r['bytes_per_env_step']:>8,}{r['mem_floor_env_steps_per_s']:>12.3g}"
            f"{r['measured_over_mem_floor']:>9.2g}{r['null_env_steps_per_s']:>12.3g}"
            f"{r['measured_over_null']:>10.3f}")


RESET_HEADER = (f"{'environment':<34}{'N':>6}{'step/s':>12}{'no-reset/s':>12}{'reset share':>12}"
                f"{'optimistic/s':>13}{'M':>6}{'speed-up':>9}")


def format_reset_row(r: dict) -> str:
    opt = (f"{r['optimistic_env_steps_per_s']:>13,.0f}{r['num_resets']:>6}"
           f"{r['optimistic_speedup']:>9.2f}") if "optimistic_speedup" in r else \
        f"{'-':>13}{'-':>6}{'-':>9}"
    return (f"{r['env']:<34}{r['num_envs']:>6}{r['env_steps_per_s']:>12,.0f}"
            f"{r['no_reset_env_steps_per_s']:>12,.0f}{r['reset_share']:>12.1%}" + opt)


def floor_table(rows: list[dict]) -> list[str]:
    """Markdown rows: at each env's largest N, can it be within 2x of its memory floor here?

    The null env runs the same harness with no environment, so no environment in it is faster:
    where the null env is below half the memory floor, "within 2x" is out of reach for any
    implementation of that environment in this harness on this machine."""
    largest = {}
    for r in rows:
        if r["num_envs"] >= largest.get(r["env"], {"num_envs": -1})["num_envs"]:
            largest[r["env"]] = r
    lines = ["| environment | N | bytes/step | mem floor | null env | null/mem | meas/mem "
             "| within 2x of the floor |", "|---|--:|--:|--:|--:|--:|--:|---|"]
    for r in largest.values():
        null_over_mem = r["null_env_steps_per_s"] / r["mem_floor_env_steps_per_s"]
        verdict = ("yes" if r["measured_over_mem_floor"] >= 0.5 else
                   "no; reachable (null/mem >= 0.5)" if null_over_mem >= 0.5 else
                   "no; out of reach (null/mem < 0.5)")
        lines.append(f"| {r['env']} | {r['num_envs']} | {r['bytes_per_env_step']:,} "
                     f"| {r['mem_floor_env_steps_per_s']:.3g} "
                     f"| {r['null_env_steps_per_s']:.3g} | {null_over_mem:.2g} "
                     f"| {r['measured_over_mem_floor']:.2g} | {verdict} |")
    return lines


def markdown(result: dict) -> str:
    """The tables of a result (as written to JSON) in Markdown, for BENCHMARKS.md."""
    meta, bw = result["meta"], result["meta"]["bandwidth"]
    lines = [f"{meta['cpu_model']}, {meta['cpu_cores']} cores, {meta['ram_gib']} GiB RAM; "
             f"{meta['platform']} ({meta['device']}); jax {meta['jax']}; {meta['date']}; "
             f"`{meta['command']}`; memory bandwidth {bw['bytes_per_s'] / 1e9:.1f} GB/s "
             f"(read + write, best of the probe's calls"
             + (f"; median {bw['median_bytes_per_s'] / 1e9:.1f} GB/s" if "median_bytes_per_s" in bw
                else "") + ").", "",
             "| environment | N | env-steps/s | agent-steps/s | compile s | bytes/step "
             "| mem floor | meas/mem | null env | meas/null |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in result["rows"]:
        lines.append(f"| {r['env']} | {r['num_envs']} | {r['env_steps_per_s']:,.0f} "
                     f"| {r['agent_steps_per_s']:,.0f} | {r['compile_s']:.1f} "
                     f"| {r['bytes_per_env_step']:,} | {r['mem_floor_env_steps_per_s']:.3g} "
                     f"| {r['measured_over_mem_floor']:.2g} | {r['null_env_steps_per_s']:.3g} "
                     f"| {r['measured_over_null']:.3f} |")
    lines += ["", *floor_table(result["rows"])]
    if result.get("reset_rows"):
        lines += ["", "| environment | N | step/s | no-reset/s | reset share | optimistic/s "
                  "| M | speed-up |", "|---|--:|--:|--:|--:|--:|--:|--:|"]
        for r in result["reset_rows"]:
            opt = (f"{r['optimistic_env_steps_per_s']:,.0f} | {r['num_resets']} "
                   f"| {r['optimistic_speedup']:.2f}") if "optimistic_speedup" in r else "- | - | -"
            lines.append(f"| {r['env']} | {r['num_envs']} | {r['env_steps_per_s']:,.0f} "
                         f"| {r['no_reset_env_steps_per_s']:,.0f} | {r['reset_share']:.1%} "
                         f"| {opt} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    gpu = jax.devices()[0].platform != "cpu"
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", nargs="+", choices=dcgenv.registered(),
                        default=dcgenv.registered(), metavar="ID")
    parser.add_argument("--num-envs", nargs="+", type=int,
                        default=[1, 64, 1024, 8192, 65536] if gpu else [1, 64, 1024, 8192])
    parser.add_argument("--num-steps", default="auto",
                        help="steps per timed call, or 'auto' = clip(2**16 // N, 8, 200)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--obs-mode", nargs="+", choices=OBS_MODES, default=["onehot"])
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--reset-num-envs", nargs="*", type=int, default=[1024, 8192],
                        help="N at which to measure the auto-reset share (if also in --num-envs)")
    parser.add_argument("--optimistic", choices=("auto", "all", "none"), default="auto",
                        help="run OptimisticResetVecEnv where the reset share is at least "
                             "--optimistic-min-share (auto), everywhere, or nowhere")
    parser.add_argument("--optimistic-min-share", type=float, default=0.1)
    parser.add_argument("--reset-ratio", type=float, default=0.1)
    parser.add_argument("--bandwidth-mib", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None, metavar="JSON",
                        help="print the tables of an earlier run's JSON as Markdown and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        result = json.loads(args.markdown.read_text())
        print(markdown(result))
        return result
    steps_for = (auto_steps if args.num_steps == "auto"
                 else (lambda n, s=int(args.num_steps): s))

    meta = machine_meta(argv)
    meta.update(repeats=args.repeats, num_steps=args.num_steps, reset_ratio=args.reset_ratio)
    bw = measure_bandwidth(args.bandwidth_mib)
    meta["bandwidth"] = bw
    print(f"jax {meta['jax']} on {meta['platform']} ({meta['device']}; {meta['cpu_model']}, "
          f"{meta['cpu_cores']} cores); best of {args.repeats}; num_steps {args.num_steps}")
    print(f"memory bandwidth (x + 1 on {bw['array_mib']} MiB float32, read + write): "
          f"{bw['bytes_per_s'] / 1e9:.2f} GB/s")
    print(HEADER + "\n" + "-" * len(HEADER), flush=True)

    rows, reset_rows = [], []
    jobs = [(e, m) for m in args.obs_mode for e in args.env
            if m == "onehot" or obs_mode_supported(e)]
    skipped = [(e, m) for m in args.obs_mode for e in args.env if (e, m) not in jobs]
    for env_id, mode in jobs:
        for n in args.num_envs:
            r, reset = measure_env(env_id, n, steps_for(n), args.repeats, bw["bytes_per_s"],
                                   obs_mode=mode, reset_variants=n in args.reset_num_envs,
                                   reset_ratio=args.reset_ratio, optimistic_mode=args.optimistic,
                                   optimistic_min_share=args.optimistic_min_share)
            r["obs_mode"] = mode
            rows.append(r)
            print(format_row(r), flush=True)
            if reset:
                reset_rows.append(reset)
    if args.peers:
        for peer in PEERS:
            for n in args.num_envs:
                r, reset = measure_peer(peer, n, steps_for(n), args.repeats, bw["bytes_per_s"],
                                        reset_variants=n in args.reset_num_envs)
                rows.append(r)
                print(format_row(r), flush=True)
                if reset:
                    reset_rows.append(reset)
    if skipped:
        print(f"skipped (constructor has no obs_mode): {sorted({e for e, _ in skipped})}")
    if reset_rows:
        print("\nauto-reset share (1 - t_no_reset / t_step) and optimistic reset "
              f"(reset_ratio {args.reset_ratio})")
        print(RESET_HEADER + "\n" + "-" * len(RESET_HEADER))
        for r in reset_rows:
            print(format_reset_row(r))
    result = {"meta": meta, "rows": rows, "reset_rows": reset_rows}
    out = args.out or Path(__file__).parent / "results" / f"throughput-{meta['platform']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
