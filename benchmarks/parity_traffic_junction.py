"""Statistical parity of TrafficJunction-{easy,medium,hard}-v0 with IC3Net's original code.

Three sub-commands (numbers and the exact runs: ``docs/parity.md``, "Traffic Junction"):

``original`` runs IC3Net's ``traffic_junction_env.py`` with a uniformly random policy. It needs
only numpy (IC3Net used numpy 1.x), never jax or dcgenv, and stands in a 20-line shim for the
three names it imports from ``gym``; the original is read from a checkout *outside* this
repository and never copied into it::

    git clone https://github.com/IC3Net/IC3Net /tmp/IC3Net      # or any copy of ic3net-envs
    python3 -m venv /tmp/ic3venv && /tmp/ic3venv/bin/pip install "numpy<2"
    /tmp/ic3venv/bin/python benchmarks/parity_traffic_junction.py original \\
        --ic3net-envs /tmp/IC3Net/ic3net-envs --episodes 5000 --out /tmp/tj_parity

It writes, per level, ``original_<level>.json`` (per-episode statistics, the cell-id grid, the
routes, the curriculum's add_rate per epoch) and ``replay_<level>.npz`` (the full state and
observation of every step of a few episodes).

``ours`` runs dcgenv's environment the same way (``--episodes``, ``--out``), and ``compare``
(``--out``, the same folder) checks layouts, curriculum and observations value for value (our
``get_obs`` on the original's recorded states) and prints each statistic of both sides with
its standard error and the z-score of the difference::

    python benchmarks/parity_traffic_junction.py ours --episodes 5000 --out /tmp/tj_parity
    python benchmarks/parity_traffic_junction.py compare --out /tmp/tj_parity
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time
import types

LEVEL_ARGS = {  # IC3Net command-line values per level (README), fixed add_rate as MAGIC / DDCL
    "easy": dict(nagents=5, dim=6, max_steps=20, vision=0, add_rate=0.3,
                 curriculum=(0.1, 0.3, 250, 1250)),
    "medium": dict(nagents=10, dim=14, max_steps=40, vision=1, add_rate=0.2,
                   curriculum=(0.05, 0.2, 250, 1250)),
    "hard": dict(nagents=20, dim=18, max_steps=80, vision=1, add_rate=0.05,
                 curriculum=(0.02, 0.05, 250, 1250)),
}
METRICS = ("success", "collisions", "team_return", "length", "entered", "completed")
REPLAY_EPISODES = 20


def _tag(ns) -> str:
    return "" if ns.gas_prob == 0.5 else f"_gas{ns.gas_prob:g}"


# ---------------------------------------------------------------- the original (numpy only)
def _gym_shim() -> None:
    """``gym.Env``, the space classes and ``register`` that IC3Net's env package touches."""
    gym, gym_spaces = types.ModuleType("gym"), types.ModuleType("gym.spaces")
    envs, registration = types.ModuleType("gym.envs"), types.ModuleType("gym.envs.registration")

    class Space:
        def __init__(self, *args, **kwargs):
            self.args = args

    gym_spaces.Discrete = gym_spaces.Tuple = gym_spaces.MultiBinary = Space
    gym_spaces.MultiDiscrete = Space
    registration.register = lambda **kwargs: None
    gym.Env, gym.spaces, gym.envs, envs.registration = object, gym_spaces, envs, registration
    sys.modules.update({"gym": gym, "gym.spaces": gym_spaces, "gym.envs": envs,
                        "gym.envs.registration": registration})


def _make_original(level: str, env_cls, add_rate_range=None, curriculum=(0, 0)):
    a = LEVEL_ARGS[level]
    lo, hi = add_rate_range or (a["add_rate"], a["add_rate"])
    args = types.SimpleNamespace(dim=a["dim"], vision=a["vision"], add_rate_min=lo,
                                 add_rate_max=hi, curr_start=curriculum[0],
                                 curr_end=curriculum[1], difficulty=level, vocab_type="bool",
                                 nagents=a["nagents"])
    env = env_cls()
    env.multi_agent_init(args)
    return env


