"""Gradient-aware attention over the tokens of one message, on the referential game (issue 22).

    python -m baselines.reproduce attention_referential --budget cpu
    python -m baselines.attention_referential --budget smoke

With ``game: negotiation`` in its config the same cells and measures run on the one-round
prosocial negotiation of ``baselines/attention_negotiation.py`` (RESULTS.md row
``attention_negotiation``), where "accuracy" is the rate of best allocations.

The ablation of ``baselines/attention_ablation.py`` (MAPPO on Traffic Junction) moved to the
referential game, where MAPPO's alive mask would leave one sender per receiver: here the
listener's "senders" are the ``L`` tokens of the one message it receives. Learner: the
pathwise one of ``baselines/referential.py`` (``Referential-continuous-v0`` in its
differentiable option with the ``continuous`` channel, reward = the listener's probability of
the target, loss ``-log reward`` plus the prices below), seeds vmapped in one compiled run.

Token-level listener (:class:`TokenListener`): each token ``m_j`` (``[d]``) with a one-hot of
its position goes through an MLP to a feature ``v_j``; each candidate's embedding ``c_k`` is a
receiver, and the aggregation over the ``L`` tokens (``agents/attention.py``) is

- ``mean`` (CommNet, Sukhbaatar et al., NeurIPS 2016): ``u_k = mean_j v_j``;
- ``gated`` (IC3Net, Singh et al., ICLR 2019): ``u_k = mean_j sigmoid(w . v_j) v_j``;
- ``attention`` (TarMAC, Das et al., ICML 2019): ``u_k = sum_j softmax_j(q(c_k) . k(v_j) /
  sqrt(H)) v_j`` (:class:`agents.attention.GradientAwareAttention` with ``tau = 0``);
- ``gradient_aware``: the same scores plus ``tau * log(eps + g_j / mean g)``.

The logit of candidate ``k`` is ``c_k . Dense(u_k)``. ``g_j`` is the running mean (decay 0.9
per update, :func:`agents.attention.update_gradient_stat`) of ``||dL/dm_j||`` over the batch,
read through a ``dcgenv.comms`` tap on the received message, exactly as the MAPPO actor does
per sender; it starts at ones. Options of a cell (its name says which are on):

- ``+IB``: the speaker's message is a sample of :class:`agents.attention.InformationBottleneck`
  (Alemi et al., ICLR 2017) over the whole ``[L, d]`` message, its KL to ``N(0, I)`` in nats
  priced at ``bottleneck_price`` (or at a Lagrange multiplier moved toward
  ``bottleneck_budget`` nats when that is > 0, :func:`agents.attention.update_multiplier`);
- ``+k<k>``: the gradient budget (:func:`agents.attention.gradient_budget` with one column per
  token): the message's value reaches the listener unchanged, but only the ``k`` tokens with
  the largest ``g_j`` pass gradients back to the speaker;
- ``+fisher``: ``fisher_price`` times the mean effective rank of the listener's Jacobian of
  logits with respect to the (flattened) message, ``dcgenv.comms.fisher_rank`` (Roy &
  Vetterli, EUSIPCO 2007), over ``fisher_samples`` messages of the batch.

Measured per cell (``num_seeds`` seeds): accuracy (the listener's argmax, channel and
bottleneck in evaluation mode) on ``eval_batch`` fresh games every ``eval_every`` updates;
games played to reach ``target_accuracy`` (per seed and for the seed-mean curve); the final
accuracy; the KL in nats per message (``+IB``); the effective rank of the listener's Jacobian;
the mean attention weight per token; the backward-pass time (median of ``backward_repeats``
calls of the jitted gradient on one batch, after all training, cells one after another); and
post-hoc VQ: a k-means codebook (:mod:`agents.vq`) over whole messages (``[L * d]`` vectors,
one code word per message) fitted to the ``eval_batch`` messages of the final evaluation, then
the accuracy on fresh games with every message replaced by its nearest code word, against
``log2 K`` bits per message.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from agents import attention as attn
from agents import vq
from baselines import referential as ref
from dcgenv import checks, comms

ROW = "attention_referential"
AGGREGATES = ("mean", "gated", "attention", "gradient_aware")
GAMES = ("referential", "negotiation")
TITLES = {"referential": "Referential-continuous-v0",
          "negotiation": "one-round prosocial negotiation"}
NAME = "baselines.attention_referential"


@dataclasses.dataclass(frozen=True)
class Config:
    """A budget (``configs/results/attention_referential_<budget>.yaml``)."""

    cells: tuple[str, ...] = ()  # () = the full grid (:func:`grid`), else these cell names
    game: str = "referential"  # or "negotiation" (baselines/attention_negotiation.py)
    num_seeds: int = 3
    iters: int = 2000
    eval_every: int = 100
    batch: int = 256
    eval_batch: int = 1024
    lr: float = 1e-3
    hidden: int = 64
    n_attributes: int | None = None  # referential only: None = 5
    n_candidates: int | None = None  # referential only: None = 2 (the registered K)
    message_length: int = 4
    message_dim: int = 8
    budget_k: int = 2  # tokens that pass gradients in the +k cells
    gradient_tau: float = 1.0
    bottleneck_price: float = 1e-2  # per nat of KL (the start of the multiplier with a budget)
    bottleneck_budget: float = 0.0  # nats per message; 0: the price stays fixed
    fisher_price: float = 0.1  # +fisher cells
    fisher_samples: int = 32  # messages per update (and per evaluation) for the Fisher rank
    target_accuracy: float = 0.95
    codebook_bits: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    kmeans_iters: int = 20
    backward_repeats: int = 5
    seed: int = 0

    def __post_init__(self):
        checks.choice(NAME, "game", self.game, GAMES)
        for f in ("num_seeds", "iters", "eval_every", "batch", "eval_batch", "hidden",
                  "message_length", "message_dim", "budget_k", "fisher_samples",
                  "backward_repeats"):
            checks.integer(NAME, f, getattr(self, f), 1)
        if self.game == "negotiation":
            for f in ("n_attributes", "n_candidates"):
                if getattr(self, f) is not None:
                    raise ValueError(f"{NAME}: {f} is the referential game's; the negotiation "
                                     "game has 8 candidates (its allocations): leave it unset")
        else:
            if self.n_attributes is not None:
                checks.integer(NAME, "n_attributes", self.n_attributes, 1)
            if self.n_candidates is not None:
                checks.integer(NAME, "n_candidates", self.n_candidates, 2)
        checks.integer(NAME, "kmeans_iters", self.kmeans_iters, 0)
        if self.iters % self.eval_every:
            raise ValueError(f"{NAME}: iters = {self.iters} must be a multiple of eval_every = "
                             f"{self.eval_every}")
        if self.budget_k > self.message_length:
            raise ValueError(f"{NAME}: budget_k = {self.budget_k} is out of range; allowed: 1 "
                             f"to message_length = {self.message_length}")
        if self.fisher_samples > self.batch:
            raise ValueError(f"{NAME}: fisher_samples = {self.fisher_samples} is out of range; "
                             f"allowed: 1 to batch = {self.batch}")
        for f in ("lr", "bottleneck_price", "bottleneck_budget", "fisher_price",
                  "gradient_tau"):
            checks.real(NAME, f, getattr(self, f), 0.0, low_open=f == "lr")
        checks.real(NAME, "target_accuracy", self.target_accuracy, 0.0, 1.0)
        for b in self.codebook_bits:
            checks.integer(NAME, "codebook_bits", b, 0, 12)
        for cell in self.cells:
            parse_cell(cell)


def grid(budget_k: int) -> tuple[str, ...]:
    """The full grid: 4 aggregations x {-, +IB} x {-, +k}, then ``attention+fisher``."""
    return tuple(a + ib + kb for kb in ("", f"+k{budget_k}") for ib in ("", "+IB")
                 for a in AGGREGATES) + ("attention+fisher",)


def parse_cell(name: str) -> dict[str, Any]:
    """``"gradient_aware+IB+k2"`` -> ``{"aggregate", "bottleneck", "budget_k", "fisher"}``."""
    aggregate, *flags = name.split("+")
    checks.choice(NAME, "cell aggregate", aggregate, AGGREGATES)
    out = {"aggregate": aggregate, "bottleneck": False, "budget_k": 0, "fisher": False}
    for f in flags:
        if f == "IB":
            out["bottleneck"] = True
        elif f == "fisher":
            out["fisher"] = True
        elif f[:1] == "k" and f[1:].isdigit() and int(f[1:]) >= 1:
            out["budget_k"] = int(f[1:])
        else:
            raise ValueError(f"{NAME}: cell {name!r} has an unknown option {f!r}; allowed: "
                             "aggregate[+IB][+k<int >= 1>][+fisher], aggregate in "
                             f"{list(AGGREGATES)}")
    return out


class TokenSpeaker(nn.Module):
    """``baselines.referential.Speaker`` (``bottleneck=False``; KL 0), or a hidden layer then
    :class:`agents.attention.InformationBottleneck` over the whole message. ``__call__(target,
    key, train) -> (message [*shape], kl nats)``."""

    hidden: int
    shape: tuple[int, ...]
    bottleneck: bool = False

    @nn.compact
    def __call__(self, target, key, train: bool):
        if not self.bottleneck:
            return ref.Speaker(self.hidden, self.shape)(target), jnp.zeros((), jnp.float32)
        h = nn.relu(nn.Dense(self.hidden)(target))
        z, kl = attn.InformationBottleneck(int(np.prod(self.shape)))(h[None], key, train)
        return z[0].reshape(self.shape), kl[0]


class TokenListener(nn.Module):
    """The listener whose "senders" are the message's tokens (module docstring).
    ``__call__(message [L, d], candidates [K, F], stat [L]) -> (logits [K], weights [K, L])``:
    ``weights[k, j]`` is the weight candidate ``k`` gives token ``j``."""

    hidden: int
    aggregate: str = "mean"
    tau: float = 1.0
    budget_k: int = 0

    @nn.compact
    def __call__(self, message, candidates, stat):
        n_tokens, n_cand = message.shape[0], candidates.shape[0]
        c = nn.Dense(self.hidden)(nn.relu(nn.Dense(self.hidden)(candidates)))  # [K, H]
        edges = jnp.ones((n_cand, n_tokens), bool)  # every candidate hears every token
        if self.budget_k:
            views = attn.gradient_budget(message, stat, self.budget_k, edges=edges)
        else:
            views = jnp.broadcast_to(message[None], (n_cand,) + message.shape)
        pos = jnp.broadcast_to(jnp.eye(n_tokens), (n_cand, n_tokens, n_tokens))
        v = nn.Dense(self.hidden)(nn.relu(nn.Dense(self.hidden)(
            jnp.concatenate([views, pos], -1))))  # [K, L, H] token features
        if self.aggregate in ("attention", "gradient_aware"):
            tau = self.tau if self.aggregate == "gradient_aware" else 0.0
            u, weights = attn.GradientAwareAttention(self.hidden, tau)(
                c, v, v, stat, jnp.ones(n_tokens, bool), edges=edges)
        else:
            weights = edges / n_tokens
            if self.aggregate == "gated":
                weights = weights * nn.sigmoid(nn.Dense(1)(v))[..., 0]
            u = attn.aggregate_views(weights, v)
        return jnp.sum(c * nn.Dense(self.hidden)(u), -1), weights


def make_cell(cfg: Config, cell: str):
    """Networks, environments and jitted functions of one cell (seeds vmapped): ``init(keys)``,
    ``chunk(state, keys)`` (``eval_every`` updates), ``evaluate(state, keys, codebook, use)``
    (accuracy, KL, Fisher rank, token weights and the messages sent, ``[S, eval_batch, L *
    d]``) and ``grad(state, key)`` (the gradient of one batch's loss, one seed)."""
    opts = parse_cell(cell)
    base = ref.Config(env_id="Referential-continuous-v0", n_attributes=cfg.n_attributes or 5,
                      n_candidates=cfg.n_candidates or 2, message_length=cfg.message_length,
                      message_dim=cfg.message_dim, channel="continuous", hidden=cfg.hidden)
    train_env, eval_env, params = ref.make_envs(base)
    shape = train_env.sent_shape  # [L, d] for the continuous channel, either game
    speaker = TokenSpeaker(cfg.hidden, shape, opts["bottleneck"])
    listener = TokenListener(cfg.hidden, opts["aggregate"], cfg.gradient_tau, opts["budget_k"])
    opt = optax.adam(cfg.lr)
    fisher_price = cfg.fisher_price if opts["fisher"] else 0.0
    n_tokens = cfg.message_length

    def speak(nets, inputs, key, train, codebook, use_codebook):
        batch = inputs.shape[0]
        message, kl = jax.vmap(lambda t, k: speaker.apply(nets["speaker"], t, k, train))(
            inputs, jax.random.split(key, batch))
        if codebook is not None:
            q = vq.quantise(codebook, message.reshape(batch, -1)).reshape(message.shape)
            message = jnp.where(use_codebook, q, message)
        return message, kl

    def listen(nets, received, candidates, stat):
        return jax.vmap(lambda m, c: listener.apply(nets["listener"], m, c, stat))(
            received, candidates)

    def play_referential(nets, key, env, stat, batch, train: bool, codebook=None,
                         use_codebook=False):
        """As ``baselines.referential.play``, plus the bottleneck's key, the tap, ``g`` and
        the codebook. Returns reward, success, KL, the received messages, the candidates,
        the weights and the greedy payoff (here the success)."""
        k_reset, k_0, k_1, k_ib = jax.random.split(key, 4)
        step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, batch),
                                                            params)
        message, kl = speak(nets, obs["target"][:, 0], k_ib, train, codebook, use_codebook)
        no_choice = jnp.zeros((batch, 2, env.n_candidates))
        actions = {"message": jnp.stack([message, jnp.zeros_like(message)], 1),
                   "choice": no_choice}
        obs, state, _, _, _, _ = step(jax.random.split(k_0, batch), state, actions, params)
        received = comms.tap("messages", obs["message"][:, 1])  # [B, L, d]: dL/dm per game
        candidates = obs["candidates"][:, 1]
        logits, weights = listen(nets, received, candidates, stat)
        actions = {"message": jnp.zeros_like(actions["message"]),
                   "choice": jnp.stack([jnp.zeros_like(logits), logits], 1)}
        _, _, reward, _, _, info = step(jax.random.split(k_1, batch), state, actions, params)
        success = info["success"]
        return (reward[:, 1], success, kl, received, candidates, weights,
                success.astype(jnp.float32))

    def play_negotiation(nets, key, env, stat, batch, train: bool, codebook=None,
                         use_codebook=False):
        """``baselines.attention_negotiation``'s game (``env`` unused: the message goes
        straight from speaker to listener). Reward ``E_p[joint]``; success: the argmax is a
        best allocation; greedy payoff: its joint reward."""
        k_game, k_ib = jax.random.split(key)
        inputs, candidates, payoff = neg.sample(k_game, batch)
        message, kl = speak(nets, inputs, k_ib, train, codebook, use_codebook)
        received = comms.tap("messages", message)
        logits, weights = listen(nets, received, candidates, stat)
        reward = jnp.sum(jax.nn.softmax(logits) * payoff, -1)
        greedy = jnp.take_along_axis(payoff, jnp.argmax(logits, -1)[:, None], -1)[:, 0]
        success = greedy >= payoff.max(-1) - 1e-6
        return reward, success, kl, received, candidates, weights, greedy

    if cfg.game == "negotiation":
        from baselines import attention_negotiation as neg

        play = play_negotiation
    else:
        play = play_referential

    def fisher(nets, stat, received, candidates):
        """Mean effective rank of d logits / d message over the first ``fisher_samples``."""
        def rank(m, c):
            return comms.fisher_rank(
                lambda x: listener.apply(nets["listener"], x.reshape(m.shape), c, stat)[0],
                m.reshape(-1))
        n = cfg.fisher_samples
        return jnp.mean(jax.vmap(rank)(received[:n], candidates[:n]))

    def init(key):
        k_s, k_l, k_r = jax.random.split(key, 3)
        if cfg.game == "negotiation":
            inputs, candidates, _ = (x[0] for x in neg.sample(k_r, 1))
        else:
            obs, _ = train_env.reset(k_r, params)
            inputs, candidates = obs["target"][0], obs["candidates"][1]
        stat = jnp.ones((1, n_tokens), jnp.float32)  # [hops = 1, L]
        nets = {"speaker": speaker.init(k_s, inputs, k_s, False),
                "listener": listener.init(k_l, jnp.zeros(shape), candidates, stat[0])}
        return {"nets": nets, "opt": opt.init(nets), "stat": stat,
                "price": jnp.asarray(cfg.bottleneck_price, jnp.float32)}

    def loss(nets, key, stat, price):
        reward, _, kl, received, candidates, *_ = play(nets, key, train_env, stat, cfg.batch,
                                                       True)
        nll = -jnp.mean(jnp.log(jnp.maximum(reward, 1e-12)))
        kl = jnp.mean(kl)
        total = nll + (price * kl if opts["bottleneck"] else 0.0)
        if fisher_price:
            total = total + fisher_price * fisher(nets, stat, received, candidates)
        return total, kl

    value_and_grad = comms.value_and_grad_with_taps(loss, has_aux=True)

    def update(state, key):
        (value, kl), grads, taps = value_and_grad(state["nets"], key, state["stat"][0],
                                                  state["price"])
        updates, opt_state = opt.update(grads, state["opt"], state["nets"])
        stat = attn.update_gradient_stat(state["stat"], taps["messages"][:, None],
                                         jnp.ones((cfg.batch, n_tokens), bool))
        price = (attn.update_multiplier(state["price"], kl, cfg.bottleneck_budget)
                 if opts["bottleneck"] and cfg.bottleneck_budget > 0 else state["price"])
        return {"nets": optax.apply_updates(state["nets"], updates), "opt": opt_state,
                "stat": stat, "price": price}, value

    def chunk(state, key):
        state, losses = jax.lax.scan(update, state, jax.random.split(key, cfg.eval_every))
        return state, jnp.mean(losses)

    def evaluate(state, key, codebook, use_codebook):
        nets, stat = state["nets"], state["stat"][0]
        _, success, kl, received, candidates, weights, greedy = play(
            nets, key, eval_env, stat, cfg.eval_batch, False, codebook, use_codebook)
        return {"accuracy": jnp.mean(success), "payoff": jnp.mean(greedy), "kl": jnp.mean(kl),
                "fisher_rank": fisher(nets, stat, received, candidates),
                "token_weights": jnp.mean(weights, (0, 1)),
                "messages": received.reshape(cfg.eval_batch, -1)}

    def grad(state, key):
        return jax.grad(lambda n: loss(n, key, state["stat"][0], state["price"])[0])(
            state["nets"])

    return {"init": jax.jit(jax.vmap(init)), "chunk": jax.jit(jax.vmap(chunk)),
            "evaluate": jax.jit(jax.vmap(evaluate, in_axes=(0, 0, 0, None))),
            "grad": jax.jit(grad), "opts": opts}


