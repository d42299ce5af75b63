"""Independent Q-learning (IQL) with recurrent Q-networks, PureJaxRL style, PS or NPS, with
optional learned messages (arXiv 2401.15059's fully independent communication).

    trainer = make_trainer(IQLConfig(env="PredatorPrey-magym-v0", ...))
    state, metrics = jax.jit(trainer.run, static_argnums=1)(trainer.init(key), 100)

One iteration (one "update" of the shared loop, :mod:`agents.loop`): ``num_envs`` whole
episodes are played epsilon-greedily from fresh resets (``max_steps_in_episode`` steps; steps
after an episode's end are computed but masked out and not counted) and added to an episode
replay buffer that lives on device (flashbax's item buffer: it stores and samples whole
episodes as pytrees, is a pure jittable function of its state, and vmaps over seeds — so no
buffer of our own); then ``gradient_steps`` double-Q (or plain max) TD steps, each on
``batch_episodes`` episodes sampled uniformly with replacement, once the buffer holds
``learn_start`` episodes (default: ``batch_episodes``). The target network is a copy of the
online one, refreshed every ``target_every`` episodes. Epsilon decays linearly from
``epsilon_start`` to ``epsilon_end`` over ``epsilon_steps`` env steps. The configs
(``configs/iql_*.yaml``) use PyMARL's hyperparameters, which the paper's code builds on
(RMSprop, gamma = 0.99, target every 200 episodes, batch 32 episodes, buffer 5000).

Networks (flax.linen), per agent: the Q-network is PyMARL's RNN agent (Dense + ReLU -> GRU ->
Dense to Q-values). With ``comm: message`` each agent also has a message network (obs -> 64 ->
64 -> ``message_dim``); messages go through the configured ``dcgenv.comms`` channel and every
agent's Q-network sees all ``N`` messages of the same step, in agent order, after its own
observation (PS with ``own_message: false``: the other ``N - 1``). ``parameter_sharing``:

- true (PS): one parameter set for all agents (vmapped with ``in_axes=None``); a receiver's
  loss reaches the senders' message network — the standard shared-gradient scheme.
- false (NPS): per-agent parameter sets stacked along a leading agent axis and vmapped (no
  Python loop over agents); the paper's scheme: an agent's own message is a live input of its
  Q-network, incoming messages are detached (``dcgenv.comms.stop_incoming``), so agent ``i``'s
  loss trains agent ``i``'s message network and nobody else's.

A learnable channel (``channel.has_params``: the config's ``entropy_coding``, ``gate``) has one
parameter set, ``params["channel"]``, shared by all senders under PS and NPS alike (the code the
agents agree on; no agent axis under NPS); it learns from ``comm_coef`` x the cost alone.

``last_action: true`` appends each agent's previous action, one-hot (zeros at an episode's
first step), to its Q-network input, as PyMARL-style code does (marl-indep-comm,
``no_param_share/algos/idql.py`` ``_get_inputs``); the message network still sees the
observation alone, as there. Acting carries it from step to step; the loss rebuilds it from the
stored actions shifted by one step (:func:`previous_actions`).

Available actions: an env with ``get_avail_actions(state)`` (bool ``[N, A]``, e.g.
JaxMARL's SMAX through ``dcgenv.adapters.from_jaxmarl``) is played with them: the greedy argmax
and the epsilon-exploration (uniform over the available actions) never pick an unavailable
action, and the TD target's argmax runs over the next step's available actions, stored in the
buffer with the episode (PyMARL: ``avail_actions_next``). Such envs are stepped without
auto-reset (``env.transition``: every episode is played once from a fresh reset, so nothing is
lost) so that the mask after an episode's last step is that of its final state, not of the
next episode's start. Envs without it: every action is available, and the code path is the
one without masks (bit for bit).

Rewards are the env's per-agent rewards (each agent learns from its own), or with
``team_reward: true`` the sum over agents for every agent (marl-indep-comm's
``common/worker.py``: ``reward_ep.append([sum(reward)])``). Losses are averaged over filled
(agent, step) entries (with ``per_agent_clip``: each agent's average over its filled steps,
summed over agents); ``comm_coef`` x the channel's cost is added.

Keys that follow the authors' code (marl-indep-comm; each off by default, and off it is the
code path from before the key, bit for bit):

- ``time_limit_terminal``: an episode cut by the env's step limit (``truncated``) is stored as
  terminated, so its last step is not bootstrapped (``common/worker.py`` stores ma-gym's done
  at 100 steps as ``terminate``).
- ``per_agent_clip`` (NPS only): the loss is the sum of the agents' own losses, not their
  mean, so agent ``i``'s gradient is that of its own loss, and each agent's gradient (its
  Q- and message networks together: its slice of the leading agent axis) is clipped to
  ``max_grad_norm`` by its own norm (:func:`clip_per_agent`); the authors train one network
  and optimiser per agent, ``clip_grad_norm_`` over that agent's parameters
  (``no_param_share/algos/idql.py`` ``learn``). RMSprop's state is per element, so per-agent
  optimisers are the stacked one.
- ``own_message: false`` (PS, ``comm: message``): each agent's Q-network sees the other
  ``N - 1`` messages, in agent order, not its own (``param_share/network/base_net.py``
  ``forward``).
- ``opt_eps``, ``rmsprop_eps_in_sqrt: false``: torch's ``RMSprop`` epsilon (1e-8 by default)
  and its place, ``g / (sqrt(v) + eps)``, where optax divides by ``sqrt(v + eps)``.
- ``learn_start``: learning starts once that many episodes are stored (default
  ``batch_episodes``). The authors sample ``min(stored, 32)`` episodes with replacement from
  the first episode on (``runner.py``, ``common/buffer.py``); a jitted batch has a fixed
  shape, so with fewer than ``batch_episodes`` stored ours samples ``batch_episodes`` with
  replacement from the stored ones: the same expected loss, with less variance.
- ``eval_every``: every that many iterations, ``eval_episodes_during`` greedy episodes (the
  authors: 20 every 10,000 env steps, ``runner.py``), logged as ``eval_success`` and
  ``eval_return`` (NaN in the other iterations); their key is derived from the runner's key
  without consuming it, so training is the same with or without them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flashbax as fbx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from agents import networks as nets
from agents.config import IQLConfig, make_optimizer
from agents.loop import Trainer, global_norm, make_loop, read_info
from dcgenv import comms


class Runner(NamedTuple):
    """Everything one seed's training carries from iteration to iteration."""

    params: Any  # {"q", "message", "channel"}; NPS: a leading agent axis, but on "channel"
    target: Any
    opt_state: Any
    buffer: Any  # flashbax item-buffer state of episodes
    episodes: jax.Array  # int32: episodes played so far
    env_steps: jax.Array  # int32: env steps played so far (filled steps only)
    key: jax.Array
    per_env_fields = ()  # the envs live only inside an iteration (agents.loop)


