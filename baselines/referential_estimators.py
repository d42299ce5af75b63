"""Pathwise gradients against REINFORCE on the referential game (RESULTS.md, row 1).

    python -m baselines.reproduce referential_estimators --budget cpu

Four ways to train the same speaker and listener (``baselines/referential.py``'s networks, EGG's
discrimination game ``Referential-v0``, equal batch size, the seeds vmapped inside one compiled
run):

- ``continuous``, ``ddcl``, ``gumbel``: pathwise. The env runs in its differentiable option
  (the reward is the listener's probability of the target) with the channel in training mode,
  and ``-log(reward)`` is differentiated listener -> channel -> speaker: the identity channel,
  DDCL's dithered ``z + eps`` (Freed et al. 2020, "Communication learning via backpropagation
  in discrete channels with unknown noise", AAAI), straight-through Gumbel-softmax (Jang et al.
  2017, ICLR; Havrylov & Titov 2017, NeurIPS).
- ``reinforce``: the speaker samples each token from a categorical over ``vocab_size``
  symbols, the env carries the sampled one-hots through the Gumbel channel in evaluation mode
  (which sends exactly those symbols), and the speaker's loss is
  ``dcgenv.comms.score_function_loss(-log reward, log_prob, baseline)`` (Williams 1992,
  Machine Learning 8) with a learned running-mean baseline (an exponential moving average of
  the batch loss, decay ``baseline_decay``; EGG's ``MeanBaseline``, facebookresearch/EGG,
  egg/core/baselines.py, is the cumulative mean) and an entropy bonus (as EGG's
  ``sender_entropy_coeff``, egg/core/reinforce_wrappers.py); the listener still gets its
  pathwise gradient of ``-log reward``, as in EGG's REINFORCE games.

Every ``eval_every`` updates each seed plays ``eval_batch`` fresh games greedily (channel in
evaluation mode, argmax symbols, the listener's argmax pick) and the speaker's per-game gradients
(``vmap(grad)`` over ``gsnr_batch`` games of the training loss) give its gradient
signal-to-noise ratio, ``dcgenv.comms.gsnr`` (Liu et al. 2020, "Understanding why neural
networks generalize well through GSNR of parameters", ICLR), averaged over the speaker's
parameters (the mean, and the median as a check against a few outliers).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from baselines import referential as ref
from dcgenv import checks, comms

ESTIMATORS = ("continuous", "ddcl", "gumbel", "reinforce")
GSNR_CAP = 1e12  # per-parameter GSNR cap: a gradient that never varies (no estimator noise)


@dataclasses.dataclass(frozen=True)
class Config:
    estimators: tuple[str, ...] = ESTIMATORS
    num_seeds: int = 3
    iters: int = 3000
    batch: int = 256
    eval_every: int = 100
    eval_batch: int = 1024
    gsnr_batch: int = 256
    gsnr_games: int = 16  # games of the fixed-game GSNR (gsnr_batch noise draws each)
    lr: float = 1e-3
    hidden: int = 64
    message_length: int = 4
    message_dim: int = 8
    vocab_size: int = 100
    delta: float = 0.2
    entropy_coef: float = 0.01  # REINFORCE only
    baseline_decay: float = 0.99  # REINFORCE's running-mean baseline
    target_accuracy: float = 0.95
    seed: int = 0

    def __post_init__(self):
        name = "referential_estimators"
        for est in self.estimators:
            checks.choice(name, "estimators", est, ESTIMATORS)
        for field in ("num_seeds", "iters", "batch", "eval_every", "eval_batch", "gsnr_batch",
                      "gsnr_games"):
            checks.integer(name, field, getattr(self, field), 2 if field in (
                "num_seeds", "gsnr_batch") else 1)
        if self.iters % self.eval_every:
            raise ValueError(f"{name}: iters ({self.iters}) must be a multiple of eval_every "
                             f"({self.eval_every})")


def ref_config(cfg: Config, estimator: str) -> ref.Config:
    """The ``baselines.referential`` config of one estimator (REINFORCE uses the Gumbel env)."""
    channel = "gumbel" if estimator == "reinforce" else estimator
    return ref.Config(channel=channel, message_length=cfg.message_length,
                      message_dim=cfg.message_dim, vocab_size=cfg.vocab_size, delta=cfg.delta,
                      hidden=cfg.hidden, batch=cfg.batch, eval_batch=cfg.eval_batch,
                      iters=cfg.iters, lr=cfg.lr, eval_every=cfg.eval_every)


def _episode_loss(nets, key, env, params, speaker, listener, reinforce: bool, baseline,
                  noise_key=None):
    """One game: per-game surrogate loss (its gradient is the estimator's), ``-log reward``.

    ``key`` draws the game and the estimator's noise (REINFORCE's samples, the channel's noise
    in ``step``); with ``noise_key`` the game still comes from ``key`` and the noise from
    ``noise_key`` (the same game, other draws of the estimator)."""
    k_msg, k_game = jax.random.split(key)
    k_reset, k_steps = jax.random.split(k_game)
    if noise_key is not None:
        k_msg, k_steps = jax.random.split(noise_key)
    obs, state = env.reset(k_reset, params)
    logits = speaker.apply(nets["speaker"], obs["target"][0])
    if reinforce:  # sample the tokens; the eval-mode Gumbel channel sends exactly these
        symbols = jax.random.categorical(k_msg, logits)
        log_probs = jax.nn.log_softmax(logits)
        log_prob = jnp.sum(jnp.take_along_axis(log_probs, symbols[:, None], -1))
        entropy = -jnp.sum(jnp.exp(log_probs) * log_probs)
        message = jax.nn.one_hot(symbols, logits.shape[-1])
    else:
        message, log_prob, entropy = logits, 0.0, 0.0
    k0, k1 = jax.random.split(k_steps)
    no_choice = jnp.zeros((2, env.n_candidates))
    actions = {"message": jnp.stack([message, jnp.zeros_like(message)]), "choice": no_choice}
    obs, state, _, _, _, info = env.step(k0, state, actions, params)
    choice = listener.apply(nets["listener"], obs["message"][1], obs["candidates"][1])
    actions = {"message": jnp.zeros_like(actions["message"]),
               "choice": jnp.stack([jnp.zeros_like(choice), choice])}
    _, _, reward, _, _, _ = env.step(k1, state, actions, params)
    nll = -jnp.log(jnp.maximum(reward[1], 1e-12))
    if reinforce:
        return comms.score_function_loss(nll, log_prob, baseline), nll, entropy
    return nll, nll, entropy


def make_run(cfg: Config, estimator: str):
    """``run(key) -> dict`` for one estimator, all seeds vmapped, jitted whole: per evaluation,
    accuracy ``[seeds, evals]``, training loss, GSNR mean and median of the speaker."""
    checks.choice("referential_estimators", "estimator", estimator, ESTIMATORS)
    rcfg = ref_config(cfg, estimator)
    reinforce = estimator == "reinforce"
    train_env, eval_env, params = ref.make_envs(rcfg)
    if reinforce:
        train_env = eval_env  # sampled one-hots sent as they are
    speaker = ref.Speaker(cfg.hidden, train_env.sent_shape)
    listener = ref.Listener(cfg.hidden)
    opt = optax.adam(cfg.lr)

    def episode(nets, key, baseline, noise_key=None):
        return _episode_loss(nets, key, train_env, params, speaker, listener, reinforce,
                             baseline, noise_key)

    def batch_loss(nets, key, baseline):
        loss, nll, entropy = jax.vmap(episode, in_axes=(None, 0, None))(
            nets, jax.random.split(key, cfg.batch), baseline)
        return jnp.mean(loss) - cfg.entropy_coef * jnp.mean(entropy), jnp.mean(nll)

    def init(key):
        key_s, key_l = jax.random.split(key)
        obs, _ = train_env.reset(key, params)
        nets = {"speaker": speaker.init(key_s, obs["target"][0]),
                "listener": listener.init(key_l, obs["message"][1], obs["candidates"][1])}
        return nets, opt.init(nets), jnp.zeros(())

    def update(carry, key):
        nets, opt_state, baseline = carry
        (_, nll), grads = jax.value_and_grad(batch_loss, has_aux=True)(nets, key, baseline)
        updates, opt_state = opt.update(grads, opt_state, nets)
        baseline = cfg.baseline_decay * baseline + (1 - cfg.baseline_decay) * nll
        return (optax.apply_updates(nets, updates), opt_state, baseline), nll

    def evaluate(nets, key, baseline):
        k_eval, k_gsnr = jax.random.split(key)
        _, info_0, info_1 = ref.play(nets, k_eval, eval_env, params, speaker, listener,
                                     cfg.eval_batch)
        accuracy = jnp.mean(info_1["success"])  # greedy: argmax symbols (REINFORCE too)

        def speaker_grad(key, noise_key=None):
            loss = lambda sp: episode({**nets, "speaker": sp}, key, baseline, noise_key)[0]
            return jax.grad(loss)(nets["speaker"])

        def ratios(grads):  # per-parameter GSNR, flat, capped (a deterministic gradient)
            flat = jnp.concatenate([x.ravel() for x in jax.tree.leaves(comms.gsnr(grads))])
            return jnp.minimum(flat, GSNR_CAP)
        between = ratios(jax.vmap(speaker_grad)(jax.random.split(k_gsnr, cfg.gsnr_batch)))

        def fixed_game(game_key):  # the estimator's own noise: one game, gsnr_batch draws
            noise = jax.random.split(jax.random.fold_in(game_key, 1), cfg.gsnr_batch)
            return ratios(jax.vmap(speaker_grad, in_axes=(None, 0))(game_key, noise))
        fixed = jnp.mean(jax.vmap(fixed_game)(
            jax.random.split(jax.random.fold_in(k_gsnr, 7), cfg.gsnr_games)), 0)
        return (accuracy, jnp.mean(between), jnp.median(between), jnp.mean(fixed),
                jnp.median(fixed))

    def one_seed(key):
        k_init, k_train, k_eval = jax.random.split(key, 3)
        n = cfg.iters // cfg.eval_every
        # evaluation i sees the nets after i chunks of eval_every updates (0: at init); one
        # scan over n + 1 steps, so the evaluation and the updates are each compiled once
        eval_keys = jnp.concatenate([jax.random.fold_in(k_eval, 2**20)[None],
                                     jax.random.split(k_eval, n)])
        train_keys = jax.random.split(k_train, n)
        train_keys = jnp.concatenate([train_keys, train_keys[:1]])

        def chunk(carry, xs):
            i, k_c, k_e = xs
            acc, g_mean, g_median, f_mean, f_median = evaluate(carry[0], k_e, carry[2])

            def updates(carry):
                carry, nll = jax.lax.scan(update, carry, jax.random.split(k_c, cfg.eval_every))
                return carry, jnp.mean(nll)
            carry, loss = jax.lax.cond(i < n, updates, lambda c: (c, jnp.zeros(())), carry)
            return carry, (loss, acc, g_mean, g_median, f_mean, f_median)

        _, (loss, acc, g_mean, g_median, f_mean, f_median) = jax.lax.scan(
            chunk, init(k_init), (jnp.arange(n + 1), train_keys, eval_keys))
        return {"loss": loss[:n], "accuracy": acc, "gsnr_mean": g_mean, "gsnr_median": g_median,
                "gsnr_fixed_mean": f_mean, "gsnr_fixed_median": f_median}

    @jax.jit
    def run(key):
        return jax.vmap(one_seed)(jax.random.split(key, cfg.num_seeds))

    return run


def games_to(accuracy: np.ndarray, games: np.ndarray, target: float) -> float | None:
    """Games played at the first evaluation whose accuracy is >= ``target`` (None: never)."""
    hit = np.nonzero(np.asarray(accuracy) >= target)[0]
    return float(games[hit[0]]) if hit.size else None


def run(cfg: Config, log=print) -> dict[str, Any]:
    """Train every estimator; return the result dict (per-estimator curves and summary)."""
    evals = np.arange(cfg.iters // cfg.eval_every + 1) * cfg.eval_every
    games = evals * cfg.batch
    out: dict[str, Any] = {"iteration": evals.tolist(), "games": games.tolist(),
                           "estimators": {}}
    for estimator in cfg.estimators:
        start = time.perf_counter()
        res = jax.tree.map(np.asarray, jax.block_until_ready(
            make_run(cfg, estimator)(jax.random.key(cfg.seed))))
        wall = time.perf_counter() - start
        acc = res["accuracy"]
        reach = [games_to(a, games, cfg.target_accuracy) for a in acc]
        entry = {
            "accuracy": acc.tolist(), "loss": res["loss"].tolist(),
            "gsnr_mean": res["gsnr_mean"].tolist(), "gsnr_median": res["gsnr_median"].tolist(),
            "gsnr_fixed_mean": res["gsnr_fixed_mean"].tolist(),
            "gsnr_fixed_median": res["gsnr_fixed_median"].tolist(),
            "final_accuracy_mean": float(acc[:, -1].mean()),
            "final_accuracy_std": float(acc[:, -1].std()),
            "games_to_target": reach,
            "games_to_target_mean": (float(np.mean(reach)) if all(r is not None for r in reach)
                                     else None),
            "wall_s": wall, "env_steps": int(2 * cfg.iters * cfg.batch * cfg.num_seeds),
            "games": int(cfg.iters * cfg.batch * cfg.num_seeds),
        }
        out["estimators"][estimator] = entry
        gm = res["gsnr_mean"].mean(0)
        log(f"{estimator:10s} final accuracy {entry['final_accuracy_mean']:.3f} ± "
            f"{entry['final_accuracy_std']:.3f}  games to {cfg.target_accuracy:.0%}: {reach}  "
            f"GSNR (mean over params) at evals 0/mid/last: {gm[0]:.3g} / "
            f"{gm[len(evals) // 2]:.3g} / {gm[-1]:.3g}  "
            f"({wall:.0f} s)")
    out["summary"] = summarize(cfg, out)
    return out


def summarize(cfg: Config, out: dict) -> dict:
    """Ratios pathwise / REINFORCE: GSNR at each checkpoint (seed means) and games to target."""
    est = out["estimators"]
    if "reinforce" not in est:
        return {}
    r = est["reinforce"]
    summary = {}
    for name, e in est.items():
        if name == "reinforce":
            continue
        g_ratio = (np.mean(e["gsnr_mean"], 0) / np.maximum(np.mean(r["gsnr_mean"], 0), 1e-30))
        if r["games_to_target_mean"] is None:
            speedup = None  # REINFORCE never reached the target: only a lower bound below
        elif e["games_to_target_mean"] is None:
            speedup = 0.0
        else:
            speedup = r["games_to_target_mean"] / e["games_to_target_mean"]
        bound = (out["games"][-1] / e["games_to_target_mean"]
                 if r["games_to_target_mean"] is None and e["games_to_target_mean"] else None)
        f_ratio = (np.mean(e["gsnr_fixed_median"], 0)
                   / np.maximum(np.mean(r["gsnr_fixed_median"], 0), 1e-30))
        summary[name] = {"gsnr_ratio": g_ratio.tolist(),
                         "gsnr_fixed_ratio": f_ratio.tolist(),
                         "gsnr_fixed_ratio_min_after_init": float(np.min(f_ratio[1:])),
                         "gsnr_fixed_target_met": bool(np.min(f_ratio[1:]) >= 10),
                         "gsnr_ratio_min_after_init": float(np.min(g_ratio[1:])),
                         "games_speedup": speedup, "games_speedup_lower_bound": bound,
                         "gsnr_target_met": bool(np.min(g_ratio[1:]) >= 10),
                         "games_target_met": bool((speedup or bound or 0) >= 5)}
    return summary


def plot(out: dict, path) -> None:
    """Accuracy against games played, mean and min-max band over seeds, one line each."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    games = np.asarray(out["games"])
    for name, e in out["estimators"].items():
        acc = np.asarray(e["accuracy"])
        (line,) = ax.plot(games, acc.mean(0), label=name)
        ax.fill_between(games, acc.min(0), acc.max(0), color=line.get_color(), alpha=0.2)
        ax2.semilogy(games, np.mean(e["gsnr_mean"], 0), color=line.get_color(), label=name)
        fixed = np.mean(e["gsnr_fixed_median"], 0)
        if fixed.max() < GSNR_CAP / 10:  # a deterministic estimator has no noise to plot
            ax2.semilogy(games, fixed, color=line.get_color(), ls="--")
    ax.axhline(0.95, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="games played", ylabel="greedy accuracy", title="Referential-v0, K = 2")
    ax2.set(xlabel="games played", ylabel="speaker GSNR",
            title="solid: between games (mean over params)\ndashed: fixed games (median)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(out: dict, target: float = 0.95) -> str:
    """The RESULTS.md table (markdown) of a :func:`run` result."""
    est, summ = out["estimators"], out["summary"]
    n = len(out["games"])
    points = sorted({0, n // 4, n // 2, n - 1})
    head = " / ".join(f"{out['games'][i]:,}" for i in points)
    lines = [f"| estimator | final accuracy | games to {target:.0%} (per seed) | GSNR between "
             f"games at {head} games | ratio vs REINFORCE (min after init) | GSNR of the "
             f"estimator's noise, fixed games, at {head} games | ratio vs REINFORCE (min after "
             f"init) | games ratio |",
             "|---|---|---|---|---|---|---|---|"]
    fmt = lambda x: "cap" if x >= GSNR_CAP / 10 else f"{x:.3g}"
    for name, e in est.items():
        g = np.mean(e["gsnr_mean"], 0)
        reach = ", ".join("not reached" if r is None else f"{r:,.0f}"
                          for r in e["games_to_target"])
        s = summ.get(name, {})
        ratio = f"{s['gsnr_ratio_min_after_init']:.3g}" if s else "1"
        f = np.mean(e["gsnr_fixed_median"], 0)
        f_ratio = fmt(s["gsnr_fixed_ratio_min_after_init"]) if s else "1"
        if not s:
            speed = "1"
        elif s["games_speedup"] is not None:
            speed = f"{s['games_speedup']:.2f}x"
        elif s["games_speedup_lower_bound"] is not None:
            speed = f">= {s['games_speedup_lower_bound']:.2f}x"
        else:
            speed = "n/a"
        lines.append(f"| {name} | {e['final_accuracy_mean']:.3f} ± {e['final_accuracy_std']:.3f} "
                     f"| {reach} | {' / '.join(f'{g[i]:.3g}' for i in points)} | {ratio} "
                     f"| {' / '.join(fmt(f[i]) for i in points)} | {f_ratio} | {speed} |")
    return "\n".join(lines)


def reproduce(budget: str, out_dir) -> dict:
    """RESULTS.md row ``referential_estimators``: train with ``configs/results/
    referential_estimators_<budget>.yaml``, write the JSON and the figure."""
    from baselines import reproduce as rep
    return rep.run_row("referential_estimators", budget, out_dir, Config, run, plot,
                       lambda out, cfg: table(out, cfg.target_accuracy),
                       lambda out: sum(e["env_steps"] for e in out["estimators"].values()))