_kmeans = jax.jit(jax.vmap(vq.kmeans, in_axes=(0, 0, None, None)), static_argnums=(2, 3))


def first_reached(curve: np.ndarray, target: float, games: np.ndarray) -> int | None:
    """Games played at the first evaluation at or above ``target`` (None: never)."""
    hit = np.flatnonzero(curve >= target)
    return int(games[hit[0]]) if hit.size else None


def run_cell(cfg: Config, cell: str) -> tuple[dict, dict]:
    """Train one cell (seeds vmapped) and measure it; returns its row and its final state."""
    fns = make_cell(cfg, cell)
    t0 = time.perf_counter()
    key_init, key_train, key_eval, key_vq = jax.random.split(jax.random.key(cfg.seed), 4)
    split = lambda k: jax.random.split(k, cfg.num_seeds)
    state = fns["init"](split(key_init))
    dim = cfg.message_length * cfg.message_dim
    kmax = 2 ** max(cfg.codebook_bits, default=0)
    dummy = jnp.zeros((cfg.num_seeds, kmax, dim), jnp.float32)
    n_evals = cfg.iters // cfg.eval_every
    curve, losses = [], []
    for i in range(n_evals):
        state, loss = fns["chunk"](state, split(jax.random.fold_in(key_train, i)))
        out = fns["evaluate"](state, split(jax.random.fold_in(key_eval, i)), dummy, False)
        curve.append(np.asarray(out["accuracy"]))
        losses.append(np.asarray(loss))
    train_s = time.perf_counter() - t0
    curve = np.stack(curve)  # [evals, seeds]
    games = (np.arange(n_evals) + 1) * cfg.eval_every * cfg.batch
    final = fns["evaluate"](state, split(jax.random.fold_in(key_eval, n_evals)), dummy, False)
    msgs = final["messages"]  # the codebooks' training set: the final evaluation's messages
    vq_acc, vq_payoff = {}, {}
    for bits in cfg.codebook_bits:
        book = _kmeans(split(jax.random.fold_in(key_vq, bits)), msgs, 2 ** bits,
                       cfg.kmeans_iters)
        pad = jnp.broadcast_to(book[:, :1], (cfg.num_seeds, kmax - 2 ** bits, dim))
        res = fns["evaluate"](state, split(jax.random.fold_in(key_vq, 100 + bits)),
                              jnp.concatenate([book, pad], 1), True)
        vq_acc[str(bits)] = np.asarray(res["accuracy"]).tolist()
        vq_payoff[str(bits)] = np.asarray(res["payoff"]).tolist()
    opts = fns["opts"]
    row = {"cell": cell, **opts,
           "curve_games": games.tolist(), "curve": curve.tolist(),
           "loss": np.stack(losses).tolist(),
           "games_to_target": [first_reached(curve[:, s], cfg.target_accuracy, games)
                               for s in range(cfg.num_seeds)],
           "games_to_target_mean_curve": first_reached(curve.mean(1), cfg.target_accuracy,
                                                       games),
           "final_accuracy": np.asarray(final["accuracy"]).tolist(),
           "final_payoff": np.asarray(final["payoff"]).tolist(),
           "kl_per_message": (np.asarray(final["kl"]).tolist() if opts["bottleneck"] else None),
           "fisher_rank": np.asarray(final["fisher_rank"]).tolist(),
           "token_weights": np.asarray(final["token_weights"]).mean(0).tolist(),
           "grad_stat": np.asarray(state["stat"][:, 0]).mean(0).tolist(),
           "final_price": float(np.asarray(state["price"]).mean()),
           "vq_accuracy": vq_acc, "vq_payoff": vq_payoff, "train_s": train_s}
    return row, {"state": state, "grad": fns["grad"]}