class Episodes(NamedTuple):
    """Whole episodes, as stored in the replay buffer (``[E, ...]`` for a batch)."""

    obs: jax.Array  # [T+1, N, D] features; obs[t+1] follows step t (the final one at the end)
    action: jax.Array  # [T, N] int32
    reward: jax.Array  # [T, N]
    terminated: jax.Array  # [T] bool
    filled: jax.Array  # [T] bool: the step belongs to the episode (not after its end)


class MaskedEpisodes(NamedTuple):
    """:class:`Episodes` of an env with available actions, and those (a separate class, so
    that the buffer, and the checkpoints, of envs without masks keep their structure)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    filled: jax.Array
    avail: jax.Array  # [T+1, N, A] bool: the actions available at obs[t]


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


class Agents:
    """The ``N`` agents' networks, PS (one parameter set, vmapped with ``in_axes=None``) or NPS
    (one set per agent, stacked along a leading axis): each agent's Q-network sees its
    observation and, with ``comm: message``, the messages of every agent's message network of
    the same step, sent through the channel (a learnable one with the shared parameters
    ``params["channel"]``)."""

    def __init__(self, config: IQLConfig, num_agents: int, num_actions: int):
        self.config, self.num_agents = config, num_agents
        self.p_axis = None if config.parameter_sharing else 0  # agent axis of the parameters
        self.use_comm, self.channel = config.comm == "message", config.message_channel
        self.msg_shape = self.channel.message_shape(1, config.message_dim)
        self.msg_size = int(np.prod(self.msg_shape))  # what the message network emits
        # what arrives (Gated: the payload, without its send flag)
        self.recv_size = int(np.prod(self.channel.received_shape(1, config.message_dim)))
        # messages each Q-network reads: all N, or (own_message false) the others' N - 1
        self.heard = num_agents - (not config.own_message)
        self.others = np.array([[j for j in range(num_agents) if j != i]
                                for i in range(num_agents)], np.int32).reshape(num_agents, -1)
        self.learn_channel = self.use_comm and self.channel.has_params
        self.num_actions = num_actions
        self.qnet = QNetwork(num_actions, config.hidden)
        self.msgnet = MessageNetwork(self.msg_size)

    def init(self, key, x):
        """Parameters for one env-step's observations ``x [N, D]``."""
        width = (x.shape[-1] + (self.heard * self.recv_size if self.use_comm else 0)
                 + (self.num_actions if self.config.last_action else 0))
        one = lambda agent_key: {
            "q": self.qnet.init(agent_key, jnp.zeros(self.config.hidden), jnp.zeros(width)),
            **({"message": self.msgnet.init(jax.random.fold_in(agent_key, 1), x[0])}
               if self.use_comm else {})}
        # NPS: one agent at a time (lax.map), not vmap: the same values, but jax 0.10.2's XLA
        # CPU runtime never completes some programs that vmap this init (orthogonal GRU init,
        # i.e. a qr, plus the message network) and return it twice (params and target), e.g.
        # the authors' NPS comm config at hidden 32 with 3 seeds: every thread idles, the
        # result never arrives (XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false
        # also avoids it; tests/test_agents_iql.py checks that config's init completes)
        params = (one(key) if self.config.parameter_sharing
                  else jax.lax.map(one, jax.random.split(key, self.num_agents)))
        if self.learn_channel:  # one set for all senders, PS or NPS
            params["channel"] = self.channel.init(jax.random.fold_in(key, 2), 1,
                                                  self.config.message_dim)
        return params

    def per_agent(self, method, *args):
        """A QNetwork method applied to all agents of one env-step."""
        in_axes = (self.p_axis,) + (0,) * (len(args) - 1)
        return jax.vmap(lambda p, *a: self.qnet.apply(p, *a, method=method),
                        in_axes=in_axes)(*args)

    def inputs(self, params, x, last, key, train):
        """One env-step ``x [N, D]`` -> Q-network inputs ``[N, D (+ A) + N*m]`` (observation,
        the previous actions ``last [N, A]`` one-hot where ``last_action``, else ``last`` is
        None, then the step's messages; detached but one's own under NPS; PS with
        ``own_message`` false: the others' ``N - 1`` only) and ``comm``:
        channel ``bits`` and ``cost`` summed over senders, plus ``nets.message_sums`` for an
        entropy-coded or gated channel (``counts`` ``[1, elements, categories]``). The
        message network reads the observation ``x`` alone."""
        zero = jnp.zeros((), jnp.float32)
        q_in = x if last is None else jnp.concatenate([x, last], -1)
        if not self.use_comm:
            return q_in, {"bits": zero, "cost": zero}
        num_agents, size = self.num_agents, self.recv_size
        z = jax.vmap(self.msgnet.apply, in_axes=(self.p_axis, 0))(params["message"], x)
        shared = params["channel"] if self.learn_channel else None
        send = lambda sender_key, message: self.channel.send(sender_key, message, train=train,
                                                             params=shared)
        z_hat, stats = jax.vmap(send)(jax.random.split(key, num_agents),
                                      z.reshape(num_agents, *self.msg_shape))
        z_hat = z_hat.reshape(num_agents, size)
        if not self.config.parameter_sharing:
            view = comms.stop_incoming(z_hat)
        elif self.config.own_message:
            view = jnp.broadcast_to(z_hat[None], (num_agents, num_agents, size))
        else:
            view = z_hat[self.others]  # [N, N - 1, m]: agent i reads the others', in order
        x = jnp.concatenate([q_in, view.reshape(num_agents, self.heard * size)], -1)
        sums = nets.message_sums(self.channel, stats, jnp.ones(num_agents, jnp.float32))
        sums = {k: v[None] if k == "counts" else v for k, v in sums.items()}  # one "hop"
        return x, {"bits": stats["bits"].sum(), "cost": stats["cost"].sum(), **sums}

    def step(self, params, carry, x, last, key, train):
        """One env-step, all agents: ``(carry [N, H], q [N, A], comm)``, ``comm`` as
        :meth:`inputs` gives it (``comm["bits"]``: the channel's bits). Every episode starts
        from a zero carry (episodes are played, and replayed, from their first step)."""
        x, comm = self.inputs(params, x, last, key, train)
        hidden = self.per_agent(QNetwork.embed, params["q"], x)
        carry, hidden = self.per_agent(QNetwork.recur, params["q"], carry, hidden)
        return carry, self.per_agent(QNetwork.head, params["q"], hidden), comm

    def unroll(self, params, obs, last, key, train):
        """Q-values ``[B, T+1, N, A]`` of the episodes ``obs [B, T+1, N, D]`` (with
        ``last_action``: ``last [B, T+1, N, A]``, :func:`previous_actions`; else None), and
        the channel cost summed over senders, averaged over (episode, step). Messages,
        embeddings and read-outs are computed for all steps at once; only the GRU cell runs
        in the scan."""
        batch, length = obs.shape[:2]
        keys = jax.random.split(key, batch * length).reshape(batch, length)
        x, comm = jax.vmap(jax.vmap(lambda *a: self.inputs(params, *a, train)))(obs, last, keys)
        cost = comm["cost"]
        embedded = jax.vmap(jax.vmap(
            lambda x: self.per_agent(QNetwork.embed, params["q"], x)))(x)

        def recur(carry, embedded_t):  # one step of all episodes
            return jax.vmap(lambda *a: self.per_agent(QNetwork.recur, params["q"], *a))(
                carry, embedded_t)

        carry = jnp.zeros((batch, self.num_agents, self.config.hidden))
        _, hidden = jax.lax.scan(recur, carry, jnp.swapaxes(embedded, 0, 1))
        q = jax.vmap(jax.vmap(
            lambda hidden: self.per_agent(QNetwork.head, params["q"], hidden)))(hidden)
        return jnp.swapaxes(q, 0, 1), cost.mean()


