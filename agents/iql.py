"""Independent Q-learning (IQL) with recurrent Q-networks, PureJaxRL style, PS or NPS, with
optional learned messages (arXiv 2401.15059's fully independent communication).

    trainer = make_trainer(Config(algorithm="iql", env="PredatorPrey-magym-v0", ...))
    state, metrics = jax.jit(trainer.run, static_argnums=1)(trainer.init(key), 100)

One iteration (one "update" of the shared loop, :mod:`agents.loop`): ``num_envs`` whole
episodes are played ε-greedily from fresh resets (``max_steps_in_episode`` steps; steps after
an episode's end are computed but masked out and not counted) and added to an episode replay
buffer that lives on device (flashbax's item buffer: it stores and samples whole episodes as
pytrees, is a pure jittable function of its state, and vmaps over seeds — so no buffer of our
own); then ``gradient_steps`` double-Q (or plain max) TD steps, each on ``batch_episodes``
episodes sampled uniformly with replacement, once the buffer holds that many. The target
network is a copy of the online one, refreshed every ``target_every`` episodes. ε decays
linearly from ``epsilon_start`` to ``epsilon_end`` over ``epsilon_steps`` env steps.
Hyperparameters default to PyMARL's, which the paper's code builds on (RMSprop, γ = 0.99,
target every 200 episodes, batch 32 episodes, buffer 5000): see ``configs/iql_*.yaml``.

Networks (flax.linen), per agent: the Q-network is PyMARL's RNN agent (Dense + ReLU -> GRU ->
Dense to Q-values). With ``comm: message`` each agent also has a message network (obs -> 64 ->
64 -> ``message_dim``); messages go through the configured ``dcgenv.comms`` channel and every
agent's Q-network sees all ``N`` messages of the same step, in agent order, after its own
observation. ``parameter_sharing``:

- true (PS): one parameter set for all agents (vmapped with ``in_axes=None``); a receiver's
  loss reaches the senders' message network — the standard shared-gradient scheme.
- false (NPS): per-agent parameter sets stacked along a leading agent axis and vmapped (no
  Python loop over agents); the paper's scheme: an agent's own message is a live input of its
  Q-network, incoming messages are detached (``dcgenv.comms.stop_incoming``), so agent ``i``'s
  loss trains agent ``i``'s message network and nobody else's.

Rewards are the env's per-agent rewards (each agent learns from its own). Losses are averaged
over filled (agent, step) entries; ``comm_coef`` x the channel's cost is added.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flashbax as fbx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import dcgenv
from agents import networks as nets
from agents.config import Config, make_channel, make_optimizer
from agents.loop import make_loop
from dcgenv import comms, spaces


class Runner(NamedTuple):
    """Everything one seed's training carries from iteration to iteration."""

    params: Any  # {"q": ..., "message": ...}; NPS: every leaf has a leading agent axis
    target: Any
    opt_state: Any
    buffer: Any  # flashbax item-buffer state of episodes
    episodes: jax.Array  # int32: episodes played so far
    env_steps: jax.Array  # int32: env steps played so far (filled steps only)
    key: jax.Array


class Trainer(NamedTuple):
    config: Config
    env: Any
    env_params: Any
    init: Any  # key -> (Runner batched over seeds, update index)
    run: Any  # (state, length, end) -> (state, metrics [length, ...] seed-mean)
    evaluate: Any  # (params of one seed, key, episodes) -> dict of greedy metrics
    collect: Any  # (params, key, epsilon, num_episodes) -> (episodes, stats) for one seed
    loss: Any  # (params, target, episodes, key) -> (loss, parts)
    buffer: Any  # the flashbax buffer (init/add/sample/can_sample)


class QNetwork(nn.Module):
    """PyMARL's RNN agent for one agent: Dense + ReLU -> GRU cell -> Q-values. The three
    pieces are separate methods so a sequence embeds all its steps at once, runs only the
    GRU cell step by step, and reads out all steps at once."""

    actions: int
    hidden: int = 64

    def setup(self):
        self.embedding = nn.Dense(self.hidden)
        self.cell = nn.GRUCell(self.hidden)
        self.readout = nn.Dense(self.actions)

    def embed(self, x):
        return nn.relu(self.embedding(x))

    def recur(self, carry, e):
        return self.cell(carry, e)

    def head(self, h):
        return self.readout(h)

    def __call__(self, carry, x):
        carry, h = self.recur(carry, self.embed(x))
        return carry, self.head(h)