def backward_time(grad, state, key, repeats: int) -> float:
    """Median wall seconds of ``repeats`` calls of the compiled gradient (seed 0's state)."""
    one = jax.tree.map(lambda x: x[0], state)
    jax.block_until_ready(grad(one, key))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(grad(one, key))
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def run(cfg: Config, log=print) -> dict:
    """Every cell of ``cfg`` (training and measures), then the backward-pass times one cell
    after another; returns ``{"rows": [...], ...}``."""
    cells = cfg.cells or grid(cfg.budget_k)
    rows, finals = [], []
    load = {"start": os.getloadavg()}
    for cell in cells:
        t = time.perf_counter()
        row, final = run_cell(cfg, cell)
        row["wall_s"] = time.perf_counter() - t
        rows.append(row)
        finals.append(final)
        log(format_row(row, cfg))
    load["backward_start"] = os.getloadavg()
    key = jax.random.key(cfg.seed + 1)
    for row, final in zip(rows, finals, strict=True):
        row["backward_s"] = backward_time(final["grad"], final["state"], key,
                                          cfg.backward_repeats)
    load["end"] = os.getloadavg()
    steps = 1 if cfg.game == "negotiation" else 2  # env steps per game: one division; 2 turns
    return {"rows": rows, "game": cfg.game, "target_accuracy": cfg.target_accuracy,
            "codebook_bits": list(cfg.codebook_bits), "load_average": load,
            "games_per_seed": cfg.iters * cfg.batch,
            "env_steps": int(steps * cfg.iters * cfg.batch * cfg.num_seeds * len(cells))}