def make_buffer(capacity: int, batch: int, start: int = 0):
    """The episode replay buffer: flashbax's item buffer (uniform sampling with replacement
    of ``batch`` stored episodes; ``can_sample`` once ``start`` are stored, 0: ``batch``;
    fewer stored than ``batch``: ``batch`` drawn with replacement from those)."""
    return fbx.make_item_buffer(max_length=capacity, min_length=start or batch,
                                sample_batch_size=batch, add_batches=True)


def clip_per_agent(max_norm: float, shared=("channel",)) -> optax.GradientTransformation:
    """``optax.clip_by_global_norm`` for each agent on its own: the leaves of every part of
    the parameters but ``shared`` have a leading agent axis (NPS), and agent ``i``'s slices,
    all parts together, are scaled down to norm ``max_norm`` when their norm exceeds it, by
    the same formula as optax's; a ``shared`` part (the channel's one set) is clipped on its
    own. Its state is optax's ``EmptyState``, as the global clip's."""

    def update(updates, state, params=None):
        del params
        stacked = [x for k, v in updates.items() if k not in shared for x in jax.tree.leaves(v)]
        norm = jnp.sqrt(sum(jnp.sum(jnp.square(x).reshape(x.shape[0], -1), 1) for x in stacked))

        def clip(x):
            n = norm.reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype)
            return jnp.where(n < max_norm, x, (x / n) * max_norm)

        glob = optax.clip_by_global_norm(max_norm)
        out = {k: glob.update(v, optax.EmptyState())[0] if k in shared
               else jax.tree.map(clip, v) for k, v in updates.items()}
        return out, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def previous_actions(action, num_actions: int):
    """Stored actions ``[B, T, N]`` -> each step's previous action, one-hot ``[B, T+1, N, A]``:
    zeros at step 0 (every stored episode starts there), ``action[t-1]`` at step ``t`` (step
    ``T``, the final observation, gets the last action taken)."""
    onehot = jax.nn.one_hot(action, num_actions, dtype=jnp.float32)
    return jnp.concatenate([jnp.zeros_like(onehot[:, :1]), onehot], 1)


