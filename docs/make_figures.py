"""Make the figures of the docs (run from the repository root).

    python docs/make_figures.py                          # everything, about a minute on a CPU
    python docs/make_figures.py gif --checkpoint runs/RUN   # the GIF from a trained policy
    python docs/make_figures.py frames witsenhausen referential --out docs/images

Figures are written into ``--out DIR``, by default ``runs/figures/`` (not tracked by git), so
nothing replaces the tracked ones silently; ``--out docs/images`` regenerates the figures the
docs show.

- ``gif``: ``traffic_junction.gif``, one Traffic Junction episode. With ``--checkpoint`` the
  greedy policy of a ``baselines.train`` run (first seed; the run's config picks the
  environment), else every car always presses gas (``TrafficJunction-easy-v0``).
- ``frames``: one rendered frame per grid environment (``<env>.png``, used by the env pages).
- ``witsenhausen``: ``witsenhausen_gamma1.png``, the learned controller 1 stored in
  ``baselines/results/witsenhausen.json`` (``python -m baselines.witsenhausen`` writes it)
  against the best affine and the two-point policies.
- ``referential``: ``referential_messages.png``, a speaker trained briefly with
  ``baselines.referential`` (continuous channel): its messages for 2000 random objects; panel
  ``a`` projects them on the two principal directions of the ten per-value mean messages of
  attribute ``a`` and colours them by that attribute's value.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # agents/ and baselines/ run from the checkout
import dcgenv  # noqa: E402
from dcgenv import viz  # noqa: E402

FIGURES = ("gif", "frames", "witsenhausen", "referential")
OUT = ROOT / "runs" / "figures"  # --out docs/images replaces the tracked figures
FRAME_ENVS = ("TrafficJunction-easy-v0", "TrafficJunction-medium-v0",
              "TrafficJunction-hard-v0", "GridWorldGoal-v0", "PredatorPrey-medium-v0",
              "PredatorPrey-magym-v0")


def checkpoint_policy(run_dir: str):
    """``(env, params, policy, carry)``: the greedy policy of a ``baselines.train`` run."""
    from agents import networks as nets
    from agents.mappo import make_networks, make_trainer
    from baselines import checkpoint

    _, cfg = checkpoint.saved_config(run_dir)
    trainer = make_trainer(cfg)
    like = jax.eval_shape(trainer.init, jax.random.key(cfg.seed))
    state, _ = checkpoint.restore(run_dir, cfg, like)
    params = jax.tree.map(lambda x: x[0], state.runners.params["actor"])  # first seed
    env, env_params = cfg.environment
    n = env.num_agents
    actor, _ = make_networks(cfg, env, env_params)  # as agents.mappo builds it

    def policy(key, obs, carry):
        h, first = carry
        x = nets.flatten_obs(obs, n, cfg.agent_id)
        alive = next((obs[k] for k in ("alive", "active") if k in obs), jnp.ones(n, bool))
        h, dists, _ = actor.apply(params, h, x, alive.astype(bool), first, key, False)
        return nets.mode(dists), (h, jnp.zeros((), bool))

    width = cfg.hidden if cfg.encoder == "gru" else 1
    return env, env_params, policy, (jnp.zeros((n, width)), jnp.ones((), bool))


def make_gif(out: Path, checkpoint: str | None, seed: int) -> None:
    if checkpoint:
        env, params, policy, carry = checkpoint_policy(checkpoint)
    else:
        env, params = dcgenv.make("TrafficJunction-easy-v0")
        policy, carry = (lambda key, obs: jnp.zeros(env.num_agents, jnp.int32)), None
    states, length = viz.episode(env, params, jax.random.key(seed), policy, carry)
    frames = viz.render_states(env, states, params, cell_px=16)[: int(length)]
    path = viz.save_gif(frames, out / "traffic_junction.gif", fps=3)
    print(f"{path}: {len(frames)} frames of {env.name}, "
          f"{'checkpoint ' + checkpoint if checkpoint else 'always-gas policy'}")


def make_frames(out: Path, seed: int) -> None:
    from PIL import Image

    for env_id in FRAME_ENVS:
        env, params = dcgenv.make(env_id)
        if not viz.can_render(env):
            print(f"skipped {env_id}: no render method")
            continue
        states, length = viz.episode(env, params, jax.random.key(seed), num_steps=8)
        state = jax.tree.map(lambda x, t=int(length) - 1: x[t], states)
        image = np.asarray(env.render(state, params, cell_px=12))
        name = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", env_id.rsplit("-", 1)[0])
        path = out / f"{name.replace('-', '_').lower()}.png"
        Image.fromarray(image).save(path)
        print(f"{path}: {image.shape}")


def make_witsenhausen(out: Path) -> None:
    from dcgenv.envs import witsenhausen as W

    result = json.loads((ROOT / "baselines" / "results" / "witsenhausen.json").read_text())
    best, cfg = result["best"], result["config"]
    k, sigma = cfg["k"], cfg["sigma"]
    levels, slopes = np.array(best["levels"]), np.array(best["slopes"])
    x0 = np.linspace(-4 * sigma, 4 * sigma, 4001)
    i = np.searchsorted(np.array(best["thresholds"]), np.abs(x0), side="right")
    learned = np.sign(x0) * (levels[i] + slopes[i] * (np.abs(x0) - levels[i]))
    lam = W.best_affine_lambdas(k, sigma)[0]
    refs = result["references"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(x0, learned, lw=2, label=f"learned, J = {best['exact_cost']:.5f}")
    ax.plot(x0, sigma * np.sign(x0), "--", label=f"two-point, J = {refs['two_point']:.4f}")
    ax.plot(x0, lam * x0, ":", label=f"best affine, J = {refs['best_affine']:.2f}")
    density = np.exp(-0.5 * (x0 / sigma) ** 2)
    ax.fill_between(x0, -4 * sigma, -4 * sigma + 6 * density, color="grey", alpha=0.3,
                    label="density of $x_0$ (scaled)")
    ax.set(xlabel="$x_0$", ylabel=r"$x_1 = x_0 + \gamma_1(x_0)$",
           title=f"Witsenhausen controller 1 (k = {k}, σ = {sigma})")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "witsenhausen_gamma1.png", dpi=120)
    print(f"{out / 'witsenhausen_gamma1.png'}: exact cost {best['exact_cost']:.6f}")


def make_referential(out: Path, seed: int, iters: int) -> None:
    from baselines import referential as R

    cfg = R.Config(channel="continuous", iters=iters, eval_every=iters // 4, seed=seed)
    init, chunk, evaluate = R.make_train(cfg)
    nets, opt_state = init(jax.random.key(seed))
    for key in jax.random.split(jax.random.key(seed + 1), 4):
        nets, opt_state, _ = chunk(nets, opt_state, key)
    accuracy, _ = evaluate(nets, jax.random.key(seed + 2))
    train_env, _, _ = R.make_envs(cfg)
    speaker = R.Speaker(cfg.hidden, train_env.sent_shape)
    values = np.random.default_rng(seed).integers(0, cfg.n_values, (2000, cfg.n_attributes))
    targets = np.eye(cfg.n_values, dtype=np.float32)[values].reshape(len(values), -1)
    messages = np.asarray(jax.vmap(speaker.apply, in_axes=(None, 0))(nets["speaker"],
                                                                     targets))
    flat = messages.reshape(len(values), -1)
    flat = flat - flat.mean(0)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.6), layout="constrained")
    for a, ax in enumerate(axes):  # project on the main directions of the per-value means
        means = np.stack([flat[values[:, a] == v].mean(0) for v in range(cfg.n_values)])
        axes_a = np.linalg.svd(means - means.mean(0), full_matrices=False)[2][:2]
        xy = flat @ axes_a.T
        points = ax.scatter(xy[:, 0], xy[:, 1], c=values[:, a], cmap="tab10", s=5,
                            vmin=-0.5, vmax=cfg.n_values - 0.5)
        ax.set(title=f"coloured by attribute {a}", xticks=[], yticks=[])
    fig.colorbar(points, ax=axes, label="attribute value")
    fig.suptitle(f"Referential-v0 speaker messages ({cfg.message_length}×{cfg.message_dim} "
                 f"floats, continuous channel, {iters} updates, accuracy {float(accuracy):.3f})"
                 "\nprojected on the 2 main directions of the attribute's per-value mean "
                 "messages", fontsize=10)
    fig.savefig(out / "referential_messages.png", dpi=100)
    print(f"{out / 'referential_messages.png'}: listener accuracy {float(accuracy):.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # no argparse choices: Python 3.11 checks the whole default list against them and fails
    parser.add_argument("figures", nargs="*", default=list(FIGURES),
                        help=f"any of {', '.join(FIGURES)} (default: all)")
    parser.add_argument("--checkpoint", help="run directory of baselines.train (for gif)")
    parser.add_argument("--out", type=Path, default=OUT, metavar="DIR",
                        help="directory the figures go to (default: runs/figures; "
                             "docs/images replaces the tracked ones)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--referential-iters", type=int, default=1000)
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.figures) - set(FIGURES)):
        parser.error(f"unknown figures {unknown}; choose from {', '.join(FIGURES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in dict.fromkeys(args.figures):
        if name == "gif":
            make_gif(args.out, args.checkpoint, args.seed)
        elif name == "frames":
            make_frames(args.out, args.seed)
        elif name == "witsenhausen":
            make_witsenhausen(args.out)
        else:
            make_referential(args.out, args.seed, args.referential_iters)


if __name__ == "__main__":
    main()