def _fmt(games) -> str:
    return "not reached" if games is None else f"{games:,}"


def format_row(row: dict, cfg: Config) -> str:
    acc = np.array(row["final_accuracy"])
    kl = row["kl_per_message"]
    vq_acc = ", ".join(f"{b}b:{np.mean(v):.2f}" for b, v in row["vq_accuracy"].items())
    return (f"{row['cell']:<24} to {cfg.target_accuracy}: "
            f"{_fmt(row['games_to_target_mean_curve']):>11} games  accuracy {acc.mean():.3f}"
            f"±{acc.std():.3f}  KL {'-' if kl is None else f'{np.mean(kl):.2f}'}  rank "
            f"{np.mean(row['fisher_rank']):.2f}  VQ [{vq_acc}]  ({row['wall_s']:.0f} s)")


def table(result: dict, cfg: Config | None = None) -> str:
    """The RESULTS.md table (markdown), one row per cell; on the negotiation game "accuracy"
    is the success rate and a column adds the greedy joint reward."""
    bits = " / ".join(str(b) for b in result["codebook_bits"])
    payoff = result.get("game") == "negotiation"
    if payoff:
        head = (f"| cell | games to {result['target_accuracy']} success (seed mean; per seed) | "
                "final success, mean (per seed) | joint reward | KL nats/msg | eff. rank "
                f"dlogits/dm | backward ms | VQ success at {bits} bits | VQ joint reward |")
    else:
        head = (f"| cell | games to {result['target_accuracy']} (seed mean; per seed) | final "
                "accuracy, mean (per seed) | KL nats/msg | eff. rank dlogits/dm | backward ms | "
                f"VQ accuracy at {bits} bits |")
    lines = [head, "|---" * head.count(" | ") + "|---|"]
    for r in result["rows"]:
        acc = np.array(r["final_accuracy"])
        kl = r["kl_per_message"]
        seeds = ", ".join(_fmt(g) for g in r["games_to_target"])
        back = r.get("backward_s")
        cols = [r["cell"], f"{_fmt(r['games_to_target_mean_curve'])} ({seeds})",
                f"{acc.mean():.3f} ({', '.join(f'{x:.3f}' for x in acc)})"]
        if payoff:
            cols.append(f"{np.mean(r['final_payoff']):.3f}")
        cols += ["-" if kl is None else f"{np.mean(kl):.2f}", f"{np.mean(r['fisher_rank']):.2f}",
                 "-" if back is None else f"{1e3 * back:.1f}",
                 " / ".join(f"{np.mean(v):.3f}" for v in r["vq_accuracy"].values())]
        if payoff:
            cols.append(" / ".join(f"{np.mean(v):.3f}" for v in r["vq_payoff"].values()))
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> list[Path]:
    """``<path stem>_curves.png`` (accuracy against games, seed mean, one line per cell) and
    ``<path stem>_vq.png`` (post-hoc VQ accuracy against codebook bits)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    curves = path.with_name(path.stem + "_curves.png")
    vq_path = path.with_name(path.stem + "_vq.png")
    rows = result["rows"]
    game = result.get("game", "referential")
    measure = "success" if game == "negotiation" else "accuracy"
    colours = {a: plt.cm.tab10(i) for i, a in enumerate(AGGREGATES)}
    style = lambda r: {"color": colours[r["aggregate"]], "lw": 2.2 if r["fisher"] else 1.2,
                       "ls": {(False, 0): "-", (True, 0): "--", (False, 1): ":",
                              (True, 1): "-."}[(r["bottleneck"], int(bool(r["budget_k"])))],
                       "alpha": 0.5 if r["fisher"] else 1.0}
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for r in rows:
        ax.plot(r["curve_games"], np.mean(r["curve"], 1), label=r["cell"], **style(r))
    ax.axhline(result["target_accuracy"], color="k", lw=0.5)
    ax.set(xscale="log", xlabel="games played (per seed)", ylabel=f"{measure} (seed mean)",
           title=f"{TITLES[game]}: token-level listener")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(curves, dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for r in rows:
        b = [int(x) for x in r["vq_accuracy"]]
        ax.plot(b, [np.mean(v) for v in r["vq_accuracy"].values()], marker="o",
                label=r["cell"], **style(r))
    ax.set(xlabel="codebook bits per message (log2 K, one code word per message)",
           ylabel=f"{measure} with VQ messages (seed mean)",
           title=f"{TITLES[game]}: post-hoc k-means VQ")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(vq_path, dpi=90)
    plt.close(fig)
    return [curves, vq_path]


def reproduce(budget: str, out_dir) -> dict:
    """RESULTS.md row ``attention_referential`` through ``baselines.reproduce.run_row``, with
    two figures (``result["figures"]``; ``..._curves.png`` is the row's ``figure``)."""
    from baselines import reproduce as rep

    return rep.run_row(ROW, budget, out_dir, Config, run, plot, table,
                       lambda result: result["env_steps"])


def main(argv: list[str] | None = None) -> dict:
    from baselines import reproduce as rep

    parser = argparse.ArgumentParser(prog=f"python -m {NAME}",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=rep.BUDGETS, default="cpu")
    parser.add_argument("--out", default=str(rep.RESULTS), help="folder for the JSON")
    args = parser.parse_args(argv)
    return reproduce(args.budget, Path(args.out))


if __name__ == "__main__":
    main()