def masked_greedy(q, avail):
    """Argmax of ``q [..., A]`` over the actions ``avail`` marks (all of them where ``avail``
    is None: the plain argmax)."""
    return jnp.argmax(q if avail is None else jnp.where(avail, q, -jnp.inf), -1)


def explore(k_explore, k_rand, eps, action, avail, num_actions: int):
    """Epsilon-greedy: each entry of ``action`` is replaced, with probability ``eps``, by an
    action drawn uniformly from the available ones (``avail`` None: from all actions)."""
    chosen = jax.random.uniform(k_explore, action.shape) < eps
    if avail is None:
        random = jax.random.randint(k_rand, action.shape, 0, num_actions)
    else:
        random = jax.random.categorical(k_rand, jnp.where(avail, 0.0, -jnp.inf))
    return jnp.where(chosen, random, action)


def epsilon(config: IQLConfig, env_steps):
    """Exploration after ``env_steps`` steps: linear from ``epsilon_start`` to ``epsilon_end``."""
    frac = jnp.clip(env_steps / config.epsilon_steps, 0.0, 1.0)
    return config.epsilon_start + (config.epsilon_end - config.epsilon_start) * frac


def td_loss(config: IQLConfig, q, q_target, episodes: Episodes, comm_cost):
    """Squared TD error of the Q-values ``q`` ``[B, T+1, N, A]`` against the target network's
    ``q_target`` on ``episodes``: ``(total, parts)``; ``parts["per_agent"]`` ``[N]`` is each
    agent's own TD loss (the total is their mean, their sum with ``per_agent_clip``, plus
    ``comm_coef * comm_cost``). The next
    step's argmax (double Q: the online network's; else the target's) runs over the actions
    available there where ``episodes`` are :class:`MaskedEpisodes`."""
    q_next_target = q_target[:, 1:]
    taken = jnp.take_along_axis(q[:, :-1], episodes.action[..., None], -1)[..., 0]
    chooser = jax.lax.stop_gradient(q[:, 1:]) if config.double_q else q_next_target
    avail = getattr(episodes, "avail", None)  # MaskedEpisodes
    best = masked_greedy(chooser, None if avail is None else avail[:, 1:])
    q_next = jnp.take_along_axis(q_next_target, best[..., None], -1)[..., 0]
    cont = (1.0 - episodes.terminated.astype(jnp.float32))[..., None]
    y = jax.lax.stop_gradient(episodes.reward + config.gamma * cont * q_next)
    mask = episodes.filled.astype(jnp.float32)[..., None]  # [B, T, 1]
    per_agent = jnp.sum(mask * (taken - y) ** 2, (0, 1)) / jnp.maximum(mask.sum(), 1.0)
    own = per_agent.sum() if config.per_agent_clip else per_agent.mean()
    total = own + config.comm_coef * comm_cost
    num_agents = q.shape[2]
    return total, {"loss": total, "per_agent": per_agent, "comm_cost": comm_cost,
                   "q_taken": jnp.sum(mask * taken) / jnp.maximum(mask.sum() * num_agents, 1.0)}


