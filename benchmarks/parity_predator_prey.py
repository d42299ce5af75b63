"""Statistical parity of the Predator-Prey envs with IC3Net's and ma-gym's original code.

Three sub-commands (numbers and the exact runs: ``docs/parity.md``, "Predator-Prey"):

``original`` runs IC3Net's ``predator_prey_env.py`` (easy/medium/hard x mixed/cooperative/
competitive) and ma-gym's ``predator_prey.py`` (as marl-indep-comm builds it: 7x7, 4 predators,
2 prey, penalty -0.75) with a uniformly random policy. It needs only numpy < 2 (IC3Net's
``np.ogrid`` use breaks on numpy 2), never jax or dcgenv; small stand-ins replace what they
import from ``gym`` and ``PIL`` (rendering only), and both files are read from checkouts
*outside* this repository, never copied into it::

    git clone https://github.com/IC3Net/IC3Net /tmp/IC3Net
    git clone https://github.com/koulanurag/ma-gym /tmp/ma-gym
    python3 -m venv /tmp/ppvenv && /tmp/ppvenv/bin/pip install "numpy<2"
    /tmp/ppvenv/bin/python benchmarks/parity_predator_prey.py original \\
        --ic3net /tmp/IC3Net --ma-gym /tmp/ma-gym --episodes 4000 --out /tmp/pp_parity

It writes ``original.json`` (mean and standard error per statistic) and ``replay.npz``
(start positions, actions, observations, rewards and done flags of a few episodes per
configuration; ma-gym's with static prey, the only way to make its prey deterministic).

``ours`` plays the *first* episode of ``--episodes`` parallel dcgenv environments under
``jit``/``vmap`` (every first episode ends within the step limit, so short episodes are not
over-represented) and writes ``ours.json``; ``compare`` replays ``replay.npz`` through our
``step_env``/``get_obs`` from the same start states (observations, rewards, done flags must be
identical) and prints both sides' statistics with ``z = (ours - original) / sqrt(se^2 + se^2)``::

    python benchmarks/parity_predator_prey.py ours --episodes 4000 --out /tmp/pp_parity
    python benchmarks/parity_predator_prey.py compare --out /tmp/pp_parity

Statistics: success, team return (mean over agents of each agent's return), episode length;
IC3Net: ``on_prey_at_end`` (predators on the prey when the episode ends); ma-gym:
``captures`` (prey captured per episode), ``prey_seen_at_reset`` (prey cells in an agent's
first 5x5 window).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys
import types

import numpy as np

LEVELS = {"easy": (3, 5, 0, 20), "medium": (5, 10, 1, 40), "hard": (10, 20, 1, 80)}
MODES = ("mixed", "cooperative", "competitive")
REPLAY_EPISODES, REPLAY_MAGYM = 30, 200


def _summary(rows: list[dict]) -> dict:
    out = {"episodes": len(rows)}
    for k in rows[0]:
        x = np.asarray([r[k] for r in rows], np.float64)
        out[k] = [float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x)))]
    return out


# ---------------------------------------------------------------- the originals (numpy only)
def _shims() -> None:
    """What the two env files import from ``gym`` (<= 0.20) and ``PIL``, nothing more."""
    mods = {n: types.ModuleType(n) for n in ("gym", "gym.spaces", "gym.spaces.space",
                                             "gym.utils", "gym.utils.seeding", "PIL",
                                             "PIL.ImageColor", "PIL.Image", "PIL.ImageDraw")}

    class Space:
        def __init__(self, *args, **kwargs):
            self.args = args

    mods["gym.spaces.space"].Space = Space
    for name in ("Box", "Discrete", "MultiDiscrete"):
        setattr(mods["gym.spaces"], name, Space)
    mods["gym.spaces"].space = mods["gym.spaces.space"]
    # gym 0.19/0.20: a RandomState, whose randint excludes its upper bound
    mods["gym.utils.seeding"].np_random = lambda seed=None: (np.random.RandomState(seed), seed)
    mods["gym.utils"].seeding = mods["gym.utils.seeding"]
    mods["gym"].Env, mods["gym"].spaces, mods["gym"].utils = object, mods["gym.spaces"], \
        mods["gym.utils"]
    mods["PIL.ImageColor"].getcolor = lambda *args, **kwargs: (0, 0, 0)
    for name in ("ImageColor", "Image", "ImageDraw"):
        setattr(mods["PIL"], name, mods[f"PIL.{name}"])
    sys.modules.update(mods)


def _load(name: str, path: pathlib.Path, package_paths: dict[str, pathlib.Path] = ()):
    for pkg, where in dict(package_paths).items():  # parents for relative imports
        module = types.ModuleType(pkg)
        module.__path__ = [str(where)]
        sys.modules[pkg] = module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_original(ns) -> None:
    _shims()
    ic3 = _load("ic3net_pp", pathlib.Path(ns.ic3net) / "ic3net-envs/ic3net_envs/"
                "predator_prey_env.py")
    envs = pathlib.Path(ns.ma_gym) / "ma_gym/envs"
    mag = _load("magym_envs.predator_prey.predator_prey",
                envs / "predator_prey/predator_prey.py",
                {"magym_envs": envs, "magym_envs.predator_prey": envs / "predator_prey"})
    mag.draw_grid = lambda *args, **kwargs: None  # rendering only (PIL)
    out, results, replay = pathlib.Path(ns.out), {}, {}
    out.mkdir(parents=True, exist_ok=True)
    for i, (level, (n, dim, vision, max_steps)) in enumerate(LEVELS.items()):
        for j, mode in enumerate(MODES):
            np.random.seed(10 * i + j)  # the env draws from numpy's global generator
            acts = np.random.RandomState(10 * i + j + 1)
            env = ic3.PredatorPreyEnv()
            env.multi_agent_init(types.SimpleNamespace(
                dim=dim, vision=vision, moving_prey=False, mode=mode, enemy_comm=False,
                nenemies=1, nfriendly=n, no_stay=False))
            rows = []
            for e in range(ns.episodes):  # as IC3Net's Trainer.get_episode
                env.reset()
                tag, rec = f"ic3net/{level}/{mode}/{e}", e < REPLAY_EPISODES
                if rec:
                    replay[f"{tag}/pred"], replay[f"{tag}/prey"] = (
                        env.predator_loc.copy(), env.prey_loc[0].copy())
                ret, steps = np.zeros(n), []
                for t in range(max_steps):
                    a = acts.randint(0, 5, size=n)
                    obs, reward, done, _ = env.step(a)
                    ret += reward
                    steps.append((a, obs.copy(), reward.copy(), done) if rec else None)
                    if done or t == max_steps - 1:
                        break
                ret += env.reward_terminal()
                if rec:
                    names = ("acts", "obs", "rew", "done")
                    for k, v in zip(names, zip(*steps, strict=True), strict=True):
                        replay[f"{tag}/{k}"] = np.array(v)
                on_prey = np.all(env.predator_loc == env.prey_loc, axis=1)
                rows.append({"success": float(on_prey.all()), "team_return": ret.mean(),
                             "length": t + 1, "on_prey_at_end": float(on_prey.sum())})
            results[f"{level}/{mode}"] = _summary(rows)
            print(level, mode, results[f"{level}/{mode}"], flush=True)
    for probs, episodes, seed in [(None, ns.episodes, 100), ([0, 0, 0, 0, 1], REPLAY_MAGYM, 9)]:
        extra = {} if probs is None else {"prey_move_probs": probs}
        env = mag.PredatorPrey(grid_shape=(7, 7), n_agents=4, n_preys=2, penalty=-0.75,
                               **extra)
        env.seed(seed)
        acts, rows = np.random.RandomState(seed + 1), []
        for e in range(episodes):  # as marl-indep-comm's RolloutWorker.generate_episode
            obs, tag = env.reset(), f"magym/{e}"
            if probs is not None:
                replay[f"{tag}/pred"] = np.array([env.agent_pos[i] for i in range(4)])
                replay[f"{tag}/prey"] = np.array([env.prey_pos[i] for i in range(2)])
                replay[f"{tag}/obs0"] = np.array(obs)
            seen, dones, ret, steps = np.mean([sum(o[2:27]) for o in obs]), [False], 0.0, []
            while not all(dones):
                a = acts.randint(0, 5, size=4)
                obs, rewards, dones, info = env.step(list(a))
                ret += rewards[0]
                steps.append(None if probs is None else (
                    a, np.array(obs), rewards, all(dones), list(info["prey_alive"])))
            if probs is not None:
                for k, v in zip(("acts", "obs", "rew", "done", "alive"), zip(*steps, strict=True),
                                strict=True):
                    replay[f"{tag}/{k}"] = np.array(v)
            captured = 2 - sum(info["prey_alive"])
            rows.append({"success": float(captured == 2), "team_return": ret,
                         "length": len(steps), "captures": captured,
                         "prey_seen_at_reset": seen})
        if probs is None:
            results["magym"] = _summary(rows)
            print("magym", results["magym"], flush=True)
    results["numpy"] = np.__version__
    (out / "original.json").write_text(json.dumps(results, indent=1))
    np.savez_compressed(out / "replay.npz", **replay)


# ---------------------------------------------------------------- ours (jax)
def _configs():
    configs = {f"{lv}/{m}": (f"PredatorPrey-{lv}-v0", {"mode": m}) for lv in LEVELS for m in MODES}
    return {**configs, "magym": ("PredatorPrey-magym-v0", {})}


def first_episodes(env, params, key, num_envs: int, num_steps: int):
    """Per-episode statistics of the first episode of ``num_envs`` random-policy envs."""
    import jax
    import jax.numpy as jnp

    magym = hasattr(env, "num_prey")
    key_reset, key_run = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(key_reset, num_envs), params)
    extra = {"prey_seen_at_reset": obs[..., 2:27].sum(-1).mean(-1)} if magym else {}
    last_keys = {"success": "success", ("captures" if magym else "on_prey_at_end"):
                 ("captured" if magym else "on_prey")}

    def body(carry, key):
        state, ended, stats = carry
        key_act, key_step = jax.random.split(key)
        actions = jax.vmap(env.sample_actions, in_axes=(0, None))(
            jax.random.split(key_act, num_envs), params)
        _, state, reward, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(key_step, num_envs), state, actions, params)
        now = ~ended & (term | trunc)
        new = {"team_return": stats["team_return"] + jnp.where(ended, 0.0, reward.mean(-1)),
               "length": stats["length"] + ~ended}
        for k, src in last_keys.items():
            new[k] = jnp.where(now, info[src].astype(jnp.float32), stats[k])
        return (state, ended | now, new), None

    zeros = jnp.zeros(num_envs, jnp.float32)
    stats = {"team_return": zeros, "length": jnp.zeros(num_envs, jnp.int32),
             **{k: zeros for k in last_keys}}
    (_, ended, stats), _ = jax.lax.scan(body, (state, jnp.zeros(num_envs, bool), stats),
                                        jax.random.split(key_run, num_steps))
    return ended, {**stats, **extra}


def run_ours(ns) -> None:
    import jax

    import dcgenv

    run = jax.jit(first_episodes, static_argnums=(0, 3, 4))
    results, chunk = {}, 500
    for name, (env_id, overrides) in _configs().items():
        env, params = dcgenv.make(env_id, **overrides)
        rows = []
        for i in range(-(-ns.episodes // chunk)):
            ended, stats = run(env, params, jax.random.key(i), chunk,
                               int(params.max_steps_in_episode))
            assert bool(ended.all()), "a first episode did not end within the step limit"
            columns = [np.asarray(x, np.float64) for x in stats.values()]
            rows += [dict(zip(stats, v, strict=True)) for v in zip(*columns, strict=True)]
        results[name] = _summary(rows)
        print(name, results[name], flush=True)
    out = pathlib.Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ours.json").write_text(json.dumps(results, indent=1))


def replay(path: pathlib.Path) -> dict:
    """Replay the originals' recorded episodes through our rules; every value must agree."""
    import jax
    import jax.numpy as jnp

    import dcgenv
    from dcgenv.envs import predator_prey, predator_prey_magym

    data = np.load(path)
    data = {k: data[k] for k in data.files}
    episodes = sorted({k.rsplit("/", 1)[0] for k in data})
    cache, counts = {}, {"ic3net_steps": 0, "magym_steps": 0}
    for ep in episodes:
        g = {k.rsplit("/", 1)[1]: v for k, v in data.items() if k.rsplit("/", 1)[0] == ep}
        src, *rest = ep.split("/")
        name = ("/".join(rest[:2])) if src == "ic3net" else "magym"
        if name not in cache:
            env, params = (dcgenv.make(f"PredatorPrey-{rest[0]}-v0", mode=rest[1])
                           if src == "ic3net" else dcgenv.make(
                               "PredatorPrey-magym-v0", prey_move_probs=(0.0, 0, 0, 0, 1)))
            cache[name] = env, params, jax.jit(env.step_env), jax.jit(env.get_obs)
        env, params, step, get_obs = cache[name]
        zero = jnp.zeros((), jnp.int32)
        if src == "ic3net":
            state = predator_prey.EnvState(
                time=zero, predators=jnp.asarray(g["pred"], jnp.int32),
                prey=jnp.asarray(g["prey"], jnp.int32), frozen=jnp.zeros(env.num_agents, bool),
                catch_time=zero)
        else:
            state = predator_prey_magym.EnvState(
                time=zero, predators=jnp.asarray(g["pred"], jnp.int32),
                prey=jnp.asarray(g["prey"], jnp.int32), prey_alive=jnp.ones(2, bool))
            np.testing.assert_allclose(get_obs(state, params), g["obs0"], atol=1e-6)
        for t, a in enumerate(g["acts"]):
            state, reward, term, info = step(jax.random.key(t), state, jnp.asarray(a), params)
            state = state.replace(time=state.time + 1)
            obs = get_obs(state, params)
            obs = obs["view"] if src == "ic3net" else obs
            np.testing.assert_allclose(np.asarray(obs), g["obs"][t], atol=1e-6, err_msg=ep)
            np.testing.assert_allclose(np.asarray(reward), g["rew"][t], atol=1e-5, err_msg=ep)
            done = bool(term) or (src == "magym" and int(state.time) >= 100)
            assert done == bool(g["done"][t]), (ep, t)
            if src == "magym":
                assert np.asarray(info["prey_alive"]).tolist() == g["alive"][t].tolist(), ep
            counts[f"{src}_steps"] += 1
    return {"episodes": len(episodes), **counts}


