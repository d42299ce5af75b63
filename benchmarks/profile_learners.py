"""Where a learner's update spends its time: XLA's own per-op timings, grouped by what each op does.

    python benchmarks/profile_learners.py            # MAPPO default config, IQL PS+comm
    python benchmarks/profile_learners.py --config configs/mappo_predator_prey_easy.yaml \\
        --set num_envs=64

For each config: the trainer's compiled ``run`` (``--updates`` updates, one seed unless
``--set num_seeds=...``) is warmed up, then run ``--repeats`` times under ``jax.profiler``;
the trace's per-op durations are matched to the compiled HLO's ``op_name`` metadata (the
JAX name stack: ``jvp(...)`` is a forward pass that is differentiated, ``transpose(jvp(...))``
its backward pass, flax module names, and the ``jax.named_scope`` names the learners set:
``rollout``, ``act``, ``env``, ``gae``, ``learn``, ``minibatch``, ``optimizer``) and summed per
group (:data:`GROUPS`, first match wins). Prints a table per config (ms per update and share
of the summed op time; the update's wall time beside it) and writes JSON
(``benchmarks/results/profile-<platform>.json``). Op times are XLA's thunk durations: on a
multi-core CPU two independent ops can overlap, so their sum can exceed the wall time.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents import make_trainer  # noqa: E402
from baselines.config import ROOT, load  # noqa: E402
from benchmarks.train_throughput import run_meta  # noqa: E402

CONFIGS = (ROOT / "configs" / "mappo_commnet_traffic_junction_easy.yaml",
           ROOT / "configs" / "iql_ps_comm_predator_prey_magym.yaml")
NETWORKS = r"(Actor|Critic|QNetwork|MessageNetwork)"
# (group, regex on the op's name stack); the first that matches names the op.
GROUPS = (
    ("optimiser (optax update, clipping)", r"optimizer|optax|scale_by|clip_by"),
    ("random numbers (keys, channel noise, sampling)",
     r"threefry|random_bits|_uniform|_gumbel|random_split|_split|fold_in|random_wrap|_normal"),
    ("backward pass: {net}", r"transpose\(jvp\(.*" + NETWORKS),
    ("forward pass, differentiated: {net}", r"jvp\(.*" + NETWORKS),
    ("environment step (and auto-reset)", r"/env/|step_env|transition|get_obs|reset"),
    ("acting: {net} (rollout, no gradient)", NETWORKS),
    ("GAE / TD targets", r"/gae/|td_loss|target"),
    ("minibatch / replay-buffer gathers", r"minibatch|buffer|sample|gather"),
    ("progress callback", r"callback"),
)


def group_of(name_stack: str) -> str:
    for label, pattern in GROUPS:
        match = re.search(pattern, name_stack)
        if match:
            nets = re.findall(NETWORKS, name_stack)
            return label.format(net=nets[-1] if nets else "")
    return "other (loop, losses, metrics, copies)"


def op_names(hlo_text: str) -> dict[str, str]:
    """HLO instruction name -> its ``op_name`` metadata (the JAX name stack), for the ops
    that do work: control flow (``while``, ``conditional``, ``call``) is left out, its time
    being that of the ops inside it."""
    names, calls, inside, named, operands, computation = {}, {}, {}, {}, {}, None
    for line in hlo_text.splitlines():
        head = re.match(r"\s*(?:ENTRY )?%?([\w.\-]+) .*\{\s*$", line)
        if head and " = " not in line:  # a computation's header: its ops follow
            computation = head.group(1)
            continue
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = ", line)
        if not m:
            continue
        op = re.search(r'op_name="([^"]*)"', line)
        if op and computation is not None:
            inside.setdefault(computation, op.group(1))
        if op:
            named[m.group(1)] = op.group(1)
        operands[m.group(1)] = re.findall(r"%([\w.\-]+)", line.split(" = ", 1)[1])
        if not re.search(r"\s(while|conditional|call)\(", line):
            names[m.group(1)] = op.group(1) if op else ""
            called = re.search(r"calls=%?([\w.\-]+)", line)
            if called:
                calls[m.group(1)] = called.group(1)
    for name, computation in calls.items():  # fusions without metadata: their body's
        if not names[name]:
            names[name] = inside.get(computation, "")
    for _ in range(3):  # still none (some library-call fusions): their first named operand's
        for name in names:
            if not names[name]:
                names[name] = next((named.get(o, "") for o in operands.get(name, ())
                                    if named.get(o)), "")
        named = dict(names)
    return names


def profile(config, updates: int, repeats: int) -> dict:
    trainer = make_trainer(config)
    state = jax.jit(trainer.init)(jax.random.key(config.seed))
    compiled = jax.jit(trainer.run, static_argnums=1).lower(state, updates).compile()
    state, _ = jax.block_until_ready(compiled(state))  # warm-up (IQL: fills its buffer)
    names = op_names(compiled.as_text())
    with tempfile.TemporaryDirectory() as trace_dir:
        start = time.perf_counter()
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(repeats):
                state, _ = jax.block_until_ready(compiled(state))
        wall = (time.perf_counter() - start) / (repeats * updates)
        trace = glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)[0]
        events = json.load(gzip.open(trace))["traceEvents"]
    per_op = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e.get("name") in names:
            per_op[e["name"]] += e.get("dur", 0) / 1e3 / (repeats * updates)  # ms per update
    groups = collections.Counter()
    for op, ms in per_op.items():
        groups[group_of(names[op])] += ms
    total = sum(groups.values())
    return {"config": config.describe(), "env": config.env, "algorithm": config.algorithm,
            "num_envs": config.num_envs, "num_seeds": config.num_seeds,
            "wall_ms_per_update": wall * 1e3, "op_ms_per_update": total,
            "groups": [{"group": g, "ms": ms, "share": ms / total}
                       for g, ms in groups.most_common()],
            "top_ops": [{"op": op, "ms": ms, "name_stack": names[op][-160:]}
                        for op, ms in per_op.most_common(15)]}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="*", type=Path, default=list(CONFIGS))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides applied to every config")
    parser.add_argument("--updates", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    meta = run_meta()
    rows = []
    for path in args.config:
        r = profile(load(path, args.set), args.updates, args.repeats)
        rows.append(r)
        print(f"\n{path.name}: {r['wall_ms_per_update']:.1f} ms per update (wall), "
              f"{r['op_ms_per_update']:.1f} ms of XLA ops")
        print(f"| {'where the time goes':<52} | {'ms':>8} | {'share':>6} |")
        print(f"|{'-' * 54}|{'-' * 9}:|{'-' * 7}:|")
        for g in r["groups"]:
            print(f"| {g['group']:<52} | {g['ms']:>8.1f} | {g['share']:>6.1%} |", flush=True)
    out = args.out or ROOT / "benchmarks" / "results" / f"profile-{meta['platform']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