def run_original(ns) -> None:
    import numpy as np

    _gym_shim()
    sys.path.insert(0, str(pathlib.Path(ns.ic3net_envs).resolve()))
    from ic3net_envs.traffic_junction_env import TrafficJunctionEnv

    out = pathlib.Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    np.random.seed(ns.seed)
    for level in ns.levels:
        a = LEVEL_ARGS[level]
        env = _make_original(level, TrafficJunctionEnv)
        stats = {m: [] for m in METRICS}
        replay = {k: [] for k in ("alive", "route", "pos", "wait", "last_act", "obs", "reward")}
        start = time.time()
        for episode in range(ns.episodes):
            env.reset()
            ret, coll, entered, completed, length = np.zeros(env.ncar), 0, 0, 0, 0
            for _ in range(a["max_steps"]):  # IC3Net's trainer cuts the episode at max_steps
                length += 1
                before = env.cars_in_sys
                brake = np.random.uniform(size=env.ncar) >= ns.gas_prob
                obs, reward, _, info = env.step(brake.astype(int))
                ret += reward
                coll += int(np.sum(reward <= env.CRASH_PENALTY / 2))  # time cost > -1
                done = int(info["is_completed"].sum())
                completed += done
                entered += env.cars_in_sys - before + done
                if episode < REPLAY_EPISODES:
                    flat = np.stack([np.concatenate([np.ravel(x) for x in o]) for o in obs])
                    for k, v in (("alive", env.alive_mask), ("route", env.route_id),
                                 ("pos", env.car_route_loc), ("wait", env.wait),
                                 ("last_act", env.car_last_act), ("obs", flat),
                                 ("reward", reward)):
                        replay[k].append(np.array(v, np.float32))
            for m, v in zip(METRICS, (1 - env.has_failed, coll, ret.mean(), length, entered,
                                      completed), strict=True):
                stats[m].append(float(v))
        print(f"original {level}: {ns.episodes} episodes in {time.time() - start:.0f} s")
        lo, hi, c0, c1 = a["curriculum"]  # IC3Net's trainer resets with the epoch number
        cur = _make_original(level, TrafficJunctionEnv, (lo, hi), (c0, c1))
        rates = []
        for epoch in range(c1 + 51):
            cur.reset(epoch)
            rates.append(cur.add_rate)
        layout = dict(grid=env.grid.tolist(), vocab=env.vocab_size,
                      routes=[[np.asarray(p).tolist() for p in r] for r in env.routes])
        (out / f"original_{level}{_tag(ns)}.json").write_text(json.dumps(dict(
            episodes=ns.episodes, seed=ns.seed, numpy=np.__version__, stats=stats,
            layout=layout, curriculum=rates)))
        np.savez_compressed(out / f"replay_{level}{_tag(ns)}.npz",
                            **{k: np.stack(v) for k, v in replay.items()})