def make_trainer(config: IQLConfig, progress=None) -> Trainer:
    """The trainer of ``config``; ``progress(update, metrics)`` is called from inside the
    compiled loop every ``config.log_every`` iterations."""
    env, env_params = config.environment
    num_agents, E, T = env.num_agents, config.num_envs, env_params.max_steps_in_episode
    num_actions = int(env.action_space(env_params).n)
    agents = Agents(config, num_agents, num_actions)
    clip = clip_per_agent(config.max_grad_norm) if config.per_agent_clip else None
    tx = make_optimizer(config, config.lr, config.opt_eps, config.rmsprop_eps_in_sqrt, clip)
    buffer = make_buffer(config.buffer_episodes, config.batch_episodes, config.learn_start)
    features = jax.vmap(lambda obs: nets.flatten_obs(obs, num_agents, config.agent_id))
    message_zeros = (nets.message_zeros(agents.channel, 1, config.message_dim)
                     if agents.use_comm else {})
    masked = hasattr(env, "get_avail_actions")  # e.g. dcgenv.adapters.from_jaxmarl's envs
    advance = env.transition if masked else env.step  # no auto-reset: the final state's mask

    def available(state):
        """The available actions of a batch of states, bool ``[E, N, A]``; None: no masks."""
        return jax.vmap(env.get_avail_actions)(state).astype(bool) if masked else None

    def init(key) -> Runner:
        k_params, k_env, key = jax.random.split(key, 3)
        obs, _ = env.reset(k_env, env_params)
        params = agents.init(k_params, nets.flatten_obs(obs, num_agents, config.agent_id))
        episodes, _ = jax.eval_shape(lambda: collect(params, k_env, 1.0, 1))
        item = jax.tree.map(lambda spec: jnp.zeros(spec.shape[1:], spec.dtype), episodes)
        # flashbax's index is weakly typed; a checkpoint restores it strongly typed, and a
        # resumed run would then compile its update again: typed strongly from the start
        stored = jax.tree.map(lambda x: jnp.asarray(x, x.dtype), buffer.init(item))
        return Runner(params, params, tx.init(params), stored,
                      jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), key)

    # COLLECT EPISODES
    def collect(params, key, eps, num_episodes: int, greedy: bool = False):
        """``num_episodes`` episodes from fresh resets, epsilon-greedy with ``eps`` (greedy:
        argmax, channel in evaluation mode), over the available actions where the env has
        masks: ``(Episodes, stats)``; ``stats["sums"]``: the learned coding's
        ``nets.message_sums`` over the episodes' filled steps."""
        k_reset, k_run = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(k_reset, num_episodes), env_params)

        def step(loop_state, step_key):
            obs, state, carry, last, avail, running, sums = loop_state
            k_comm, k_explore, k_rand, k_env = jax.random.split(step_key, 4)
            carry, q, comm = jax.vmap(lambda *a: agents.step(params, *a, not greedy))(
                carry, features(obs), last, jax.random.split(k_comm, num_episodes))
            bits = comm["bits"]
            sums = {k: v + jnp.tensordot(running.astype(jnp.float32), comm[k], 1)
                    for k, v in sums.items()}  # filled steps only, added up as it goes
            action = masked_greedy(q, avail)
            if not greedy:
                action = explore(k_explore, k_rand, eps, action, avail, num_actions)
            obs, state, reward, terminated, truncated, info = jax.vmap(
                advance, in_axes=(0, 0, 0, None))(
                jax.random.split(k_env, num_episodes), state, action, env_params)
            done = terminated | truncated
            stored = done if config.time_limit_terminal else terminated
            # env.transition's obs is the final one (no final_observation in its info)
            step_info = read_info({"final_observation": obs, **info}, done)
            avail = available(state)
            last = None if last is None else jax.nn.one_hot(action, num_actions)
            out = (features(step_info.final_observation), action.astype(jnp.int32),
                   reward.astype(jnp.float32), stored, running, bits * running,
                   step_info.success & done & running, avail)
            return (obs, state, carry, last, avail, running & ~done, sums), out

        carry = jnp.zeros((num_episodes, num_agents, config.hidden))
        last = jnp.zeros((num_episodes, num_agents, num_actions)) if config.last_action else None
        avail = available(state)
        running = jnp.ones(num_episodes, bool)
        (*_, sums), out = jax.lax.scan(
            step, (obs, state, carry, last, avail, running, message_zeros),
            jax.random.split(k_run, T))
        x_next, action, reward, terminated, filled, bits, success, avail_next = jax.tree.map(
            lambda x: jnp.swapaxes(x, 0, 1), out)  # [E, T, ...]
        learned = (jnp.broadcast_to(reward.sum(-1, keepdims=True), reward.shape)
                   if config.team_reward else reward)
        episodes = Episodes(jnp.concatenate([features(obs)[:, None], x_next], 1), action,
                            learned, terminated, filled)
        if masked:
            episodes = MaskedEpisodes(*episodes, jnp.concatenate([avail[:, None], avail_next], 1))
        filled = filled.astype(jnp.float32)
        stats = {"return": jnp.mean(jnp.sum(reward.mean(-1) * filled, 1)),
                 "success": jnp.mean(jnp.any(success, 1).astype(jnp.float32)),
                 "length": jnp.mean(filled.sum(1)), "steps": filled.sum().astype(jnp.int32),
                 "bits": bits.sum(), "messages": num_agents * filled.sum() * agents.use_comm,
                 "sums": sums}
        return episodes, stats

    # UPDATE NETWORK
    def loss(params, target, episodes: Episodes, key):
        """The TD loss of ``params`` on ``episodes``: ``(total, parts)``. The target network's
        unroll is a separate forward pass, outside the gradient, so the backward pass covers
        only the online network."""
        last = (previous_actions(episodes.action, num_actions) if config.last_action
                else None)
        q, cost = agents.unroll(params, episodes.obs, last, key, True)
        q_target, _ = agents.unroll(jax.lax.stop_gradient(target), episodes.obs, last, key,
                                    True)
        return td_loss(config, q, q_target, episodes, cost)

    def learn(runner: Runner, key) -> tuple[Runner, dict]:
        """``gradient_steps`` TD steps on batches sampled from the buffer (NaN losses and no
        step until it holds ``learn_start`` episodes), then the target network's refresh."""
        def gradient_step(state, step_key):
            params, opt_state = state
            k_sample, k_loss = jax.random.split(step_key)
            batch = buffer.sample(runner.buffer, k_sample).experience
            grads, parts = jax.grad(loss, has_aux=True)(params, runner.target, batch, k_loss)
            upd, opt_state = tx.update(grads, opt_state, params)
            parts = {k: v for k, v in parts.items() if k != "per_agent"}
            parts["grad_norm"] = global_norm(grads)  # before clipping
            return (optax.apply_updates(params, upd), opt_state), parts

        def steps(state):  # the buffer is read here, never passed through the cond
            return jax.lax.scan(gradient_step, state,
                                jax.random.split(key, config.gradient_steps))

        def wait(state):
            nan = jnp.full(config.gradient_steps, jnp.nan, jnp.float32)
            return state, {"loss": nan, "comm_cost": nan, "q_taken": nan, "grad_norm": nan}

        (params, opt_state), parts = jax.lax.cond(
            buffer.can_sample(runner.buffer), steps, wait, (runner.params, runner.opt_state))
        refresh = (runner.episodes // config.target_every
                   > (runner.episodes - E) // config.target_every)
        target = jax.tree.map(lambda old, new: jnp.where(refresh, new, old), runner.target,
                              params)
        return runner._replace(params=params, opt_state=opt_state, target=target), parts

    def evaluate_during(runner: Runner, iteration) -> dict:
        """With ``eval_every``: ``eval_episodes_during`` greedy episodes after every
        ``eval_every``-th iteration (NaN otherwise), on a key derived from, not split off, the
        runner's; without it: nothing."""
        if not config.eval_every:
            return {}

        def play(params):
            _, stats = collect(params, jax.random.fold_in(runner.key, 1),
                               0.0, config.eval_episodes_during, greedy=True)
            return {"eval_success": stats["success"], "eval_return": stats["return"]}

        skip = lambda params: {k: jnp.full((), jnp.nan, jnp.float32)
                               for k in ("eval_success", "eval_return")}
        return jax.lax.cond((iteration + 1) % config.eval_every == 0, play, skip,
                            runner.params)

    def update(runner: Runner, iteration=0):
        """One iteration for one seed: play ``num_envs`` episodes, store them, learn (and,
        with ``eval_every``, evaluate)."""
        key, k_collect, k_learn = jax.random.split(runner.key, 3)
        eps = epsilon(config, runner.env_steps)
        episodes, stats = collect(runner.params, k_collect, eps, E)
        runner = runner._replace(buffer=buffer.add(runner.buffer, episodes), key=key,
                                 episodes=runner.episodes + E,
                                 env_steps=runner.env_steps + stats["steps"])
        runner, parts = learn(runner, k_learn)
        metrics = {"success": stats["success"], "return": stats["return"],
                   "length": stats["length"], "epsilon": eps,
                   # env steps so far, all seeds together (the loop averages over seeds)
                   "env_steps": runner.env_steps.astype(jnp.float32) * config.num_seeds,
                   "bits_per_message": stats["bits"] / jnp.maximum(stats["messages"], 1.0),
                   **nets.message_metrics(stats["sums"], stats["messages"]),
                   **{k: jnp.nanmean(v) for k, v in parts.items()},
                   **evaluate_during(runner, iteration)}
        return runner, metrics

    init_seeds, run = make_loop(init, update, config.num_seeds, config.log_every, progress)

    def evaluate(params, key, episodes: int):
        """The greedy policy (epsilon 0, channel in evaluation mode) for ``episodes``."""
        _, stats = collect(params, key, 0.0, episodes, greedy=True)
        return {"episodes": jnp.asarray(episodes, jnp.float32), "success": stats["success"],
                "return": stats["return"], "length": stats["length"],
                "bits_per_message": stats["bits"] / jnp.maximum(stats["messages"], 1.0),
                "env_bits_per_episode": jnp.zeros((), jnp.float32),
                **nets.message_metrics(stats["sums"], stats["messages"])}

    return Trainer(config, env, env_params, init_seeds, run, evaluate, collect, learn, loss)