class MessageNetwork(nn.Module):
    """obs -> 64 -> 64 -> message (the paper's message MLP)."""

    message_dim: int
    hidden: int = 64

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.hidden)(x))
        x = nn.relu(nn.Dense(self.hidden)(x))
        return nn.Dense(self.message_dim)(x)


def make_buffer(capacity: int, batch: int):
    """The episode replay buffer: flashbax's item buffer (uniform sampling with replacement
    of ``batch`` stored episodes; ``can_sample`` once ``batch`` are stored)."""
    return fbx.make_item_buffer(max_length=capacity, min_length=batch, sample_batch_size=batch,
                                add_batches=True)


def make_trainer(config: Config, progress=None) -> Trainer:
    """Build everything (validating ``config`` first); ``progress(update, metrics)`` is called
    from inside the compiled loop every ``config.log_every`` iterations."""
    cfg = config.validate()
    if cfg.algorithm != "iql":
        raise ValueError(f"agents.iql trains algorithm: iql, got {cfg.algorithm!r}")
    env, env_params = dcgenv.make(cfg.env, **cfg.env_kwargs)
    space = env.action_space(env_params)
    if not isinstance(space, spaces.Discrete):
        raise ValueError(f"IQL needs a Discrete action space; {cfg.env} has {space!r}")
    n, E, T, A = env.num_agents, cfg.num_envs, env_params.max_steps_in_episode, int(space.n)
    ps, use_comm = cfg.parameter_sharing, cfg.comm == "message"
    p_axis = None if ps else 0
    channel = make_channel(cfg)
    msg_shape = channel.message_shape(1, cfg.message_dim)
    msg_size = int(np.prod(msg_shape))
    qnet = QNetwork(A, cfg.hidden)
    msgnet = MessageNetwork(msg_size)
    tx = make_optimizer(cfg, cfg.lr)
    buffer = make_buffer(cfg.buffer_episodes, cfg.batch_episodes)

    def features(obs):  # one env's obs -> [N, D]
        return nets.flatten_obs(obs, n, cfg.agent_id)

    def inputs(params, x, key, train):
        """One env-step ``x [N, D]`` -> Q-network inputs ``[N, D + N*m]`` (observation, then
        the step's messages; detached but one's own under NPS), channel bits and cost summed
        over senders."""
        if not use_comm:
            return x, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32)
        z = jax.vmap(msgnet.apply, in_axes=(p_axis, 0))(params["message"], x)
        z_hat, stats = jax.vmap(lambda k, m: channel.send(k, m, train=train))(
            jax.random.split(key, n), z.reshape(n, *msg_shape))
        z_hat = z_hat.reshape(n, msg_size)
        view = comms.stop_incoming(z_hat) if not ps else jnp.broadcast_to(
            z_hat[None], (n, n, msg_size))
        x = jnp.concatenate([x, view.reshape(n, n * msg_size)], -1)
        return x, stats["bits"].sum(), stats["cost"].sum()

    def per_agent(method, *args):  # apply a QNetwork method to all agents of one env-step
        in_axes = (p_axis,) + (0,) * (len(args) - 1)
        return jax.vmap(lambda p, *a: qnet.apply(p, *a, method=method), in_axes=in_axes)(*args)

    def q_values(params, carry, x, key, train):
        """One env, all agents: ``(carry [N, H], q [N, A], bits, cost)``. Every episode starts
        from a zero carry (episodes are played, and replayed, from their first step)."""
        x, bits, cost = inputs(params, x, key, train)
        e = per_agent(QNetwork.embed, params["q"], x)
        carry, h = per_agent(QNetwork.recur, params["q"], carry, e)
        return carry, per_agent(QNetwork.head, params["q"], h), bits, cost

    def init_params(key, x):
        width = x.shape[-1] + (n * msg_size if use_comm else 0)
        one = lambda k: {"q": qnet.init(k, jnp.zeros(cfg.hidden), jnp.zeros(width)),
                         **({"message": msgnet.init(jax.random.fold_in(k, 1), x[0])}
                            if use_comm else {})}
        return one(key) if ps else jax.vmap(one)(jax.random.split(key, n))

    def collect(params, key, epsilon, num_episodes: int, greedy: bool = False):
        """``num_episodes`` episodes from fresh resets: ``(episodes, stats)`` where
        ``episodes`` = ``{obs [E, T+1, N, D], action [E, T, N], reward [E, T, N],
        term [E, T], filled [E, T]}`` (``obs[:, t+1]`` is the observation after step ``t``,
        the episode's final one at its end)."""
        k_reset, k_run = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(k_reset, num_episodes), env_params)
        x0 = jax.vmap(features)(obs)

        def step(c, k):
            obs, state, carry, running = c
            k_comm, k_explore, k_rand, k_env = jax.random.split(k, 4)
            x = jax.vmap(features)(obs)
            carry, q, bits, _ = jax.vmap(lambda *a: q_values(params, *a, train=not greedy))(
                carry, x, jax.random.split(k_comm, num_episodes))
            action = jnp.argmax(q, -1)
            if not greedy:
                explore = jax.random.uniform(k_explore, action.shape) < epsilon
                action = jnp.where(explore, jax.random.randint(k_rand, action.shape, 0, A),
                                   action)
            obs, state, reward, term, trunc, info = jax.vmap(
                env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_env, num_episodes), state, action, env_params)
            done = term | trunc
            success = info.get("success", jnp.zeros_like(done))
            out = dict(x_next=jax.vmap(features)(info["final_observation"]), action=action,
                       reward=reward.astype(jnp.float32), term=term, filled=running,
                       bits=bits * running, success=success & done & running)
            return (obs, state, carry, running & ~done), out

        carry = jnp.zeros((num_episodes, n, cfg.hidden))
        running = jnp.ones(num_episodes, bool)
        _, tr = jax.lax.scan(step, (obs, state, carry, running), jax.random.split(k_run, T))
        tr = jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), tr)  # [E, T, ...]
        episodes = {"obs": jnp.concatenate([x0[:, None], tr["x_next"]], 1),
                    "action": tr["action"].astype(jnp.int32), "reward": tr["reward"],
                    "term": tr["term"], "filled": tr["filled"]}
        filled = tr["filled"].astype(jnp.float32)
        stats = {"return": jnp.mean(jnp.sum(tr["reward"].mean(-1) * filled, 1)),
                 "success": jnp.mean(jnp.any(tr["success"], 1).astype(jnp.float32)),
                 "length": jnp.mean(filled.sum(1)), "steps": filled.sum().astype(jnp.int32),
                 "bits": tr["bits"].sum(), "messages": n * filled.sum() * use_comm}
        return episodes, stats

    def unroll(params, obs, key, train):
        """Q-values ``[B, T+1, N, A]`` of the episodes ``obs [B, T+1, N, D]``, and the
        channel cost summed over senders, averaged over (episode, step). Messages, embeddings
        and read-outs are computed for all steps at once; only the GRU cell runs in the scan."""
        B = obs.shape[0]
        keys = jax.random.split(key, B * (T + 1)).reshape(B, T + 1)
        x, _, cost = jax.vmap(jax.vmap(lambda x, k: inputs(params, x, k, train)))(obs, keys)
        e = jax.vmap(jax.vmap(lambda x: per_agent(QNetwork.embed, params["q"], x)))(x)

        def step(carry, e_t):
            return jax.vmap(lambda c, e: per_agent(QNetwork.recur, params["q"], c, e))(carry, e_t)

        _, h = jax.lax.scan(step, jnp.zeros((B, n, cfg.hidden)), jnp.swapaxes(e, 0, 1))
        q = jax.vmap(jax.vmap(lambda h: per_agent(QNetwork.head, params["q"], h)))(h)
        return jnp.swapaxes(q, 0, 1), cost.mean()

    def loss(params, target, episodes, key):
        """TD loss on a batch of episodes: ``(total, parts)``; ``parts["per_agent"]`` [N] is
        each agent's own TD loss (the total is their mean plus the comm cost term). The target
        network's unroll is a separate forward pass that the gradient does not reach (running
        it vmapped beside the online one made the backward pass cover it too: 1.6x slower)."""
        q, cost = unroll(params, episodes["obs"], key, True)
        q_target, _ = unroll(jax.lax.stop_gradient(target), episodes["obs"], key, True)
        q_next_target = q_target[:, 1:]
        taken = jnp.take_along_axis(q[:, :-1], episodes["action"][..., None], -1)[..., 0]
        chooser = jax.lax.stop_gradient(q[:, 1:]) if cfg.double_q else q_next_target
        best = jnp.argmax(chooser, -1)
        q_next = jnp.take_along_axis(q_next_target, best[..., None], -1)[..., 0]
        cont = (1.0 - episodes["term"].astype(jnp.float32))[..., None]
        y = jax.lax.stop_gradient(episodes["reward"] + cfg.gamma * cont * q_next)
        mask = episodes["filled"].astype(jnp.float32)[..., None]  # [B, T, 1]
        per_agent = jnp.sum(mask * (taken - y) ** 2, (0, 1)) / jnp.maximum(mask.sum(), 1.0)
        total = per_agent.mean() + cfg.comm_coef * cost
        return total, {"loss": total, "per_agent": per_agent, "comm_cost": cost,
                       "q_taken": jnp.sum(mask * taken) / jnp.maximum(mask.sum() * n, 1.0)}

    def epsilon(env_steps):
        frac = jnp.clip(env_steps / cfg.epsilon_steps, 0.0, 1.0)
        return cfg.epsilon_start + (cfg.epsilon_end - cfg.epsilon_start) * frac

    def init(key):
        k_params, k_env, key = jax.random.split(key, 3)
        obs, _ = env.reset(k_env, env_params)
        params = init_params(k_params, features(obs))
        episodes, _ = jax.eval_shape(lambda: collect(params, k_env, 1.0, 1))
        item = jax.tree.map(lambda s: jnp.zeros(s.shape[1:], s.dtype), episodes)
        return Runner(params, params, tx.init(params), buffer.init(item),
                      jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), key)

    def gradient_step(buffer_state, target, carry, key):
        params, opt_state = carry
        k_sample, k_loss = jax.random.split(key)
        batch = buffer.sample(buffer_state, k_sample).experience
        grads, parts = jax.grad(loss, has_aux=True)(params, target, batch, k_loss)
        upd, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, upd), opt_state), {
            k: v for k, v in parts.items() if k != "per_agent"}

    def update(runner: Runner, i=0):
        """One iteration for one seed: play ``num_envs`` episodes, store them, learn."""
        key, k_collect, k_learn = jax.random.split(runner.key, 3)
        eps = epsilon(runner.env_steps)
        episodes, stats = collect(runner.params, k_collect, eps, E)
        runner = runner._replace(buffer=buffer.add(runner.buffer, episodes), key=key,
                                 episodes=runner.episodes + E,
                                 env_steps=runner.env_steps + stats["steps"])

        def learn(carry):  # the buffer is read here, never passed through the cond
            step = lambda c, k: gradient_step(runner.buffer, runner.target, c, k)
            return jax.lax.scan(step, carry, jax.random.split(k_learn, cfg.gradient_steps))

        def wait(carry):
            nan = jnp.full(cfg.gradient_steps, jnp.nan, jnp.float32)
            return carry, {"loss": nan, "comm_cost": nan, "q_taken": nan}

        (params, opt_state), parts = jax.lax.cond(
            buffer.can_sample(runner.buffer), learn, wait, (runner.params, runner.opt_state))
        runner = runner._replace(params=params, opt_state=opt_state)
        refresh = runner.episodes // cfg.target_every > (runner.episodes - E) // cfg.target_every
        target = jax.tree.map(lambda t, p: jnp.where(refresh, p, t), runner.target,
                              runner.params)
        runner = runner._replace(target=target)
        metrics = {"success": stats["success"], "return": stats["return"],
                   "length": stats["length"], "epsilon": eps,
                   # env steps so far, all seeds together (the loop averages over seeds)
                   "env_steps": runner.env_steps.astype(jnp.float32) * cfg.num_seeds,
                   "bits_per_message": stats["bits"] / jnp.maximum(stats["messages"], 1.0),
                   **{k: jnp.nanmean(v) for k, v in parts.items()}}
        return runner, metrics

    init_seeds, run = make_loop(init, update, cfg.num_seeds, cfg.log_every, progress)

    def evaluate(params, key, episodes: int):
        """Greedy policy (ε = 0, channel in evaluation mode), ``episodes`` episodes."""
        _, stats = collect(params, key, 0.0, episodes, greedy=True)
        return {"episodes": jnp.asarray(episodes, jnp.float32), "success": stats["success"],
                "return": stats["return"], "length": stats["length"],
                "bits_per_message": stats["bits"] / jnp.maximum(stats["messages"], 1.0),
                "env_bits_per_episode": jnp.zeros((), jnp.float32)}

    return Trainer(cfg, env, env_params, init_seeds, run, evaluate, collect, loss, buffer)