# ---------------------------------------------------------------- ours (jax)
def run_ours(ns) -> None:
    import jax
    import jax.numpy as jnp

    import dcgenv

    out = pathlib.Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    for level in ns.levels:
        env, params = dcgenv.make(f"TrafficJunction-{level}-v0")
        steps = params.max_steps_in_episode

        @jax.jit
        def episodes(key, env=env, params=params, steps=steps):
            """Metrics of one episode per environment; obs are not stored."""
            def one(key):
                key_reset, key_run = jax.random.split(key)
                _, state = env.reset(key_reset, params)
                zero = (jnp.zeros(()), jnp.zeros((), jnp.int32), jnp.zeros((), bool))

                def body(carry, key):
                    state, ret, coll, entered, completed, length, ended, success = carry
                    k_act, k_step = jax.random.split(key)
                    actions = (env.sample_actions(k_act, params) if ns.gas_prob == 0.5 else
                               jax.random.bernoulli(k_act, 1 - ns.gas_prob, (env.num_agents,))
                               .astype(jnp.int32))
                    _, state, reward, term, trunc, info = env.step(k_step, state, actions, params)
                    live = ~ended
                    done = term | trunc
                    return (state, ret + live * reward.mean(),
                            coll + live * info["collisions"],
                            entered + live * info["entered"],
                            completed + live * info["completed"], length + live,
                            ended | done, jnp.where(live & done, info["success"], success)), None

                carry = (state, zero[0], zero[1], zero[1], zero[1], zero[1], zero[2], zero[2])
                carry, _ = jax.lax.scan(body, carry, jax.random.split(key_run, steps))
                _, ret, coll, entered, completed, length, _, success = carry
                return success, coll, ret, length, entered, completed
            return jax.vmap(one)(key)

        stats = {m: [] for m in METRICS}
        start, chunk = time.time(), 500
        keys = jax.random.split(jax.random.key(ns.seed), -(-ns.episodes // chunk))
        for i, key in enumerate(keys):
            size = min(chunk, ns.episodes - i * chunk)
            for m, v in zip(METRICS, episodes(jax.random.split(key, size)), strict=True):
                stats[m].extend(map(float, v))
        print(f"ours {level}: {ns.episodes} episodes in {time.time() - start:.0f} s")
        (out / f"ours_{level}{_tag(ns)}.json").write_text(json.dumps(dict(
            episodes=ns.episodes, seed=ns.seed, stats=stats)))


# ---------------------------------------------------------------- compare (jax)
def _mean_se(xs):
    n = len(xs)
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / max(n - 1, 1)
    return mean, math.sqrt(var / n)


def compare(ns) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import dcgenv
    from dcgenv.envs.traffic_junction import curriculum_add_rate
    from dcgenv.envs.traffic_junction_layout import build_layout

    out, worst, ok = pathlib.Path(ns.out), 0.0, True
    for level in ns.levels:
        orig = json.loads((out / f"original_{level}{_tag(ns)}.json").read_text())
        mine = json.loads((out / f"ours_{level}{_tag(ns)}.json").read_text())
        lay = build_layout(level)
        same_grid = np.array_equal(lay.cell_ids, orig["layout"]["grid"])
        same_routes = [[list(map(list, p)) for p in r] for r in lay.routes] == \
            orig["layout"]["routes"]
        rates = [float(curriculum_add_rate(e, level)) for e in range(len(orig["curriculum"]))]
        same_curr = np.allclose(rates, orig["curriculum"], rtol=0, atol=1e-7)
        # our observation of the original's recorded states
        env, params = dcgenv.make(f"TrafficJunction-{level}-v0")
        rep = dict(np.load(out / f"replay_{level}{_tag(ns)}.npz"))
        _, state = env.reset(jax.random.key(0), params)
        get_obs, max_err = jax.jit(env.get_obs), 0.0
        for t in range(len(rep["alive"])):
            s = state.replace(alive=jnp.asarray(rep["alive"][t] > 0),
                              route=jnp.asarray(np.maximum(rep["route"][t], 0), jnp.int32),
                              pos=jnp.asarray(np.maximum(rep["pos"][t], 0), jnp.int32),
                              wait=jnp.asarray(rep["wait"][t], jnp.int32),
                              last_act=jnp.asarray(rep["last_act"][t], jnp.int32))
            got = np.asarray(get_obs(s, params)["obs"])
            max_err = max(max_err, float(np.abs(got - rep["obs"][t]).max()))
        print(f"\n{level}: cell ids equal {same_grid}, routes equal {same_routes}, curriculum "
              f"epochs 0..{len(rates) - 1} equal {same_curr}; obs on {len(rep['alive'])} "
              f"recorded original states: max |ours - original| = {max_err:.2e}")
        ok &= same_grid and same_routes and same_curr and max_err < 1e-6
        print(f"| metric | original ({orig['episodes']} ep.) | dcgenv ({mine['episodes']} ep.) "
              "| z |\n|---|---|---|---|")
        for m in METRICS:
            (mo, so), (mm, sm) = _mean_se(orig["stats"][m]), _mean_se(mine["stats"][m])
            se = math.hypot(so, sm)
            z = (mm - mo) / se if se > 0 else (0.0 if mm == mo else math.inf)
            worst = max(worst, abs(z))
            print(f"| {m} | {mo:.4f} ± {so:.4f} | {mm:.4f} ± {sm:.4f} | {z:+.2f} |")
    print(f"\npolicy: gas with probability {ns.gas_prob:g}; largest |z| = {worst:.2f}; "
          f"layouts, curriculum and observations identical: {ok}")
    return 0 if ok and worst < 4 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("original", "ours", "compare"))
    parser.add_argument("--out", default="/tmp/tj_parity")
    parser.add_argument("--episodes", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gas-prob", type=float, default=0.5,
                        help="each car picks gas with this probability (0.5: uniform policy)")
    parser.add_argument("--levels", nargs="+", default=list(LEVEL_ARGS), choices=list(LEVEL_ARGS))
    parser.add_argument("--ic3net-envs", help="path of IC3Net's ic3net-envs folder")
    ns = parser.parse_args()
    if ns.mode == "original":
        if not ns.ic3net_envs:
            parser.error("original needs --ic3net-envs")
        run_original(ns)
    elif ns.mode == "ours":
        run_ours(ns)
    else:
        return compare(ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