def compare(ns) -> None:
    out = pathlib.Path(ns.out)
    if (out / "replay.npz").exists():
        print("replay: every observation, reward and done flag identical:",
              replay(out / "replay.npz"))
    ours = json.loads((out / "ours.json").read_text())
    ref = json.loads((out / "original.json").read_text())
    print("| configuration | statistic | dcgenv | original | z |\n|---|---|---|---|---|")
    for name, stats in ours.items():
        for k, v in stats.items():
            if k == "episodes":
                continue
            (m, se), (rm, rse) = v, ref[name][k]
            if se == rse == 0 and m == rm:
                continue  # equal by construction (fixed lengths, success 0)
            z = (m - rm) / np.hypot(se, rse)
            print(f"| {name} | {k} | {m:.4f} ± {se:.4f} | {rm:.4f} ± {rse:.4f} | {z:+.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("original", help="run the originals (numpy < 2 only)")
    p.add_argument("--ic3net", required=True, help="checkout of IC3Net/IC3Net")
    p.add_argument("--ma-gym", required=True, help="checkout of koulanurag/ma-gym")
    p = [p, sub.add_parser("ours", help="run dcgenv's envs")]
    for q in p:
        q.add_argument("--episodes", type=int, default=4000)
    p.append(sub.add_parser("compare", help="replay check and the table"))
    for q in p:
        q.add_argument("--out", default="/tmp/pp_parity")
    ns = parser.parse_args()
    {"original": run_original, "ours": run_ours, "compare": compare}[ns.command](ns)


if __name__ == "__main__":
    main()
